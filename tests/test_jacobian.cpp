// Engine pieces for normalizing flows: autograd::jacobian / batch_jacobian / vjp / jvp against
// closed-form Jacobians, the triangular solve against A X = B, logit and the space-to-depth
// squeeze2d. Their gradients (first and second order) are in tests/test_gradcheck.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include <dgm/autograd/engine.h>
#include <dgm/autograd/functional.h>
#include <dgm/autograd/ops.h>

namespace dgm {
namespace {

constexpr TensorOptions kF64{.dtype = DType::Float64};

std::vector<double> values(const Tensor& t) { return t.detach().to(DType::Float64).contiguous().to_vector<double>(); }
double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  std::vector<double> x = values(a), y = values(b);
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}
Tensor uniform(Generator& g, const Shape& s, double lo = -1, double hi = 1) { return rand(s, kF64, &g) * (hi - lo) + lo; }

// ---- jacobian, vjp, jvp ---------------------------------------------------------------------------------
TEST(Jacobian, LinearMapIsItsMatrix) {
  Generator g(1);
  Tensor a = uniform(g, {3, 4}), x = uniform(g, {4});
  auto f = [&](const Tensor& t) { return matmul(a, t); };
  EXPECT_LT(max_abs_diff(autograd::jacobian(f, x), a), 1e-15);
  Tensor v = uniform(g, {3}), u = uniform(g, {4});
  auto [y, vj] = autograd::vjp(f, x, v);
  EXPECT_LT(max_abs_diff(y, matmul(a, x)), 1e-15);
  EXPECT_LT(max_abs_diff(vj, matmul(v, a)), 1e-15);  // v^T A
  auto [y2, jv] = autograd::jvp(f, x, u);
  EXPECT_LT(max_abs_diff(jv, matmul(a, u)), 1e-15);  // A u
  EXPECT_FALSE(vj.requires_grad());
  EXPECT_FALSE(jv.requires_grad());
}

TEST(Jacobian, NonlinearClosedForm) {
  // f(x0, x1) = (x0 x1, sin x1, e^{x0}):  J = [[x1, x0], [0, cos x1], [e^{x0}, 0]]
  Tensor x = tensor({0.3, -0.7}, kF64);
  auto f = [](const Tensor& t) {
    Tensor a = select(t, 0, 0), b = select(t, 0, 1);
    return stack({a * b, sin(b), exp(a)});
  };
  Tensor j = autograd::jacobian(f, x);
  ASSERT_EQ(j.shape(), (Shape{3, 2}));
  std::vector<double> expect{-0.7, 0.3, 0, std::cos(-0.7), std::exp(0.3), 0};
  std::vector<double> got = values(j);
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(got[i], expect[i], 1e-15) << i;
  // jvp and vjp agree with J on a direction
  Tensor u = tensor({2.0, -1.0}, kF64), v = tensor({1.0, 0.5, -2.0}, kF64);
  EXPECT_LT(max_abs_diff(autograd::jvp(f, x, u).product, matmul(j, u)), 1e-15);
  EXPECT_LT(max_abs_diff(autograd::vjp(f, x, v).product, matmul(v, j)), 1e-15);
}

TEST(Jacobian, ShapesAreOutputThenInput) {
  Generator g(2);
  Tensor x = uniform(g, {2, 3});
  Tensor j = autograd::jacobian([](const Tensor& t) { return t * t; }, x);
  ASSERT_EQ(j.shape(), (Shape{2, 3, 2, 3}));
  // d(x_ab^2)/dx_cd = 2 x_ab [a=c, b=d]
  std::vector<double> xv = values(x), jv = values(j);
  for (int64_t p = 0; p < 6; ++p)
    for (int64_t q = 0; q < 6; ++q) EXPECT_DOUBLE_EQ(jv[p * 6 + q], p == q ? 2 * xv[p] : 0.0);
}

TEST(Jacobian, ConstantAndIdentityFunctions) {
  Tensor x = tensor({1.0, 2.0}, kF64), u = tensor({3.0, -4.0}, kF64);
  auto constant = [](const Tensor&) { return tensor({5.0, 6.0, 7.0}, kF64); };
  EXPECT_EQ(values(autograd::jacobian(constant, x)), std::vector<double>(6, 0.0));
  EXPECT_EQ(values(autograd::jvp(constant, x, u).product), std::vector<double>(3, 0.0));
  auto identity = [](const Tensor& t) { return t; };
  EXPECT_EQ(values(autograd::jvp(identity, x, u).product), values(u));
  EXPECT_EQ(values(autograd::vjp(identity, x, u).product), values(u));
  EXPECT_THROW(autograd::jvp(identity, x, tensor({1.0}, kF64)), ShapeError);
  EXPECT_THROW(autograd::vjp(identity, x, tensor({1.0}, kF64)), ShapeError);
}

TEST(Jacobian, CreateGraphDifferentiatesTheLogDet) {
  // f(x) = x^3 elementwise: J = diag(3 x^2), log|det J| = n log 3 + 2 sum log|x|, gradient 2 / x.
  Tensor x = tensor({0.5, -1.5, 2.0}, {.dtype = DType::Float64, .requires_grad = true});
  Tensor j = autograd::jacobian([](const Tensor& t) { return t * t * t; }, x, /*create_graph=*/true);
  ASSERT_TRUE(j.requires_grad());
  Tensor logdet = linalg::slogdet(j).logabsdet;
  EXPECT_NEAR(logdet.item(), 3 * std::log(3.0) + 2 * (std::log(0.5) + std::log(1.5) + std::log(2.0)), 1e-13);
  Tensor gx = autograd::grad({logdet}, {x})[0];
  std::vector<double> got = values(gx);
  EXPECT_NEAR(got[0], 2 / 0.5, 1e-12);
  EXPECT_NEAR(got[1], 2 / -1.5, 1e-12);
  EXPECT_NEAR(got[2], 2 / 2.0, 1e-12);
  // jvp with create_graph: d/dx of (J u) for f = x^3 is diag(6 x u)
  Tensor u = tensor({1.0, 2.0, 3.0}, kF64);
  Tensor jv = autograd::jvp([](const Tensor& t) { return t * t * t; }, x, u, true).product;
  Tensor g2 = autograd::grad({sum(jv)}, {x})[0];
  EXPECT_LT(max_abs_diff(g2, 6.0 * x.detach() * u), 1e-12);
}

TEST(Jacobian, BatchJacobianIsTheDiagonalBlocks) {
  // rowwise f(x_b) = tanh(W x_b): J_b = diag(1 - tanh^2(W x_b)) W
  Generator g(3);
  Tensor w = uniform(g, {2, 3}), x = uniform(g, {4, 3});
  auto f = [&](const Tensor& t) { return tanh(matmul(t, transpose(w, 0, 1))); };
  Tensor jb = autograd::batch_jacobian(f, x);
  ASSERT_EQ(jb.shape(), (Shape{4, 2, 3}));
  Tensor full = autograd::jacobian(f, x);  // (4, 2, 4, 3)
  for (int64_t b = 0; b < 4; ++b) {
    Tensor block = select(select(full, 2, b), 0, b);  // (2, 3)
    Tensor h = tanh(matmul(w, select(x, 0, b)));
    Tensor closed = unsqueeze(1.0 - h * h, 1) * w;
    EXPECT_LT(max_abs_diff(select(jb, 0, b), block), 1e-15);
    EXPECT_LT(max_abs_diff(select(jb, 0, b), closed), 1e-15);
  }
}

// ---- triangular solve -----------------------------------------------------------------------------------
TEST(SolveTriangular, SolvesEachTriangleAndSide) {
  Generator g(4);
  Tensor a = uniform(g, {4, 4}) + eye(4, kF64) * 3.0, b = uniform(g, {4, 2}), br = uniform(g, {2, 4});
  Tensor lower = tril(a), upper = triu(a);
  Tensor unit_lower = tril(a, -1) + eye(4, kF64);
  EXPECT_LT(max_abs_diff(matmul(lower, linalg::solve_triangular(a, b, false)), b), 1e-14);
  EXPECT_LT(max_abs_diff(matmul(upper, linalg::solve_triangular(a, b, true)), b), 1e-14);
  EXPECT_LT(max_abs_diff(matmul(unit_lower, linalg::solve_triangular(a, b, false, true, true)), b), 1e-14);
  EXPECT_LT(max_abs_diff(matmul(linalg::solve_triangular(a, br, true, /*left=*/false), upper), br), 1e-14);
  // agrees with the dense inverse
  EXPECT_LT(max_abs_diff(linalg::solve_triangular(a, b, false), matmul(linalg::inv(lower), b)), 1e-14);
}

TEST(SolveTriangular, BroadcastsBatchDims) {
  Generator g(5);
  Tensor a = uniform(g, {2, 1, 3, 3}) + eye(3, kF64) * 3.0, b = uniform(g, {4, 3, 5});
  Tensor x = linalg::solve_triangular(a, b, true);
  ASSERT_EQ(x.shape(), (Shape{2, 4, 3, 5}));
  EXPECT_LT(max_abs_diff(matmul(triu(a), x), expand(b, {2, 4, 3, 5})), 1e-14);
  // float32 too
  Tensor xf = linalg::solve_triangular(a.to(DType::Float32), b.to(DType::Float32), true);
  EXPECT_EQ(xf.dtype(), DType::Float32);
  EXPECT_LT(max_abs_diff(xf, x), 1e-5);
}

TEST(SolveTriangular, ErrorsNameTheProblem) {
  Tensor a = tensor({{1.0, 0.0}, {2.0, 0.0}}, kF64), b = ones({2, 1}, kF64);
  EXPECT_THROW(linalg::solve_triangular(a, b, false), ValueError);            // zero on the diagonal
  EXPECT_NO_THROW(linalg::solve_triangular(a, b, false, true, true));         // unitriangular ignores it
  EXPECT_THROW(linalg::solve_triangular(a, ones({3, 1}, kF64), false), ShapeError);
  EXPECT_THROW(linalg::solve_triangular(ones({2, 3}, kF64), b, false), ShapeError);
  EXPECT_THROW(linalg::solve_triangular(a, ones({2, 1}), false), DTypeError);
}

// ---- logit, squeeze2d ----------------------------------------------------------------------------------
TEST(Logit, InvertsSigmoidAndClamps) {
  Tensor x = tensor({-3.0, -0.5, 0.0, 2.0}, kF64);
  EXPECT_LT(max_abs_diff(logit(sigmoid(x)), x), 1e-14);
  Tensor p = tensor({0.0, 0.25, 1.0}, kF64);
  std::vector<double> got = values(logit(p, 0.1));
  EXPECT_NEAR(got[0], std::log(0.1 / 0.9), 1e-15);
  EXPECT_NEAR(got[1], std::log(0.25 / 0.75), 1e-15);
  EXPECT_NEAR(got[2], std::log(0.9 / 0.1), 1e-15);
  EXPECT_THROW(logit(p, 0.5), ValueError);
}

TEST(Squeeze2d, SpaceToDepthOrderAndInverse) {
  // out channel 4c + 2i + j, position (h, w) <- input channel c, pixel (2h + i, 2w + j)
  Tensor x = arange(0, 2 * 2 * 4 * 6, 1, kF64).reshape({2, 2, 4, 6});
  Tensor z = squeeze2d(x);
  ASSERT_EQ(z.shape(), (Shape{2, 8, 2, 3}));
  std::vector<double> xv = values(x), zv = values(z);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j)
          for (int64_t h = 0; h < 2; ++h)
            for (int64_t w = 0; w < 3; ++w)
              ASSERT_EQ(zv[((b * 8 + 4 * c + 2 * i + j) * 2 + h) * 3 + w], xv[((b * 2 + c) * 4 + 2 * h + i) * 6 + 2 * w + j]);
  EXPECT_EQ(values(unsqueeze2d(z)), xv);
  EXPECT_THROW(squeeze2d(ones({1, 1, 3, 4})), ShapeError);
  EXPECT_THROW(unsqueeze2d(ones({1, 3, 2, 2})), ShapeError);
}

}  // namespace
}  // namespace dgm
