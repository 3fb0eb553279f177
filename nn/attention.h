// Multi-head self-attention with a KV cache, and the pre-LayerNorm transformer block (GPT-2 style).
//   B batch, L sequence length, D = embed_dim, H heads, hd = D / H head size.
#pragma once
#include <memory>

#include <dgm/nn/layers.h>

namespace dgm::nn {

// Keys and values of the positions decoded so far, for one attention layer (one per block).
// keys/values: (B, H, capacity, hd); positions [0, length) are filled.
struct KVCache {
  Tensor keys, values;
  int64_t length = 0;
  // Positions to allocate at the first append (a sampler that knows the sequence length sets it);
  // past them, or without it, the capacity doubles when full.
  int64_t reserve = 0;
  void clear() { *this = KVCache(); }
};

struct AttentionOptions {
  bool causal = true;  // position i attends only to positions <= i (what autoregressive models need)
  bool bias = true;    // biases of the qkv and output projections
  Generator* gen = nullptr;
};

// y = proj(concat_h softmax(q_h k_h^T / sqrt(hd) [+ causal mask]) v_h), with q, k, v from one fused
// projection qkv: (B, L, D) -> (B, L, 3D).
class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, AttentionOptions options = {});
  // x: (B, L, D) -> (B, L, D)
  Tensor forward(const Tensor& x) override;
  // Incremental decoding: x_t (B, D) is the input at position cache.length; its key and value are
  // appended to the cache and the output at that position is returned, (B, D). Equals row t of
  // forward() on the whole sequence. Needs a causal layer. Under NoGradGuard the cache grows in
  // place (amortised O(1) per step); with grad mode on it is rebuilt with cat, so gradients flow.
  Tensor forward_step(const Tensor& x_t, KVCache& cache);
  std::string extra_repr() const override;

  int64_t embed_dim, num_heads, head_dim;
  bool causal;
  std::shared_ptr<Linear> qkv, proj;

 private:
  void append(KVCache& cache, const Tensor& k, const Tensor& v) const;
};

struct TransformerBlockOptions {
  int64_t mlp_ratio = 2;  // hidden width of the MLP = mlp_ratio * D
  Activation activation = Activation::ReLU;
  bool causal = true;
  Generator* gen = nullptr;
};

// Pre-LayerNorm block:  x = x + attn(ln1(x));  x = x + mlp(ln2(x)),
// mlp = Linear(D, rD) -> activation -> Linear(rD, D). A ReLU or GELU is fused into the first
// Linear (children "0" and "2", the names PyTorch's Sequential(Linear, ReLU, Linear) gives them,
// so checkpoints map one to one); other activations are a child "1" of their own.
class TransformerBlock : public Module {
 public:
  TransformerBlock(int64_t embed_dim, int64_t num_heads, TransformerBlockOptions options = {});
  // x: (B, L, D) -> (B, L, D)
  Tensor forward(const Tensor& x) override;
  // x_t: (B, D) at position cache.length -> (B, D); see MultiheadAttention::forward_step.
  Tensor forward_step(const Tensor& x_t, KVCache& cache);

  std::shared_ptr<LayerNorm> ln1, ln2;
  std::shared_ptr<MultiheadAttention> attn;
  std::shared_ptr<Sequential> mlp;
};

}  // namespace dgm::nn
