// nn/: Module, layers, functional forms and losses, distributions, init.
// Every layer and loss is gradchecked in float64 (as a function of its inputs and its parameters),
// most are gradgradchecked, and each forward is compared with values computed by hand (or by a
// plain loop written independently in this file).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include <dgm/autograd/engine.h>
#include <dgm/autograd/gradcheck.h>
#include <dgm/nn/nn.h>

namespace {

using namespace dgm;
namespace F = dgm::nn::functional;
using nn::Module;

constexpr TensorOptions kF64{.dtype = DType::Float64};
constexpr TensorOptions kF64Grad{.dtype = DType::Float64, .requires_grad = true};

Tensor f64(std::initializer_list<double> v, bool requires_grad = false) { return tensor(v, {.dtype = DType::Float64, .requires_grad = requires_grad}); }
Tensor f64(std::initializer_list<std::initializer_list<double>> v, bool requires_grad = false) {
  return tensor(v, {.dtype = DType::Float64, .requires_grad = requires_grad});
}
Tensor i64(std::initializer_list<double> v) { return tensor(v, {.dtype = DType::Int64}); }
Tensor f64_11(double v) { return f64({v}).reshape({1, 1}); }  // shape (1, 1)
Tensor leaf(const Tensor& t) { return t.detach().requires_grad_(); }

void expect_values(const Tensor& t, const std::vector<double>& expected, double tol = 1e-12) {
  std::vector<double> got = t.to_vector<double>();
  ASSERT_EQ(got.size(), expected.size()) << "shape " << shape_str(t.shape());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], tol * std::max(1.0, std::abs(expected[i]))) << "at flat index " << i;
}

// Runs gradcheck and gradgradcheck of fn over `inputs` (float64 tensors requiring grad, or
// parameters of a float64 module that fn reads).
void check_grads(const DifferentiableFn& fn, const std::vector<Tensor>& inputs, bool second_order = true, GradcheckOptions opt = {}) {
  GradcheckResult r = gradcheck(fn, inputs, opt);
  EXPECT_TRUE(r.ok) << r.message;
  if (second_order) {
    GradcheckResult r2 = gradgradcheck(fn, inputs, opt);
    EXPECT_TRUE(r2.ok) << r2.message;
  }
}

// Gradcheck of a module: x plus every parameter as inputs (the module reads its parameters, which
// gradcheck perturbs in place).
void check_module_grads(Module& m, const Tensor& x, bool second_order = true) {
  std::vector<Tensor> inputs{x};
  for (const Tensor& p : m.parameters()) inputs.push_back(p);
  check_grads([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{m.forward(in[0])}; }, inputs, second_order);
}

// ================================================= Module =================================================
struct TinyGPT : Module {
  std::shared_ptr<nn::Embedding> tok;
  std::shared_ptr<nn::Sequential> blocks;
  std::shared_ptr<nn::Linear> head;
  explicit TinyGPT(int64_t d = 64, int64_t heads = 4) : Module("ImageGPT") {
    tok = register_module("tok", std::make_shared<nn::Embedding>(2, d));
    blocks = register_module("blocks", std::make_shared<nn::Sequential>(std::make_shared<nn::TransformerBlock>(d, heads)));
    head = register_module("head", std::make_shared<nn::Linear>(d, 2));
  }
};

TEST(NnModule, HierarchicalNamesInRegistrationOrder) {
  TinyGPT m(8, 2);
  std::vector<std::string> names;
  for (auto& [name, p] : m.named_parameters()) names.push_back(name);
  std::vector<std::string> expected{"tok.weight",
                                    "blocks.0.ln1.weight",
                                    "blocks.0.ln1.bias",
                                    "blocks.0.attn.qkv.weight",
                                    "blocks.0.attn.qkv.bias",
                                    "blocks.0.attn.proj.weight",
                                    "blocks.0.attn.proj.bias",
                                    "blocks.0.ln2.weight",
                                    "blocks.0.ln2.bias",
                                    "blocks.0.mlp.0.weight",
                                    "blocks.0.mlp.0.bias",
                                    "blocks.0.mlp.2.weight",
                                    "blocks.0.mlp.2.bias",
                                    "head.weight",
                                    "head.bias"};
  EXPECT_EQ(names, expected);
  // 2*8 + LN 16 + qkv 8*24+24 + proj 64+8 + LN 16 + mlp 8*16+16 + 16*8+8 + head 16+2
  EXPECT_EQ(m.num_parameters(), 16 + 16 + 216 + 72 + 16 + 144 + 136 + 18);
  EXPECT_EQ(m.parameters().size(), expected.size());
  for (const Tensor& p : m.parameters()) EXPECT_TRUE(p.requires_grad() && p.is_leaf());
  std::vector<std::string> modules;
  for (auto& [name, mod] : m.named_modules()) modules.push_back(name + ":" + mod->type_name());
  EXPECT_EQ(modules[0], ":ImageGPT");
  EXPECT_EQ(modules[3], "blocks.0:TransformerBlock");
  EXPECT_EQ(modules[4], "blocks.0.ln1:LayerNorm");
  EXPECT_EQ(modules.back(), "head:Linear");
}

TEST(NnModule, PrintsATreeLikePyTorch) {
  TinyGPT m;
  const char* expected =
      "ImageGPT(\n"
      "  (tok): Embedding(2, 64)\n"
      "  (blocks): Sequential(\n"
      "    (0): TransformerBlock(\n"
      "      (ln1): LayerNorm((64,), eps=1e-05, elementwise_affine=True)\n"
      "      (attn): MultiheadAttention(\n"
      "        embed_dim=64, num_heads=4, causal=True\n"
      "        (qkv): Linear(in_features=64, out_features=192, bias=True)\n"
      "        (proj): Linear(in_features=64, out_features=64, bias=True)\n"
      "      )\n"
      "      (ln2): LayerNorm((64,), eps=1e-05, elementwise_affine=True)\n"
      "      (mlp): Sequential(\n"
      "        (0): Linear(in_features=64, out_features=128, bias=True, activation=relu)\n"
      "        (2): Linear(in_features=128, out_features=64, bias=True)\n"
      "      )\n"
      "    )\n"
      "  )\n"
      "  (head): Linear(in_features=64, out_features=2, bias=True)\n"
      ")";
  EXPECT_EQ(m.repr(), expected);
  std::ostringstream os;
  os << *std::make_shared<nn::Conv2d>(1, 8, 3, nn::Conv2dOptions{.stride = 2, .padding = 1, .bias = false});
  EXPECT_EQ(os.str(), "Conv2d(1, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)");
  EXPECT_EQ(nn::MaskedConv2d('A', 1, 4, 5, {.padding = 2}).repr(), "MaskedConv2d(mask_type=A, 1, 4, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))");
  EXPECT_EQ(nn::Dropout(0.25).repr(), "Dropout(p=0.25)");
}

TEST(NnModule, TrainEvalZeroGradAndRegistrationErrors) {
  TinyGPT m(8, 2);
  EXPECT_TRUE(m.is_training());
  m.eval();
  for (auto& [name, mod] : m.named_modules()) EXPECT_FALSE(mod->is_training()) << name;
  m.train();
  EXPECT_TRUE(m.blocks->is_training());

  Tensor loss = sum(m.head->forward(m.tok->forward(i64({0, 1, 1}))));
  loss.backward();
  EXPECT_TRUE(m.head->weight.grad().defined());
  m.zero_grad();
  for (const Tensor& p : m.parameters()) EXPECT_FALSE(p.grad().defined());

  EXPECT_THROW(m.register_parameter("head", zeros({1})), ValueError);        // name taken by a submodule
  EXPECT_THROW(m.register_buffer("a.b", zeros({1})), ValueError);            // dots are separators
  EXPECT_THROW(m.forward(zeros({1})), ValueError);                           // no single-input forward
}

TEST(NnModule, StateDictRoundTripAndStrictLoading) {
  manual_seed(1);
  TinyGPT a(8, 2);
  manual_seed(2);
  TinyGPT b(8, 2);
  EXPECT_NE(a.head->weight.to_vector<float>(), b.head->weight.to_vector<float>());
  nn::NamedTensors sd = a.state_dict();
  EXPECT_EQ(sd.size(), a.named_parameters().size());  // no buffers in this model
  b.load_state_dict(sd);
  for (size_t i = 0; i < sd.size(); ++i) EXPECT_EQ(b.state_dict()[i].second.to_vector<float>(), sd[i].second.to_vector<float>()) << sd[i].first;
  // the member handles see the loaded values
  EXPECT_EQ(b.head->weight.to_vector<float>(), a.head->weight.to_vector<float>());

  auto message_of = [&](const nn::NamedTensors& s) -> std::string {
    try {
      b.load_state_dict(s);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  nn::NamedTensors missing(sd.begin() + 1, sd.end());
  EXPECT_NE(message_of(missing).find("missing key(s): 'tok.weight'"), std::string::npos) << message_of(missing);
  nn::NamedTensors extra = sd;
  extra.emplace_back("head.scale", ones({2}));
  EXPECT_NE(message_of(extra).find("unexpected key(s): 'head.scale'"), std::string::npos) << message_of(extra);
  nn::NamedTensors wrong = sd;
  wrong.back().second = zeros({3});
  std::string msg = message_of(wrong);
  EXPECT_NE(msg.find("'head.bias'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(3,)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(2,)"), std::string::npos) << msg;
  EXPECT_THROW(b.load_state_dict(wrong), ShapeError);
  EXPECT_THROW(b.load_state_dict(missing), ValueError);

  // buffers are part of the state (the conv mask)
  nn::MaskedConv2d conv('B', 1, 2, 3);
  std::vector<std::string> keys;
  for (auto& [k, v] : conv.state_dict()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"weight", "bias", "mask"}));
}

TEST(NnModule, ToFloat64CastsParametersAndBuffersInPlace) {
  nn::MaskedConv2d conv('A', 1, 2, 3);
  Tensor w = conv.weight;
  std::vector<float> before = w.to_vector<float>();
  conv.to(DType::Float64);
  EXPECT_EQ(w.dtype(), DType::Float64);  // the member handle sees the new dtype
  EXPECT_EQ(conv.mask.dtype(), DType::Float64);
  EXPECT_TRUE(w.requires_grad());
  std::vector<double> after = w.to_vector<double>();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(after[i], static_cast<double>(before[i]));
}

// ================================================= Init =================================================
TEST(NnInit, PyTorchDefaultsForLinearConvEmbedding) {
  Generator g(7);
  nn::Linear lin(50, 400, {.gen = &g});
  double bound = 1 / std::sqrt(50.0);
  auto check_uniform = [](const Tensor& t, double bound) {
    std::vector<float> v = t.to_vector<float>();
    double mean = 0, sq = 0;
    for (float x : v) {
      EXPECT_LE(std::abs(x), bound);
      mean += x, sq += double(x) * x;
    }
    mean /= v.size(), sq /= v.size();
    EXPECT_NEAR(mean, 0, 0.05 * bound);
    EXPECT_NEAR(sq, bound * bound / 3, 0.05 * bound * bound);  // variance of U(-b, b)
  };
  check_uniform(lin.weight, bound);
  check_uniform(lin.bias, bound);
  nn::Conv2d conv(4, 64, 5, {.gen = &g});
  check_uniform(conv.weight, 1 / std::sqrt(4.0 * 25));
  nn::Embedding emb(1000, 20, &g);
  std::vector<float> e = emb.weight.to_vector<float>();
  double mean = std::accumulate(e.begin(), e.end(), 0.0) / e.size(), sq = 0;
  for (float x : e) sq += (x - mean) * (x - mean);
  EXPECT_NEAR(mean, 0, 0.02);
  EXPECT_NEAR(std::sqrt(sq / e.size()), 1, 0.02);
  // the same seed gives the same parameters
  Generator g1(3), g2(3);
  EXPECT_EQ(nn::Linear(5, 4, {.gen = &g1}).weight.to_vector<float>(), nn::Linear(5, 4, {.gen = &g2}).weight.to_vector<float>());
}

TEST(NnInit, HelpersFollowTheirFormulas) {
  Generator g(11);
  Tensor w = empty({200, 300});
  auto [fan_in, fan_out] = nn::init::fan_in_and_fan_out(w);
  EXPECT_EQ(fan_in, 300);
  EXPECT_EQ(fan_out, 200);
  EXPECT_EQ(nn::init::fan_in_and_fan_out(empty({8, 3, 5, 5})), (std::pair<int64_t, int64_t>{75, 200}));
  auto stddev = [](const Tensor& t) {
    std::vector<double> v = t.to_vector<double>();
    double m = std::accumulate(v.begin(), v.end(), 0.0) / v.size(), s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return std::sqrt(s / v.size());
  };
  auto max_abs = [](const Tensor& t) {
    double r = 0;
    for (double x : t.to_vector<double>()) r = std::max(r, std::abs(x));
    return r;
  };
  nn::init::xavier_uniform_(w, 1, g);
  double a = std::sqrt(6.0 / 500);
  EXPECT_LE(max_abs(w), a);
  EXPECT_NEAR(stddev(w), a / std::sqrt(3.0), 0.02 * a);
  nn::init::xavier_normal_(w, 2, g);
  EXPECT_NEAR(stddev(w), 2 * std::sqrt(2.0 / 500), 0.02 * std::sqrt(2.0 / 500));
  nn::init::kaiming_normal_(w, 0, "fan_in", "relu", g);
  EXPECT_NEAR(stddev(w), std::sqrt(2.0 / 300), 0.02 * std::sqrt(2.0 / 300));
  nn::init::kaiming_uniform_(w, 0, "fan_out", "relu", g);
  EXPECT_LE(max_abs(w), std::sqrt(6.0 / 200));
  nn::init::uniform_(w, 2, 3, g);
  for (double x : w.to_vector<double>()) ASSERT_TRUE(x >= 2 && x < 3);
  nn::init::normal_(w, 5, 0.5, g);
  EXPECT_NEAR(stddev(w), 0.5, 0.01);
  nn::init::zeros_(w);
  EXPECT_EQ(max_abs(w), 0);
  nn::init::ones_(w);
  EXPECT_EQ(w.to_vector<float>()[17], 1.0f);
  EXPECT_NEAR(nn::init::calculate_gain("tanh"), 5.0 / 3, 1e-15);
  EXPECT_THROW(nn::init::calculate_gain("swish"), ValueError);
  Tensor v = empty({3});
  EXPECT_THROW(nn::init::xavier_uniform_(v), ShapeError);
}

// ================================================= Layers =================================================
TEST(NnLinear, ForwardByHandAndGradients) {
  nn::Linear lin(2, 3);
  lin.to(DType::Float64);
  {
    NoGradGuard ng;
    lin.weight.copy_(f64({{1, 2}, {3, 4}, {5, 6}}));
    lin.bias.copy_(f64({0.5, -1, 2}));
  }
  expect_values(lin.forward(f64({{1, -1}, {2, 0.5}})), {-0.5, -2, 1, 3.5, 7, 15});
  // leading dims are kept: (2, 1, 2) -> (2, 1, 3); a vector (2,) -> (3,)
  Tensor y3 = lin.forward(f64({{1, -1}, {2, 0.5}}).reshape({2, 1, 2}));
  EXPECT_EQ(y3.shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(lin.forward(f64({1, -1})).shape(), (Shape{3}));
  check_module_grads(lin, randn({2, 2, 2}, kF64Grad));
  nn::Linear no_bias(3, 2, {.bias = false});
  no_bias.to(DType::Float64);
  EXPECT_EQ(no_bias.parameters().size(), 1u);
  check_module_grads(no_bias, randn({4, 3}, kF64Grad));
  EXPECT_THROW(lin.forward(f64({{1, 2, 3}})), ShapeError);
}

TEST(NnEmbedding, LooksUpRowsAndGradientsReachTheTable) {
  nn::Embedding emb(4, 3);
  emb.to(DType::Float64);
  std::vector<double> w = emb.weight.to_vector<double>();
  Tensor idx = i64({2, 0, 2});
  Tensor y = emb.forward(idx.reshape({3, 1}));
  EXPECT_EQ(y.shape(), (Shape{3, 1, 3}));
  expect_values(y, {w[6], w[7], w[8], w[0], w[1], w[2], w[6], w[7], w[8]}, 0);
  check_grads([&](const std::vector<Tensor>&) { return std::vector<Tensor>{emb.forward(idx)}; }, {emb.weight});
  // row 2 is used twice: its gradient is the sum
  sum(emb.forward(idx)).backward();
  expect_values(emb.weight.grad(), {1, 1, 1, 0, 0, 0, 2, 2, 2, 0, 0, 0});
  EXPECT_THROW(emb.forward(i64({4})), IndexError);
  EXPECT_THROW(emb.forward(f64({1})), DTypeError);
}

TEST(NnLayerNorm, NormalisesTheLastDim) {
  nn::LayerNorm ln(3);
  ln.to(DType::Float64);
  double s = std::sqrt(2.0 / 3 + 1e-5);  // biased variance of (1, 2, 3) is 2/3
  expect_values(ln.forward(f64({{1, 2, 3}, {-1, -1, 5}})), {-1 / s, 0, 1 / s, -std::sqrt(0.5 * 8 / (8 + 1e-5)), -std::sqrt(0.5 * 8 / (8 + 1e-5)),
                                                            std::sqrt(2 * 8 / (8 + 1e-5))},
                1e-9);
  {
    NoGradGuard ng;
    ln.weight.copy_(f64({2, 1, 1}));
    ln.bias.copy_(f64({0, 0, 1}));
  }
  expect_values(ln.forward(f64({1, 2, 3})), {-2 / s, 0, 1 + 1 / s}, 1e-12);
  expect_values(F::layer_norm(f64({1, 2, 3}), ln.weight, ln.bias), {-2 / s, 0, 1 + 1 / s}, 1e-12);
  Generator g(3);
  {
    NoGradGuard ng;  // non-trivial affine parameters for the check
    ln.weight.copy_(randn({3}, kF64, &g));
    ln.bias.copy_(randn({3}, kF64, &g));
  }
  check_module_grads(ln, randn({2, 2, 3}, kF64Grad, &g));
}

TEST(NnActivations, ForwardValuesAndGradients) {
  Tensor x = f64({-2, -0.5, 0.7, 3});
  expect_values(nn::ReLU().forward(x), {0, 0, 0.7, 3});
  expect_values(nn::Sigmoid().forward(x), {1 / (1 + std::exp(2.0)), 1 / (1 + std::exp(0.5)), 1 / (1 + std::exp(-0.7)), 1 / (1 + std::exp(-3.0))});
  expect_values(nn::Tanh().forward(x), {std::tanh(-2.0), std::tanh(-0.5), std::tanh(0.7), std::tanh(3.0)});
  expect_values(nn::Softplus().forward(x), {std::log1p(std::exp(-2.0)), std::log1p(std::exp(-0.5)), std::log1p(std::exp(0.7)), std::log1p(std::exp(3.0))});
  auto gelu_ref = [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); };
  expect_values(nn::GELU().forward(x), {gelu_ref(-2), gelu_ref(-0.5), gelu_ref(0.7), gelu_ref(3)});
  // PyTorch's nn.GELU(approximate="tanh")
  auto gelu_tanh_ref = [](double v) { return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); };
  expect_values(nn::GELU("tanh").forward(x), {gelu_tanh_ref(-2), gelu_tanh_ref(-0.5), gelu_tanh_ref(0.7), gelu_tanh_ref(3)});
  EXPECT_EQ(nn::GELU("tanh").extra_repr(), "approximate='tanh'");
  EXPECT_THROW(nn::GELU("fast"), ValueError);
  for (nn::Activation a : {nn::Activation::ReLU, nn::Activation::GELU, nn::Activation::Sigmoid, nn::Activation::Tanh, nn::Activation::Softplus}) {
    auto m = nn::make_activation(a);
    check_module_grads(*m, f64({-1.3, -0.2, 0.4, 2.1}, true));
  }
}

TEST(NnDropout, IdentityInEvalScaledMaskInTraining) {
  Generator g(5);
  nn::Dropout drop(0.25, &g);
  Tensor x = ones({20000});
  Tensor y = drop.forward(x);
  int64_t zeros_count = 0;
  for (float v : y.to_vector<float>()) {
    if (v == 0) ++zeros_count;
    else EXPECT_FLOAT_EQ(v, 1 / 0.75f);
  }
  EXPECT_NEAR(zeros_count / 20000.0, 0.25, 0.01);
  drop.eval();
  EXPECT_TRUE(drop.forward(x).is_same(x));
  // with a re-seeded generator the mask is fixed, so the layer is an ordinary function
  check_grads(
      [](const std::vector<Tensor>& in) {
        Generator local(9);
        return std::vector<Tensor>{F::dropout(in[0], 0.5, true, local)};
      },
      {randn({6}, kF64Grad)});
  EXPECT_THROW(nn::Dropout(1.5), ValueError);
}

TEST(NnSequential, ChainsChildrenNamedByPosition) {
  Generator g(1);
  auto fc1 = std::make_shared<nn::Linear>(3, 4, nn::LinearOptions{.gen = &g});
  auto fc2 = std::make_shared<nn::Linear>(4, 2, nn::LinearOptions{.gen = &g});
  nn::Sequential seq(fc1, std::make_shared<nn::Tanh>(), fc2);
  seq.to(DType::Float64);
  EXPECT_EQ(seq.size(), 3u);
  EXPECT_EQ(seq[1]->type_name(), "Tanh");
  Tensor x = randn({2, 3}, kF64Grad, &g);
  expect_values(seq.forward(x), fc2->forward(tanh(fc1->forward(x))).to_vector<double>(), 0);
  EXPECT_EQ(seq.named_parameters()[2].first, "2.weight");
  check_module_grads(seq, x);
  EXPECT_THROW(seq[3], IndexError);
}

// Direct convolution, written as the definition: y[b,o,i,j] = bias[o] + sum_{c,u,v} w[o,c,u,v] x[b,c,i*s+u-p,j*s+v-p].
std::vector<double> conv2d_reference(const Tensor& x, const Tensor& w, const Tensor& bias, int64_t s, int64_t p) {
  std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = bias.defined() ? bias.to_vector<double>() : std::vector<double>();
  int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), O = w.size(0), K = w.size(2);
  int64_t Ho = (H + 2 * p - K) / s + 1, Wo = (W + 2 * p - K) / s + 1;
  std::vector<double> y;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < Ho; ++i)
        for (int64_t j = 0; j < Wo; ++j) {
          double acc = bv.empty() ? 0 : bv[o];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t u = 0; u < K; ++u)
              for (int64_t v = 0; v < K; ++v) {
                int64_t r = i * s + u - p, q = j * s + v - p;
                if (r >= 0 && r < H && q >= 0 && q < W) acc += wv[((o * C + c) * K + u) * K + v] * xv[((b * C + c) * H + r) * W + q];
              }
          y.push_back(acc);
        }
  return y;
}

TEST(NnConv2d, MatchesTheDefinitionForStridesAndPaddings) {
  Generator g(4);
  struct Case {
    int64_t C, O, K, stride, padding, H, W;
  };
  for (Case c : {Case{2, 3, 3, 1, 1, 5, 6}, Case{1, 2, 3, 2, 0, 7, 5}, Case{3, 2, 2, 2, 1, 4, 4}, Case{2, 4, 5, 1, 2, 5, 5}, Case{2, 2, 1, 1, 0, 3, 2}}) {
    nn::Conv2d conv(c.C, c.O, c.K, {.stride = c.stride, .padding = c.padding, .gen = &g});
    conv.to(DType::Float64);
    Tensor x = randn({2, c.C, c.H, c.W}, kF64, &g);
    Tensor y = conv.forward(x);
    EXPECT_EQ(y.shape(), (Shape{2, c.O, (c.H + 2 * c.padding - c.K) / c.stride + 1, (c.W + 2 * c.padding - c.K) / c.stride + 1}));
    expect_values(y, conv2d_reference(x, conv.weight, conv.bias, c.stride, c.padding), 1e-12);
  }
  nn::Conv2d conv(2, 2, 3);
  EXPECT_THROW(conv.forward(zeros({1, 3, 5, 5})), ShapeError);  // wrong channel count
  EXPECT_THROW(conv.forward(zeros({1, 2, 2, 2})), ShapeError);  // kernel larger than the input
}

TEST(NnConv2d, GradcheckInputWeightBias) {
  Generator g(6);
  nn::Conv2d conv(2, 3, 3, {.stride = 1, .padding = 1, .gen = &g});
  conv.to(DType::Float64);
  check_module_grads(conv, randn({2, 2, 4, 3}, kF64Grad, &g));
  nn::Conv2d strided(1, 2, 2, {.stride = 2, .padding = 1, .bias = false, .gen = &g});
  strided.to(DType::Float64);
  check_module_grads(strided, randn({1, 1, 3, 4}, kF64Grad, &g));
}

TEST(NnMaskedConv2d, MasksAandB) {
  nn::MaskedConv2d a('A', 1, 1, 5), b('B', 1, 1, 5);
  // rows above the centre open; in the centre row, left of the centre (B: and the centre)
  std::vector<float> mask_a{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::vector<float> mask_b = mask_a;
  mask_b[12] = 1;
  EXPECT_EQ(a.mask.to_vector<float>(), mask_a);
  EXPECT_EQ(b.mask.to_vector<float>(), mask_b);
  EXPECT_EQ(nn::MaskedConv2d('A', 1, 1, 3).mask.to_vector<float>(), (std::vector<float>{1, 1, 1, 1, 0, 0, 0, 0, 0}));
  EXPECT_EQ(nn::MaskedConv2d('B', 1, 1, 3).mask.to_vector<float>(), (std::vector<float>{1, 1, 1, 1, 1, 0, 0, 0, 0}));
  EXPECT_THROW(nn::MaskedConv2d('C', 1, 1, 3), ValueError);
}

// d output(i, j) / d input(r, q) must vanish for every (r, q) at or after (i, j) in raster order
// (or strictly after, when `centre_allowed`): checked with one backward per output pixel.
void expect_raster_causal(Module& net, int64_t C, int64_t H, int64_t W, bool centre_allowed) {
  Tensor x = randn({1, C, H, W}, kF64Grad);
  Tensor y = net.forward(x);
  for (int64_t i = 0; i < H; ++i)
    for (int64_t j = 0; j < W; ++j) {
      Tensor at = sum(select(select(select(y, 0, 0), 1, i), 1, j));  // all channels of pixel (i, j)
      std::vector<double> g = autograd::grad({at}, {x}, {}, true)[0].to_vector<double>();
      bool saw_past = false;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t r = 0; r < H; ++r)
          for (int64_t q = 0; q < W; ++q) {
            int64_t pos = r * W + q, here = i * W + j;
            double v = g[static_cast<size_t>((c * H + r) * W + q)];
            bool allowed = pos < here || (centre_allowed && pos == here);
            if (!allowed) {
              EXPECT_EQ(v, 0) << "output (" << i << "," << j << ") sees input (" << r << "," << q << ")";
            }
            saw_past |= allowed && v != 0;
          }
      if (i + j > 0) {
        EXPECT_TRUE(saw_past) << "output (" << i << "," << j << ") sees nothing";
      }
    }
}

TEST(NnMaskedConv2d, NoFuturePixelReachesAnOutput) {
  manual_seed(12);
  nn::MaskedConv2d b_only('B', 2, 3, 3, {.padding = 1});
  b_only.to(DType::Float64);
  expect_raster_causal(b_only, 2, 5, 4, /*centre_allowed=*/true);
  auto first = std::make_shared<nn::MaskedConv2d>('A', 1, 4, 5, nn::Conv2dOptions{.padding = 2});
  auto second = std::make_shared<nn::MaskedConv2d>('B', 4, 4, 3, nn::Conv2dOptions{.padding = 1});
  auto third = std::make_shared<nn::MaskedConv2d>('B', 4, 2, 3, nn::Conv2dOptions{.padding = 1});
  nn::Sequential pixelcnn(first, std::make_shared<nn::ReLU>(), second, std::make_shared<nn::ReLU>(), third);
  pixelcnn.to(DType::Float64);
  expect_raster_causal(pixelcnn, 1, 6, 6, /*centre_allowed=*/false);  // a stack starting with A never sees its own pixel
}

TEST(NnMaskedConv2d, MaskedWeightsGetNoGradientAndGradcheck) {
  manual_seed(3);
  nn::MaskedConv2d conv('A', 2, 2, 3, {.padding = 1});
  conv.to(DType::Float64);
  Tensor x = randn({2, 2, 4, 4}, kF64);
  // changing a masked weight changes nothing
  Tensor before = conv.forward(x);
  {
    NoGradGuard ng;
    conv.weight.copy_(conv.weight + (1.0 - conv.mask) * 100.0);
  }
  expect_values(conv.forward(x), before.to_vector<double>(), 0);
  sum(conv.forward(x) * conv.forward(x)).backward();
  std::vector<double> gw = conv.weight.grad().to_vector<double>(), m = conv.mask.expand(conv.weight.shape()).to_vector<double>();
  for (size_t i = 0; i < gw.size(); ++i)
    if (m[i] == 0) {
      EXPECT_EQ(gw[i], 0);
    }
  conv.zero_grad();
  check_module_grads(conv, randn({1, 2, 3, 3}, kF64Grad));
}

// The layer runs conv2d with the mask's taps only (tensor/conv.h): the same output as the dense conv
// of the masked weight, and no gradient for a hidden tap.
TEST(Conv2d, MaskedLayerSkipsTapsAndMatchesTheMaskedWeight) {
  Generator g(9);
  nn::MaskedConv2d conv('B', 3, 4, 3, {.padding = 1, .gen = &g});
  Tensor x = randn({2, 3, 6, 6}, {}, &g);
  Tensor y = conv.forward(x), y_ref = reference::conv2d(x, conv.weight * conv.mask, conv.bias, 1, 1);
  EXPECT_LT(amax(abs(y.to(DType::Float64) - y_ref.to(DType::Float64))).item() / amax(abs(y_ref.to(DType::Float64))).item(), 2e-6);
  sum(y * y).backward();
  // the weights the mask hides (the centre row right of the centre, the rows below) get no gradient
  Tensor dw = conv.weight.grad().reshape({12, 9});
  for (int64_t t : {5, 6, 7, 8}) EXPECT_EQ(amax(abs(select(dw, 1, t))).item(), 0.0) << "tap " << t;
  EXPECT_GT(amax(abs(select(dw, 1, 4))).item(), 0.0);
}

// ================================================= Attention =================================================
TEST(NnAttention, ScaledDotProductByHand) {
  // one query (1, 0) against keys (1, 0), (0, 1): weights softmax(1/sqrt 2, 0)
  Tensor q = f64({{1, 0}}), k = f64({{1, 0}, {0, 1}}), v = f64({{1, 2}, {3, 4}});
  double w0 = std::exp(1 / std::sqrt(2.0)) / (std::exp(1 / std::sqrt(2.0)) + 1);
  expect_values(F::scaled_dot_product_attention(q, k, v), {w0 * 1 + (1 - w0) * 3, w0 * 2 + (1 - w0) * 4});
  // causal, queries = keys: position 0 sees only itself
  Tensor y = F::scaled_dot_product_attention(k, k, v, true);
  expect_values(select(y, 0, 0), {1, 2});
  double u = 1 / (1 + std::exp(-1 / std::sqrt(2.0)));  // position 1: scores (0, 1/sqrt 2)
  expect_values(select(y, 0, 1), {(1 - u) * 1 + u * 3, (1 - u) * 2 + u * 4});
  // a single causal query is the last position: it sees every key
  expect_values(F::scaled_dot_product_attention(select(k, 0, 1).unsqueeze(0), k, v, true), select(y, 0, 1).to_vector<double>());
  Generator g(2);
  check_grads([](const std::vector<Tensor>& in) { return std::vector<Tensor>{F::scaled_dot_product_attention(in[0], in[1], in[2], true)}; },
              {randn({2, 3, 2}, kF64Grad, &g), randn({2, 3, 2}, kF64Grad, &g), randn({2, 3, 2}, kF64Grad, &g)});
}

TEST(NnAttention, MultiheadMatchesPerHeadComputation) {
  Generator g(8);
  nn::MultiheadAttention attn(4, 2, {.causal = true, .gen = &g});
  attn.to(DType::Float64);
  Tensor x = randn({2, 3, 4}, kF64, &g);
  // reference: explicit heads from the fused projection
  Tensor qkv = attn.qkv->forward(x);
  std::vector<Tensor> outs;
  for (int64_t h = 0; h < 2; ++h) {
    Tensor q = narrow(qkv, 2, h * 2, 2), k = narrow(qkv, 2, 4 + h * 2, 2), v = narrow(qkv, 2, 8 + h * 2, 2);
    outs.push_back(F::scaled_dot_product_attention(q, k, v, true));
  }
  // (with an int literal for the dim, cat would resolve to the string formatter of errors.h)
  Tensor expected = attn.proj->forward(cat(outs, int64_t{2}));
  expect_values(attn.forward(x), expected.to_vector<double>(), 1e-12);
  EXPECT_THROW(nn::MultiheadAttention(5, 2), ValueError);
}

// Row i of a sequence model's output may depend only on rows <= i of its input.
void expect_sequence_causal(Module& m, int64_t L, int64_t D, bool expect_causal) {
  Tensor x = randn({1, L, D}, kF64Grad);
  Tensor y = m.forward(x);
  bool leaked = false;
  for (int64_t i = 0; i < L; ++i) {
    std::vector<double> g = autograd::grad({sum(select(y, 1, i))}, {x}, {}, true)[0].to_vector<double>();
    for (int64_t j = i + 1; j < L; ++j)
      for (int64_t d = 0; d < D; ++d) {
        double v = g[static_cast<size_t>(j * D + d)];
        if (expect_causal) {
          EXPECT_EQ(v, 0) << "output " << i << " depends on input " << j;
        }
        leaked |= v != 0;
      }
  }
  if (!expect_causal) {
    EXPECT_TRUE(leaked) << "a non-causal layer should see the future";
  }
}

TEST(NnAttention, CausalMaskLetsNoFuturePositionThrough) {
  manual_seed(4);
  nn::MultiheadAttention causal(6, 3);
  causal.to(DType::Float64);
  expect_sequence_causal(causal, 5, 6, true);
  nn::MultiheadAttention full(6, 3, {.causal = false});
  full.to(DType::Float64);
  expect_sequence_causal(full, 5, 6, false);
  nn::TransformerBlock block(6, 2);
  block.to(DType::Float64);
  expect_sequence_causal(block, 5, 6, true);
}

TEST(NnAttention, GradcheckMultiheadAndTransformerBlock) {
  manual_seed(5);
  nn::MultiheadAttention attn(4, 2);
  attn.to(DType::Float64);
  check_module_grads(attn, randn({1, 3, 4}, kF64Grad));
  nn::TransformerBlock block(4, 2, {.mlp_ratio = 1, .activation = nn::Activation::GELU});
  block.to(DType::Float64);
  check_module_grads(block, randn({1, 2, 4}, kF64Grad));
}

TEST(NnAttention, KVCacheDecodingEqualsTheFullForward) {
  manual_seed(6);
  auto b1 = std::make_shared<nn::TransformerBlock>(8, 2);
  auto b2 = std::make_shared<nn::TransformerBlock>(8, 2, nn::TransformerBlockOptions{.mlp_ratio = 3});
  nn::Sequential model(b1, b2);
  model.to(DType::Float64);
  const int64_t B = 2, L = 21;  // past the cache's first capacity of 16
  Tensor x = randn({B, L, 8}, kF64);
  Tensor full = model.forward(x);
  for (bool grad_mode : {false, true}) {
    set_grad_enabled(grad_mode);  // in-place cache vs differentiable cat
    nn::KVCache c1, c2;
    for (int64_t t = 0; t < L; ++t) {
      Tensor y = b2->forward_step(b1->forward_step(select(x, 1, t), c1), c2);
      EXPECT_EQ(y.shape(), (Shape{B, 8}));
      expect_values(y, select(full, 1, t).to_vector<double>(), 1e-12);
    }
    EXPECT_EQ(c1.length, L);
    set_grad_enabled(true);
  }
  {  // a reserved cache: one allocation for the sequence (no doubling at 16), the same outputs
    NoGradGuard no_grad;
    nn::KVCache c1, c2;
    c1.reserve = c2.reserve = L;
    for (int64_t t = 0; t < L; ++t) {
      Tensor y = b2->forward_step(b1->forward_step(select(x, 1, t), c1), c2);
      expect_values(y, select(full, 1, t).to_vector<double>(), 1e-12);
      EXPECT_EQ(c1.keys.size(2), L) << "step " << t;
    }
    b1->forward_step(select(x, 1, 0), c1);  // past the reserve: it doubles as before
    EXPECT_EQ(c1.keys.size(2), 2 * L);
    EXPECT_EQ(c1.length, L + 1);
  }
  // the differentiable path gives the full forward's gradients
  nn::KVCache c1, c2;
  Tensor last;
  for (int64_t t = 0; t < 4; ++t) last = b2->forward_step(b1->forward_step(select(x, 1, t), c1), c2);
  Tensor g_step = autograd::grad({sum(last)}, {b1->attn->qkv->weight})[0];
  Tensor g_full = autograd::grad({sum(select(model.forward(narrow(x, 1, 0, 4)), 1, 3))}, {b1->attn->qkv->weight})[0];
  expect_values(g_step, g_full.to_vector<double>(), 1e-10);
  nn::KVCache c;
  nn::MultiheadAttention attn(8, 2);
  attn.to(DType::Float64);
  attn.forward_step(randn({2, 8}, kF64), c);
  EXPECT_THROW(attn.forward_step(randn({3, 8}, kF64), c), ShapeError);  // batch changed mid-sequence
  nn::MultiheadAttention non_causal(8, 2, {.causal = false});
  nn::KVCache c3;
  EXPECT_THROW(non_causal.forward_step(randn({2, 8}), c3), ValueError);
}

// ================================================= Losses =================================================
TEST(NnLoss, CrossEntropyByHand) {
  Tensor logits = f64({{1, 2, 3}, {1, 1, 1}}, true);
  Tensor target = i64({2, 0});
  double l0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3, l1 = std::log(3.0);
  expect_values(F::cross_entropy(logits, target, "none"), {l0, l1});
  expect_values(F::cross_entropy(logits, target), {(l0 + l1) / 2});
  expect_values(F::cross_entropy(logits, target, "sum"), {l0 + l1});
  expect_values(F::nll_loss(log_softmax(logits, 1), target), {(l0 + l1) / 2});
  // (N, C, d): class dim 1, as PyTorch
  Tensor logits3 = stack({logits, logits * 2.0}, 2);  // (2, 3, 2)
  Tensor target3 = tensor({{2, 1}, {0, 0}}, {.dtype = DType::Int64});
  double l2 = std::log(std::exp(2.0) + std::exp(4.0) + std::exp(6.0)) - 4, l3 = std::log(3.0);
  expect_values(F::cross_entropy(logits3, target3, "none"), {l0, l2, l1, l3});
  check_grads([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{F::cross_entropy(in[0], target3)}; }, {randn({2, 3, 2}, kF64Grad)});
  check_grads([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{F::cross_entropy(in[0], target, "none")}; }, {randn({2, 3}, kF64Grad)});
  check_grads([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{F::nll_loss(in[0], target, "sum")}; }, {randn({2, 3}, kF64Grad)});
  EXPECT_THROW(F::cross_entropy(logits, i64({3, 0})), IndexError);
  EXPECT_THROW(F::cross_entropy(logits, i64({2})), ShapeError);
  EXPECT_THROW(F::cross_entropy(logits, f64({2, 0})), DTypeError);
  EXPECT_THROW(F::cross_entropy(logits, target, "avg"), ValueError);
}

TEST(NnLoss, BinaryCrossEntropyWithLogitsIsStable) {
  Tensor x = f64({-2, 0, 3}, true), y = f64({0, 1, 0.25});
  auto naive = [](double x, double y) { return -(y * std::log(1 / (1 + std::exp(-x))) + (1 - y) * std::log(1 - 1 / (1 + std::exp(-x)))); };
  expect_values(F::binary_cross_entropy_with_logits(x, y, "none"), {naive(-2, 0), naive(0, 1), naive(3, 0.25)});
  // far logits: finite, and the right values (naive would give inf / nan)
  expect_values(F::binary_cross_entropy_with_logits(f64({200, -200, 200}), f64({1, 0, 0}), "none"), {0, 0, 200}, 1e-12);
  // the gradient is sigmoid(x) - y, including at x = 0 exactly
  Tensor loss = F::binary_cross_entropy_with_logits(x, y, "sum");
  expect_values(autograd::grad({loss}, {x})[0], {1 / (1 + std::exp(2.0)), 0.5 - 1, 1 / (1 + std::exp(-3.0)) - 0.25});
  check_grads([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{F::binary_cross_entropy_with_logits(in[0], in[1])}; },
              {randn({2, 3}, kF64Grad), rand({2, 3}, kF64Grad)});
  EXPECT_THROW(F::binary_cross_entropy_with_logits(x, f64({1, 0})), ShapeError);
}

TEST(NnLoss, MeanSquaredError) {
  Tensor a = f64({1, 2, 4}), b = f64({0, 2, 1});
  expect_values(F::mse_loss(a, b), {10.0 / 3});
  expect_values(F::mse_loss(a, b, "sum"), {10});
  expect_values(F::mse_loss(a, b, "none"), {1, 0, 9});
  check_grads([](const std::vector<Tensor>& in) { return std::vector<Tensor>{F::mse_loss(in[0], in[1])}; }, {randn({3, 2}, kF64Grad), randn({3, 2}, kF64Grad)});
}

// ================================================= Distributions =================================================
TEST(NnDistributions, NormalLogProbEntropyAndSampling) {
  nn::Normal n(f64({0, 1}), f64({2, 0.5}));
  double half_log_2pi = 0.5 * std::log(2 * M_PI);
  expect_values(n.log_prob(f64({1, 1})), {-0.125 - std::log(2.0) - half_log_2pi, -std::log(0.5) - half_log_2pi});
  expect_values(n.entropy(), {0.5 + half_log_2pi + std::log(2.0), 0.5 + half_log_2pi + std::log(0.5)});
  Generator g(1);
  Tensor s = n.sample({40000}, g);
  EXPECT_EQ(s.shape(), (Shape{40000, 2}));
  EXPECT_FALSE(s.requires_grad());
  expect_values(mean(s, {0}), {0, 1}, 0.03);
  expect_values(dgm::std(s, {0}), {2, 0.5}, 0.02);
  // rsample = loc + scale * eps: d/dloc = 1, d/dscale = eps
  Tensor loc = f64({0.5}, true), scale = f64({1.5}, true);
  Generator g1(3), g2(3);
  Tensor r = nn::Normal(loc, scale).rsample({}, g1);
  double eps = nn::Normal(0.0, 1.0).sample({1}, g2).item();
  auto grads = autograd::grad({sum(r)}, {loc, scale});
  EXPECT_NEAR(grads[0].item(), 1, 1e-15);
  EXPECT_NEAR(grads[1].item(), eps, 1e-6);  // eps was drawn in float32 here
  check_grads([](const std::vector<Tensor>& in) { return std::vector<Tensor>{nn::Normal(in[1], in[2]).log_prob(in[0])}; },
              {randn({3}, kF64Grad), randn({3}, kF64Grad), f64({0.5, 1, 2}, true)});
  EXPECT_THROW(nn::Normal(0.0, -1.0), ValueError);
}

TEST(NnDistributions, BernoulliFromLogitsAndProbs) {
  nn::Bernoulli b = nn::Bernoulli::from_logits(f64({0, 2, -1}));
  double p2 = 1 / (1 + std::exp(-2.0)), p3 = 1 / (1 + std::exp(1.0));
  expect_values(b.log_prob(f64({1, 0, 1})), {std::log(0.5), std::log(1 - p2), std::log(p3)});
  expect_values(b.entropy(), {std::log(2.0), -p2 * std::log(p2) - (1 - p2) * std::log(1 - p2), -p3 * std::log(p3) - (1 - p3) * std::log(1 - p3)});
  nn::Bernoulli bp = nn::Bernoulli::from_probs(f64({0.5, 0.25, 1.0}));
  expect_values(bp.log_prob(f64({1, 0, 1})), {std::log(0.5), std::log(0.75), 0}, 1e-12);
  Generator g(4);
  Tensor s = bp.sample({20000}, g);
  EXPECT_EQ(s.shape(), (Shape{20000, 3}));
  expect_values(mean(s, {0}), {0.5, 0.25, 1.0}, 0.02);
  check_grads([](const std::vector<Tensor>& in) { return std::vector<Tensor>{nn::Bernoulli::from_logits(in[0]).log_prob(f64({1, 0, 1, 0}))}; },
              {randn({4}, kF64Grad)});
  EXPECT_THROW(nn::Bernoulli::from_probs(f64({1.5})), ValueError);
}

TEST(NnDistributions, CategoricalLogProbSampleEntropy) {
  nn::Categorical c(f64({{0, std::log(3.0)}, {std::log(2.0), std::log(2.0)}}));  // probs (1/4, 3/4), (1/2, 1/2)
  expect_values(c.probs(), {0.25, 0.75, 0.5, 0.5});
  expect_values(c.log_prob(i64({1, 0})), {std::log(0.75), std::log(0.5)});
  // leading sample dims broadcast against the batch
  expect_values(c.log_prob(tensor({{0, 1}, {1, 1}}, {.dtype = DType::Int64})), {std::log(0.25), std::log(0.5), std::log(0.75), std::log(0.5)});
  expect_values(c.entropy(), {-(0.25 * std::log(0.25) + 0.75 * std::log(0.75)), std::log(2.0)});
  Generator g(5);
  Tensor s = c.sample({20000}, g);
  EXPECT_EQ(s.shape(), (Shape{20000, 2}));
  EXPECT_EQ(s.dtype(), DType::Int64);
  expect_values(mean(s.to(DType::Float64), {0}), {0.75, 0.5}, 0.02);
  nn::Categorical with_zero = nn::Categorical::from_probs(f64({0.5, 0, 0.5}));
  expect_values(with_zero.entropy(), {std::log(2.0)});
  check_grads([](const std::vector<Tensor>& in) { return std::vector<Tensor>{nn::Categorical(in[0]).log_prob(i64({2, 0}))}; }, {randn({2, 3}, kF64Grad)});
  EXPECT_THROW(c.log_prob(i64({2, 0})), IndexError);
}

double normal_pdf(double x, double mu, double sigma) { return std::exp(-0.5 * (x - mu) * (x - mu) / (sigma * sigma)) / (sigma * std::sqrt(2 * M_PI)); }

TEST(NnDistributions, GaussianMixture1DAndDiagonal) {
  nn::GaussianMixture gm(f64({0.3, 0.7}), f64({-2, 1}), f64({0.5, 1.5}));
  std::vector<double> xs{-2.5, 0, 0.3, 4};
  std::vector<double> expected;
  for (double x : xs) expected.push_back(std::log(0.3 * normal_pdf(x, -2, 0.5) + 0.7 * normal_pdf(x, 1, 1.5)));
  expect_values(gm.log_prob(f64({-2.5, 0, 0.3, 4})), expected);
  // unnormalised weights are normalised
  expect_values(nn::GaussianMixture(f64({3, 7}), f64({-2, 1}), f64({0.5, 1.5})).log_prob(f64({0.3})), {expected[2]});
  Generator g(6);
  Tensor s = gm.sample(50000, g);
  EXPECT_EQ(s.shape(), (Shape{50000}));
  // mean = sum w mu = 0.1; variance = sum w (sigma^2 + mu^2) - mean^2 = 3.54
  EXPECT_NEAR(mean(s).item(), 0.1, 0.03);
  EXPECT_NEAR(var(s).item(), 3.54, 0.06);

  nn::GaussianMixture gm2(f64({0.5, 0.5}), f64({{0, 0}, {3, -1}}), f64({{1, 2}, {0.5, 0.5}}));
  Tensor x = f64({{0.5, -0.5}, {2.5, -1}});
  std::vector<double> exp2;
  for (auto [a, b] : {std::pair{0.5, -0.5}, std::pair{2.5, -1.0}})
    exp2.push_back(std::log(0.5 * normal_pdf(a, 0, 1) * normal_pdf(b, 0, 2) + 0.5 * normal_pdf(a, 3, 0.5) * normal_pdf(b, -1, 0.5)));
  expect_values(gm2.log_prob(x), exp2);
  Tensor s2 = gm2.sample(40000, g);
  EXPECT_EQ(s2.shape(), (Shape{40000, 2}));
  expect_values(mean(s2, {0}), {1.5, -0.5}, 0.05);
  check_grads([](const std::vector<Tensor>& in) { return std::vector<Tensor>{nn::GaussianMixture(in[1], in[2], in[3]).log_prob(in[0])}; },
              {randn({3}, kF64Grad), f64({0.2, 0.5, 0.3}, true), randn({3}, kF64Grad), f64({0.5, 1, 2}, true)});
  check_grads([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{nn::GaussianMixture(in[1], in[2], in[3]).log_prob(in[0])}; },
              {randn({2, 2}, kF64Grad), f64({0.4, 0.6}, true), randn({2, 2}, kF64Grad), f64({{0.5, 1}, {2, 0.7}}, true)});
  EXPECT_THROW(nn::GaussianMixture(f64({0.5, 0.5}), f64({0, 1}), f64({1, 0})), ValueError);
  EXPECT_THROW(nn::GaussianMixture(f64({0.5, 0.5}), f64({0, 1, 2}), f64({1, 1, 1})), ShapeError);
}

// P(v) for the discretised logistic mixture, straight from the definition, in long double.
double dlm_prob_reference(int v, const std::vector<double>& logits, const std::vector<double>& mu, const std::vector<double>& log_s) {
  long double total = 0, z = 0;
  for (double l : logits) z += std::exp(static_cast<long double>(l));
  for (size_t k = 0; k < mu.size(); ++k) {
    long double x = v / 127.5L - 1, s = std::exp(static_cast<long double>(std::max(log_s[k], -7.0)));
    auto cdf = [&](long double t) { return 1 / (1 + std::exp(-(t - mu[k]) / s)); };
    long double hi = v == 255 ? 1 : cdf(x + 1 / 255.0L), lo = v == 0 ? 0 : cdf(x - 1 / 255.0L);
    total += std::exp(static_cast<long double>(logits[k])) / z * (hi - lo);
  }
  return static_cast<double>(total);
}

TEST(NnDistributions, DiscretizedLogisticMixtureSumsToOneAndMatchesTheDefinition) {
  std::vector<double> logits{0.3, -1.0, 1.2}, mu{-0.9, 0.1, 0.95}, log_s{-3.0, -1.0, -7.5};  // the last scale is clamped to -7
  auto param = [](const std::vector<double>& v) { return from_vector(v, {1, 3}).to(DType::Float64); };
  nn::DiscretizedLogisticMixture d(param(logits), param(mu), param(log_s));
  std::vector<double> pixels(256);
  std::iota(pixels.begin(), pixels.end(), 0.0);
  Tensor x = nn::DiscretizedLogisticMixture::to_unit(from_vector(pixels, {256, 1}));  // float64 in, float64 out
  Tensor lp = d.log_prob(x);  // (256, 1): the params broadcast over the values
  std::vector<double> logp = lp.to_vector<double>();
  double total = 0;
  for (int v = 0; v < 256; ++v) {
    total += std::exp(logp[v]);
    double ref = dlm_prob_reference(v, logits, mu, log_s);
    EXPECT_NEAR(logp[v], std::log(ref), 1e-9 + 1e-9 * std::abs(std::log(ref))) << "pixel " << v;
  }
  EXPECT_NEAR(total, 1, 1e-12);
  // edge bins hold the tails: pixel 0 takes all mass below -1 + 1/255
  EXPECT_GT(logp[0], logp[1]);
  // a wide, flat component (s = e^3) and a very narrow one still normalise, in float32 too
  for (DType dt : {DType::Float64, DType::Float32}) {
    nn::DiscretizedLogisticMixture flat(param({0, 0, 0}).to(dt), param({0.2, -0.3, 0.5}).to(dt), param({3.0, -7.0, 0.0}).to(dt));
    std::vector<double> p = flat.log_prob(x.to(dt)).to_vector<double>();
    double t = 0;
    for (double v : p) {
      ASSERT_TRUE(std::isfinite(v));
      t += std::exp(v);
    }
    EXPECT_NEAR(t, 1, dt == DType::Float64 ? 1e-12 : 1e-4);
  }
  // far tail: the bin mass is ~e^-300, far below float range for sigmoid differences, yet finite
  nn::DiscretizedLogisticMixture narrow(f64_11(0), f64_11(-0.9), f64_11(-5.0));
  double far = narrow.log_prob(f64_11(0.9)).item();  // 1.8 / e^-5 ~ 267 logistic units away
  double a = (0.9 + 1 / 255.0 + 0.9) * std::exp(5.0), b = (0.9 - 1 / 255.0 + 0.9) * std::exp(5.0);
  EXPECT_NEAR(far, -b + std::log1p(-std::exp(b - a)), 1e-9);  // sigma(a) - sigma(b) ~ e^-b - e^-a in the tail
  check_grads([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{nn::DiscretizedLogisticMixture(in[0], in[1], in[2]).log_prob(in[3])}; },
              {randn({4, 3}, kF64Grad), leaf(rand({4, 3}, kF64) * 2.0 - 1.0), leaf(randn({4, 3}, kF64) - 2.0),
               nn::DiscretizedLogisticMixture::to_unit(f64({0, 17, 128, 255}))});
}

TEST(NnDistributions, DiscretizedLogisticMixtureSamplesOnTheGrid) {
  // one sharp component at pixel 200: samples land on it; two components: both appear
  double x200 = 200 / 127.5 - 1;
  nn::DiscretizedLogisticMixture sharp(f64_11(0.0).expand({500, 1}), f64_11(x200).expand({500, 1}), f64_11(-7.0).expand({500, 1}));
  Generator g(7);
  Tensor s = sharp.sample(g);
  EXPECT_EQ(s.shape(), (Shape{500}));
  // s = e^-7 is a quarter of the bin width: P(bin 200) = sigma(h) - sigma(-h), h = e^7 / 255
  double h = std::exp(7.0) / 255, p200 = 1 / (1 + std::exp(-h)) - 1 / (1 + std::exp(h));
  int hits = 0;
  for (int64_t v : nn::DiscretizedLogisticMixture::to_pixels(s).to_vector<int64_t>()) {
    EXPECT_NEAR(v, 200, 1);
    hits += v == 200;
  }
  EXPECT_NEAR(hits / 500.0, p200, 0.025);
  nn::DiscretizedLogisticMixture two(f64({{0.0, std::log(3.0)}}).expand({4000, 2}), f64({{-0.5, 0.5}}).expand({4000, 2}),
                                     f64({{-4.0, -4.0}}).expand({4000, 2}));
  std::vector<double> v = two.sample(g).to_vector<double>();
  double above = 0;
  for (double t : v) {
    EXPECT_NEAR(std::round((t + 1) * 127.5), (t + 1) * 127.5, 1e-9);  // on the grid
    above += t > 0;
  }
  EXPECT_NEAR(above / v.size(), 0.75, 0.03);
}

}  // namespace
