#include <dgm/nn/layers.h>

#include <dgm/nn/init.h>

namespace dgm::nn {

namespace F = functional;

static Generator& gen_or_default(Generator* g) { return g ? *g : default_generator(); }
static const char* py_bool(bool b) { return b ? "True" : "False"; }
static void check_positive(int64_t v, const char* layer, const char* what) {
  if (v <= 0) throw ValueError(cat(layer, ": ", what, " must be positive, got ", v));
}

// ---- Linear --------------------------------------------------------------------------------------------
Linear::Linear(int64_t in, int64_t out, LinearOptions options)
    : Module("Linear"), in_features(in), out_features(out), activation(options.activation) {
  check_positive(in, "Linear", "in_features");
  check_positive(out, "Linear", "out_features");
  Tensor w = empty({out, in}), b = options.bias ? empty({out}) : Tensor();
  init::default_linear_init_(w, &b, gen_or_default(options.gen));
  weight = register_parameter("weight", w);
  if (options.bias) bias = register_parameter("bias", b);
}
// x: (..., in) -> (..., out)
Tensor Linear::forward(const Tensor& x) { return F::linear(x, weight, bias, activation); }
std::string Linear::extra_repr() const {
  const char* act = activation == LinearActivation::ReLU ? ", activation=relu" : activation == LinearActivation::GELU ? ", activation=gelu" : "";
  return cat("in_features=", in_features, ", out_features=", out_features, ", bias=", py_bool(bias.defined()), act);
}

// ---- Embedding -----------------------------------------------------------------------------------------
Embedding::Embedding(int64_t n, int64_t dim, Generator* gen) : Module("Embedding"), num_embeddings(n), embedding_dim(dim) {
  check_positive(n, "Embedding", "num_embeddings");
  check_positive(dim, "Embedding", "embedding_dim");
  Tensor w = empty({n, dim});
  init::normal_(w, 0, 1, gen_or_default(gen));
  weight = register_parameter("weight", w);
}
// index: (...) int64 -> (..., embedding_dim)
Tensor Embedding::forward(const Tensor& index) {
  if (index.dtype() != DType::Int64) throw DTypeError(cat("Embedding: indices must be int64, got ", dtype_name(index.dtype())));
  return embedding(weight, index);
}
std::string Embedding::extra_repr() const { return cat(num_embeddings, ", ", embedding_dim); }

// ---- LayerNorm -----------------------------------------------------------------------------------------
LayerNorm::LayerNorm(int64_t d, double eps, bool elementwise_affine) : Module("LayerNorm"), normalized_shape(d), eps(eps) {
  check_positive(d, "LayerNorm", "normalized_shape");
  if (elementwise_affine) {
    weight = register_parameter("weight", ones({d}));
    bias = register_parameter("bias", zeros({d}));
  }
}
// x: (..., D) -> (..., D)
Tensor LayerNorm::forward(const Tensor& x) { return F::layer_norm(x, weight, bias, eps); }
std::string LayerNorm::extra_repr() const {
  return cat("(", normalized_shape, ",), eps=", eps, ", elementwise_affine=", py_bool(weight.defined()));
}

// ---- Dropout ---------------------------------------------------------------------------------------------
Dropout::Dropout(double p, Generator* gen) : Module("Dropout"), p(p), gen_(gen) {
  if (!(p >= 0 && p <= 1)) throw ValueError(cat("Dropout: probability must be in [0, 1], got ", p));
}
Tensor Dropout::forward(const Tensor& x) { return F::dropout(x, p, is_training(), gen_or_default(gen_)); }
std::string Dropout::extra_repr() const { return cat("p=", p); }

std::shared_ptr<Module> make_activation(Activation a) {
  switch (a) {
    case Activation::ReLU: return std::make_shared<ReLU>();
    case Activation::GELU: return std::make_shared<GELU>();
    case Activation::Sigmoid: return std::make_shared<Sigmoid>();
    case Activation::Tanh: return std::make_shared<Tanh>();
    case Activation::Softplus: return std::make_shared<Softplus>();
  }
  throw ValueError("make_activation: unknown activation");
}

// ---- Sequential ----------------------------------------------------------------------------------------
Sequential::Sequential(const std::vector<std::shared_ptr<Module>>& modules) : Module("Sequential") {
  for (const auto& m : modules) push_back(m);
}
void Sequential::push_back(std::shared_ptr<Module> module) { add_child(std::to_string(size()), std::move(module)); }
void Sequential::push_back(const std::string& name, std::shared_ptr<Module> module) { add_child(name, std::move(module)); }
Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& [name, m] : named_children()) y = m->forward(y);
  return y;
}
const std::shared_ptr<Module>& Sequential::operator[](size_t i) const {
  if (i >= size()) throw IndexError(cat("Sequential: index ", i, " out of range for ", size(), " modules"));
  return named_children()[i].second;
}

// ---- Conv2d ----------------------------------------------------------------------------------------------
Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, Conv2dOptions options) : Conv2d("Conv2d", in, out, k, options) {}
Conv2d::Conv2d(const char* type_name, int64_t in, int64_t out, int64_t k, Conv2dOptions options)
    : Module(type_name), in_channels(in), out_channels(out), kernel_size(k), stride(options.stride), padding(options.padding) {
  check_positive(in, type_name, "in_channels");
  check_positive(out, type_name, "out_channels");
  check_positive(k, type_name, "kernel_size");
  check_positive(stride, type_name, "stride");
  if (padding < 0) throw ValueError(cat(type_name, ": padding must be non-negative, got ", padding));
  Tensor w = empty({out, in, k, k}), b = options.bias ? empty({out}) : Tensor();
  init::default_linear_init_(w, &b, gen_or_default(options.gen));  // fan_in = in * k * k
  weight = register_parameter("weight", w);
  if (options.bias) bias = register_parameter("bias", b);
}
// x: (B, C, H, W) -> (B, O, Ho, Wo)
Tensor Conv2d::forward(const Tensor& x) { return F::conv2d(x, weight, bias, stride, padding); }
std::string Conv2d::extra_repr() const {
  std::string s = cat(in_channels, ", ", out_channels, ", kernel_size=(", kernel_size, ", ", kernel_size, "), stride=(", stride, ", ", stride, ")");
  if (padding != 0) s += cat(", padding=(", padding, ", ", padding, ")");
  if (!bias.defined()) s += ", bias=False";
  return s;
}

// ---- MaskedConv2d ----------------------------------------------------------------------------------------
MaskedConv2d::MaskedConv2d(char type, int64_t in, int64_t out, int64_t k, Conv2dOptions options)
    : Conv2d("MaskedConv2d", in, out, k, options), mask_type(type) {
  if (type != 'A' && type != 'B') throw ValueError(cat("MaskedConv2d: mask type must be 'A' or 'B', got '", type, "'"));
  // 1 above the centre row, and left of the centre in its row ('B': the centre too)
  const int64_t c = k / 2;
  std::vector<float> m(static_cast<size_t>(k * k), 0.0f);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) m[static_cast<size_t>(i * k + j)] = (i < c || (i == c && (j < c || (type == 'B' && j == c)))) ? 1.0f : 0.0f;
  mask = register_buffer("mask", from_vector(m, {1, 1, k, k}));
}
// x: (B, C, H, W) -> (B, O, Ho, Wo), with the weight masked. A 0/1 mask becomes the list of taps
// the conv2d op computes, so the masked taps cost nothing (and the weight is never multiplied);
// any other mask (a buffer loaded from a file) multiplies the weight.
Tensor MaskedConv2d::forward(const Tensor& x) {
  const Tensor m = mask.contiguous().to(DType::Float64);
  const double* values = m.array().data<double>();
  std::vector<int64_t> taps;
  for (int64_t t = 0; t < m.numel(); ++t) {
    if (values[t] != 0.0 && values[t] != 1.0) return F::conv2d(x, weight * mask, bias, stride, padding);
    if (values[t] == 1.0) taps.push_back(t);
  }
  if (taps.empty()) return F::conv2d(x, weight * mask, bias, stride, padding);
  return dgm::conv2d(x, weight, bias, stride, padding, taps);
}
std::string MaskedConv2d::extra_repr() const { return cat("mask_type=", mask_type, ", ", Conv2d::extra_repr()); }

}  // namespace dgm::nn
