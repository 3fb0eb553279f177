// Fused kernels for the hot paths of training: one pass over memory instead of a chain of ops.
// Each has a composite reference built from primitive ops (autograd/fused.h) and a test that both
// agree in value and gradient.
#pragma once
#include <dgm/tensor/array.h>

namespace dgm::cpu {

// Cross entropy of logits (N, C) against class indices target (N): loss_i = lse_i - logits[i, t_i].
// Returns (loss (N), lse (N)); lse is kept for backward.
std::pair<Array, Array> cross_entropy_forward(const Array& logits, const Array& target);
// d loss_i / d logits_ic = softmax_ic - [c == t_i], scaled by grad_loss (N).
Array cross_entropy_backward(const Array& logits, const Array& target, const Array& lse, const Array& grad_loss);

// Binary cross entropy with logits, elementwise (x and y broadcast to the same shape):
//   loss = max(x, 0) - x y + log(1 + e^{-|x|});  d loss / dx = sigmoid(x) - y
Array bce_with_logits_forward(const Array& x, const Array& y);
Array bce_with_logits_backward(const Array& x, const Array& y, const Array& grad);

// The gated residual of a RealNVP conditioner block: out = elu(h + v * sigmoid(g)), where v and g
// are the two halves of u along dim 1: h (B, F, ...), u (B, 2F, ...) -> (B, F, ...). Backward needs
// only u and the output: with d = dout (1 + [out <= 0] out) and s = sigmoid(g),
//   dh = d,  dv = d s,  dg = d v s (1 - s).
Array gated_residual_forward(const Array& h, const Array& u);
std::pair<Array, Array> gated_residual_backward(const Array& u, const Array& out, const Array& dout);  // (dh, du)

// LayerNorm over the last dim: y = (x - mean) * rstd * weight + bias, rstd = 1 / sqrt(var + eps).
// An x (B, ..., C) that is the permute of contiguous (B, C, ...) memory (a ConvNet's channel norm) is
// normalised in that memory, y and dx coming back in the same layout: no copy either way.
struct LayerNormResult {
  Array y, mean, rstd;  // mean, rstd: (rows,) kept for backward
};
LayerNormResult layer_norm_forward(const Array& x, const Array& weight, const Array& bias, double eps);
struct LayerNormGrads {
  Array dx, dweight, dbias;
};
LayerNormGrads layer_norm_backward(const Array& x, const Array& weight, const Array& mean, const Array& rstd, const Array& dy);

// Scaled dot-product attention, per (batch, head), without storing the Lq x Lk score matrix:
//   out_i = sum_j softmax_j(scale q_i . k_j) v_j   over the keys query i may see.
// q: (B, H, Lq, D), k and v: (B, H, Lk, D). causal: query i sees keys j <= i + (Lk - Lq) (so a
// query appended after a cache of earlier keys sees all of them). Tiled as FlashAttention: blocks of
// 64 queries meet tiles of 256 keys, the tile's scores in a small per-thread buffer, with an online
// softmax (running max and sum per row, earlier output rescaled when the max grows); tiles past the
// causal diagonal are skipped. lse (B, H, Lq) = log sum_j exp(scores) is kept for backward, which
// recomputes the probabilities tile by tile instead of storing them.
struct AttentionResult {
  Array out, lse;
};
AttentionResult attention_forward(const Array& q, const Array& k, const Array& v, bool causal, double scale);
struct AttentionGrads {
  Array dq, dk, dv;
};
AttentionGrads attention_backward(const Array& q, const Array& k, const Array& v, const Array& out, const Array& lse,
                                  const Array& dout, bool causal, double scale);

// Linear layer with its bias and activation folded in: y = act(x W^T + b).
// x: (N, in), weight: (out, in), bias: (out) or undefined -> (N, out). The bias and a ReLU are the
// GEMM's epilogue, applied to each row panel of the output while it is still in cache, so there is
// no separate broadcast add or activation pass (GELU, which keeps its input, has one).
enum class LinearActivation { None, ReLU, GELU };
struct LinearResult {
  Array y, pre;  // pre = x W^T + b, kept only for GELU (ReLU's derivative is read off y)
};
LinearResult linear_forward(const Array& x, const Array& weight, const Array& bias, LinearActivation act);
struct LinearGrads {
  Array dx, dweight, dbias;
};
// saved: y for None/ReLU, pre for GELU. Gradients not asked for (need_*) are left undefined.
LinearGrads linear_backward(const Array& x, const Array& weight, const Array& saved, const Array& dy, LinearActivation act, bool need_dx,
                            bool need_dweight, bool need_dbias);

// Embedding bag (sum) with bias and activation: y[n] = act(sum_k weight[indices[n, k]] + b).
// weight: (V, H), indices: int64 (N, K), bias: (H) or undefined -> (N, H). A linear layer applied to a
// concatenation of K one-hot vectors is exactly this: each one-hot picks one row of the weight, so
// there is no (N, K*V) one-hot input and no GEMM, just K row reads per output row.
LinearResult embedding_bag_forward(const Array& weight, const Array& indices, const Array& bias, LinearActivation act);
struct EmbeddingBagGrads {
  Array dweight, dbias;
};
// saved: y for None/ReLU, pre for GELU (as for linear). dweight[v] = sum of the output gradients of
// the rows whose bag holds v; each thread owns a range of table rows, so there are no races and the
// sum order is fixed. dbias is left undefined unless need_dbias.
EmbeddingBagGrads embedding_bag_backward(const Array& indices, const Array& saved, const Array& dy, int64_t num_embeddings,
                                         LinearActivation act, bool need_dbias);

}  // namespace dgm::cpu
