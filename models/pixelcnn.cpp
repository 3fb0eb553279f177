#include <dgm/models/pixelcnn.h>

#include <algorithm>

#include <dgm/autograd/engine.h>
#include <dgm/models/config.h>

namespace dgm::models {

PixelCNNConfig PixelCNNConfig::from_json(const nlohmann::json& config) {
  ConfigReader r("pixelcnn", config);
  PixelCNNConfig c;
  c.channels = r.integer("channels", c.channels);
  c.layers = r.integer("layers", c.layers, 0);
  c.kernel_a = r.integer("kernel_a", c.kernel_a);
  c.kernel_b = r.integer("kernel_b", c.kernel_b);
  c.image_size = r.integer("image_size", c.image_size, 2);
  c.conditional = r.boolean("conditional", c.conditional);
  r.finish();
  if (c.kernel_a % 2 == 0 || c.kernel_b % 2 == 0)
    throw ValueError(cat("pixelcnn: kernel sizes must be odd (a centre pixel), got kernel_a = ", c.kernel_a, ", kernel_b = ", c.kernel_b));
  return c;
}

nlohmann::json PixelCNNConfig::to_json() const {
  nlohmann::json j = {{"channels", channels}, {"layers", layers}, {"kernel_a", kernel_a}, {"kernel_b", kernel_b}, {"image_size", image_size}};
  if (conditional) j["conditional"] = true;  // unconditional configs stay as they were
  return j;
}

PixelCNN::PixelCNN(PixelCNNConfig config) : AutoregressiveModel("PixelCNN"), config_(config) {
  const int64_t C = config.channels;
  conv_a = register_module("conv_a", std::make_shared<nn::MaskedConv2d>('A', 1, C, config.kernel_a, nn::Conv2dOptions{.padding = config.kernel_a / 2}));
  auto norm_list = register_module("norms", std::make_shared<nn::Module>("ModuleList"));
  auto conv_list = register_module("conv_b", std::make_shared<nn::Module>("ModuleList"));
  for (int64_t i = 0; i <= config.layers; ++i) norms.push_back(norm_list->register_module(std::to_string(i), std::make_shared<nn::LayerNorm>(C)));
  for (int64_t i = 0; i < config.layers; ++i)
    conv_b.push_back(conv_list->register_module(
        std::to_string(i), std::make_shared<nn::MaskedConv2d>('B', C, C, config.kernel_b, nn::Conv2dOptions{.padding = config.kernel_b / 2})));
  out = register_module("out", std::make_shared<nn::Conv2d>(C, 2, 1));
  if (config.conditional) {
    auto bias_list = register_module("label_bias", std::make_shared<nn::Module>("ModuleList"));
    for (int64_t i = 0; i <= config.layers; ++i) {
      label_bias.push_back(bias_list->register_module(std::to_string(i), std::make_shared<nn::Embedding>(num_classes(), C)));
      label_bias.back()->weight.set_data(zeros({num_classes(), C}).array());  // starts as the unconditional model
    }
  }
}

// h: (B, C, h, w), labels: (B,) -> (B, C, h, w)
Tensor PixelCNN::add_label_bias(const Tensor& h, const Tensor& labels, size_t layer) {
  if (label_bias.empty() || !labels.defined()) return h;
  Tensor b = label_bias[layer]->forward(labels);                  // (B, C)
  return h + reshape(b, {b.size(0), b.size(1), 1, 1});            // the same bias at every pixel
}

std::shared_ptr<GenerativeModel> PixelCNN::create(const nlohmann::json& config) {
  return std::make_shared<PixelCNN>(PixelCNNConfig::from_json(config));
}

// LayerNorm over the channels of every pixel: (B, C, H, W) -> (B, C, H, W)
static Tensor channel_norm(nn::LayerNorm& norm, const Tensor& h) {
  return permute(norm.forward(permute(h, {0, 2, 3, 1})), {0, 3, 1, 2});
}

// images: (B, 1, h, w), labels: (B,) or none -> (B, 2, h, w)
Tensor PixelCNN::forward_image(const Tensor& images, const Tensor& labels) {
  Tensor h = conv_a->forward(images);  // (B, C, h, w): sees only pixels strictly before each one
  h = add_label_bias(h, labels, 0);
  for (size_t i = 0; i < conv_b.size(); ++i) {
    h = conv_b[i]->forward(relu(channel_norm(*norms[i], h)));  // (B, C, h, w)
    h = add_label_bias(h, labels, i + 1);
  }
  return out->forward(relu(channel_norm(*norms.back(), h)));                                             // (B, 2, h, w)
}

// x: (B, D), y: (B,) -> (B, 2, H, W)
Tensor PixelCNN::logits(const Batch& batch) {
  check_input(batch, "logits");
  const Tensor& x = batch.x;
  return forward_image(reshape(x.to(param_dtype()), {x.size(0), 1, height(), width()}), batch.y);
}

// x: (B, D) -> (B, D, 2)
Tensor PixelCNN::conditional_log_probs(const Batch& batch) {
  const Tensor& x = batch.x;
  Tensor l = permute(logits(batch), {0, 2, 3, 1});                         // (B, H, W, 2)
  return log_softmax(reshape(l, {x.size(0), num_pixels(), 2}), -1);   // (B, D, 2)
}

// Each masked convolution runs on the window of features the next layer reads, zero-padded at its
// edges like the image itself (the padding reaches only features the output at (r, c) does not use);
// after it, the window shrinks by that layer's reach: with 5 mask-B 3x3 layers the B layers compute
// 66 + 45 + 28 + 15 + 6 pixels where a fixed 9 x 17 window computed 5 x 153.
Tensor PixelCNN::forward_pixel(const Tensor& window, const Tensor& labels, int64_t top, int64_t left, int64_t r, int64_t c) {
  const int64_t W = width(), step = config_.kernel_b / 2, R = reach();
  if (window.dim() != 4 || window.size(2) != r - top + 1 || top < 0 || left < 0 || r < top || c < left ||
      left + window.size(3) < std::min(W, c + R + 1) || top > std::max<int64_t>(0, r - R) || left > std::max<int64_t>(0, c - R))
    throw ShapeError(cat("PixelCNN.forward_pixel: a window ", shape_str(window.shape()), " at row ", top, ", column ", left,
                         " does not hold the pixels that pixel (", r, ", ", c, ") sees (rows down to ", std::max<int64_t>(0, r - R),
                         ", columns ", std::max<int64_t>(0, c - R), " to ", std::min(W, c + R + 1) - 1, ", ending at row ", r, ")"));
  // keep rows r - rest .. r and columns c - rest .. c + rest of the image (rest: the reach of the layers to come)
  auto crop = [&](const Tensor& h, int64_t rest) {
    const int64_t t = std::max<int64_t>(0, r - rest), l = std::max<int64_t>(0, c - rest), e = std::min(W, c + rest + 1);
    Tensor kept = slice(slice(h, 2, t - top, r - top + 1), 3, l - left, e - left);
    top = t, left = l;
    return kept;
  };
  int64_t rest = int64_t(conv_b.size()) * step;
  Tensor h = crop(add_label_bias(conv_a->forward(window), labels, 0), rest);
  for (size_t i = 0; i < conv_b.size(); ++i) {
    rest -= step;
    h = crop(add_label_bias(conv_b[i]->forward(relu(channel_norm(*norms[i], h))), labels, i + 1), rest);
  }
  h = select(select(h, 3, c - left), 2, r - top);                                  // (B, C): the pixel itself
  Tensor pixel = reshape(h, {h.size(0), h.size(1), 1, 1});
  return reshape(out->forward(relu(channel_norm(*norms.back(), pixel))), {h.size(0), 2});  // (B, 2)
}

// x: (B, D) -> (B, 2). The output at (r, c) sees rows r - reach .. r and columns c - reach .. c + reach
// only, so the forward runs on that window (forward_pixel).
Tensor PixelCNN::next_log_probs(const Batch& batch, int64_t t) {
  const Tensor& x = batch.x;
  const int64_t B = x.size(0), H = height(), W = width(), r = t / W, c = t % W, R = reach();
  const int64_t r0 = std::max<int64_t>(0, r - R), c0 = std::max<int64_t>(0, c - R), c1 = std::min(W, c + R + 1);
  Tensor window = slice(slice(reshape(x, {B, H, W}), 1, r0, r + 1), 2, c0, c1);            // (B, r - r0 + 1, c1 - c0)
  return log_softmax(forward_pixel(unsqueeze(window.to(param_dtype()), 1), batch.y, r0, c0, r, c), -1);  // (B, 2)
}

Tensor receptive_field(PixelCNN& model, int64_t h, int64_t w, bool weighted) {
  if (h < 1 || w < 1) throw ValueError(cat("receptive_field: image size must be positive, got ", h, "x", w));
  EnableGradGuard grad_on;
  Generator gen(0);
  const int64_t B = 4;  // a few random images, so that no reachable pixel hides behind a dead ReLU
  Tensor images = rand({B, 1, h, w}, {.dtype = model.param_dtype(), .requires_grad = true}, &gen);
  Tensor l = model.forward_image(images);                                                   // (B, 2, h, w)
  Tensor centre = select(select(l, 3, w / 2), 2, h / 2);                                   // (B, 2)
  Tensor logit = sum(select(centre, 1, 1) - select(centre, 1, 0));                         // Bernoulli logit, summed over images
  Tensor g = autograd::grad({logit}, {images})[0];                                         // (B, 1, h, w)
  Tensor map = sum(abs(g), {0, 1}).to(DType::Float64);                                     // (h, w)
  return weighted ? map : to(map > 0.0, DType::Float64);
}

}  // namespace dgm::models
