// The flow models (models/flow_models.h): realnvp and maf at small sizes, in float64 where a
// Jacobian is compared.
#include <gtest/gtest.h>

#include <cmath>

#include <dgm/autograd/functional.h>
#include <dgm/autograd/ops.h>
#include <dgm/models/flow_models.h>
#include <dgm/models/registry.h>
#include <dgm/nn/optim.h>

using namespace dgm;
using namespace dgm::models;
using linalg::slogdet;

namespace {

SampleOptions at_temperature(double t) {
  SampleOptions o;
  o.temperature = t;
  return o;
}

std::vector<double> values(const Tensor& t) { return t.detach().to(DType::Float64).contiguous().to_vector<double>(); }

// Pixels with structure (a bright square on a dark background plus noise), so training has something to learn.
Tensor byte_images(int64_t n, int64_t size, Generator& gen) {
  std::vector<int64_t> x;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < size; ++i)
      for (int64_t j = 0; j < size; ++j) {
        bool inside = i >= size / 4 && i < 3 * size / 4 && j >= size / 4 && j < 3 * size / 4;
        x.push_back(inside ? 200 + gen.randint(0, 56) : gen.randint(0, 30));
      }
  return from_vector(x, {n, size * size});
}

// The homework's architecture: affine couplings, uniform noise, no learned prior.
std::shared_ptr<DequantizedFlow> small_realnvp() {
  return std::make_shared<RealNVP>(RealNVPConfig{
      .filters = 4, .blocks = 1, .checkerboard = 2, .channel = 2, .image_size = 4, .learned_prior = false, .dequantization = "uniform"});
}
// Two scales: the second (checkerboard couplings at 2x2 on 2 channels, a squeeze to 8 channels of
// 1x1, channel couplings) runs inside a FactorOut on half the channels of the first squeeze.
std::shared_ptr<DequantizedFlow> small_multiscale_realnvp() {
  return std::make_shared<RealNVP>(RealNVPConfig{.filters = 4, .blocks = 1, .checkerboard = 2, .channel = 2, .scales = 2, .image_size = 4});
}
// Mixture-of-logistics couplings and a learned prior.
std::shared_ptr<DequantizedFlow> small_mixture_realnvp() {
  return std::make_shared<RealNVP>(
      RealNVPConfig{.filters = 4, .blocks = 1, .checkerboard = 2, .channel = 2, .image_size = 4, .mixtures = 3, .learned_prior = true, .input_affine = true});
}
std::shared_ptr<DequantizedFlow> small_maf() { return std::make_shared<MAF>(MAFConfig{.layers = 2, .hidden = 24, .image_size = 4}); }

}  // namespace

TEST(ModelsFlows, ExactlyInvertible) {
  manual_seed(1);
  for (auto m : {small_realnvp(), small_multiscale_realnvp(), small_mixture_realnvp(), small_maf()}) {
    SCOPED_TRACE(m->type_name());
    m->to(DType::Float64);
    m->eval();
    Generator gen(2);
    for (Tensor p : m->parameters()) p.set_data((p.detach() + randn(p.shape(), {.dtype = DType::Float64}, &gen) * 0.1).array());
    Tensor y = rand({3, 16}, {.dtype = DType::Float64}, &gen) * 0.9 + 0.05;
    Shape s = m->type_name() == "RealNVP" ? Shape{3, 1, 4, 4} : Shape{3, 16};
    SCOPED_TRACE(m->config().dump());
    Tensor z = m->flow->forward(reshape(y, s));
    std::vector<double> back = values(reshape(m->flow->inverse(z), {3, 16})), yv = values(y);
    for (size_t i = 0; i < yv.size(); ++i) EXPECT_NEAR(back[i], yv[i], 1e-10);
  }
}

TEST(ModelsFlows, FullModelLogDetEqualsSlogdetOfTheJacobian) {
  manual_seed(3);
  for (auto m : {small_realnvp(), small_multiscale_realnvp(), small_mixture_realnvp(), small_maf()}) {
    SCOPED_TRACE(m->type_name());
    m->to(DType::Float64);
    m->eval();
    Generator gen(4);
    for (Tensor p : m->parameters()) p.set_data((p.detach() + randn(p.shape(), {.dtype = DType::Float64}, &gen) * 0.1).array());
    Shape s = m->type_name() == "RealNVP" ? Shape{2, 1, 4, 4} : Shape{2, 16};
    SCOPED_TRACE(m->config().dump());
    Tensor y = reshape(rand({2, 16}, {.dtype = DType::Float64}, &gen) * 0.9 + 0.05, s);
    auto f = [&](const Tensor& v) { return reshape(m->flow->forward(v), {v.size(0), 16}); };
    Tensor j = autograd::batch_jacobian(f, y).reshape({2, 16, 16});
    std::vector<double> dense = values(slogdet(j).logabsdet), ld = values(m->flow->forward_and_log_det(y).log_det);
    for (int b = 0; b < 2; ++b) EXPECT_NEAR(ld[b], dense[b], 1e-9);
  }
}

TEST(ModelsFlows, LogProbIsDeterministicAndTheDequantisedBound) {
  manual_seed(5);
  auto m = small_realnvp();
  m->eval();  // ActNorm keeps its identity start (training mode would initialise it from this batch)
  Generator gen(6);
  Tensor x = byte_images(4, 4, gen);
  NoGradGuard no_grad;
  std::vector<double> a = values(m->log_prob(x)), b = values(m->log_prob(x));
  EXPECT_EQ(a, b);
  // the same image gets the same value in another batch position
  Tensor swapped = cat({x.narrow(0, 1, 1), x.narrow(0, 0, 1)}, 0);
  std::vector<double> c = values(m->log_prob(swapped));
  EXPECT_NEAR(c[0], a[1], 1e-4);
  // a fresh flow is logit + identity couplings: log p = log N(logit y~) + logit log-det - D log 256, by hand
  Tensor u = DequantizedFlow::hashed_noise(x);
  std::vector<double> xv = values(x), uv = values(u);
  const double alpha = m->config().at("logit_alpha").get<double>();
  EXPECT_EQ(alpha, 1e-6);  // the default
  double expected = 0;
  for (int j = 0; j < 16; ++j) {
    double y = (xv[j] + uv[j]) / 256, yt = alpha + (1 - 2 * alpha) * y, v = std::log(yt) - std::log(1 - yt);
    expected += -0.5 * v * v - 0.5 * std::log(2 * M_PI) + std::log(1 - 2 * alpha) - std::log(yt) - std::log(1 - yt) - std::log(256.0);
  }
  EXPECT_NEAR(a[0], expected, 1e-3);
}

// A fresh coupling is the identity (scale = shift = 0, the conditioner's shift outputs zero), yet
// every part of it learns: the first backward reaches each coupling's scale and the shift half of
// its conditioner's output conv; once a step has moved the scale off zero, the log-scale half
// gets a gradient too. (With the whole output conv zeroed, scale and the raw log-scale would be
// each other's zero factor for ever: couplings that only shift, as dgm's realnvp had until
// 2026-11-30.)
TEST(ModelsFlows, EveryCouplingLearnsItsScale) {
  manual_seed(11);
  auto m = create_model("realnvp", {{"filters", 4}, {"blocks", 1}, {"checkerboard", 3}, {"channel", 3}, {"image_size", 8}});
  Generator gen(12);
  Tensor x = byte_images(8, 8, gen);
  nn::Adam opt(m->parameters(), {.lr = 1e-3});
  for (int step = 0; step < 2; ++step) {
    SCOPED_TRACE(step);
    opt.zero_grad();
    m->loss(x, gen).backward();
    int scales = 0, out_convs = 0;
    for (auto& [name, p] : m->named_parameters()) {
      const bool scale = name.ends_with(".scale"), out_weight = name.ends_with("conditioner.out.weight");
      if (!scale && !out_weight) continue;
      SCOPED_TRACE(name);
      ASSERT_TRUE(p.grad().defined());
      std::vector<double> g = values(p.grad());
      if (scale) {
        ++scales;
        EXPECT_GT(std::abs(g[0]), 1e-7);
      } else {  // (2C, F, 3, 3): [log-scale half; shift half]
        ++out_convs;
        double s_half = 0, t_half = 0;
        for (size_t i = 0; i < g.size(); ++i) (i < g.size() / 2 ? s_half : t_half) += std::abs(g[i]);
        EXPECT_GT(t_half, 1e-7);
        if (step == 0) EXPECT_EQ(s_half, 0.0);  // scale = 0 multiplies it
        else EXPECT_GT(s_half, 1e-7);
      }
    }
    EXPECT_EQ(scales, 9);  // 3 checkerboard + 3 channel + 3 checkerboard couplings
    EXPECT_EQ(out_convs, 9);
    opt.step();
  }
}

// The homework's variant: binarized pixels (K = 2), logit alpha 1e-6. A fresh flow is the logit
// alone, so log P(x) is that of N(logit y~) with the logit's log-det and -D log 2, by hand.
TEST(ModelsFlows, BinaryVariantDequantisesTwoLevels) {
  manual_seed(13);
  auto m = std::dynamic_pointer_cast<DequantizedFlow>(create_model("realnvp", {{"binary", true}, {"filters", 4}, {"image_size", 4}}));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data_kind(), DataKind::Binary);
  EXPECT_EQ(m->levels(), 2);
  EXPECT_EQ(m->config().at("logit_alpha").get<double>(), 1e-6);
  EXPECT_EQ(create_model("realnvp", m->config())->config(), m->config());  // what a checkpoint rebuilds
  m->eval();
  Generator gen(14);
  std::vector<int64_t> xs;
  for (int i = 0; i < 32; ++i) xs.push_back(gen.randint(0, 2));
  Tensor x = from_vector(xs, {2, 16});
  Tensor u = DequantizedFlow::hashed_noise(x);
  std::vector<double> a = values(m->log_prob(x)), uv = values(u);
  const double alpha = 1e-6;
  for (int b = 0; b < 2; ++b) {
    double expected = 0;
    for (int j = 0; j < 16; ++j) {
      double y = (double(xs[b * 16 + j]) + uv[b * 16 + j]) / 2, yt = alpha + (1 - 2 * alpha) * y, v = std::log(yt) - std::log(1 - yt);
      expected += -0.5 * v * v - 0.5 * std::log(2 * M_PI) + std::log(1 - 2 * alpha) - std::log(yt) - std::log(1 - yt) - std::log(2.0);
    }
    EXPECT_NEAR(a[b], expected, 1e-3 * std::abs(expected));
  }
  Tensor s = m->sample(6, gen);
  EXPECT_EQ(s.shape(), (Shape{6, 16}));
  for (int64_t v : s.to_vector<int64_t>()) EXPECT_TRUE(v == 0 || v == 1) << v;
  EXPECT_THROW(create_model("realnvp", {{"logit_alpha", 0.5}}), ValueError);
  EXPECT_THROW(create_model("maf", {{"max_grad_norm", -1}}), ValueError);
  EXPECT_THROW(create_model("realnvp", {{"binary", 1}}), ValueError);
}

TEST(ModelsFlows, TrainingStepsLowerTheLoss) {
  for (std::string name : {"realnvp", "maf"}) {
    SCOPED_TRACE(name);
    manual_seed(7);
    nlohmann::json cfg = name == "realnvp" ? nlohmann::json{{"filters", 8}, {"blocks", 1}, {"image_size", 8}}
                                           : nlohmann::json{{"layers", 2}, {"hidden", 64}, {"image_size", 8}};
    auto m = create_model(name, cfg);
    Generator gen(8);
    Tensor x = byte_images(16, 8, gen);
    nn::Adam opt(m->parameters(), {.lr = 3e-3});
    std::vector<double> losses;
    for (int step = 0; step < 20; ++step) losses.push_back(m->train_step(x, gen, {&opt}));
    double first = (losses[0] + losses[1] + losses[2]) / 3, last = (losses[17] + losses[18] + losses[19]) / 3;
    EXPECT_LT(last, first - 0.1) << first << " -> " << last;
    EXPECT_TRUE(std::isfinite(last));
  }
}

TEST(ModelsFlows, SamplesHaveShapeRangeAndTemperature) {
  for (std::string name : {"realnvp", "maf"}) {
    SCOPED_TRACE(name);
    manual_seed(9);
    nlohmann::json cfg = name == "realnvp" ? nlohmann::json{{"filters", 4}, {"blocks", 1}, {"image_size", 8}}
                                           : nlohmann::json{{"layers", 1}, {"hidden", 32}, {"image_size", 8}};
    auto m = create_model(name, cfg);
    Generator gen(10);
    Tensor s = m->sample(100, gen);
    EXPECT_EQ(s.shape(), (Shape{100, 64}));
    EXPECT_EQ(s.dtype(), DType::Int64);
    std::vector<double> v = values(s);
    EXPECT_GE(*std::min_element(v.begin(), v.end()), 0);
    EXPECT_LE(*std::max_element(v.begin(), v.end()), 255);
    // a fresh flow samples y = sigmoid-ish of N(0, T^2): a lower temperature concentrates the pixels at the middle
    Generator g1(11), g2(11);
    auto spread = [](const Tensor& t) {
      std::vector<double> w = values(t);
      double m2 = 0;
      for (double x : w) m2 += (x - 127.5) * (x - 127.5) / double(w.size());
      return std::sqrt(m2);
    };
    double cold = spread(m->sample(100, g1, at_temperature(0.3))), warm = spread(m->sample(100, g2, at_temperature(1.0)));
    EXPECT_LT(cold, 0.5 * warm) << cold << " vs " << warm;
    EXPECT_THROW(m->sample(2, gen, at_temperature(0)), ValueError);
  }
}

TEST(ModelsFlows, RegistryConfigsRoundTrip) {
  for (std::string name : {"realnvp", "maf"}) {
    auto m = create_model(name);
    EXPECT_EQ(m->data_kind(), DataKind::Byte);
    EXPECT_EQ(create_model(name, m->config())->config(), m->config());
  }
  EXPECT_THROW(create_model("realnvp", {{"filter", 3}}), ValueError);
}

// A maf checkpoint written before max_log_scale existed was trained unbounded: its saved config,
// read back through saved_config(), must rebuild that model (c = 0), not the bounded default (c = 3).
TEST(ModelsFlows, OldMafConfigsKeepTheirUnboundedLogScales) {
  nlohmann::json old_config = {{"layers", 2}, {"hidden", 24}, {"image_size", 4}};  // no max_log_scale key
  EXPECT_EQ(saved_config("maf", old_config)["max_log_scale"], 0);
  EXPECT_EQ(saved_config("maf", {{"max_log_scale", 2.5}})["max_log_scale"], 2.5);  // a saved value wins
  EXPECT_EQ(create_model("maf", old_config)->config()["max_log_scale"], 3);          // a new config: the default
  EXPECT_FALSE(saved_config("realnvp", {{"filters", 4}}).contains("max_log_scale"));
  EXPECT_TRUE(saved_config("maf", nlohmann::json::array()).is_array());  // left for create_model to refuse

  manual_seed(3);
  auto unbounded = create_model("maf", {{"layers", 2}, {"hidden", 24}, {"image_size", 4}, {"max_log_scale", 0}});
  // weights that make log-scales large, where the bound changes the density
  Generator init(5);
  for (Tensor& p : unbounded->parameters()) p.set_data((rand(p.shape(), {.dtype = p.dtype()}, &init) * 2.0 - 1.0).array());
  auto restored = create_model("maf", saved_config("maf", old_config));
  auto bounded = create_model("maf", old_config);
  restored->load_state_dict(unbounded->state_dict());
  bounded->load_state_dict(unbounded->state_dict());
  Generator gen(4);
  Tensor x = byte_images(6, 4, gen);
  std::vector<double> want = values(unbounded->log_prob(x)), got = values(restored->log_prob(x)), other = values(bounded->log_prob(x));
  double most_apart = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_DOUBLE_EQ(got[i], want[i]);
    most_apart = std::max(most_apart, std::abs(other[i] - want[i]));
  }
  EXPECT_GT(most_apart, 1e-3);  // the test means something: the bound does change these densities
}

// scales = 2 nests a second scale inside a FactorOut after the channel couplings; the image size
// must survive a squeeze per scale, and the config says how many scales a checkpoint has.
TEST(ModelsFlows, MultiScaleRealNVPNestsItsSecondScale) {
  auto one = create_model("realnvp", {{"filters", 4}, {"checkerboard", 3}, {"channel", 3}, {"image_size", 8}});
  auto two = create_model("realnvp", {{"filters", 4}, {"checkerboard", 3}, {"channel", 3}, {"image_size", 8}, {"scales", 2}});
  EXPECT_EQ(one->config().at("scales"), 1);
  EXPECT_EQ(two->config().at("scales"), 2);
  int factor_outs = 0, couplings_one = 0, couplings_two = 0;
  for (auto& [name, p] : one->named_parameters()) couplings_one += name.ends_with(".scale");
  for (auto& [name, p] : two->named_parameters()) {
    couplings_two += name.ends_with(".scale");
    factor_outs += name.find(".flow.") != std::string::npos && name.ends_with(".scale");
  }
  EXPECT_EQ(couplings_one, 9);
  EXPECT_EQ(couplings_two, 18);  // the second scale's 3 + 3 + 3 couplings on half the channels
  EXPECT_EQ(factor_outs, 9);     // ... all of them inside the FactorOut
  Generator gen(21);
  Tensor x = byte_images(4, 8, gen);
  NoGradGuard no_grad;
  two->eval();
  for (double v : values(two->log_prob(x))) EXPECT_TRUE(std::isfinite(v));
  EXPECT_EQ(two->sample(2, gen).shape(), (Shape{2, 64}));
  try {
    create_model("realnvp", {{"image_size", 28}, {"scales", 3}});
    ADD_FAILURE() << "28 is not divisible by 2^3";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("divisible by 2^scales"), std::string::npos) << e.what();
  }
}

// dequantization = variational: u ~ logit-normal(m_x, e^{l_x}) per grey level x; conditional adds
// a CNN of the image to m and l. log_prob is the flow's log-density at y = (x + u) / K minus
// log q(u | x), both by hand here; the loss trains q's parameters with the flow's.
TEST(ModelsFlows, VariationalDequantizationSubtractsLogQ) {
  // the default: conditional for 8-bit pixels; uniform for the homework's binary ones and for maf
  EXPECT_EQ(create_model("realnvp", {{"image_size", 4}})->config().at("dequantization"), "conditional");
  EXPECT_EQ(create_model("realnvp", {{"image_size", 4}, {"binary", true}})->config().at("dequantization"), "uniform");
  EXPECT_FALSE(std::dynamic_pointer_cast<DequantizedFlow>(create_model("maf", {{"image_size", 4}, {"hidden", 8}}))->variational());
  EXPECT_FALSE(std::dynamic_pointer_cast<DequantizedFlow>(create_model("realnvp", {{"image_size", 4}, {"dequantization", "uniform"}}))->variational());
  EXPECT_EQ(create_model("realnvp", {{"image_size", 4}})->objective(), Objective::NLLBound);  // the evaluator says test_nll_bound
  // a checkpoint from before these keys was an affine, one-scale, uniform-noise flow without a learned prior
  nlohmann::json old_realnvp = saved_config("realnvp", {{"filters", 4}, {"checkerboard", 3}, {"channel", 3}, {"image_size", 4}});
  EXPECT_EQ(old_realnvp.at("dequantization"), "uniform");
  EXPECT_EQ(old_realnvp.at("learned_prior"), false);
  // ... and its logit used alpha 0.05; a new model's is 1e-6 (8-bit and binary alike), a saved value wins
  EXPECT_EQ(old_realnvp.at("logit_alpha"), 0.05);
  EXPECT_EQ(saved_config("maf", {{"layers", 2}}).at("logit_alpha"), 0.05);
  EXPECT_EQ(saved_config("realnvp", {{"logit_alpha", 1e-3}}).at("logit_alpha"), 1e-3);
  EXPECT_EQ(create_model("realnvp", {{"image_size", 4}})->config().at("logit_alpha"), 1e-6);
  EXPECT_EQ(create_model("maf", {{"image_size", 4}, {"hidden", 8}})->config().at("logit_alpha"), 1e-6);
  EXPECT_EQ(create_model("realnvp", old_realnvp)->config().at("logit_alpha"), 0.05);
  for (auto& [name, p] : create_model("realnvp", old_realnvp)->named_parameters()) EXPECT_EQ(name.find("dequant"), std::string::npos) << name;
  EXPECT_THROW(create_model("maf", {{"dequantization", "gaussian"}}), ValueError);
  for (std::string kind : {"variational", "conditional"}) {
    SCOPED_TRACE(kind);
    manual_seed(17);
    auto m = std::dynamic_pointer_cast<DequantizedFlow>(create_model("realnvp", {{"filters", 4}, {"image_size", 4}, {"dequantization", kind}}));
    ASSERT_TRUE(m && m->variational());
    EXPECT_EQ(bool(m->dequant_net), kind == "conditional");
    EXPECT_EQ(create_model("realnvp", m->config())->config(), m->config());
    m->to(DType::Float64);
    m->eval();
    Generator gen(18);
    for (Tensor p : m->parameters()) p.set_data((p.detach() + randn(p.shape(), {.dtype = DType::Float64}, &gen) * 0.3).array());
    Tensor x = byte_images(2, 4, gen);
    std::vector<double> lp = values(m->log_prob(x));
    Tensor eps = DequantizedFlow::hashed_noise(x, true);
    std::vector<double> xv = values(x), ev = values(eps), mv = values(m->dequant_mean), lv = values(m->dequant_log_scale);
    std::vector<double> context(64, 0.0);  // (2, 2, 16): the CNN's additions to m and l
    if (m->dequant_net) context = values(m->dequant_net->forward(reshape(x.to(DType::Float64), {2, 1, 4, 4}) / 255.0 - 0.5));
    std::vector<double> u(32), log_q(2, 0.0);
    for (int i = 0; i < 32; ++i) {
      const int level = int(xv[i]), b = i / 16, j = i % 16;
      const double mean = mv[level] + context[b * 32 + j], log_scale = lv[level] + context[b * 32 + 16 + j];
      const double a = mean + std::exp(log_scale) * ev[i];
      u[i] = 1 / (1 + std::exp(-a));
      // log u = -log(1 + e^{-a}), log(1 - u) = -log(1 + e^{a}): finite where u rounds to 1
      log_q[b] += -0.5 * ev[i] * ev[i] - 0.5 * std::log(2 * M_PI) - log_scale + std::log1p(std::exp(-a)) + std::log1p(std::exp(a));
    }
    std::vector<double> flow_lp = values(m->log_prob_with_noise(x, from_vector(u, {2, 16}).to(DType::Float64)));
    for (int b = 0; b < 2; ++b) EXPECT_NEAR(lp[b], flow_lp[b] - log_q[b], 1e-9 * std::abs(lp[b]));
    // u stays inside its bin even where sigmoid saturates, and log q stays finite
    auto [u_far, log_q_far] = m->dequantize(x, full({2, 16}, 40.0, {.dtype = DType::Float64}));
    for (double v : values(u_far)) EXPECT_LE(v, 1.0);
    for (double v : values(log_q_far)) EXPECT_TRUE(std::isfinite(v)) << v;
    // one backward reaches q's parameters
    m->train();
    m->zero_grad();
    m->loss(x, gen).backward();
    ASSERT_TRUE(m->dequant_mean.grad().defined() && m->dequant_log_scale.grad().defined());
    double total = 0;
    for (Tensor g : {m->dequant_mean.grad(), m->dequant_log_scale.grad()})
      for (double v : values(g)) total += std::abs(v);
    EXPECT_GT(total, 1e-6);
  }
}
