// Layers, as torch.nn: each holds its parameters and calls its functional form (nn/functional.h).
// Shapes in comments: B batch, L sequence length, D features, C/O channels, H/W image size.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <dgm/nn/functional.h>
#include <dgm/nn/module.h>
#include <dgm/tensor/random.h>

namespace dgm::nn {

using functional::LinearActivation;

// Options shared by layers with a weight and an optional bias. gen: where the initial values are
// drawn from (nullptr: dgm::default_generator(), seeded by dgm::manual_seed).
struct LinearOptions {
  bool bias = true;
  Generator* gen = nullptr;
  // Applied to x W^T + b in the same fused pass (fused::linear): no separate node, no extra pass.
  LinearActivation activation = LinearActivation::None;
};

// y = act(x W^T + b).  x: (..., in) -> (..., out). weight (out, in), bias (out), both
// U(-1/sqrt(in), 1/sqrt(in)); act = options.activation (none, ReLU or GELU), fused into the layer.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, LinearOptions options = {});
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  int64_t in_features, out_features;
  LinearActivation activation = LinearActivation::None;
  Tensor weight, bias;  // bias undefined without options.bias
};

// A lookup table: index (...) int64 in [0, num_embeddings) -> (..., embedding_dim). weight ~ N(0, 1).
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator* gen = nullptr);
  Tensor forward(const Tensor& index) override;
  std::string extra_repr() const override;

  int64_t num_embeddings, embedding_dim;
  Tensor weight;  // (num_embeddings, embedding_dim)
};

// Normalises the last dim: x (..., D) -> (..., D); weight = 1, bias = 0 initially.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  int64_t normalized_shape;
  double eps;
  Tensor weight, bias;  // (D), undefined without elementwise_affine
};

// Zeroes elements with probability p while training (scaling the rest by 1/(1-p)); identity in eval().
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  double p;

 private:
  Generator* gen_;
};

// Elementwise activations (no parameters).
class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override { return relu(x); }
};
class GELU : public Module {  // approximate "none": exact x Phi(x); "tanh": PyTorch's tanh form
 public:
  explicit GELU(std::string approximate = "none") : Module("GELU"), approximate_(std::move(approximate)) {
    check_gelu_approximate(approximate_);
  }
  Tensor forward(const Tensor& x) override { return gelu(x, approximate_); }
  std::string extra_repr() const override { return approximate_ == "none" ? "" : "approximate='" + approximate_ + "'"; }

 private:
  std::string approximate_;
};
class Sigmoid : public Module {
 public:
  Sigmoid() : Module("Sigmoid") {}
  Tensor forward(const Tensor& x) override { return sigmoid(x); }
};
class Tanh : public Module {
 public:
  Tanh() : Module("Tanh") {}
  Tensor forward(const Tensor& x) override { return tanh(x); }
};
class Softplus : public Module {  // log(1 + e^x)
 public:
  Softplus() : Module("Softplus") {}
  Tensor forward(const Tensor& x) override { return softplus(x); }
};

// Names an activation for layers that build one (TransformerBlock's MLP).
enum class Activation { ReLU, GELU, Sigmoid, Tanh, Softplus };
std::shared_ptr<Module> make_activation(Activation a);

// Chains modules: forward(x) = m_n(...m_1(x)). Children are named "0", "1", ...
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  explicit Sequential(const std::vector<std::shared_ptr<Module>>& modules);
  // std::make_shared<Sequential>(std::make_shared<Linear>(2, 8), std::make_shared<ReLU>(), ...)
  template <class M, class... Ms>
  explicit Sequential(std::shared_ptr<M> first, std::shared_ptr<Ms>... rest) : Module("Sequential") {
    push_back(std::move(first));
    (push_back(std::move(rest)), ...);
  }
  void push_back(std::shared_ptr<Module> module);  // named by its position: "0", "1", ...
  // A child with a name of its own choosing, e.g. to keep PyTorch's names when a layer fuses the
  // activation that PyTorch keeps as a separate child.
  void push_back(const std::string& name, std::shared_ptr<Module> module);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return named_children().size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const;
};

struct Conv2dOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  bool bias = true;
  Generator* gen = nullptr;
};

// 2-D convolution with a square kernel.  x: (B, C, H, W) -> (B, O, Ho, Wo),
// Ho = (H + 2 padding - k) / stride + 1. weight (O, C, k, k), bias (O), both
// U(-1/sqrt(C k k), 1/sqrt(C k k)).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Conv2dOptions options = {});
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  int64_t in_channels, out_channels, kernel_size, stride, padding;
  Tensor weight, bias;

 protected:
  Conv2d(const char* type_name, int64_t in_channels, int64_t out_channels, int64_t kernel_size, Conv2dOptions options);
};

// PixelCNN's masked convolution (van den Oord et al. 2016): the kernel sees only pixels above the
// centre and to its left in the centre row, so output (i, j) depends on inputs before (i, j) in
// raster order. Mask 'A' (first layer) also hides the centre pixel itself; mask 'B' (later
// layers) lets it through. The mask multiplies the weight in forward, so a masked weight has no
// influence on the output and receives zero gradient. Use padding = k / 2 to keep the size.
class MaskedConv2d : public Conv2d {
 public:
  MaskedConv2d(char mask_type, int64_t in_channels, int64_t out_channels, int64_t kernel_size, Conv2dOptions options = {});
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  char mask_type;
  Tensor mask;  // (1, 1, k, k) buffer of 0/1, broadcast over channels
};

}  // namespace dgm::nn
