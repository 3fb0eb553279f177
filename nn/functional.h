// Functional forms of layers and losses, composed from the engine's differentiable ops (so every
// one has a gradient and a gradient of the gradient). linear, embedding_bag, layer_norm,
// scaled_dot_product_attention, cross_entropy and binary_cross_entropy_with_logits run fused
// kernels (autograd/fused.h); each has one composite reference, dgm::reference::* beside it there,
// and tests/test_fused.cpp checks both agree in value, gradient and second derivative.
#pragma once
#include <string>

#include <dgm/autograd/fused.h>
#include <dgm/autograd/ops.h>

namespace dgm::nn::functional {

// ---- layers ------------------------------------------------------------------------------------------
// y = act(x W^T + b).   x: (..., in), weight: (out, in), bias: (out) or undefined -> (..., out)
// One fused kernel (fused::linear): the bias is the GEMM's starting C, the activation is applied in
// the same pass (reference::linear is the composite matmul, add, activation).
using fused::LinearActivation;
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), LinearActivation act = LinearActivation::None);
// y = act(sum_k weight[indices[..., k]] + b), torch.nn.functional.embedding_bag(mode="sum") with
// equal bags, plus a bias and an activation: a linear layer on K concatenated one-hot vectors, where
// each one-hot just picks a row. indices: int64 (..., K), weight: (V, H), bias: (H) or undefined
// -> (..., H). One fused kernel (fused::embedding_bag; reference::embedding_bag is embedding + sum).
Tensor embedding_bag(const Tensor& indices, const Tensor& weight, const Tensor& bias = Tensor(), LinearActivation act = LinearActivation::None);
// Normalises over the last dim: (x - mean) / sqrt(var + eps) * weight + bias (biased variance).
// x: (..., D), weight, bias: (D) or undefined -> (..., D)
Tensor layer_norm(const Tensor& x, const Tensor& weight = Tensor(), const Tensor& bias = Tensor(), double eps = 1e-5);
// 2-D convolution (cross-correlation, as torch.nn.functional.conv2d): the conv2d op (a direct
// kernel for stride 1, im2col + GEMM otherwise; tensor/conv.h); its composite reference is
// reference::conv2d (autograd/ops.h): every output pixel's k*k*C patch gathered into a row, then
// one matmul. x: (B, C, H, W), weight: (O, C, k, k), bias: (O) or undefined -> (B, O, Ho, Wo),
// Ho = (H + 2 padding - k) / stride + 1 (the same for W).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), int64_t stride = 1, int64_t padding = 0);
// softmax(q k^T / sqrt(d)) v; with causal, query i attends only to keys j <= i (+ offset: the
// queries are the last Lq positions of Lk).  q: (..., Lq, d), k, v: (..., Lk, d) -> (..., Lq, d)
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = false);
// Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1-p).
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());

// ---- losses ------------------------------------------------------------------------------------------
// reduction: "mean" (over all elements), "sum" or "none" (keeps the per-element losses).

// Negative log-likelihood of class indices under log-probabilities.
// log_probs: (N, C) or (N, C, d1, ...), target: int64 (N) or (N, d1, ...) in [0, C) -> loss
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const std::string& reduction = "mean");
// cross_entropy = nll_loss(log_softmax(logits, dim 1), target). Shapes as nll_loss.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const std::string& reduction = "mean");
// -[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] = max(x, 0) - x y + log(1 + e^{-|x|}), stable
// for any x. logits and target (floating, values in [0, 1]) of the same shape.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, const std::string& reduction = "mean");
// (input - target)^2
Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction = "mean");

// log(sigmoid(x)) = -softplus(-x), finite for any x.
Tensor log_sigmoid(const Tensor& x);

}  // namespace dgm::nn::functional

namespace dgm::nn {
namespace F = functional;
}
