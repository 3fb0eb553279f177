// Flow layers (nn/flows.h), each in float64 at random inputs and random parameters:
//   (i)  inverse(forward(x)) = x, and inverse_and_log_det gives -log|det| of the forward map;
//   (ii) the layer's log|det J| equals slogdet of the Jacobian from autograd::batch_jacobian;
//   (iii) a composed flow's log-det equals the sum over its layers and the slogdet of the composed
//        Jacobian.
// Then what each layer promises beyond that: ActNorm's data-dependent initialisation, the LU and
// QR factorisations, planar and radial invertibility constraints, MADE's autoregressive masks,
// the logit transform's values from the homework, the coupling layers' masks.
#include <gtest/gtest.h>

#include <cmath>

#include <dgm/autograd/engine.h>
#include <dgm/autograd/functional.h>
#include <dgm/nn/flows.h>

namespace dgm {
namespace {

using nn::Flow;
constexpr TensorOptions kF64{.dtype = DType::Float64};

std::vector<double> values(const Tensor& t) { return t.detach().to(DType::Float64).contiguous().to_vector<double>(); }
double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  std::vector<double> x = values(a), y = values(b);
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}
double max_abs(const Tensor& a) { return max_abs_diff(a, zeros_like(a)); }

// Adds N(0, scale^2) noise to every floating parameter, so no layer is tested at an identity init.
void perturb(nn::Module& m, Generator& g, double scale = 0.3) {
  NoGradGuard no_grad;
  for (Tensor& p : m.parameters()) p.set_data((p + randn(p.shape(), {.dtype = p.dtype()}, &g) * scale).array());
}

// (i) and (ii) for one flow at input x (float64, dim 0 the batch).
void check_flow(Flow& flow, const Tensor& x, double tol = 1e-10) {
  const int64_t B = x.size(0);
  auto [z, log_det] = flow.forward_and_log_det(x);
  ASSERT_EQ(log_det.shape(), (Shape{B})) << flow.type_name();
  EXPECT_LT(max_abs_diff(flow.forward(x), z), 1e-15) << flow.type_name() << ": forward(x) is not forward_and_log_det(x).out";
  EXPECT_LT(max_abs_diff(flow.inverse(z), x), tol) << flow.type_name() << ": inverse(forward(x)) != x";
  auto [x_back, inv_log_det] = flow.inverse_and_log_det(z);
  EXPECT_LT(max_abs_diff(x_back, x), tol) << flow.type_name();
  EXPECT_LT(max_abs_diff(inv_log_det, -log_det), tol) << flow.type_name() << ": log|det J_{f^-1}(z)| != -log|det J_f(x)|";
  // the Jacobian of one example: (B, out..., in...) -> (B, n, n)
  Tensor j = autograd::batch_jacobian([&](const Tensor& t) { return flow.forward(t); }, x);
  const int64_t n = x.numel() / B;
  ASSERT_EQ(j.numel(), B * n * n) << flow.type_name() << ": the flow changes the number of dimensions";
  auto [sign, logabsdet] = linalg::slogdet(reshape(j, {B, n, n}));
  for (double s : values(sign)) EXPECT_NE(s, 0) << flow.type_name() << ": singular Jacobian";
  EXPECT_LT(max_abs_diff(log_det, logabsdet), tol) << flow.type_name() << ": log-det differs from slogdet of the autograd Jacobian";
}

Tensor normal(Generator& g, const Shape& s) { return randn(s, kF64, &g); }
Tensor uniform(Generator& g, const Shape& s, double lo, double hi) { return rand(s, kF64, &g) * (hi - lo) + lo; }

// ---- the layers one by one -----------------------------------------------------------------------------
TEST(Flows, Permutation) {
  Generator g(1);
  auto p = nn::Permutation::random(5, &g);
  check_flow(*p, normal(g, {3, 5}));
  auto r = nn::Permutation::reverse(4);
  EXPECT_EQ(values(r->forward(tensor({{1.0, 2.0, 3.0, 4.0}}, kF64))), (std::vector<double>{4, 3, 2, 1}));
  check_flow(*r, normal(g, {2, 4, 3}));  // channels of (B, C, L)
  EXPECT_THROW(nn::Permutation({0, 0, 1}), ValueError);
  EXPECT_THROW(p->forward(normal(g, {3, 4})), ShapeError);
}

TEST(Flows, LogitMatchesTheHomeworkVector) {
  // alpha = 0.05, x = (0, 1, 2, 3) / 256, one element per example
  nn::LogitFlow f(0.05);
  Tensor x = reshape(tensor({0.0, 1.0, 2.0, 3.0}, kF64), {4, 1}) / 256.0;
  auto [v, log_det] = f.forward_and_log_det(x);
  std::vector<double> vv = values(v), ld = values(log_det);
  const double v_expected[] = {-2.944439, -2.8727808, -2.8054335, -2.7418802};
  const double ld_expected[] = {2.9416652, 2.8774219, 2.8175175, 2.7614343};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(vv[i], v_expected[i], 1e-6) << i;
    EXPECT_NEAR(ld[i], ld_expected[i], 1e-6) << i;
  }
}

TEST(Flows, LogitAndSigmoid) {
  Generator g(2);
  nn::LogitFlow f(1e-3);
  check_flow(f, uniform(g, {3, 2, 2, 2}, 0.02, 0.98));
  nn::InverseFlow sig(std::make_shared<nn::LogitFlow>(0.01));
  check_flow(sig, normal(g, {3, 4}));
  EXPECT_THROW(nn::LogitFlow(0.5), ValueError);
}

TEST(Flows, ActNormDataDependentInit) {
  Generator g(3);
  nn::ActNorm an(3);
  an.to(DType::Float64);
  EXPECT_FALSE(an.is_initialized());
  // channel c has mean c and standard deviation c + 1
  Tensor x = normal(g, {64, 3, 4, 4}) * reshape(tensor({1.0, 2.0, 3.0}, kF64), {1, 3, 1, 1}) + reshape(tensor({0.0, 1.0, 2.0}, kF64), {1, 3, 1, 1});
  Tensor z = an.forward(x);  // training: the first batch initialises
  ASSERT_TRUE(an.is_initialized());
  std::vector<double> mu = values(mean(z, {0, 2, 3})), sd = values(std(z, {0, 2, 3}, 0));
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(mu[c], 0, 1e-12) << c;
    EXPECT_NEAR(sd[c], 1, 1e-12) << c;
  }
  // a later batch does not initialise again
  std::vector<double> before = values(an.log_scale);
  an.forward(x * 5.0);
  EXPECT_EQ(values(an.log_scale), before);
  // the flag travels with the state: a loaded ActNorm is not initialised by its first batch
  nn::ActNorm loaded(3);
  loaded.load_state_dict(an.state_dict());
  EXPECT_TRUE(loaded.is_initialized());
  loaded.forward(x.to(DType::Float32) * 5.0);
  EXPECT_LT(max_abs_diff(loaded.log_scale, an.log_scale), 1e-6);
  // eval mode before any training batch leaves the identity untouched
  nn::ActNorm fresh(2);
  fresh.eval();
  fresh.forward(ones({2, 2}));
  EXPECT_FALSE(fresh.is_initialized());
}

TEST(Flows, ActNormInverseAndLogDet) {
  Generator g(4);
  nn::ActNorm an(2);
  an.to(DType::Float64);
  an.forward(normal(g, {8, 2, 3, 3}));  // initialise
  perturb(an, g);
  check_flow(an, normal(g, {2, 2, 3, 3}));
  nn::ActNorm vec(4);  // (B, D) data: one channel per feature
  vec.to(DType::Float64);
  perturb(vec, g);
  vec.eval();
  check_flow(vec, normal(g, {3, 4}));
}

TEST(Flows, LinearLUFactorsRebuildTheOrthogonalInit) {
  Generator g(5);
  nn::LinearLU f(5, &g);
  f.to(DType::Float64);
  Tensor w = f.weight();
  // W0 was a random orthogonal matrix: P L U must rebuild it, so W W^T = I and log|det| = 0
  EXPECT_LT(max_abs_diff(matmul(w, transpose(w, 0, 1)), eye(5, kF64)), 1e-6);
  EXPECT_NEAR(sum(f.log_abs_s).item(), 0, 1e-6);
  for (double v : values(f.permutation)) EXPECT_TRUE(v == 0 || v == 1);  // a permutation matrix
  EXPECT_LT(max_abs_diff(sum(f.permutation, {0}), ones({5}, kF64)), 1e-15);
  EXPECT_LT(max_abs_diff(sum(f.permutation, {1}), ones({5}, kF64)), 1e-15);
  perturb(f, g);
  check_flow(f, normal(g, {4, 5}));
  // the factor formula sum log|s_i| equals slogdet of the rebuilt W
  EXPECT_NEAR(linalg::slogdet(f.weight()).logabsdet.item(), sum(f.log_abs_s).item(), 1e-12);
}

TEST(Flows, LinearLULearnsFactorByFactor) {
  Generator g(6);
  nn::LinearLU f(4, &g);
  f.to(DType::Float64);
  Tensor x = normal(g, {3, 4});
  auto [z, ld] = f.forward_and_log_det(x);
  (sum(z * z) - sum(ld)).backward();
  // L's diagonal and upper triangle and U's lower triangle and diagonal are not parameters: zero gradient
  EXPECT_EQ(max_abs(triu(f.lower.grad(), 0)), 0);
  EXPECT_EQ(max_abs(tril(f.upper.grad(), 0)), 0);
  EXPECT_GT(max_abs(tril(f.lower.grad(), -1)), 0);
  EXPECT_GT(max_abs(f.log_abs_s.grad()), 0);
  // the signs are fixed: no gradient reaches them
  EXPECT_FALSE(f.sign_s.requires_grad());
}

TEST(Flows, LinearQR) {
  Generator g(7);
  nn::LinearQR f(4, &g);
  f.to(DType::Float64);
  Tensor q = f.orthogonal();
  EXPECT_LT(max_abs_diff(matmul(q, transpose(q, 0, 1)), eye(4, kF64)), 1e-13);
  perturb(f, g);
  q = f.orthogonal();
  EXPECT_LT(max_abs_diff(matmul(transpose(q, 0, 1), q), eye(4, kF64)), 1e-13);
  check_flow(f, normal(g, {3, 4}));
  EXPECT_NEAR(linalg::slogdet(f.weight()).logabsdet.item(), sum(f.log_r).item(), 1e-12);
}

TEST(Flows, PlanarStaysInvertible) {
  Generator g(8);
  nn::PlanarFlow f(3, &g);
  f.to(DType::Float64);
  perturb(f, g, 1.0);
  check_flow(f, normal(g, {5, 3}), 1e-9);
  // u pointing against w (w^T u = -5): u^ is corrected to w^T u^ = softplus(-5) - 1 > -1
  {
    NoGradGuard no_grad;
    f.w.set_data(tensor({1.0, 2.0, 0.0}, kF64).array());
    f.u.set_data(tensor({-1.0, -2.0, 0.5}, kF64).array());
  }
  double wu = sum(f.w * f.u_hat()).item();
  EXPECT_NEAR(wu, std::log1p(std::exp(-5.0)) - 1, 1e-12);
  EXPECT_GT(wu, -1);
  check_flow(f, normal(g, {5, 3}) * 2.0, 1e-9);
}

TEST(Flows, RadialStaysInvertible) {
  Generator g(9);
  nn::RadialFlow f(3, &g);
  f.to(DType::Float64);
  perturb(f, g, 1.0);
  check_flow(f, normal(g, {5, 3}));
  // beta_raw -> -inf: beta -> -alpha, the edge of invertibility, still a bijection
  {
    NoGradGuard no_grad;
    f.beta_raw.set_data(tensor({-8.0}, kF64).array());
  }
  EXPECT_GE((f.beta() + f.alpha()).item(), 0);
  check_flow(f, normal(g, {5, 3}), 1e-8);
  // the seminar's picture: z0 = 0, alpha = 1, beta = 5 pushes points outwards
  {
    NoGradGuard no_grad;
    f.x0.set_data(zeros({3}, kF64).array());
    f.alpha_raw.set_data(tensor({std::log(std::exp(1.0) - 1)}, kF64).array());  // softplus^{-1}(1)
    f.beta_raw.set_data(tensor({std::log(std::exp(6.0) - 1)}, kF64).array());   // beta = 6 - 1
  }
  EXPECT_NEAR(f.beta().item(), 5, 1e-12);
  Tensor x = tensor({{1.0, 0.0, 0.0}}, kF64);
  std::vector<double> z = values(f.forward(x));  // z = x (1 + beta / (alpha + r)), r = 1
  EXPECT_NEAR(z[0], 1 + 5.0 / 2, 1e-12);
  EXPECT_EQ(z[1], 0);
  EXPECT_EQ(z[2], 0);
}

TEST(Flows, MadeMasksAreAutoregressive) {
  Generator g(10);
  nn::MADE made(5, {16, 16}, 2, &g);
  made.to(DType::Float64);
  Tensor j = autograd::jacobian([&](const Tensor& t) { return made.forward(unsqueeze(t, 0)).squeeze(0); }, normal(g, {5}));
  ASSERT_EQ(j.shape(), (Shape{10, 5}));
  std::vector<double> jv = values(j);
  double below = 0;
  for (int64_t k = 0; k < 2; ++k)
    for (int64_t d = 0; d < 5; ++d)
      for (int64_t i = 0; i < 5; ++i) {
        double v = jv[(k * 5 + d) * 5 + i];
        if (i >= d) EXPECT_EQ(v, 0) << "output " << k * 5 + d << " depends on input " << i;
        else below = std::max(below, std::abs(v));
      }
  EXPECT_GT(below, 0);  // and it does depend on the earlier inputs
  // no hidden layers: a single masked layer, still autoregressive
  nn::MADE shallow(3, {}, 1, &g);
  shallow.to(DType::Float64);
  Tensor m = shallow.layers[0]->mask;
  EXPECT_EQ(values(m), (std::vector<double>{0, 0, 0, 1, 0, 0, 1, 1, 0}));
}

class AutoregressiveFlows : public ::testing::TestWithParam<nn::AutoregressiveDirection> {};
TEST_P(AutoregressiveFlows, TriangularJacobianInverseAndLogDet) {
  Generator g(11);
  nn::GaussianAutoregressiveFlow f(4, {12, 12}, GetParam(), &g);
  f.to(DType::Float64);
  perturb(f, g, 0.2);
  Tensor x = normal(g, {3, 4});
  check_flow(f, x);
  // dz/dx is lower-triangular
  Tensor j = autograd::batch_jacobian([&](const Tensor& t) { return f.forward(t); }, x);
  EXPECT_EQ(max_abs(triu(j, 1)), 0);
  if (GetParam() == nn::AutoregressiveDirection::MAF) {
    // ... with diagonal 1 / sigma_j(x) = e^{-alpha_j(x)}
    Tensor alpha = narrow(f.made->forward(x), 1, 4, 4);
    EXPECT_LT(max_abs_diff(sum(j * eye(4, kF64), {2}), exp(-alpha)), 1e-13);
  }
  // The soft bound alpha = c tanh(a / c), with c small enough to bend every alpha: still the
  // inverse and the log-det of the Jacobian, and then |alpha| < c.
  f.max_log_scale = 0.3;
  check_flow(f, x);
  if (GetParam() == nn::AutoregressiveDirection::MAF) {
    Tensor a = narrow(f.made->forward(x), 1, 4, 4), alpha = tanh(a / 0.3) * 0.3;
    Tensor jc = autograd::batch_jacobian([&](const Tensor& t) { return f.forward(t); }, x);
    EXPECT_LT(max_abs_diff(sum(jc * eye(4, kF64), {2}), exp(-alpha)), 1e-13);
    EXPECT_LT(max_abs_diff(f.forward_and_log_det(x).log_det, -sum(alpha, {1})), 1e-13);
    EXPECT_GT(max_abs(a), 0.3);  // the bound was active somewhere
  }
}
// The D sequential passes (MAF's sampling, IAF's density) without a graph keep the first layer's
// pre-activation with a rank-1 update per coordinate and compute only mu_k and alpha_k of the output
// layer: the full passes' values and log-det, with one or two hidden layers, bounded or not.
TEST_P(AutoregressiveFlows, SequentialPassesWithoutAGraphEqualTheFullPasses) {
  Generator g(13);
  for (const std::vector<int64_t>& hidden : {std::vector<int64_t>{12}, std::vector<int64_t>{12, 9}})
    for (double bound : {0.0, 0.3}) {
      SCOPED_TRACE(cat(hidden.size(), " hidden layers, max_log_scale ", bound));
      nn::GaussianAutoregressiveFlow f(5, hidden, GetParam(), &g);
      f.to(DType::Float64);
      perturb(f, g, 0.5);
      f.max_log_scale = bound;
      Tensor v = normal(g, {3, 5});
      const bool maf = GetParam() == nn::AutoregressiveDirection::MAF;
      auto sequential = [&] { return maf ? f.inverse_and_log_det(v) : f.forward_and_log_det(v); };
      nn::FlowOutput full = sequential(), fast;
      {
        NoGradGuard no_grad;
        fast = sequential();
      }
      EXPECT_LT(max_abs_diff(fast.out, full.out), 1e-12);
      EXPECT_LT(max_abs_diff(fast.log_det, full.log_det), 1e-12);
      EXPECT_GT(max_abs(full.out - v), 0.1);  // the flow is not the identity here
    }
}
INSTANTIATE_TEST_SUITE_P(Directions, AutoregressiveFlows, ::testing::Values(nn::AutoregressiveDirection::MAF, nn::AutoregressiveDirection::IAF),
                         [](const auto& info) { return info.param == nn::AutoregressiveDirection::MAF ? "MAF" : "IAF"; });

TEST(Flows, MafEvaluatesAndIafSamplesInOnePass) {
  // MAF's density direction and IAF's sampling direction are one MADE pass each
  Generator g(12);
  nn::GaussianAutoregressiveFlow maf(3, {8}, nn::AutoregressiveDirection::MAF, &g);
  nn::GaussianAutoregressiveFlow iaf(3, {8}, nn::AutoregressiveDirection::IAF, &g);
  maf.to(DType::Float64);
  iaf.to(DType::Float64);
  Tensor v = normal(g, {2, 3});
  Tensor m = maf.made->forward(v);
  EXPECT_LT(max_abs_diff(maf.forward(v), (v - narrow(m, 1, 0, 3)) * exp(-narrow(m, 1, 3, 3))), 1e-15);
  EXPECT_LT(max_abs_diff(maf.forward_and_log_det(v).log_det, -sum(narrow(m, 1, 3, 3), {1})), 1e-15);
  Tensor i = iaf.made->forward(v);
  EXPECT_LT(max_abs_diff(iaf.inverse(v), v * exp(narrow(i, 1, 3, 3)) + narrow(i, 1, 0, 3)), 1e-15);
  EXPECT_LT(max_abs_diff(iaf.inverse_and_log_det(v).log_det, sum(narrow(i, 1, 3, 3), {1})), 1e-15);
}

TEST(Flows, AffineCouplingOnVectors) {
  Generator g(13);
  nn::AffineCoupling f(nn::half_mask(6, true), nn::mlp_conditioner(6, 16, &g));
  f.to(DType::Float64);
  perturb(f, g);
  Tensor x = normal(g, {4, 6});
  check_flow(f, x);
  // the kept half passes through unchanged
  Tensor z = f.forward(x);
  EXPECT_EQ(values(narrow(z, 1, 0, 3)), values(narrow(x, 1, 0, 3)));
  EXPECT_GT(max_abs_diff(narrow(z, 1, 3, 3), narrow(x, 1, 3, 3)), 1e-3);
}

TEST(Flows, AffineCouplingCheckerboardAndChannelMasks) {
  Generator g(14);
  auto cb = nn::checkerboard_mask(2, 2, true);
  EXPECT_EQ(values(cb), (std::vector<double>{1, 0, 0, 1}));
  EXPECT_EQ(values(nn::checkerboard_mask(2, 2, false)), (std::vector<double>{0, 1, 1, 0}));
  EXPECT_EQ(values(nn::channel_mask(4, false)), (std::vector<double>{0, 0, 1, 1}));
  nn::AffineCoupling checker(nn::checkerboard_mask(4, 4, false), nn::conv_conditioner(2, 4, &g));
  checker.to(DType::Float64);
  perturb(checker, g);
  check_flow(checker, normal(g, {2, 2, 4, 4}));
  nn::AffineCoupling channels(nn::channel_mask(4, true), nn::conv_conditioner(4, 4, &g));
  channels.to(DType::Float64);
  perturb(channels, g);
  Tensor x = normal(g, {2, 4, 2, 2});
  check_flow(channels, x);
  Tensor z = channels.forward(x);
  EXPECT_EQ(values(narrow(z, 1, 0, 2)), values(narrow(x, 1, 0, 2)));  // the first half is kept
}

TEST(Flows, FreshCouplingHasZeroLogDet) {
  // the homework's given tests: scale = shift = 0 make s = 0 at initialisation
  Generator g(15);
  nn::AffineCoupling checker(nn::checkerboard_mask(2, 2, true), nn::conv_conditioner(1, 4, &g));
  auto [z, ld] = checker.forward_and_log_det(zeros({1, 1, 2, 2}));
  EXPECT_EQ(values(ld), std::vector<double>{0});
  EXPECT_EQ(values(z * checker.mask), std::vector<double>(4, 0.0));
  nn::AffineCoupling channels(nn::channel_mask(4, true), nn::conv_conditioner(4, 4, &g));
  auto [z2, ld2] = channels.forward_and_log_det(zeros({1, 4, 2, 2}));
  EXPECT_EQ(values(ld2), std::vector<double>{0});
  EXPECT_EQ(values(narrow(z2, 1, 0, 2)), std::vector<double>(8, 0.0));
}

TEST(Flows, Squeeze) {
  Generator g(16);
  nn::SqueezeFlow f;
  Tensor x = normal(g, {2, 1, 4, 2});
  check_flow(f, x);
  EXPECT_EQ(f.forward(x).shape(), (Shape{2, 4, 2, 1}));
  EXPECT_EQ(values(f.forward(x)), values(squeeze2d(x)));
}

// A conditioner for the mixture coupling: C -> (2 + 3K) C channels by one 3x3 convolution.
std::shared_ptr<nn::Module> mixture_conditioner(int64_t channels, int64_t components, Generator& g) {
  return std::make_shared<nn::Conv2d>(channels, (2 + 3 * components) * channels, 3, nn::Conv2dOptions{.padding = 1, .gen = &g});
}

TEST(Flows, MixtureLogisticCouplingInvertsAndMatchesItsJacobian) {
  Generator g(20);
  nn::MixtureLogisticCoupling checker(nn::checkerboard_mask(4, 4, false), 3, mixture_conditioner(1, 3, g));
  checker.to(DType::Float64);
  perturb(checker, g, 0.5);
  check_flow(checker, normal(g, {2, 1, 4, 4}) * 2.0, 1e-9);
  nn::MixtureLogisticCoupling channels(nn::channel_mask(4, true), 2, mixture_conditioner(4, 2, g));
  channels.to(DType::Float64);
  perturb(channels, g, 0.5);
  Tensor x = normal(g, {2, 4, 2, 2});
  check_flow(channels, x, 1e-9);
  Tensor z = channels.forward(x);
  EXPECT_EQ(values(narrow(z, 1, 0, 2)), values(narrow(x, 1, 0, 2)));  // the kept half
  EXPECT_GT(max_abs_diff(narrow(z, 1, 2, 2), narrow(x, 1, 2, 2)), 1e-3);
  nn::MixtureLogisticCoupling wrong(nn::channel_mask(4, true), 2, nn::conv_conditioner(4, 4, &g));  // 2C outputs, not 8C
  wrong.to(DType::Float64);
  EXPECT_THROW(wrong.forward(x), ShapeError);
  EXPECT_THROW(nn::MixtureLogisticCoupling(nn::channel_mask(4, true), 0, mixture_conditioner(4, 2, g)), ValueError);
}

// All-zero conditioner outputs: pi uniform, mu = 0, l = 0, so F = sigmoid and logit(F(x)) = x.
TEST(Flows, MixtureLogisticCouplingWithZeroParametersIsTheIdentity) {
  Generator g(21);
  nn::MixtureLogisticCoupling f(nn::checkerboard_mask(4, 4, true), 4, mixture_conditioner(1, 4, g));
  f.to(DType::Float64);
  for (Tensor& p : f.parameters()) p.set_data(zeros_like(p).array());
  Tensor x = normal(g, {3, 1, 4, 4}) * 3.0;
  auto [z, ld] = f.forward_and_log_det(x);
  EXPECT_LT(max_abs_diff(z, x), 1e-12);
  EXPECT_LT(max_abs(ld), 1e-12);
}

// One mixture coupling represents a conditional that one affine coupling cannot: with two
// components at -3 and +3 (the conditioner's bias alone), the density of the transformed element
// is bimodal: higher at +-3 than at 0.
TEST(Flows, MixtureLogisticCouplingHasABimodalConditional) {
  Generator g(22);
  // channels = 2 (the first kept, the second transformed); the conditioner's (2 + 3K) C = 16
  // outputs are [s_raw (C), t (C), logits (K x C), mu (K x C), l (K x C)], from its bias alone
  const int64_t K = 2, C = 2;
  auto cond = std::make_shared<nn::Conv2d>(C, (2 + 3 * K) * C, 1, nn::Conv2dOptions{.gen = &g});
  nn::MixtureLogisticCoupling f(nn::channel_mask(2, true), K, cond);
  f.to(DType::Float64);
  {
    NoGradGuard no_grad;
    cond->weight.set_data(zeros_like(cond->weight).array());
    std::vector<double> bias((2 + 3 * K) * C, 0.0);
    for (int64_t k = 0; k < K; ++k) {
      bias[(2 + K) * C + k * C + 1] = k == 0 ? -3.0 : 3.0;        // mu_k of channel 1
      bias[(2 + 2 * K) * C + k * C + 1] = std::log(0.3);          // l_k of channel 1
    }
    cond->bias.set_data(from_vector(bias, {(2 + 3 * K) * C}).to(DType::Float64).array());
  }
  auto density = [&](double v) {  // log N(z) + log|dz/dx| for the transformed element at v
    Tensor x = from_vector(std::vector<double>{0.0, v}, {1, 2, 1, 1});
    auto [z, ld] = f.forward_and_log_det(x);
    const double zz = values(z)[1];
    return -0.5 * zz * zz + values(ld)[0];
  };
  EXPECT_GT(density(-3), density(0) + 1);
  EXPECT_GT(density(3), density(0) + 1);
}

TEST(Flows, ElementwiseAffine) {
  Generator g(23);
  nn::ElementwiseAffine f({2, 3, 3});
  f.to(DType::Float64);
  Tensor x0 = normal(g, {2, 2, 3, 3});
  EXPECT_EQ(values(f.forward(x0)), values(x0));  // a fresh layer is the identity
  perturb(f, g);
  Tensor x = normal(g, {2, 2, 3, 3});
  check_flow(f, x);
  // each position its own scale: the log-det is the sum of the 18 log-scales, the same for every example
  std::vector<double> ld = values(f.forward_and_log_det(x).log_det), l = values(f.log_scale);
  double sum_l = 0;
  for (double v : l) sum_l += v;
  EXPECT_NEAR(ld[0], sum_l, 1e-12);
  EXPECT_NEAR(ld[1], sum_l, 1e-12);
  EXPECT_THROW(f.forward(normal(g, {2, 2, 3, 4})), ShapeError);
  EXPECT_THROW(nn::ElementwiseAffine(Shape{}), ValueError);
}

TEST(Flows, FactorOut) {
  // the inner flow sees the first 2 of 4 channels; the other two pass through untouched
  Generator g(19);
  auto inner = std::make_shared<nn::FlowSequence>(std::vector<std::shared_ptr<Flow>>{
      std::make_shared<nn::AffineCoupling>(nn::checkerboard_mask(2, 2, true), nn::conv_conditioner(2, 4, &g)),
      std::make_shared<nn::ActNorm>(2),
      std::make_shared<nn::SqueezeFlow>(),  // (2, 2, 2) -> (8, 1, 1) inside
      std::make_shared<nn::AffineCoupling>(nn::channel_mask(8, false), nn::conv_conditioner(8, 4, &g)),
      std::make_shared<nn::InverseFlow>(std::make_shared<nn::SqueezeFlow>()),
  });
  nn::FactorOut f(2, inner);
  f.to(DType::Float64);
  perturb(f, g);
  f.eval();
  Tensor x = normal(g, {3, 4, 2, 2});
  check_flow(f, x);
  Tensor z = f.forward(x);
  EXPECT_EQ(values(narrow(z, 1, 2, 2)), values(narrow(x, 1, 2, 2)));
  EXPECT_GT(max_abs_diff(narrow(z, 1, 0, 2), narrow(x, 1, 0, 2)), 1e-3);
  EXPECT_EQ(values(f.forward_and_log_det(x).log_det), values(inner->forward_and_log_det(narrow(x, 1, 0, 2)).log_det));
  EXPECT_THROW(f.forward(normal(g, {3, 2, 2, 2})), ShapeError);  // nothing left to factor out
  EXPECT_THROW(nn::FactorOut(0, inner), ValueError);
}

// ---- composition -------------------------------------------------------------------------------------
// log-det of the stack = sum of the layers' log-dets (each at its own input) = slogdet of the
// composed Jacobian
void check_composition(nn::FlowSequence& flow, const Tensor& x) {
  check_flow(flow, x);
  Tensor h = x, sum_ld = zeros({x.size(0)}, kF64);
  for (size_t i = 0; i < flow.size(); ++i) {
    auto [next, ld] = flow[i]->forward_and_log_det(h);
    sum_ld = sum_ld + ld;
    h = next;
  }
  EXPECT_LT(max_abs_diff(flow.forward_and_log_det(x).log_det, sum_ld), 1e-12);
  EXPECT_LT(max_abs_diff(flow.forward(x), h), 1e-15);
}

TEST(Flows, ComposedVectorFlow) {
  Generator g(17);
  nn::FlowSequence flow;
  flow.push_back(std::make_shared<nn::LinearLU>(4, &g));
  flow.push_back(std::make_shared<nn::PlanarFlow>(4, &g));
  flow.push_back(std::make_shared<nn::RadialFlow>(4, &g));
  flow.push_back(std::make_shared<nn::ActNorm>(4));
  flow.push_back(nn::Permutation::reverse(4));
  flow.push_back(std::make_shared<nn::GaussianAutoregressiveFlow>(4, std::vector<int64_t>{8}, nn::AutoregressiveDirection::MAF, &g));
  flow.push_back(std::make_shared<nn::AffineCoupling>(nn::half_mask(4, false), nn::mlp_conditioner(4, 8, &g)));
  flow.push_back(std::make_shared<nn::LinearQR>(4, &g));
  flow.to(DType::Float64);
  perturb(flow, g, 0.2);
  flow.eval();  // ActNorm keeps its (perturbed) values
  EXPECT_EQ(flow.size(), 8u);
  check_composition(flow, normal(g, {3, 4}));
}

TEST(Flows, ComposedImageFlowLikeRealNVP) {
  // logit -> checkerboard coupling -> ActNorm -> squeeze -> channel coupling -> ActNorm -> unsqueeze
  Generator g(18);
  nn::FlowSequence flow({
      std::make_shared<nn::LogitFlow>(0.05),
      std::make_shared<nn::AffineCoupling>(nn::checkerboard_mask(4, 4, true), nn::conv_conditioner(1, 4, &g)),
      std::make_shared<nn::ActNorm>(1),
      std::make_shared<nn::SqueezeFlow>(),
      std::make_shared<nn::AffineCoupling>(nn::channel_mask(4, false), nn::conv_conditioner(4, 4, &g)),
      std::make_shared<nn::ActNorm>(4),
      std::make_shared<nn::InverseFlow>(std::make_shared<nn::SqueezeFlow>()),
  });
  flow.to(DType::Float64);
  Tensor x = uniform(g, {6, 1, 4, 4}, 0.01, 0.99);
  flow.forward(x);  // ActNorms initialise on this batch
  perturb(flow, g, 0.2);
  check_composition(flow, narrow(x, 0, 0, 2));
  EXPECT_EQ(flow.forward(x).shape(), x.shape());
  // the named parameters and buffers a checkpoint would hold
  auto names = flow.state_dict();
  bool has_flag = false;
  for (auto& [name, t] : names) has_flag |= name == "2.initialized";
  EXPECT_TRUE(has_flag);
}

TEST(Flows, DensityIntegratesToOneOnAGrid) {
  // p(x) = N(f(x); 0, I) |det J_f(x)| for a 2-D flow, summed over a fine grid
  Generator g(19);
  nn::FlowSequence flow({std::make_shared<nn::PlanarFlow>(2, &g), std::make_shared<nn::RadialFlow>(2, &g), std::make_shared<nn::LinearLU>(2, &g)});
  flow.to(DType::Float64);
  perturb(flow, g, 0.5);
  const int64_t n = 400;
  const double lo = -8, hi = 8, h = (hi - lo) / n;
  Tensor c = arange(0, n, 1, kF64) * h + (lo + h / 2);
  Tensor xs = reshape(expand(unsqueeze(c, 1), {n, n}), {-1}), ys = reshape(expand(unsqueeze(c, 0), {n, n}), {-1});
  Tensor grid = stack({xs, ys}, 1);
  NoGradGuard no_grad;
  auto [z, ld] = flow.forward_and_log_det(grid);
  Tensor log_p = -0.5 * sum(z * z, {1}) - std::log(2 * M_PI) + ld;
  EXPECT_NEAR(sum(exp(log_p)).item() * h * h, 1.0, 2e-3);
}

// Without a graph MaskedLinear keeps W * M between calls (MAF's sampling): every way the weight or
// the mask can change must show in the next call. Each forward is checked against x (W * M)^T + b
// written out.
TEST(Flows, MaskedLinearWithoutGraphFollowsItsWeights) {
  Generator gen(5);
  nn::MaskedLinear layer(4, 3, bernoulli(full({3, 4}, 0.5), &gen), &gen);
  const Tensor x = randn({2, 4}, {}, &gen);
  auto expect_current = [&](const char* after) {
    const Tensor want = matmul(x, (layer.weight * layer.mask).transpose(0, 1)) + layer.bias;
    NoGradGuard no_grad;
    EXPECT_LT(max_abs_diff(layer.forward(x), want), 1e-6) << "after " << after;
  };
  expect_current("construction");
  expect_current("a second call");
  {
    NoGradGuard no_grad;
    layer.weight.fill_(0.25);  // in place: a new version
  }
  expect_current("an in-place fill of the weight");
  layer.weight.set_data(randn({3, 4}, {}, &gen).array());  // another storage (its version may repeat)
  expect_current("set_data on the weight");
  layer.mask.set_data(ones({3, 4}).array());
  expect_current("set_data on the mask");
  nn::MaskedLinear other(4, 3, ones({3, 4}), &gen);
  layer.load_state_dict(other.state_dict());
  expect_current("load_state_dict");
  Tensor w = layer.weight;
  layer.weight = randn({3, 4}, {}, &gen);  // the member replaced by another tensor
  expect_current("replacing the weight tensor");
  layer.weight = w;
  expect_current("putting the old weight back");
}

TEST(Flows, ErrorsNameTheShape) {
  nn::LinearLU lu(3);
  EXPECT_THROW(lu.forward(ones({2, 4})), ShapeError);
  nn::ActNorm an(3);
  EXPECT_THROW(an.forward(ones({2, 4, 2})), ShapeError);
  nn::AffineCoupling bad(nn::half_mask(4, true), std::make_shared<nn::Linear>(4, 4));  // 4 -> 4, not 8
  EXPECT_THROW(bad.forward(ones({2, 4})), ShapeError);
  EXPECT_THROW(nn::MaskedLinear(3, 2, ones({3, 2})), ShapeError);
}

}  // namespace
}  // namespace dgm
