// nn/optim.h: optimiser steps equal PyTorch's, state round-trips, gradient clipping, schedules.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>

#include <dgm/autograd/engine.h>
#include <dgm/nn/nn.h>

namespace {

using namespace dgm;

// The problem the reference numbers were produced on:
//   p0 = [[0.5, -1.0], [2.0, 0.25]], p1 = [0.1, -0.3, 0.7] (float64)
//   loss = sum(p0 * p0 * A) + sum(p1^3),  A = [[1, -2], [0.5, 3]]
// three steps of zero_grad(); loss.backward(); step(). Reference values printed by
//   /usr/bin/python3 (torch 1.13, torch.set_default_dtype(torch.float64)) running the same loop
//   with torch.optim.SGD / Adam / AdamW and the options named in each case.
struct Problem {
  Tensor p0 = tensor({{0.5, -1.0}, {2.0, 0.25}}, {.dtype = DType::Float64, .requires_grad = true});
  Tensor p1 = tensor({0.1, -0.3, 0.7}, {.dtype = DType::Float64, .requires_grad = true});
  Tensor A = tensor({{1, -2}, {0.5, 3}}, {.dtype = DType::Float64});
  std::vector<Tensor> params() const { return {p0, p1}; }
  Tensor loss() const { return sum(p0 * p0 * A) + sum(pow(p1, 3)); }
  std::vector<double> values() const {
    std::vector<double> v = p0.to_vector<double>(), w = p1.to_vector<double>();
    v.insert(v.end(), w.begin(), w.end());
    return v;
  }
};

void run_steps(const Problem& pb, nn::Optimizer& opt, int steps = 3) {
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    pb.loss().backward();
    opt.step();
  }
}

void expect_params(const Problem& pb, const std::vector<double>& expected, double tol = 1e-13) {
  std::vector<double> got = pb.values();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], tol * std::max(1.0, std::abs(expected[i]))) << "at " << i;
}

const std::map<std::string, std::vector<double>> kTorch = {
    {"sgd", {0.256, -2.7439999999999998, 1.4580000000000002, 0.015999999999999997, 0.091516490849413, -0.397759953838107, 0.397429810959013}},
    {"sgd_wd", {0.2550411995, -2.7381241990000005, 1.4531453980000002, 0.015880299749999997, 0.09124220808720868, -0.396568472478687, 0.39623141583222754}},
    {"sgd_momentum", {0.03099999999999995, -4.076, 0.972, -0.21350000000000002, 0.083996441075413, -0.478213298284107, 0.09485499843301301}},
    {"sgd_dampening", {0.10944987499999993, -2.9642447499999998, 1.1361645, -0.1985825625, 0.08393919344793599, -0.409491990428544, 0.17127529586298595}},
    {"sgd_nesterov", {-0.05582554712950007, -6.861410411941001, 0.6437193468819999, -0.07570739126475, 0.0774672070584741, -0.6013001107448314, 0.02506020303297518}},
    {"adam", {0.2048712525602996, -1.300490054469176, 1.7006233928121137, -0.030208328998776082, -0.14043633122858387, -0.5939879142928985, 0.40744676631949356}},
    {"adam_wd", {0.35132824853085964, -1.1504119726148143, 1.8502625789026688, 0.10359522395785198, -0.022946433198384488, -0.4508345433145522, 0.5519172193484613}},
    {"adamw", {0.20371238297376437, -1.2971920150365344, 1.6949445151502027, -0.030565965145894124, -0.1405105381316945, -0.5928292293097288, 0.4057310044159}},
    {"adamw_wd", {0.3189083701103448, -1.073360742308107, 1.707996211242681, 0.08969986134820086, -0.02195906062998344, -0.42532122922091564, 0.5054367985841797}},
};

TEST(NnOptim, SGDMatchesPyTorch) {
  struct Case {
    const char* name;
    nn::SGDOptions options;
  };
  for (const Case& c : {Case{"sgd", {.lr = 0.1}}, Case{"sgd_wd", {.lr = 0.1, .weight_decay = 0.01}}, Case{"sgd_momentum", {.lr = 0.1, .momentum = 0.9}},
                        Case{"sgd_dampening", {.lr = 0.1, .momentum = 0.9, .dampening = 0.5, .weight_decay = 0.1}},
                        Case{"sgd_nesterov", {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true}}}) {
    SCOPED_TRACE(c.name);
    Problem pb;
    nn::SGD opt(pb.params(), c.options);
    run_steps(pb, opt);
    expect_params(pb, kTorch.at(c.name));
  }
}

TEST(NnOptim, AdamAndAdamWMatchPyTorch) {
  {
    Problem pb;
    nn::Adam opt(pb.params(), {.lr = 0.1});
    run_steps(pb, opt);
    expect_params(pb, kTorch.at("adam"));
    EXPECT_EQ(opt.state[0].step, 3);
  }
  {
    Problem pb;
    nn::Adam opt(pb.params(), {.lr = 0.05, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1});
    run_steps(pb, opt);
    expect_params(pb, kTorch.at("adam_wd"));
  }
  {
    Problem pb;
    nn::AdamW opt(pb.params(), {.lr = 0.1});  // default weight_decay 1e-2
    run_steps(pb, opt);
    expect_params(pb, kTorch.at("adamw"));
  }
  {
    Problem pb;
    nn::AdamW opt(pb.params(), {.lr = 0.05, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.5});
    run_steps(pb, opt);
    expect_params(pb, kTorch.at("adamw_wd"));
  }
}

TEST(NnOptim, FirstAdamStepByHand) {
  // t = 1: m = (1 - b1) g, v = (1 - b2) g^2, so the step is lr * g / (|g| + eps / sqrt(1 - b2)) ~ lr sign(g)
  Tensor p = tensor({1.0f, -2.0f}, {.requires_grad = true});  // float32 parameters
  nn::Adam opt({p}, {.lr = 0.01});
  sum(p * p).backward();  // g = (2, -4)
  opt.step();
  std::vector<float> v = p.to_vector<float>();
  EXPECT_NEAR(v[0], 1 - 0.01 * 2 / (2 + 1e-8), 1e-7);
  EXPECT_NEAR(v[1], -2 + 0.01 * 4 / (4 + 1e-8), 1e-7);
}

// An optimizer step updates every parameter in one parallel loop over chunks of all of them (16384
// elements each): parameters of several sizes (one spans 3 chunks and a bit) and both float dtypes get
// every element updated by the optimizer's formula, once, and the same bits on 1 and 2 threads; for
// Adam and for SGD with Nesterov momentum.
TEST(NnOptim, StepsUpdateEveryElementOfEveryParameterOnAnyThreadCount) {
  const std::vector<int64_t> sizes = {3, 50000, 700, 16384};
  auto start = [&](size_t i) { return arange(sizes[i], {.dtype = i == 2 ? DType::Float64 : DType::Float32}) * 0.001 - 1.5; };
  for (bool adam : {true, false}) {
    SCOPED_TRACE(adam ? "Adam" : "SGD");
    auto run = [&](int threads) {
      const int before = omp_get_max_threads();
      omp_set_num_threads(threads);
      std::vector<Tensor> params;
      for (size_t i = 0; i < sizes.size(); ++i) params.push_back(start(i).detach().requires_grad_());
      std::unique_ptr<nn::Optimizer> opt;
      if (adam) opt = std::make_unique<nn::Adam>(params, nn::AdamOptions{.lr = 0.1, .weight_decay = 0.01});
      else opt = std::make_unique<nn::SGD>(params, nn::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
      for (int step = 0; step < 2; ++step) {
        opt->zero_grad();
        Tensor loss = sum(params[0] * params[0] * params[0]).to(DType::Float64);
        for (size_t i = 1; i < params.size(); ++i) loss = loss + sum(params[i] * params[i] * params[i]).to(DType::Float64);
        loss.backward();
        opt->step();
      }
      omp_set_num_threads(before);
      return params;
    };
    std::vector<Tensor> one = run(1), two = run(2);
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::vector<double> a = one[i].to(DType::Float64).to_vector<double>(), b = two[i].to(DType::Float64).to_vector<double>();
      const std::vector<double> x0 = start(i).to(DType::Float64).to_vector<double>();
      ASSERT_EQ(a.size(), size_t(sizes[i]));
      for (int64_t j = 0; j < sizes[i]; ++j) {
        ASSERT_EQ(a[size_t(j)], b[size_t(j)]) << "parameter " << i << " element " << j;
        // by hand, in double: g = 3 x^2 + wd x; two steps of lr 0.1 from the same start
        double x = x0[size_t(j)], m = 0, v = 0;
        for (int t = 1; t <= 2; ++t) {
          const double g = 3 * x * x + 0.01 * x;
          if (adam) {
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            x -= 0.1 / (1 - std::pow(0.9, t)) * m / (std::sqrt(v) / std::sqrt(1 - std::pow(0.999, t)) + 1e-8);
          } else {
            m = t == 1 ? g : 0.9 * m + g;  // the momentum buffer starts at the first gradient
            x -= 0.1 * (g + 0.9 * m);      // Nesterov
          }
        }
        ASSERT_NEAR(a[size_t(j)], x, 1e-5 * (1 + std::abs(x))) << "parameter " << i << " element " << j;
      }
    }
  }
}

TEST(NnOptim, SkipsParametersWithoutGradientAndZeroGrad) {
  Tensor a = tensor({1.0}, {.requires_grad = true}), b = tensor({5.0}, {.requires_grad = true});
  nn::SGD opt({a, b}, {.lr = 0.5, .momentum = 0.9});
  sum(a * 3.0).backward();
  opt.step();
  EXPECT_FLOAT_EQ(a.item<float>(), 1 - 0.5f * 3);
  EXPECT_FLOAT_EQ(b.item<float>(), 5);  // no gradient: untouched, no momentum buffer
  EXPECT_EQ(opt.state_dict().size(), 1u);
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  EXPECT_THROW(nn::SGD({a, a}), ValueError);  // a parameter listed twice
  Tensor not_leaf = a * 2.0;
  EXPECT_THROW(nn::Adam({not_leaf}), ValueError);
  Tensor frozen = tensor({2.0});  // requires_grad off: accepted, never updated
  nn::Adam with_frozen({a, frozen});
  sum(a * a).backward();
  with_frozen.step();
  EXPECT_EQ(frozen.item(), 2.0);
  EXPECT_THROW(nn::SGD({a}, {.lr = 0.1, .nesterov = true}), ValueError);
}

TEST(NnOptim, StateDictResumesBitForBit) {
  for (bool adam : {true, false}) {
    SCOPED_TRACE(adam ? "AdamW" : "SGD");
    auto make = [&](const Problem& pb) -> std::unique_ptr<nn::Optimizer> {
      if (adam) return std::make_unique<nn::AdamW>(pb.params(), nn::AdamWOptions{.lr = 0.05});
      return std::make_unique<nn::SGD>(pb.params(), nn::SGDOptions{.lr = 0.05, .momentum = 0.9});
    };
    Problem straight, resumed;
    auto opt = make(straight);
    run_steps(straight, *opt, 5);

    auto first = make(resumed);
    run_steps(resumed, *first, 2);
    nn::NamedTensors state = first->state_dict();
    // a fresh optimiser, as after a restart (the parameters come from the model checkpoint)
    Problem restarted;
    {
      NoGradGuard ng;
      restarted.p0.copy_(resumed.p0);
      restarted.p1.copy_(resumed.p1);
    }
    auto second = make(restarted);
    second->load_state_dict(state);
    run_steps(restarted, *second, 3);
    EXPECT_EQ(restarted.values(), straight.values());
  }
  Problem pb;
  nn::Adam opt(pb.params());
  run_steps(pb, opt, 1);
  nn::NamedTensors state = opt.state_dict();
  std::vector<std::string> keys;
  for (auto& [k, v] : state) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"0.step", "0.exp_avg", "0.exp_avg_sq", "1.step", "1.exp_avg", "1.exp_avg_sq"}));
  state[1].second = zeros({3});
  EXPECT_THROW(opt.load_state_dict(state), ShapeError);
  state[1].second = zeros({2, 2});
  state.emplace_back("7.step", zeros({}));
  EXPECT_THROW(opt.load_state_dict(state), ValueError);
}

TEST(NnOptim, ClipGradNormMatchesPyTorch) {
  // torch.nn.utils.clip_grad_norm_([p0, p1], 1.5) after one backward of the problem's loss
  Problem pb;
  pb.loss().backward();
  double total = nn::clip_grad_norm_(pb.params(), 1.5);
  EXPECT_NEAR(total, 5.048237316133227, 1e-13);
  std::vector<double> g = pb.p0.grad().to_vector<double>(), g1 = pb.p1.grad().to_vector<double>();
  g.insert(g.end(), g1.begin(), g1.end());
  std::vector<double> expected{0.29713335743407365, 1.1885334297362946, 0.5942667148681473, 0.4457000361511105,
                               0.008914000723022212, 0.0802260065071999, 0.4367860354280882};
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], expected[i], 1e-13) << i;
  // below the threshold nothing changes
  std::vector<double> before = pb.p1.grad().to_vector<double>();
  EXPECT_NEAR(nn::clip_grad_norm_(pb.params(), 100), 1.5, 1e-5);
  EXPECT_EQ(pb.p1.grad().to_vector<double>(), before);
}

TEST(NnOptim, SchedulersHitTheirValues) {
  Tensor p = zeros({1}, {.requires_grad = true});
  // torch.optim.lr_scheduler with SGD(lr=0.5), the lr after 0..12 scheduler steps
  std::vector<double> step_lr{0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.0625, 0.0625, 0.0625, 0.03125};
  std::vector<double> cosine{0.5,  0.48800884649231263, 0.4532091636218621,  0.39900738681165593, 0.33070916362186215, 0.255, 0.17929083637813792,
                             0.11099261318834411, 0.05679083637813791, 0.021991153507687385, 0.01, 0.021991153507687385, 0.05679083637813806};
  {
    nn::SGD opt({p}, {.lr = 0.5});
    nn::StepLR sched(opt, 3, 0.5);
    for (size_t i = 0; i < step_lr.size(); ++i, sched.step()) EXPECT_NEAR(opt.lr(), step_lr[i], 1e-15) << i;
  }
  {
    nn::SGD opt({p}, {.lr = 0.5});
    nn::CosineAnnealingLR sched(opt, 10, 0.01);
    for (size_t i = 0; i < cosine.size(); ++i, sched.step()) EXPECT_NEAR(opt.lr(), cosine[i], 1e-14) << i;
  }
  {
    nn::AdamW opt({p}, {.lr = 1.0});
    nn::WarmupCosineLR sched(opt, 4, 14, 0.1);
    // warm-up (step + 1) / 4; then 0.1 + 0.9 (1 + cos(pi (step - 4) / 10)) / 2; past 14: 0.1
    std::vector<double> expected{0.25, 0.5, 0.75, 1.0, 1.0};
    for (int s = 5; s <= 14; ++s) expected.push_back(0.1 + 0.9 * (1 + std::cos(M_PI * (s - 4) / 10.0)) / 2);
    expected.push_back(0.1);
    for (size_t i = 0; i < expected.size(); ++i, sched.step()) EXPECT_NEAR(opt.lr(), expected[i], 1e-15) << i;
    EXPECT_NEAR(sched.get_lr(9), 0.55, 1e-15);  // half way through the decay
    sched.set_step(2);
    EXPECT_EQ(opt.lr(), 0.75);
    EXPECT_EQ(sched.last_step(), 2);
  }
}

// The KL chapter's exercise: fit one Gaussian q to a two-mode mixture p by maximum likelihood on
// samples of p (= minimising KL(p || q)); the optimum matches p's mean and variance.
TEST(NnOptim, AdamFitsAGaussianToAMixture) {
  nn::GaussianMixture p(tensor({0.5, 0.5}), tensor({-2.0, 2.0}), tensor({0.5, 0.5}));
  Generator g(1);
  Tensor data = p.sample(4000, g);
  Tensor mu = zeros({1}, {.requires_grad = true}), log_sigma = zeros({1}, {.requires_grad = true});
  nn::Adam opt({mu, log_sigma}, {.lr = 0.05});
  for (int step = 0; step < 400; ++step) {
    opt.zero_grad();
    Tensor nll = -mean(nn::Normal(mu, exp(log_sigma)).log_prob(data));
    nll.backward();
    opt.step();
  }
  double m = mean(data).item(), v = var(data, {}, 0).item();  // the maximum-likelihood answer
  EXPECT_NEAR(mu.item(), m, 0.02);
  EXPECT_NEAR(std::exp(2 * log_sigma.item()), v, 0.05);
  EXPECT_NEAR(v, 4.25, 0.2);  // 0.25 + 4: the mixture's variance
}

}  // namespace
