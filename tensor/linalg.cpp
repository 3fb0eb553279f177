// LU factorisation with partial pivoting, log|det| and inverse of (batches of) square matrices.
// The change-of-variables chapter needs log|det J|; autograd differentiates it through inverse().
#include <cmath>

#include <dgm/tensor/kernels.h>

namespace dgm::cpu {

static void check_square(const Array& a, const char* op) {
  if (a.dim() < 2 || a.size(-1) != a.size(-2))
    throw ShapeError(cat(op, ": expected a batch of square matrices (..., n, n), got shape ", shape_str(a.shape())));
  if (!is_floating(a.dtype())) throw DTypeError(cat(op, ": expected a floating dtype, got ", dtype_name(a.dtype())));
}

LU lu_factor(const Array& a) {
  check_square(a, "lu_factor");
  int64_t n = a.size(-1), batch = a.numel() / std::max<int64_t>(n * n, 1);
  Shape bshape(a.shape().begin(), a.shape().end() - 2), pshape = bshape;
  pshape.push_back(n);
  LU r{a.clone(), Array::empty(pshape, DType::Int64), Array::empty(bshape, a.dtype())};
  dispatch_floating(a.dtype(), "lu_factor", [&]<class T>() {
    for (int64_t b = 0; b < batch; ++b) {
      T* m = r.lu.data<T>() + b * n * n;
      int64_t* piv = r.pivots.data<int64_t>() + b * n;
      T sign = 1;
      for (int64_t k = 0; k < n; ++k) {
        int64_t p = k;  // partial pivoting: the largest |entry| in column k at or below the diagonal
        for (int64_t i = k + 1; i < n; ++i)
          if (std::abs(m[i * n + k]) > std::abs(m[p * n + k])) p = i;
        piv[k] = p;
        if (p != k) {
          for (int64_t j = 0; j < n; ++j) std::swap(m[k * n + j], m[p * n + j]);
          sign = -sign;
        }
        T pivot = m[k * n + k];
        if (pivot == 0) continue;  // singular: U has a zero on the diagonal
        for (int64_t i = k + 1; i < n; ++i) {
          T f = m[i * n + k] /= pivot;
          for (int64_t j = k + 1; j < n; ++j) m[i * n + j] -= f * m[k * n + j];
        }
      }
      r.sign.data<T>()[b] = sign;
    }
  });
  return r;
}

std::pair<Array, Array> slogdet(const Array& a) {
  check_square(a, "slogdet");
  LU f = lu_factor(a);
  int64_t n = a.size(-1), batch = f.sign.numel();
  Array sign = f.sign.clone(), logabs = Array::empty(f.sign.shape(), a.dtype());
  dispatch_floating(a.dtype(), "slogdet", [&]<class T>() {
    for (int64_t b = 0; b < batch; ++b) {
      const T* m = f.lu.data<T>() + b * n * n;
      T s = sign.data<T>()[b];
      double la = 0;
      for (int64_t i = 0; i < n; ++i) {
        T d = m[i * n + i];
        if (d < 0) s = -s;
        la += std::log(std::abs(static_cast<double>(d)));
      }
      if (std::isinf(la) && la < 0) s = 0;  // singular: sign 0, log|det| = -inf (as torch.linalg.slogdet)
      sign.data<T>()[b] = s;
      logabs.data<T>()[b] = static_cast<T>(la);
    }
  });
  return {sign, logabs};
}

Array inverse(const Array& a) {
  check_square(a, "inverse");
  LU f = lu_factor(a);
  int64_t n = a.size(-1), batch = f.sign.numel();
  Array out = Array::empty(a.shape(), a.dtype());
  dispatch_floating(a.dtype(), "inverse", [&]<class T>() {
    for (int64_t b = 0; b < batch; ++b) {
      const T* m = f.lu.data<T>() + b * n * n;
      const int64_t* piv = f.pivots.data<int64_t>() + b * n;
      T* x = out.data<T>() + b * n * n;
      for (int64_t i = 0; i < n; ++i)
        if (m[i * n + i] == 0) throw ValueError(cat("inverse: matrix ", b, " of the batch is singular (U[", i, ",", i, "] = 0)"));
      // Solve A X = I column by column: permute, forward-substitute L, back-substitute U.
      for (int64_t c = 0; c < n; ++c) {
        std::vector<T> col(n, 0);
        col[c] = 1;
        for (int64_t k = 0; k < n; ++k) std::swap(col[k], col[piv[k]]);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < i; ++j) col[i] -= m[i * n + j] * col[j];
        for (int64_t i = n; i-- > 0;) {
          for (int64_t j = i + 1; j < n; ++j) col[i] -= m[i * n + j] * col[j];
          col[i] /= m[i * n + i];
        }
        for (int64_t i = 0; i < n; ++i) x[i * n + c] = col[i];
      }
    }
  });
  return out;
}

}  // namespace dgm::cpu

namespace dgm::cpu {

Array solve_triangular(const Array& a, const Array& b, bool upper, bool unitriangular) {
  check_square(a, "solve_triangular");
  if (b.dim() < 2 || b.size(-2) != a.size(-1))
    throw ShapeError(cat("solve_triangular: A ", shape_str(a.shape()), " and B ", shape_str(b.shape()),
                         ": expected B of shape (..., n, k) with n = ", a.size(-1)));
  if (a.dtype() != b.dtype())
    throw DTypeError(cat("solve_triangular: A and B must have one dtype, got ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype())));
  const int64_t n = a.size(-1), k = b.size(-1);
  Shape abatch(a.shape().begin(), a.shape().end() - 2), bbatch(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(abatch, bbatch, "solve_triangular");
  Shape ashape = batch, xshape = batch;
  ashape.insert(ashape.end(), {n, n});
  xshape.insert(xshape.end(), {n, k});
  // Broadcast views made contiguous: each matrix of the batch then sits at a fixed offset.
  Array am = a.expand(ashape).contiguous();
  Array x = b.expand(xshape).clone();
  const int64_t nbatch = numel_of(batch);
  dispatch_floating(a.dtype(), "solve_triangular", [&]<class T>() {
    for (int64_t m = 0; m < nbatch; ++m) {
      const T* A = am.data<T>() + m * n * n;
      T* X = x.data<T>() + m * n * k;
      if (!unitriangular)
        for (int64_t i = 0; i < n; ++i)
          if (A[i * n + i] == 0) throw ValueError(cat("solve_triangular: matrix ", m, " of the batch is singular (A[", i, ",", i, "] = 0)"));
      // row i of X: (B_i - sum_{j before i} A_ij X_j) / A_ii, rows taken in dependency order
      for (int64_t step = 0; step < n; ++step) {
        const int64_t i = upper ? n - 1 - step : step;
        const int64_t j0 = upper ? i + 1 : 0, j1 = upper ? n : i;
        T* xi = X + i * k;
        for (int64_t j = j0; j < j1; ++j) {
          const T aij = A[i * n + j];
          const T* xj = X + j * k;
          for (int64_t c = 0; c < k; ++c) xi[c] -= aij * xj[c];
        }
        if (!unitriangular) {
          const T d = A[i * n + i];
          for (int64_t c = 0; c < k; ++c) xi[c] /= d;
        }
      }
    }
  });
  return x;
}

}  // namespace dgm::cpu
