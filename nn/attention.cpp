#include <dgm/nn/attention.h>

#include <algorithm>

namespace dgm::nn {

namespace F = functional;

// ---- MultiheadAttention --------------------------------------------------------------------------------
MultiheadAttention::MultiheadAttention(int64_t d, int64_t h, AttentionOptions options)
    : Module("MultiheadAttention"), embed_dim(d), num_heads(h), head_dim(h > 0 ? d / h : 0), causal(options.causal) {
  if (d <= 0 || h <= 0 || d % h != 0)
    throw ValueError(cat("MultiheadAttention: embed_dim (", d, ") must be a positive multiple of num_heads (", h, ")"));
  qkv = register_module("qkv", std::make_shared<Linear>(d, 3 * d, LinearOptions{.bias = options.bias, .gen = options.gen}));
  proj = register_module("proj", std::make_shared<Linear>(d, d, LinearOptions{.bias = options.bias, .gen = options.gen}));
}

Tensor MultiheadAttention::forward(const Tensor& x) {
  if (x.dim() != 3 || x.size(2) != embed_dim)
    throw ShapeError(cat("MultiheadAttention: input must be (B, L, ", embed_dim, "), got ", shape_str(x.shape())));
  const int64_t B = x.size(0), L = x.size(1), D = embed_dim, H = num_heads, hd = head_dim;
  std::vector<Tensor> qkv_parts = split(qkv->forward(x), D, -1);  // (B, L, 3D) -> 3 x (B, L, D)
  auto heads = [&](const Tensor& t) { return permute(reshape(t, {B, L, H, hd}), {0, 2, 1, 3}); };  // (B, L, D) -> (B, H, L, hd)
  Tensor y = F::scaled_dot_product_attention(heads(qkv_parts[0]), heads(qkv_parts[1]), heads(qkv_parts[2]), causal);  // (B, H, L, hd)
  y = reshape(permute(y, {0, 2, 1, 3}), {B, L, D});  // heads side by side again: (B, L, D)
  return proj->forward(y);
}

void MultiheadAttention::append(KVCache& cache, const Tensor& k, const Tensor& v) const {
  // k, v: (B, H, 1, hd)
  const int64_t B = k.size(0), n = cache.length;
  if (cache.keys.defined() && (cache.keys.size(0) != B || cache.keys.dtype() != k.dtype()))
    throw ShapeError(cat("MultiheadAttention.forward_step: the cache holds a batch of ", cache.keys.size(0), " (", dtype_name(cache.keys.dtype()),
                         "), the input a batch of ", B, " (", dtype_name(k.dtype()), "); clear() the cache for a new sequence"));
  if (is_grad_enabled() && k.requires_grad()) {  // differentiable: a new tensor per step
    cache.keys = n > 0 ? cat({narrow(cache.keys, 2, 0, n), k}, 2) : k;
    cache.values = n > 0 ? cat({narrow(cache.values, 2, 0, n), v}, 2) : v;
  } else {  // in place, doubling the capacity when full
    if (!cache.keys.defined() || cache.keys.size(2) == n) {
      // one allocation for the whole sequence when the sampler reserved it: every doubling touched
      // fresh memory and copied the old; on this project's 2-core VM the page faults of twice the
      // final size were ~30% of `dgm sample imagegpt` (perf), which went 4.0-4.4 -> 2.6-3.5 s
      const int64_t capacity = std::max<int64_t>({16, 2 * n, cache.reserve});
      Tensor keys = zeros({B, num_heads, capacity, head_dim}, {.dtype = k.dtype()});
      Tensor values = zeros({B, num_heads, capacity, head_dim}, {.dtype = k.dtype()});
      if (n > 0) {
        keys.array().narrow(2, 0, n).copy_(cache.keys.array().narrow(2, 0, n));
        values.array().narrow(2, 0, n).copy_(cache.values.array().narrow(2, 0, n));
      }
      cache.keys = keys;
      cache.values = values;
    }
    cache.keys.array().narrow(2, n, 1).copy_(k.array());
    cache.values.array().narrow(2, n, 1).copy_(v.array());
  }
  cache.length = n + 1;
}

Tensor MultiheadAttention::forward_step(const Tensor& x_t, KVCache& cache) {
  if (!causal) throw ValueError("MultiheadAttention.forward_step: incremental decoding needs a causal attention layer");
  if (x_t.dim() != 2 || x_t.size(1) != embed_dim)
    throw ShapeError(cat("MultiheadAttention.forward_step: input must be (B, ", embed_dim, "), got ", shape_str(x_t.shape())));
  const int64_t B = x_t.size(0), D = embed_dim;
  std::vector<Tensor> qkv_parts = split(qkv->forward(x_t), D, -1);                              // (B, 3D) -> 3 x (B, D)
  auto heads = [&](const Tensor& t) { return reshape(t, {B, num_heads, 1, head_dim}); };  // (B, D) -> (B, H, 1, hd)
  append(cache, heads(qkv_parts[1]), heads(qkv_parts[2]));
  Tensor keys = narrow(cache.keys, 2, 0, cache.length), values = narrow(cache.values, 2, 0, cache.length);  // (B, H, t+1, hd)
  // the cache holds only positions <= t, so no mask is needed
  Tensor y = F::scaled_dot_product_attention(heads(qkv_parts[0]), keys, values, false);  // (B, H, 1, hd)
  return proj->forward(reshape(y, {B, D}));
}

std::string MultiheadAttention::extra_repr() const {
  return cat("embed_dim=", embed_dim, ", num_heads=", num_heads, ", causal=", causal ? "True" : "False");
}

// ---- TransformerBlock ----------------------------------------------------------------------------------
TransformerBlock::TransformerBlock(int64_t d, int64_t h, TransformerBlockOptions options) : Module("TransformerBlock") {
  if (options.mlp_ratio <= 0) throw ValueError(cat("TransformerBlock: mlp_ratio must be positive, got ", options.mlp_ratio));
  const int64_t hidden = options.mlp_ratio * d;
  ln1 = register_module("ln1", std::make_shared<LayerNorm>(d));
  attn = register_module("attn", std::make_shared<MultiheadAttention>(d, h, AttentionOptions{.causal = options.causal, .gen = options.gen}));
  ln2 = register_module("ln2", std::make_shared<LayerNorm>(d));
  // one statement per layer: the order of the random draws must not depend on the compiler
  const bool fused = options.activation == Activation::ReLU || options.activation == Activation::GELU;
  const LinearActivation act = options.activation == Activation::ReLU   ? LinearActivation::ReLU
                               : options.activation == Activation::GELU ? LinearActivation::GELU
                                                                        : LinearActivation::None;
  auto fc = std::make_shared<Linear>(d, hidden, LinearOptions{.gen = options.gen, .activation = act});
  auto fc_out = std::make_shared<Linear>(hidden, d, LinearOptions{.gen = options.gen});
  mlp = register_module("mlp", std::make_shared<Sequential>());
  mlp->push_back("0", fc);
  if (!fused) mlp->push_back("1", make_activation(options.activation));
  mlp->push_back("2", fc_out);
}

// x: (B, L, D) -> (B, L, D)
Tensor TransformerBlock::forward(const Tensor& x) {
  Tensor y = x + attn->forward(ln1->forward(x));
  return y + mlp->forward(ln2->forward(y));
}

// x_t: (B, D) -> (B, D)
Tensor TransformerBlock::forward_step(const Tensor& x_t, KVCache& cache) {
  Tensor y = x_t + attn->forward_step(ln1->forward(x_t), cache);
  return y + mlp->forward(ln2->forward(y));
}

}  // namespace dgm::nn
