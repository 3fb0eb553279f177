// matmul, slogdet, inverse, softmax / log_softmax.
#include <dgm/autograd/node.h>
#include <dgm/autograd/ops.h>
#include <dgm/tensor/kernels.h>

namespace dgm {

using Grads = std::vector<Tensor>;

// C = A B  =>  dA = dC B^T,  dB = A^T dC  (batched; the node sums broadcast batch dims away)
Tensor matmul(const Tensor& a, const Tensor& b) {
  if (a.dim() >= 1 && b.dim() >= 1) {  // name the user's shapes, not the matrices the vectors become
    int64_t ka = a.size(-1), kb = b.dim() == 1 ? b.size(0) : b.size(-2);
    if (ka != kb)
      throw ShapeError(cat("matmul: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " cannot be multiplied (", ka, " != ", kb, ")"));
  }
  // vectors become matrices (a row on the left, a column on the right), then lose that dim again
  if (a.dim() == 1 && b.dim() == 1) return reshape(matmul(unsqueeze(a, 0), unsqueeze(b, 1)), {});
  if (a.dim() == 1 && b.dim() >= 2) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.dim() == 1 && a.dim() >= 2) return squeeze(matmul(a, unsqueeze(b, 1)), -1);
  return record1(Op::Matmul, {a, b}, cpu::matmul(a.array(), b.array()), {save::in(0), save::in(1)}, [](const Grads& g, const Grads& s) {
    return Grads{matmul(g[0], transpose(s[1], -1, -2)), matmul(transpose(s[0], -1, -2), g[0])};
  });
}

namespace linalg {
// d log|det A| = tr(A^{-1} dA)  =>  gradient A^{-T}. The sign is piecewise constant.
SignLogAbsDet slogdet(const Tensor& a) {
  auto [sign, logabs] = cpu::slogdet(a.array());
  std::vector<Tensor> out = record(Op::Slogdet, {a}, {sign, logabs}, {save::in(0)}, [](const Grads& g, const Grads& s) {
    if (!g[1].defined()) return Grads{Tensor()};
    return Grads{unsqueeze(unsqueeze(g[1], -1), -1) * transpose(inv(s[0]), -1, -2)};
  });
  return {out[0].detach(), out[1]};
}
// d A^{-1} = -A^{-1} dA A^{-1}  =>  gradient -A^{-T} G A^{-T}
Tensor inv(const Tensor& a) {
  return record1(Op::Inverse, {a}, cpu::inverse(a.array()), {save::out()}, [](const Grads& g, const Grads& s) {
    Tensor yt = transpose(s[0], -1, -2);
    return Grads{-matmul(matmul(yt, g[0]), yt)};
  });
}
// X = A^{-1} B  =>  dB = A^{-T} G (one more triangular solve, with the other triangle),
//                   dA = -dB X^T, kept on the triangle A's values were read from.
// X A = B is the transposed system A^T X^T = B^T.
Tensor solve_triangular(const Tensor& a, const Tensor& b, bool upper, bool left, bool unitriangular) {
  if (!left) return transpose(solve_triangular(transpose(a, -1, -2), transpose(b, -1, -2), !upper, true, unitriangular), -1, -2);
  Array x = cpu::solve_triangular(a.array(), b.array(), upper, unitriangular);
  return record1(Op::SolveTriangular, {a, b}, x, {save::in(0), save::out()}, [upper, unitriangular](const Grads& g, const Grads& s) {
    Tensor gb = solve_triangular(transpose(s[0], -1, -2), g[0], !upper, true, unitriangular);
    Tensor ga = -matmul(gb, transpose(s[1], -1, -2));
    int64_t off = unitriangular ? 1 : 0;
    return Grads{upper ? triu(ga, off) : tril(ga, -off), gb};
  });
}
}  // namespace linalg

// y = softmax(x):  dx = y * (g - sum(g * y))
Tensor softmax(const Tensor& x, int64_t dim) {
  int64_t d = wrap_dim(dim, x.dim(), "softmax");
  return record1(Op::Softmax, {x}, cpu::softmax(x.array(), d), {save::out()}, [d](const Grads& g, const Grads& s) {
    const Tensor& y = s[0];
    return Grads{y * (g[0] - sum(g[0] * y, {d}, true))};
  });
}
// y = log_softmax(x):  dx = g - softmax(x) * sum(g)
Tensor log_softmax(const Tensor& x, int64_t dim) {
  int64_t d = wrap_dim(dim, x.dim(), "log_softmax");
  return record1(Op::LogSoftmax, {x}, cpu::log_softmax(x.array(), d), {save::out()}, [d](const Grads& g, const Grads& s) {
    return Grads{g[0] - exp(s[0]) * sum(g[0], {d}, true)};
  });
}

}  // namespace dgm
