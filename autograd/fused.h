// Fused ops: the hot paths of training, each one kernel forward and one kernel backward
// (tensor/fused.h). Next to each is its composite reference, built from primitive ops, which
// defines what the fused op computes; tests check both agree in value and gradient.
// With create_graph (higher derivatives), backward differentiates the composite reference.
#pragma once
#include <functional>
#include <vector>

#include <dgm/autograd/tensor.h>
#include <dgm/tensor/fused.h>

namespace dgm::fused {

using cpu::LinearActivation;

// Per-example cross entropy: logits (N, C), target int64 (N) -> (N,)  [-log softmax(logits)[target]]
Tensor cross_entropy(const Tensor& logits, const Tensor& target);
// Elementwise binary cross entropy with logits (target broadcast to logits' shape) -> logits' shape
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target);
// LayerNorm over the last dim; weight/bias (D,) may be undefined (= 1 / 0).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// softmax(scale q k^T [+ causal mask]) v for q (B, H, Lq, D), k, v (B, H, Lk, D); scale <= 0 means
// 1 / sqrt(D). Causal: query i sees keys j <= i + Lk - Lq (queries are the last Lq positions).
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale = 0);
// act(x W^T + b) for x (N, in), weight (out, in), bias (out) or undefined -> (N, out); the bias is the
// GEMM's starting C and the activation is applied in the same pass, so neither has a node of its own.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, LinearActivation act = LinearActivation::None);
// act(sum_k weight[indices[n, k]] + b) for weight (V, H), indices int64 (N, K), bias (H) or undefined
// -> (N, H): a linear layer on K concatenated one-hot inputs, without the one-hots (each picks a row).
Tensor embedding_bag(const Tensor& weight, const Tensor& indices, const Tensor& bias, LinearActivation act = LinearActivation::None);

// elu(h + v * sigmoid(g)) for h (B, F, ...) and u = (v, g) (B, 2F, ...) split in halves along dim 1 ->
// (B, F, ...): the gated residual block of RealNVP's conditioners, one pass each way.
Tensor gated_residual(const Tensor& h, const Tensor& u);

// Backward with create_graph, for every fused op: the gradient of its composite reference, recorded,
// so it can be differentiated again. `ref` recomputes the op from its (saved) inputs; the result has
// one gradient per input (undefined where an input needs none).
std::vector<Tensor> reference_backward(const std::function<Tensor(const std::vector<Tensor>&)>& ref, const std::vector<Tensor>& inputs,
                                       const Tensor& grad);

}  // namespace dgm::fused

namespace dgm::reference {

using cpu::LinearActivation;

Tensor cross_entropy(const Tensor& logits, const Tensor& target);
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target);
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale = 0);
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, LinearActivation act = LinearActivation::None);
Tensor embedding_bag(const Tensor& weight, const Tensor& indices, const Tensor& bias, LinearActivation act = LinearActivation::None);
Tensor gated_residual(const Tensor& h, const Tensor& u);

}  // namespace dgm::reference
