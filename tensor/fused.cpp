#include "tensor/fused.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/kernels.h"
#include "tensor/loops.h"
#include "tensor/vecmath.h"

namespace dgm::cpu {

namespace {

void check_float(const Array& a, const char* op, const char* what) {
  if (!is_floating(a.dtype())) throw DTypeError(cat(op, ": ", what, " must be floating, got ", dtype_name(a.dtype())));
}
void check_same_dtype(const Array& a, const Array& b, const char* op) {
  if (a.dtype() != b.dtype())
    throw DTypeError(cat(op, ": dtypes must match, got ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype())));
}
int64_t row_grain(int64_t row_len) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(row_len, 1)); }

}  // namespace

// ---- cross entropy --------------------------------------------------------------------------------
std::pair<Array, Array> cross_entropy_forward(const Array& logits_in, const Array& target_in) {
  check_float(logits_in, "cross_entropy", "logits");
  if (logits_in.dim() != 2) throw ShapeError(cat("cross_entropy: logits must be (N, C), got ", shape_str(logits_in.shape())));
  if (target_in.dtype() != DType::Int64) throw DTypeError(cat("cross_entropy: target must be int64 class indices, got ", dtype_name(target_in.dtype())));
  int64_t N = logits_in.size(0), C = logits_in.size(1);
  if (target_in.shape() != Shape{N})
    throw ShapeError(cat("cross_entropy: target shape ", shape_str(target_in.shape()), " does not match logits ", shape_str(logits_in.shape()),
                         " (expected (", N, ",))"));
  Array logits = logits_in.contiguous(), target = target_in.contiguous();
  Array loss = Array::empty({N}, logits.dtype()), lse = Array::empty({N}, logits.dtype());
  const int64_t* t = target.data<int64_t>();
  for (int64_t i = 0; i < N; ++i)
    if (t[i] < 0 || t[i] >= C) throw IndexError(cat("cross_entropy: target ", t[i], " at row ", i, " is out of range for ", C, " classes"));
  dispatch_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
    const T* x = logits.data<T>();
    T* l = loss.data<T>();
    T* s_out = lse.data<T>();
    parallel_for(N, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* row = x + i * C;
        T m = row[0];
        for (int64_t c = 1; c < C; ++c) m = std::max(m, row[c]);
        T s = 0;
        for (int64_t c = 0; c < C; ++c) s += exp_approx(row[c] - m);
        T lse_i = m + std::log(s);
        s_out[i] = lse_i;
        l[i] = lse_i - row[t[i]];
      }
    }, row_grain(C));
  });
  return {loss, lse};
}

Array cross_entropy_backward(const Array& logits_in, const Array& target_in, const Array& lse_in, const Array& grad_in) {
  Array logits = logits_in.contiguous(), target = target_in.contiguous(), lse = lse_in.contiguous(), grad = grad_in.contiguous();
  int64_t N = logits.size(0), C = logits.size(1);
  Array dx = Array::empty(logits.shape(), logits.dtype());
  dispatch_floating(logits.dtype(), "cross_entropy_backward", [&]<class T>() {
    const T *x = logits.data<T>(), *s = lse.data<T>(), *g = grad.data<T>();
    const int64_t* t = target.data<int64_t>();
    T* d = dx.data<T>();
    parallel_for(N, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* row = x + i * C;
        T* drow = d + i * C;
        T gi = g[i], si = s[i];
        for (int64_t c = 0; c < C; ++c) drow[c] = gi * exp_approx(row[c] - si);  // softmax * g
        drow[t[i]] -= gi;
      }
    }, row_grain(C));
  });
  return dx;
}

// ---- binary cross entropy with logits --------------------------------------------------------------
Array bce_with_logits_forward(const Array& x_in, const Array& y_in) {
  check_float(x_in, "binary_cross_entropy_with_logits", "logits");
  Shape shape = broadcast_shapes(x_in.shape(), y_in.shape(), "binary_cross_entropy_with_logits");
  Array x = x_in.expand(shape).contiguous(), y = y_in.to(x_in.dtype()).expand(shape).contiguous();
  Array out = Array::empty(shape, x.dtype());
  dispatch_floating(x.dtype(), "binary_cross_entropy_with_logits", [&]<class T>() {
    const T *xp = x.data<T>(), *yp = y.data<T>();
    T* o = out.data<T>();
    parallel_for(out.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T v = xp[i];
        o[i] = std::max(v, T(0)) - v * yp[i] + std::log1p(exp_approx(-std::abs(v)));
      }
    });
  });
  return out;
}

Array bce_with_logits_backward(const Array& x_in, const Array& y_in, const Array& grad_in) {
  Shape shape = grad_in.shape();
  Array x = x_in.expand(shape).contiguous(), y = y_in.to(x_in.dtype()).expand(shape).contiguous(), g = grad_in.contiguous();
  Array dx = Array::empty(shape, x.dtype());
  dispatch_floating(x.dtype(), "binary_cross_entropy_with_logits_backward", [&]<class T>() {
    const T *xp = x.data<T>(), *yp = y.data<T>(), *gp = g.data<T>();
    T* d = dx.data<T>();
    parallel_for(dx.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T sig = T(1) / (T(1) + exp_approx(-xp[i]));
        d[i] = gp[i] * (sig - yp[i]);
      }
    });
  });
  return dx;
}

// ---- layer norm ------------------------------------------------------------------------------------
LayerNormResult layer_norm_forward(const Array& x_in, const Array& weight, const Array& bias, double eps) {
  check_float(x_in, "layer_norm", "input");
  if (x_in.dim() < 1) throw ShapeError("layer_norm: input must have at least one dim");
  int64_t D = x_in.size(-1), rows = x_in.numel() / std::max<int64_t>(D, 1);
  if (weight.defined() && weight.shape() != Shape{D})
    throw ShapeError(cat("layer_norm: weight shape ", shape_str(weight.shape()), " does not match the last dim ", D, " of input ", shape_str(x_in.shape())));
  if (bias.defined() && bias.shape() != Shape{D})
    throw ShapeError(cat("layer_norm: bias shape ", shape_str(bias.shape()), " does not match the last dim ", D, " of input ", shape_str(x_in.shape())));
  if (weight.defined()) check_same_dtype(x_in, weight, "layer_norm");
  if (bias.defined()) check_same_dtype(x_in, bias, "layer_norm");
  Array x = x_in.contiguous();
  Shape rs(x.shape().begin(), x.shape().end() - 1);
  LayerNormResult r{Array::empty(x.shape(), x.dtype()), Array::empty(rs, x.dtype()), Array::empty(rs, x.dtype())};
  dispatch_floating(x.dtype(), "layer_norm", [&]<class T>() {
    const T* xp = x.data<T>();
    const T* w = weight.defined() ? weight.contiguous().data<T>() : nullptr;
    const T* b = bias.defined() ? bias.contiguous().data<T>() : nullptr;
    T *y = r.y.data<T>(), *mp = r.mean.data<T>(), *rp = r.rstd.data<T>();
    parallel_for(rows, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* row = xp + i * D;
        T m = 0;
        for (int64_t j = 0; j < D; ++j) m += row[j];
        m /= D;
        T v = 0;
        for (int64_t j = 0; j < D; ++j) v += (row[j] - m) * (row[j] - m);
        T rstd = T(1) / std::sqrt(v / D + static_cast<T>(eps));
        mp[i] = m;
        rp[i] = rstd;
        T* yr = y + i * D;
        for (int64_t j = 0; j < D; ++j) yr[j] = (row[j] - m) * rstd * (w ? w[j] : T(1)) + (b ? b[j] : T(0));
      }
    }, row_grain(D));
  });
  return r;
}

LayerNormGrads layer_norm_backward(const Array& x_in, const Array& weight, const Array& mean, const Array& rstd, const Array& dy_in) {
  Array x = x_in.contiguous(), dy = dy_in.contiguous();
  int64_t D = x.size(-1), rows = x.numel() / std::max<int64_t>(D, 1);
  LayerNormGrads g{Array::empty(x.shape(), x.dtype()), Array::zeros({D}, x.dtype()), Array::zeros({D}, x.dtype())};
  dispatch_floating(x.dtype(), "layer_norm_backward", [&]<class T>() {
    const T *xp = x.data<T>(), *dyp = dy.data<T>(), *mp = mean.contiguous().data<T>(), *rp = rstd.contiguous().data<T>();
    const T* w = weight.defined() ? weight.contiguous().data<T>() : nullptr;
    T* dx = g.dx.data<T>();
    // weight/bias gradients are sums over rows: each thread sums its own rows, then the partial
    // sums are added in thread order (deterministic for a given thread count)
    int nt = rows * D >= kParallelGrain ? omp_get_max_threads() : 1;
    std::vector<std::vector<T>> dw(nt, std::vector<T>(D, 0)), db(nt, std::vector<T>(D, 0));
#pragma omp parallel num_threads(nt)
    {
      int t = omp_get_thread_num(), n = omp_get_num_threads();
      int64_t chunk = (rows + n - 1) / n, r0 = std::min<int64_t>(rows, t * chunk), r1 = std::min<int64_t>(rows, r0 + chunk);
      for (int64_t i = r0; i < r1; ++i) {
        const T *row = xp + i * D, *dyr = dyp + i * D;
        T m = mp[i], rs = rp[i];
        // dxhat = dy * w;  dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
        T sum_dxhat = 0, sum_dxhat_xhat = 0;
        for (int64_t j = 0; j < D; ++j) {
          T xhat = (row[j] - m) * rs, dxhat = dyr[j] * (w ? w[j] : T(1));
          sum_dxhat += dxhat;
          sum_dxhat_xhat += dxhat * xhat;
          dw[t][j] += dyr[j] * xhat;
          db[t][j] += dyr[j];
        }
        T a = sum_dxhat / D, c = sum_dxhat_xhat / D;
        T* dxr = dx + i * D;
        for (int64_t j = 0; j < D; ++j) {
          T xhat = (row[j] - m) * rs;
          dxr[j] = rs * (dyr[j] * (w ? w[j] : T(1)) - a - xhat * c);
        }
      }
    }
    T *dwp = g.dweight.data<T>(), *dbp = g.dbias.data<T>();
    for (int t = 0; t < nt; ++t)
      for (int64_t j = 0; j < D; ++j) dwp[j] += dw[t][j], dbp[j] += db[t][j];
  });
  return g;
}

// ---- attention -------------------------------------------------------------------------------------
namespace {

struct AttnShape {
  int64_t B, H, Lq, Lk, D;
};
AttnShape check_attention(const Array& q, const Array& k, const Array& v) {
  for (const Array* a : {&q, &k, &v}) check_float(*a, "attention", "q, k, v");
  check_same_dtype(q, k, "attention");
  check_same_dtype(q, v, "attention");
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || k.shape() != v.shape() || q.size(0) != k.size(0) || q.size(1) != k.size(1) ||
      q.size(3) != k.size(3))
    throw ShapeError(cat("attention: expected q (B, H, Lq, D) and k, v (B, H, Lk, D), got ", shape_str(q.shape()), ", ", shape_str(k.shape()),
                         ", ", shape_str(v.shape())));
  return {q.size(0), q.size(1), q.size(2), k.size(2), q.size(3)};
}
// keys visible to query i: [0, limit)
inline int64_t key_limit(int64_t i, const AttnShape& s, bool causal) {
  return causal ? std::clamp<int64_t>(i + (s.Lk - s.Lq) + 1, 0, s.Lk) : s.Lk;
}
// Kt[c * Lk + j] = K[j * D + c]: scores for one query become a sum of D contiguous axpys over keys
template <class T>
void transpose_into(const T* src, int64_t rows, int64_t cols, std::vector<T>& dst) {
  dst.resize(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
}
// s[j] = scale * q . k_j for j < n
template <class T>
void scores(const T* q, const std::vector<T>& kt, int64_t Lk, int64_t D, int64_t n, T scale, T* s) {
  for (int64_t j = 0; j < n; ++j) s[j] = 0;
  for (int64_t c = 0; c < D; ++c) {
    T qc = q[c] * scale;
    const T* kc = kt.data() + c * Lk;
    for (int64_t j = 0; j < n; ++j) s[j] += qc * kc[j];
  }
}

}  // namespace

AttentionResult attention_forward(const Array& q_in, const Array& k_in, const Array& v_in, bool causal, double scale) {
  AttnShape s = check_attention(q_in, k_in, v_in);
  Array q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  AttentionResult r{Array::empty(q.shape(), q.dtype()), Array::empty({s.B, s.H, s.Lq}, q.dtype())};
  dispatch_floating(q.dtype(), "attention", [&]<class T>() {
    const T *qp = q.data<T>(), *kp = k.data<T>(), *vp = v.data<T>();
    T *op = r.out.data<T>(), *lp = r.lse.data<T>();
    parallel_for(s.B * s.H, [&](int64_t h0, int64_t h1) {
      std::vector<T> kt, p(s.Lk);
      for (int64_t bh = h0; bh < h1; ++bh) {
        const T *Q = qp + bh * s.Lq * s.D, *K = kp + bh * s.Lk * s.D, *V = vp + bh * s.Lk * s.D;
        transpose_into(K, s.Lk, s.D, kt);
        for (int64_t i = 0; i < s.Lq; ++i) {
          int64_t n = key_limit(i, s, causal);
          T* o = op + (bh * s.Lq + i) * s.D;
          for (int64_t c = 0; c < s.D; ++c) o[c] = 0;
          if (n == 0) {  // sees no key: output 0 (and no gradient)
            lp[bh * s.Lq + i] = -INFINITY;
            continue;
          }
          scores(Q + i * s.D, kt, s.Lk, s.D, n, static_cast<T>(scale), p.data());
          T m = p[0];
          for (int64_t j = 1; j < n; ++j) m = std::max(m, p[j]);
          T sum = 0;
          for (int64_t j = 0; j < n; ++j) {
            p[j] = exp_approx(p[j] - m);
            sum += p[j];
          }
          T inv = T(1) / sum;
          for (int64_t j = 0; j < n; ++j) {
            T w = p[j] * inv;
            const T* vj = V + j * s.D;
            for (int64_t c = 0; c < s.D; ++c) o[c] += w * vj[c];
          }
          lp[bh * s.Lq + i] = m + std::log(sum);
        }
      }
    }, 1);
  });
  return r;
}

AttentionGrads attention_backward(const Array& q_in, const Array& k_in, const Array& v_in, const Array& out_in, const Array& lse_in,
                                  const Array& dout_in, bool causal, double scale) {
  AttnShape s = check_attention(q_in, k_in, v_in);
  Array q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous(), out = out_in.contiguous(), lse = lse_in.contiguous(),
        dout = dout_in.contiguous();
  AttentionGrads g{Array::empty(q.shape(), q.dtype()), Array::zeros(k.shape(), k.dtype()), Array::zeros(v.shape(), v.dtype())};
  dispatch_floating(q.dtype(), "attention_backward", [&]<class T>() {
    const T *qp = q.data<T>(), *kp = k.data<T>(), *vp = v.data<T>(), *op = out.data<T>(), *lp = lse.data<T>(), *dop = dout.data<T>();
    T *dqp = g.dq.data<T>(), *dkp = g.dk.data<T>(), *dvp = g.dv.data<T>();
    const T sc = static_cast<T>(scale);
    // heads are independent, so each thread owns whole heads (dk, dv accumulate over queries)
    parallel_for(s.B * s.H, [&](int64_t h0, int64_t h1) {
      std::vector<T> kt, vt, p(s.Lk), dp(s.Lk);
      for (int64_t bh = h0; bh < h1; ++bh) {
        const T *Q = qp + bh * s.Lq * s.D, *K = kp + bh * s.Lk * s.D, *V = vp + bh * s.Lk * s.D;
        T *dK = dkp + bh * s.Lk * s.D, *dV = dvp + bh * s.Lk * s.D;
        transpose_into(K, s.Lk, s.D, kt);
        transpose_into(V, s.Lk, s.D, vt);
        for (int64_t i = 0; i < s.Lq; ++i) {
          int64_t n = key_limit(i, s, causal);
          const T *qi = Q + i * s.D, *doi = dop + (bh * s.Lq + i) * s.D, *oi = op + (bh * s.Lq + i) * s.D;
          T* dqi = dqp + (bh * s.Lq + i) * s.D;
          for (int64_t c = 0; c < s.D; ++c) dqi[c] = 0;
          if (n == 0) continue;
          // p_j = softmax_j recomputed from the saved log-sum-exp
          scores(qi, kt, s.Lk, s.D, n, sc, p.data());
          T li = lp[bh * s.Lq + i];
          for (int64_t j = 0; j < n; ++j) p[j] = exp_approx(p[j] - li);
          // dp_j = dout_i . v_j ;  D_i = dout_i . out_i ;  ds_j = p_j (dp_j - D_i)
          scores(doi, vt, s.Lk, s.D, n, T(1), dp.data());
          T Di = 0;
          for (int64_t c = 0; c < s.D; ++c) Di += doi[c] * oi[c];
          for (int64_t j = 0; j < n; ++j) {
            T ds = p[j] * (dp[j] - Di) * sc;
            const T* kj = K + j * s.D;
            T *dkj = dK + j * s.D, *dvj = dV + j * s.D;
            for (int64_t c = 0; c < s.D; ++c) {
              dqi[c] += ds * kj[c];      // dq_i = scale sum_j ds_j k_j
              dkj[c] += ds * qi[c];      // dk_j += scale ds_j q_i
              dvj[c] += p[j] * doi[c];   // dv_j += p_j dout_i
            }
          }
        }
      }
    }, 1);
  });
  return g;
}

}  // namespace dgm::cpu
