// PixelCNN (van den Oord et al. 2016) for binarized images, as in homework 1: the conditionals
// p(x_j | x_{<j}) come from a stack of masked convolutions, whose kernels see only the pixels above
// and to the left (raster order), so one forward pass gives all D conditionals at once.
//
//   h = conv_A(x)                                   7x7, mask A (hides the centre): (B, C, H, W)
//   h = conv_B(relu(LN(h)))      x layers           kxk, mask B (centre allowed):   (B, C, H, W)
//   logits = conv_1x1(relu(LN(h)))                  2 logits per pixel:             (B, 2, H, W)
//   p(x_j | x_{<j}) = Categorical(softmax(logits[:, :, j]))
//
// LN normalises each pixel's C channels (a LayerNorm over the channel dim), so it mixes nothing
// across pixels. Stacked masks leave a blind spot: pixels above and to the right of a pixel that no
// path of kernel offsets reaches, although they come before it; receptive_field() shows it.
//
// Sampling is one forward per pixel (AutoregressiveModel), on the window of the image the new
// pixel can see, not the whole image, and the window shrinks layer by layer to what the layers
// still to come read (forward_pixel).
//
// Class-conditional (config "conditional": true), as the conditional PixelCNN (van den Oord et al.
// 2016, "Conditional image generation with PixelCNN decoders") with a one-hot class vector: after
// every masked convolution a class-dependent bias b_y^l (a (10, C) embedding per layer) is added,
//
//   h = conv_l(...) + b_y^l            (B, C, H, W) + (B, C, 1, 1)
//
// the same for every pixel, so causality is untouched. With b = 0 it is the unconditional model.
//
// Config: {"channels": 64, "layers": 5, "kernel_a": 7, "kernel_b": 3, "image_size": 28, "conditional": false}.
#pragma once
#include <vector>

#include <dgm/models/autoregressive.h>
#include <dgm/nn/layers.h>

namespace dgm::models {

struct PixelCNNConfig {
  int64_t channels = 64;
  int64_t layers = 5;  // mask-B layers after the first (mask-A) layer
  int64_t kernel_a = 7;
  int64_t kernel_b = 3;
  int64_t image_size = 28;
  bool conditional = false;  // p(x | y), y a digit 0..9

  static PixelCNNConfig from_json(const nlohmann::json& config);
  nlohmann::json to_json() const;
};

class PixelCNN : public AutoregressiveModel {
 public:
  explicit PixelCNN(PixelCNNConfig config = {});
  static std::shared_ptr<GenerativeModel> create(const nlohmann::json& config);

  // images: (B, 1, h, w) floating, any size -> (B, 2, h, w) logits; labels (B,) int64 for a
  // conditional model (undefined: no class bias)
  Tensor forward_image(const Tensor& images, const Tensor& labels = Tensor());
  // The same layers on a window of an image (its rows top.., columns left..), keeping after each masked
  // convolution only the features that the output at image pixel (r, c) still depends on -> (B, 2):
  // that output's logits. The window must hold every pixel the output sees (rows r - reach() .. r,
  // columns c - reach() .. c + reach(), within the image).
  Tensor forward_pixel(const Tensor& window, const Tensor& labels, int64_t top, int64_t left, int64_t r, int64_t c);
  // x: (B, D) int64 (and y (B,) for a conditional model) -> (B, 2, H, W)
  Tensor logits(const Batch& batch);

  Tensor conditional_log_probs(const Batch& batch) override;
  Tensor next_log_probs(const Batch& batch, int64_t t) override;
  DataKind data_kind() const override { return DataKind::Binary; }
  int64_t height() const override { return config_.image_size; }
  int64_t width() const override { return config_.image_size; }
  nlohmann::json config() const override { return config_.to_json(); }
  int64_t num_classes() const override { return config_.conditional ? 10 : 0; }
  // How many rows up (and columns to either side) an output pixel can see: kernel_a/2 + layers * (kernel_b/2).
  int64_t reach() const { return config_.kernel_a / 2 + config_.layers * (config_.kernel_b / 2); }

  std::shared_ptr<nn::MaskedConv2d> conv_a;
  std::vector<std::shared_ptr<nn::LayerNorm>> norms;  // layers + 1: before each mask-B conv and before the output
  std::vector<std::shared_ptr<nn::MaskedConv2d>> conv_b;
  std::shared_ptr<nn::Conv2d> out;
  // layers + 1 class biases (10, C), one after conv_a and after each conv_b; empty unless conditional
  std::vector<std::shared_ptr<nn::Embedding>> label_bias;

 private:
  // h (B, C, h, w) + b_y^layer: the class bias of layer `layer` (no-op without labels or when unconditional)
  Tensor add_label_bias(const Tensor& h, const Tensor& labels, size_t layer);
  PixelCNNConfig config_;
};

// Which input pixels the centre output pixel (h/2, w/2) of an h x w image depends on: the Bernoulli
// logit there (logit of 1 minus logit of 0) is backpropagated to the input, a batch of random
// images. Returns an (h, w) float64 map of sum |d logit / d x| (weighted) or 1 where that is
// non-zero, else 0 (binary). Mask A alone gives exactly its kernel layout; deeper stacks show the
// blind spot.
Tensor receptive_field(PixelCNN& model, int64_t h, int64_t w, bool weighted = false);

}  // namespace dgm::models
