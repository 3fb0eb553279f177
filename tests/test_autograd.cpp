// Behaviour of the autograd engine: accumulation, retain_graph, retain_grad, grad(), higher
// derivatives (Hessians), version counters, anomaly mode, grad mode, freeing the graph, errors.
#include <gtest/gtest.h>

#include <cmath>

#include <dgm/autograd/engine.h>
#include <dgm/autograd/gradcheck.h>
#include <dgm/autograd/node.h>
#include <dgm/autograd/ops.h>

namespace dgm {
namespace {

constexpr TensorOptions f64{.dtype = DType::Float64};
constexpr TensorOptions f64g{.dtype = DType::Float64, .requires_grad = true};

void expect_near(const Tensor& a, const std::vector<double>& b, double tol = 1e-12) {
  std::vector<double> v = a.to_vector<double>();
  ASSERT_EQ(v.size(), b.size());
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], b[i], tol) << "element " << i;
}
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// var / std as methods too: after `using namespace dgm;` a bare std(x) names namespace std as well.
TEST(Autograd, VarAndStdMethodFormsMatchTheFreeFunctions) {
  Tensor x = tensor({{1.0, 2.0, 4.0}, {3.0, 3.0, 9.0}}, f64);
  expect_near(x.var({1}), {7.0 / 3, 12.0});
  expect_near(x.std({1}, 0), {std::sqrt(14.0 / 9), std::sqrt(8.0)});
  expect_near(x.std({}, 1, true), dgm::std(x).to_vector<double>());
  EXPECT_EQ(x.std({0}, 1, true).shape(), (Shape{1, 3}));
}

TEST(Autograd, ScalarBackwardAndAccumulation) {
  Tensor x = tensor({1, 2, 3}, f64g);
  Tensor y = sum(x * x * x);  // dy/dx = 3x^2
  y.backward({}, /*retain_graph=*/true);
  expect_near(x.grad(), {3, 12, 27});
  y.backward();  // gradients accumulate
  expect_near(x.grad(), {6, 24, 54});
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, NonScalarBackwardNeedsAGradient) {
  Tensor x = tensor({1, 2}, f64g);
  Tensor y = x * 3.0;
  std::string msg = message_of([&] { y.backward(); });
  EXPECT_NE(msg.find("scalar"), std::string::npos) << msg;
  y.backward(tensor({1, 10}, f64));
  expect_near(x.grad(), {3, 30});
}

TEST(Autograd, BackwardTwiceWithoutRetainGraphIsAnError) {
  Tensor x = tensor({1, 2}, f64g);
  Tensor y = sum(exp(x));
  y.backward();
  std::string msg = message_of([&] { y.backward(); });
  EXPECT_NE(msg.find("second time"), std::string::npos) << msg;
}

TEST(Autograd, BackwardOnTensorWithoutGradIsAnError) {
  Tensor x = tensor({1, 2}, f64);
  EXPECT_THROW(sum(x).backward(), AutogradError);
  Tensor w = tensor({1, 2}, f64g);
  Tensor y;
  {
    NoGradGuard ng;
    y = sum(w * 2.0);
  }
  EXPECT_FALSE(y.requires_grad());
  std::string msg = message_of([&] { y.backward(); });
  EXPECT_NE(msg.find("does not require grad"), std::string::npos) << msg;
}

TEST(Autograd, GradModeGuards) {
  Tensor w = tensor({1, 2}, f64g);
  NoGradGuard ng;
  EXPECT_FALSE((w * w).requires_grad());
  {
    EnableGradGuard eg;
    EXPECT_TRUE((w * w).requires_grad());
  }
  EXPECT_FALSE(is_grad_enabled());
}

TEST(Autograd, RetainGradOnNonLeaf) {
  Tensor x = tensor({1, 2, 3}, f64g);
  Tensor h = x * 2.0;  // non-leaf
  h.retain_grad();
  Tensor y = sum(h * h);  // dy/dh = 2h = 4x
  y.backward();
  ASSERT_TRUE(h.grad().defined());
  expect_near(h.grad(), {4, 8, 12});
  expect_near(x.grad(), {8, 16, 24});
}

TEST(Autograd, DetachCutsTheGraph) {
  Tensor x = tensor({1, 2}, f64g);
  Tensor y = sum(x * x.detach());  // only the first factor carries gradient
  y.backward();
  expect_near(x.grad(), {1, 2});
  EXPECT_TRUE(x.detach().is_leaf());
  EXPECT_FALSE(x.detach().requires_grad());
}

TEST(Autograd, BroadcastAndPromotionGradientsHaveTheInputsShapeAndDtype) {
  Tensor a = ones({3, 1}, {.dtype = DType::Float32, .requires_grad = true});
  Tensor b = ones({4}, f64g);
  Tensor y = sum(a * b);
  EXPECT_EQ(y.dtype(), DType::Float64);
  y.backward();
  EXPECT_EQ(a.grad().shape(), (Shape{3, 1}));
  EXPECT_EQ(a.grad().dtype(), DType::Float32);
  EXPECT_EQ(b.grad().shape(), (Shape{4}));
  expect_near(a.grad(), {4, 4, 4});
  expect_near(b.grad(), {3, 3, 3, 3});
}

TEST(Autograd, GradFunctionLeavesDotGradAlone) {
  Tensor x = tensor({1, 2}, f64g), w = tensor({3, 4}, f64g);
  Tensor y = sum(x * w);
  auto g = autograd::grad({y}, {x});
  expect_near(g[0], {3, 4});
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
}

TEST(Autograd, GradOfAnUnusedInput) {
  Tensor x = tensor({1, 2}, f64g), z = tensor({5}, f64g);
  Tensor y = sum(x * x);
  std::string msg = message_of([&] { autograd::grad({y}, {x, z}, {}, true); });
  EXPECT_NE(msg.find("not used"), std::string::npos) << msg;
  auto g = autograd::grad({y}, {x, z}, {}, true, false, /*allow_unused=*/true);
  expect_near(g[0], {2, 4});
  EXPECT_FALSE(g[1].defined());
}

TEST(Autograd, GradWithRespectToANonLeaf) {
  Tensor x = tensor({1, 2}, f64g);
  Tensor h = exp(x);
  Tensor y = sum(h * h);  // dy/dh = 2h
  auto g = autograd::grad({y}, {h});
  expect_near(g[0], {2 * std::exp(1.0), 2 * std::exp(2.0)}, 1e-12);
}

TEST(Autograd, ThirdDerivativeThroughCreateGraph) {
  Tensor x = tensor({0.5, -1.5}, f64g);
  Tensor y = sum(sin(x) * x);  // y' = cos x * x + sin x, y'' = -x sin x + 2 cos x, y''' = -x cos x - 3 sin x
  Tensor d1 = autograd::grad({y}, {x}, {}, std::nullopt, true)[0];
  Tensor d2 = autograd::grad({sum(d1)}, {x}, {}, std::nullopt, true)[0];
  Tensor d3 = autograd::grad({sum(d2)}, {x})[0];
  for (int i = 0; i < 2; ++i) {
    double v = x.to_vector<double>()[i];
    EXPECT_NEAR(d1.to_vector<double>()[i], std::cos(v) * v + std::sin(v), 1e-12);
    EXPECT_NEAR(d2.to_vector<double>()[i], -v * std::sin(v) + 2 * std::cos(v), 1e-12);
    EXPECT_NEAR(d3.to_vector<double>()[i], -v * std::cos(v) - 3 * std::sin(v), 1e-12);
  }
}

// f(x) = sum(softplus(A x)) + (x . x)^2 / 4 : a smooth non-quadratic function with a dense Hessian.
Tensor smooth_fn(const Tensor& x) {
  Tensor A = tensor({{1.0, -2.0, 0.5}, {0.3, 0.8, -1.0}}, f64);
  return sum(softplus(matmul(A, x))) + pow(sum(x * x), 2.0) * 0.25;
}

TEST(Autograd, HessianMatchesFiniteDifferencesOfTheGradient) {
  Tensor x = tensor({0.2, -0.4, 0.7}, f64g);
  Tensor H = hessian(smooth_fn, x);
  ASSERT_EQ(H.shape(), (Shape{3, 3}));
  // central differences of the analytic gradient, column by column
  const double eps = 1e-5;
  for (int j = 0; j < 3; ++j) {
    std::vector<double> xp = x.to_vector<double>(), xm = xp;
    xp[j] += eps;
    xm[j] -= eps;
    Tensor tp = from_vector(xp, {3}, true), tm = from_vector(xm, {3}, true);
    Tensor gp = autograd::grad({smooth_fn(tp)}, {tp})[0], gm = autograd::grad({smooth_fn(tm)}, {tm})[0];
    for (int i = 0; i < 3; ++i) {
      double fd = (gp.to_vector<double>()[i] - gm.to_vector<double>()[i]) / (2 * eps);
      EXPECT_NEAR(H.to_vector<double>()[i * 3 + j], fd, 1e-7) << "H[" << i << "," << j << "]";
    }
  }
  // symmetric
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(H.to_vector<double>()[i * 3 + j], H.to_vector<double>()[j * 3 + i], 1e-12);
}

TEST(Autograd, HessianVectorProductMatchesHessianAndFiniteDifferences) {
  Tensor x = tensor({0.2, -0.4, 0.7}, f64g);
  Tensor v = tensor({1.0, 0.5, -2.0}, f64);
  Tensor Hv = hvp(smooth_fn, x, v);
  Tensor H = hessian(smooth_fn, x);
  expect_near(Hv, matmul(H, v).to_vector<double>(), 1e-12);
  // finite differences along v: (grad f(x + eps v) - grad f(x - eps v)) / (2 eps)
  const double eps = 1e-5;
  Tensor xp = (x + v * eps).detach().requires_grad_(), xm = (x - v * eps).detach().requires_grad_();
  Tensor fd = (autograd::grad({smooth_fn(xp)}, {xp})[0] - autograd::grad({smooth_fn(xm)}, {xm})[0]) / (2 * eps);
  expect_near(Hv, fd.to_vector<double>(), 1e-7);
}

TEST(Autograd, VersionCounterCatchesInPlaceChangeOfASavedTensor) {
  Tensor w = tensor({1, 2}, f64g);
  Tensor x = tensor({3, 4}, f64);  // saved by mul for w's gradient
  Tensor y = sum(w * x);
  x.mul_(2.0);  // changes what backward would use
  std::string msg = message_of([&] { y.backward(); });
  EXPECT_NE(msg.find("'mul'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("in-place"), std::string::npos) << msg;
  EXPECT_NE(msg.find("version 1"), std::string::npos) << msg;
  EXPECT_NO_THROW(sum(w * x).backward()) << "a fresh graph after the change must work";
}

TEST(Autograd, VersionCounterCatchesChangeOfASavedOutput) {
  Tensor w = tensor({1, 2}, f64g);
  Tensor y = exp(w);  // saves its output
  Tensor s = sum(y);
  {
    NoGradGuard ng;  // e.g. an optimiser step touching the activations
    y.fill_(0);
  }
  std::string msg = message_of([&] { s.backward(); });
  EXPECT_NE(msg.find("'exp'"), std::string::npos) << msg;
}

TEST(Autograd, FreshGraphAfterInPlaceChangeWorks) {
  Tensor w = tensor({1, 2}, f64g);
  Tensor x = tensor({3, 4}, f64);
  x.mul_(2.0);
  sum(w * x).backward();
  expect_near(w.grad(), {6, 8});
}

TEST(Autograd, InPlaceOnATensorThatRequiresGradIsRefused) {
  Tensor w = tensor({1, 2}, f64g);
  std::string msg = message_of([&] { w.add_(ones({2}, f64)); });
  EXPECT_NE(msg.find("add_"), std::string::npos) << msg;
  EXPECT_NE(msg.find("NoGradGuard"), std::string::npos) << msg;
  NoGradGuard ng;
  w.add_(ones({2}, f64));  // fine for an optimiser step
  expect_near(w, {2, 3});
}

TEST(Autograd, AnomalyModeNamesTheForwardOp) {
  Tensor x = tensor({1, -1}, f64g);
  AnomalyGuard guard;
  std::string msg = message_of([&] { log(x); });
  EXPECT_NE(msg.find("forward op 'log'"), std::string::npos) << msg;
}

TEST(Autograd, AnomalyModeNamesTheBackwardOp) {
  Tensor x = tensor({0, 4}, f64g);
  Tensor y = sum(sqrt(x));  // forward is finite (sqrt 0 = 0); backward 1 / (2 sqrt 0) = inf
  {
    AnomalyGuard guard;
    std::string msg = message_of([&] { y.backward({}, true); });
    EXPECT_NE(msg.find("backward of 'sqrt'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("NaN/Inf"), std::string::npos) << msg;
  }
  y.backward();  // without anomaly mode the inf simply propagates
  EXPECT_TRUE(std::isinf(x.grad().to_vector<double>()[0]));
}

TEST(Autograd, GraphIsFreedWithItsTensors) {
  std::weak_ptr<Node> node, saved_output_node;
  Tensor x = tensor({1, 2}, f64g);
  {
    Tensor h = exp(x);  // exp saves its output: must not make a cycle
    Tensor y = sum(h * x);
    node = y.grad_fn();
    saved_output_node = h.grad_fn();
    EXPECT_FALSE(node.expired());
  }
  EXPECT_TRUE(node.expired());
  EXPECT_TRUE(saved_output_node.expired());
  // the leaf's accumulator goes away with the graph too
  EXPECT_TRUE(TensorAccess::impl(x)->grad_accumulator.expired());
}

TEST(Autograd, RetainGraphKeepsSavedTensors) {
  Tensor x = tensor({2.0}, f64g);
  Tensor y = sum(exp(x));
  y.backward({}, true);
  y.backward({}, true);
  expect_near(x.grad(), {2 * std::exp(2.0)});
}

TEST(Autograd, SameGraphGivesBitIdenticalGradients) {
  auto run = [] {
    manual_seed(3);
    Tensor w = randn({16, 8}, {.requires_grad = true});
    Tensor x = randn({4, 16});
    sum(tanh(matmul(x, w)) * 3.0).backward();
    return w.grad().to_vector<float>();
  };
  EXPECT_EQ(run(), run());
}

TEST(AutogradErrors, MessagesNameTheOpAndShapes) {
  Tensor a = ones({2, 3}), b = ones({4});
  std::string msg = message_of([&] { a + b; });
  EXPECT_NE(msg.find("add"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(2, 3)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(4,)"), std::string::npos) << msg;
  EXPECT_THROW(a + b, ShapeError);
  msg = message_of([&] { matmul(ones({2, 3}), ones({2, 3})); });
  EXPECT_NE(msg.find("matmul"), std::string::npos) << msg;
  EXPECT_THROW(matmul(ones({2, 3}), ones({2, 3})), ShapeError);
  EXPECT_THROW(sum(a, {2}), IndexError);
  EXPECT_THROW(exp(ones({2}, {.dtype = DType::Int64})), DTypeError);
  EXPECT_THROW(ones({2}, {.dtype = DType::Int64}).requires_grad_(), DTypeError);
  EXPECT_THROW(gather(ones({2, 2}), 1, tensor({{0, 2}, {1, 0}}, {.dtype = DType::Int64})), IndexError);
  EXPECT_THROW(Tensor().shape(), ValueError);
  EXPECT_THROW(reshape(ones({2, 3}), {4, 2}), ShapeError);
}

TEST(AutogradErrors, RequiresGradOnlyOnLeaves) {
  Tensor x = tensor({1.0}, f64g);
  Tensor y = x * 2.0;
  EXPECT_THROW(y.requires_grad_(false), AutogradError);
}

// elu, sigmoid and relu backward run one fused kernel (tensor/kernels.h) unless create_graph records
// the gradient's graph, which uses the composite formula: both give the same gradient, contiguous or
// not, in float32 and float64, with negative, zero and positive inputs.
TEST(Autograd, FusedEluSigmoidAndReluBackwardMatchTheComposite) {
  Generator gen(11);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (bool noncontig : {false, true}) {
      Tensor base = (randn({4, 6, 5}, {}, &gen) * 3.0).to(dt);
      base = where(abs(base) < 0.5, zeros_like(base), base);  // exact zeros: relu's gradient is 0 there
      Tensor x = (noncontig ? base.transpose(0, 2) : base).detach().requires_grad_();
      ASSERT_EQ(x.is_contiguous(), !noncontig);
      Tensor r = randn(x.shape(), {}, &gen).to(dt);
      for (int op = 0; op < 3; ++op) {
        SCOPED_TRACE(std::string(op == 0 ? "elu" : op == 1 ? "sigmoid" : "relu") + (noncontig ? " non-contiguous " : " ") + dtype_name(dt));
        auto f = [&] { return sum((op == 0 ? elu(x) : op == 1 ? sigmoid(x) : relu(x)) * r); };
        Tensor fused = autograd::grad({f()}, {x})[0];
        Tensor composite = autograd::grad({f()}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
        EXPECT_FALSE(fused.requires_grad());
        if (op != 2) {
          EXPECT_TRUE(composite.requires_grad());  // the composite path ran (relu's mask has no path to x)
        }
        std::vector<double> a = fused.to(DType::Float64).to_vector<double>(), b = composite.to(DType::Float64).to_vector<double>();
        ASSERT_EQ(a.size(), b.size());
        for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6 * (1 + std::abs(b[i]))) << "element " << i;
      }
    }
  }
}

}  // namespace
}  // namespace dgm
