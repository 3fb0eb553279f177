#include "tensor/fused.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/gemm.h"
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
// Queries are processed in blocks of kQueryBlock rows: the block's scores (kQueryBlock x Lk) are
// one GEMM, small enough to stay in L2, so no L x L matrix is ever stored, while the products run
// in the packed GEMM kernel instead of one-query-at-a-time dot products.
constexpr int64_t kQueryBlock = 64;

// Heads per thread: a parallel region only when there are at least ~2^20 multiply-adds to share.
// Decoding one token (Lq = 1) stays on one thread: waking the team for a few microseconds of work
// costs more than the work, and on a busy machine the wait for a descheduled thread is far longer.
inline int64_t head_grain(const AttnShape& s) {
  const int64_t per_head = std::max<int64_t>(1, s.Lq * s.Lk * s.D);
  return std::max<int64_t>(1, (int64_t{1} << 20) / per_head);
}

// A (B, H, L, D) operand read in place: head (b, h) starts at data + b*sb + h*sh, row i at + i*sr.
// q, k, v are usually permuted views of the (B, L, 3D) projection, so this avoids three copies;
// only a non-unit stride along D forces one.
template <class T>
struct Heads {
  const T* data;
  int64_t sb, sh, sr;
  Heads(const Array& a) : data(a.data<T>()), sb(a.stride(0)), sh(a.stride(1)), sr(a.stride(2)) {}
  const T* head(int64_t bh, int64_t H) const { return data + (bh / H) * sb + (bh % H) * sh; }
};
inline Array unit_last_stride(const Array& a) { return a.size(3) <= 1 || a.stride(3) == 1 ? a : a.contiguous(); }
// Outputs are allocated (B, L, H, D) and returned as a (B, H, L, D) view: heads side by side, so the
// caller's permute back to (B, L, H*D) is free.
inline Array heads_last(int64_t B, int64_t H, int64_t L, int64_t D, DType dt, bool zero) {
  Array a = zero ? Array::zeros({B, L, H, D}, dt) : Array::empty({B, L, H, D}, dt);
  return a.permute({0, 2, 1, 3});
}

// S[r, j] = scale * q_{i0+r} . k_j for the block's rows r < rows and keys j < n (ld n)
template <class T>
void block_scores(const T* Q, int64_t rsQ, const T* K, int64_t rsK, int64_t rows, int64_t n, int64_t D, T scale, T* S) {
  gemm(rows, n, D, scale, Q, rsQ, 1, K, 1, rsK, T(0), S, n, 1);  // Q_blk (rows, D) @ K^T (D, n)
}

}  // namespace

AttentionResult attention_forward(const Array& q_in, const Array& k_in, const Array& v_in, bool causal, double scale) {
  AttnShape s = check_attention(q_in, k_in, v_in);
  Array q = unit_last_stride(q_in), k = unit_last_stride(k_in), v = unit_last_stride(v_in);
  AttentionResult r{heads_last(s.B, s.H, s.Lq, s.D, q.dtype(), false), Array::empty({s.B, s.H, s.Lq}, q.dtype())};
  dispatch_floating(q.dtype(), "attention", [&]<class T>() {
    const Heads<T> hq(q), hk(k), hv(v), ho(r.out);
    T* lp = r.lse.data<T>();
    parallel_for(s.B * s.H, [&](int64_t h0, int64_t h1) {
      std::vector<T> P(static_cast<size_t>(kQueryBlock * s.Lk));
      for (int64_t bh = h0; bh < h1; ++bh) {
        const T *Q = hq.head(bh, s.H), *K = hk.head(bh, s.H), *V = hv.head(bh, s.H);
        T *O = const_cast<T*>(ho.head(bh, s.H)), *lse = lp + bh * s.Lq;
        for (int64_t i0 = 0; i0 < s.Lq; i0 += kQueryBlock) {
          const int64_t rows = std::min(kQueryBlock, s.Lq - i0), n = key_limit(i0 + rows - 1, s, causal);  // keys the last row sees
          if (n == 0) {  // no query of the block sees a key: output 0 (and no gradient)
            for (int64_t i = i0; i < i0 + rows; ++i) std::fill(O + i * ho.sr, O + i * ho.sr + s.D, T(0));
            std::fill(lse + i0, lse + i0 + rows, -INFINITY);
            continue;
          }
          block_scores(Q + i0 * hq.sr, hq.sr, K, hk.sr, rows, n, s.D, static_cast<T>(scale), P.data());  // (rows, n)
          for (int64_t r_ = 0; r_ < rows; ++r_) {  // softmax of each row over the keys it may see, 0 beyond
            T* p = P.data() + r_ * n;
            const int64_t m_ = key_limit(i0 + r_, s, causal);
            if (m_ == 0) {
              std::fill(p, p + n, T(0));
              lse[i0 + r_] = -INFINITY;
              continue;
            }
            T m = p[0];
            for (int64_t j = 1; j < m_; ++j) m = std::max(m, p[j]);
            T sum = 0;
            for (int64_t j = 0; j < m_; ++j) {
              p[j] = exp_approx(p[j] - m);
              sum += p[j];
            }
            const T inv = T(1) / sum;
            for (int64_t j = 0; j < m_; ++j) p[j] *= inv;
            std::fill(p + m_, p + n, T(0));
            lse[i0 + r_] = m + std::log(sum);
          }
          gemm(rows, s.D, n, T(1), P.data(), n, 1, V, hv.sr, 1, T(0), O + i0 * ho.sr, ho.sr, 1);  // P (rows, n) @ V (n, D)
        }
      }
    }, head_grain(s));
  });
  return r;
}

AttentionGrads attention_backward(const Array& q_in, const Array& k_in, const Array& v_in, const Array& out_in, const Array& lse_in,
                                  const Array& dout_in, bool causal, double scale) {
  AttnShape s = check_attention(q_in, k_in, v_in);
  Array q = unit_last_stride(q_in), k = unit_last_stride(k_in), v = unit_last_stride(v_in), out = unit_last_stride(out_in),
        lse = lse_in.contiguous(), dout = unit_last_stride(dout_in);
  AttentionGrads g{heads_last(s.B, s.H, s.Lq, s.D, q.dtype(), false), heads_last(s.B, s.H, s.Lk, s.D, q.dtype(), true),
                   heads_last(s.B, s.H, s.Lk, s.D, q.dtype(), true)};
  dispatch_floating(q.dtype(), "attention_backward", [&]<class T>() {
    const Heads<T> hq(q), hk(k), hv(v), ho(out), hdo(dout), hdq(g.dq), hdk(g.dk), hdv(g.dv);
    const T* lp = lse.data<T>();
    const T sc = static_cast<T>(scale);
    // heads are independent, so each thread owns whole heads (dk, dv accumulate over query blocks)
    parallel_for(s.B * s.H, [&](int64_t h0, int64_t h1) {
      std::vector<T> P(static_cast<size_t>(kQueryBlock * s.Lk)), dP(static_cast<size_t>(kQueryBlock * s.Lk));
      for (int64_t bh = h0; bh < h1; ++bh) {
        const T *Q = hq.head(bh, s.H), *K = hk.head(bh, s.H), *V = hv.head(bh, s.H);
        const T *O = ho.head(bh, s.H), *dO = hdo.head(bh, s.H), *lse = lp + bh * s.Lq;
        T *dQ = const_cast<T*>(hdq.head(bh, s.H)), *dK = const_cast<T*>(hdk.head(bh, s.H)), *dV = const_cast<T*>(hdv.head(bh, s.H));
        for (int64_t i0 = 0; i0 < s.Lq; i0 += kQueryBlock) {
          const int64_t rows = std::min(kQueryBlock, s.Lq - i0), n = key_limit(i0 + rows - 1, s, causal);
          if (n == 0) {
            for (int64_t i = i0; i < i0 + rows; ++i) std::fill(dQ + i * hdq.sr, dQ + i * hdq.sr + s.D, T(0));
            continue;
          }
          // P = softmax recomputed from the saved log-sum-exp;  dP = dO_blk V^T
          block_scores(Q + i0 * hq.sr, hq.sr, K, hk.sr, rows, n, s.D, sc, P.data());
          gemm(rows, n, s.D, T(1), dO + i0 * hdo.sr, hdo.sr, 1, V, 1, hv.sr, T(0), dP.data(), n, 1);
          // dS_ij = P_ij (dP_ij - D_i) scale, D_i = dO_i . O_i  (written over dP)
          for (int64_t r_ = 0; r_ < rows; ++r_) {
            const int64_t i = i0 + r_, m_ = key_limit(i, s, causal);
            T *p = P.data() + r_ * n, *ds = dP.data() + r_ * n;
            T Di = 0;
            for (int64_t c = 0; c < s.D; ++c) Di += dO[i * hdo.sr + c] * O[i * ho.sr + c];
            const T li = lse[i];
            for (int64_t j = 0; j < m_; ++j) {
              p[j] = exp_approx(p[j] - li);
              ds[j] = p[j] * (ds[j] - Di) * sc;
            }
            std::fill(p + m_, p + n, T(0));
            std::fill(ds + m_, ds + n, T(0));
          }
          gemm(rows, s.D, n, T(1), dP.data(), n, 1, K, hk.sr, 1, T(0), dQ + i0 * hdq.sr, hdq.sr, 1);      // dQ_blk = dS K
          gemm(n, s.D, rows, T(1), dP.data(), 1, n, Q + i0 * hq.sr, hq.sr, 1, T(1), dK, hdk.sr, 1);       // dK += dS^T Q_blk
          gemm(n, s.D, rows, T(1), P.data(), 1, n, dO + i0 * hdo.sr, hdo.sr, 1, T(1), dV, hdv.sr, 1);     // dV += P^T dO_blk
        }
      }
    }, head_grain(s));
  });
  return g;
}

// ---- linear + bias + activation --------------------------------------------------------------------
namespace {
template <class T>
T gelu_of(T x) {  // exact (erf) GELU, as Unary::Gelu
  return T(0.5) * x * (T(1) + std::erf(x * static_cast<T>(M_SQRT1_2)));
}
template <class T>
T gelu_slope(T x) {  // d/dx x Phi(x) = Phi(x) + x phi(x)
  return T(0.5) * (T(1) + std::erf(x * static_cast<T>(M_SQRT1_2))) + x * static_cast<T>(0.3989422804014327) * std::exp(T(-0.5) * x * x);
}
}  // namespace

LinearResult linear_forward(const Array& x, const Array& weight, const Array& bias, LinearActivation act) {
  check_float(x, "linear", "input");
  check_same_dtype(x, weight, "linear");
  if (x.dim() != 2 || weight.dim() != 2 || x.size(1) != weight.size(1))
    throw ShapeError(cat("linear: expected x (N, in) and weight (out, in), got ", shape_str(x.shape()), " and ", shape_str(weight.shape())));
  const int64_t N = x.size(0), in = x.size(1), out = weight.size(0);
  if (bias.defined() && bias.shape() != Shape{out})
    throw ShapeError(cat("linear: bias ", shape_str(bias.shape()), " does not match out_features = ", out));
  if (bias.defined()) check_same_dtype(x, bias, "linear");
  LinearResult r{Array::empty({N, out}, x.dtype()), Array()};
  dispatch_floating(x.dtype(), "linear", [&]<class T>() {
    T* y = r.y.data<T>();
    if (bias.defined()) {  // C starts as the broadcast bias; the GEMM adds x W^T onto it
      Array bc = bias.contiguous();
      const T* b = bc.data<T>();
      parallel_for(N, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) std::copy(b, b + out, y + i * out);
      }, row_grain(out));
    }
    // B[k, n] = W[n, k]: W^T is W with its strides swapped, never copied
    gemm(N, out, in, T(1), x.data<T>(), x.stride(0), x.stride(1), weight.data<T>(), weight.stride(1), weight.stride(0),
         bias.defined() ? T(1) : T(0), y, out, 1);
    if (act == LinearActivation::None) return;
    if (act == LinearActivation::GELU) r.pre = r.y.clone();
    parallel_for(N * out, [&](int64_t b, int64_t e) {
      if (act == LinearActivation::ReLU)
        for (int64_t i = b; i < e; ++i) y[i] = y[i] > T(0) ? y[i] : T(0);
      else
        for (int64_t i = b; i < e; ++i) y[i] = gelu_of(y[i]);
    });
  });
  return r;
}

LinearGrads linear_backward(const Array& x, const Array& weight, const Array& saved, const Array& dy_in, LinearActivation act, bool need_dx,
                            bool need_dweight, bool need_dbias) {
  const int64_t N = x.size(0), in = x.size(1), out = weight.size(0);
  LinearGrads g;
  dispatch_floating(x.dtype(), "linear_backward", [&]<class T>() {
    // gp = dL/d(pre): dy through the activation, (N, out) contiguous
    Array gpre = act == LinearActivation::None ? dy_in.contiguous() : Array::empty({N, out}, x.dtype());
    if (act != LinearActivation::None) {
      Array dy = dy_in.contiguous(), s = saved.contiguous();
      const T *d = dy.data<T>(), *sp = s.data<T>();
      T* o = gpre.data<T>();
      parallel_for(N * out, [&](int64_t b, int64_t e) {
        if (act == LinearActivation::ReLU)
          for (int64_t i = b; i < e; ++i) o[i] = sp[i] > T(0) ? d[i] : T(0);
        else
          for (int64_t i = b; i < e; ++i) o[i] = d[i] * gelu_slope(sp[i]);
      });
    }
    const T* gp = gpre.data<T>();
    if (need_dx) {  // dx = gp W: (N, out) @ (out, in)
      g.dx = Array::empty({N, in}, x.dtype());
      gemm(N, in, out, T(1), gp, out, 1, weight.data<T>(), weight.stride(0), weight.stride(1), T(0), g.dx.data<T>(), in, 1);
    }
    if (need_dweight) {  // dW = gp^T x: (out, N) @ (N, in)
      g.dweight = Array::empty({out, in}, x.dtype());
      gemm(out, in, N, T(1), gp, 1, out, x.data<T>(), x.stride(0), x.stride(1), T(0), g.dweight.data<T>(), in, 1);
    }
    if (need_dbias) {  // db = column sums of gp, each thread a block of columns (same order for any thread count)
      g.dbias = Array::zeros({out}, x.dtype());
      T* db = g.dbias.data<T>();
      const int64_t block = 16;
      parallel_for((out + block - 1) / block, [&](int64_t c0, int64_t c1) {
        const int64_t j0 = c0 * block, j1 = std::min(out, c1 * block);
        for (int64_t i = 0; i < N; ++i) {
          const T* row = gp + i * out;
          for (int64_t j = j0; j < j1; ++j) db[j] += row[j];
        }
      }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(N * block, 1)));
    }
  });
  return g;
}

}  // namespace dgm::cpu
