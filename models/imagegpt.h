// ImageGPT (Chen et al. 2020) as in homework 1 and pytorch_ref.py: a GPT over the raster scan of a
// binarized image. Pixel x_t is predicted from x_{<t} only, so the input at position t is the
// previous pixel's token (a learned start-of-sequence vector at t = 0):
//
//   h_t^0 = pos_t + (t == 0 ? sos : tok[x_{t-1}])                          (B, L, d)
//   h^l   = block_l(h^{l-1})   pre-LN:  h = h + attn(ln1(h)) (causal);  h = h + mlp(ln2(h)),
//                              mlp = Linear(d, 2d) -> ReLU -> Linear(2d, d)
//   l_t   = w^T ln(h_t^n)                                                   (B, L), one logit per pixel
//   p(x_t = 1 | x_{<t}) = sigmoid(l_t),   log p(x) = -sum_t BCE(l_t, x_t)
//
// Sampling runs the blocks one position at a time with a key/value cache (nn::KVCache), so each
// new pixel costs one row of attention; sample_naive() runs the full forward once per pixel, as the
// homework's sampler does. Both draw pixel t of image b with the same uniform, so for one seed they
// give the same images.
//
// Class-conditional (config "conditional": true, lecture 1's p(x | y)): a learned class embedding
// e_y (10, d) is added to the input at every position, the start token included,
//
//   h_t^0 = pos_t + (t == 0 ? sos : tok[x_{t-1}]) + e_y,
//
// so every conditional p(x_t | x_{<t}, y) sees the label. With e = 0 it is the unconditional model.
//
// Config: {"embed_dim": 64, "heads": 4, "layers": 2, "image_size": 28, "conditional": false}. Parameter names follow
// pytorch_ref.py (sos, tok, pos, blocks.<i>, ln, head) except inside attention, where dgm's fused
// projection is attn.qkv (PyTorch: in_proj_weight / in_proj_bias) and attn.proj (out_proj).
#pragma once
#include <vector>

#include <dgm/models/autoregressive.h>
#include <dgm/nn/attention.h>

namespace dgm::models {

struct ImageGPTConfig {
  int64_t embed_dim = 64;
  int64_t heads = 4;
  int64_t layers = 2;
  int64_t image_size = 28;
  bool conditional = false;  // p(x | y), y a digit 0..9

  static ImageGPTConfig from_json(const nlohmann::json& config);
  nlohmann::json to_json() const;
};

class ImageGPT : public AutoregressiveModel {
 public:
  explicit ImageGPT(ImageGPTConfig config = {});
  static std::shared_ptr<GenerativeModel> create(const nlohmann::json& config);

  // x: (B, L) int64 in {0, 1} (and y (B,) for a conditional model) -> (B, L): l_t, the logit of p(x_t = 1 | x_{<t}, y)
  Tensor logits(const Batch& batch);

  Tensor conditional_log_probs(const Batch& batch) override;  // (B, L, 2) from the logits
  Tensor log_prob(const Batch& batch) override;                // -sum_t BCE(l_t, x_t)
  Tensor loss(const Batch& batch, Generator& gen) override; // mean BCE over pixels (F.binary_cross_entropy_with_logits)
  // With the key/value cache: the first k pixels are fed in, then each new pixel is drawn and fed back.
  using AutoregressiveModel::complete;
  Tensor complete(const Batch& batch, int64_t k, Generator& gen, double temperature) override;
  // One full forward per pixel (AutoregressiveModel's sampler): the reference for the cached one.
  Tensor complete_naive(const Batch& batch, int64_t k, Generator& gen) { return AutoregressiveModel::complete(batch, k, gen, 1.0); }
  Tensor sample_naive(int64_t n, Generator& gen, const Tensor& labels = Tensor());

  DataKind data_kind() const override { return DataKind::Binary; }
  int64_t height() const override { return config_.image_size; }
  int64_t width() const override { return config_.image_size; }
  nlohmann::json config() const override { return config_.to_json(); }
  int64_t num_classes() const override { return config_.conditional ? 10 : 0; }

  Tensor sos;                                             // (d), zeros
  std::shared_ptr<nn::Embedding> tok, pos;                // (2, d), (L, d)
  std::vector<std::shared_ptr<nn::TransformerBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> ln;
  std::shared_ptr<nn::Linear> head;                       // (1, d), no bias
  std::shared_ptr<nn::Embedding> label;                   // (10, d) class embedding e_y; null unless conditional

 private:
  ImageGPTConfig config_;
};

}  // namespace dgm::models
