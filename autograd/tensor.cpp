#include <dgm/autograd/tensor.h>

#include <dgm/autograd/engine.h>
#include <dgm/autograd/node.h>
#include <dgm/autograd/ops.h>
#include <dgm/tensor/kernels.h>

namespace dgm {

Tensor::Tensor(Array data, bool requires_grad) : impl_(std::make_shared<TensorImpl>()) {
  impl_->data = std::move(data);
  if (requires_grad) requires_grad_(true);
}

Tensor& Tensor::requires_grad_(bool on) {
  if (!is_leaf())
    throw AutogradError("requires_grad_: can only change requires_grad of leaf tensors; use detach() to get a new leaf");
  if (on && !is_floating(dtype()))
    throw DTypeError(cat("requires_grad_: only floating tensors can require gradients, got ", dtype_name(dtype())));
  impl().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
void Tensor::set_grad(const Tensor& g) {
  if (g.defined() && g.shape() != shape())
    throw ShapeError(cat("set_grad: gradient of shape ", shape_str(g.shape()), " for a tensor of shape ", shape_str(shape())));
  impl().grad = TensorAccess::impl(g);
}
void Tensor::retain_grad() {
  if (!requires_grad()) throw AutogradError("retain_grad: the tensor does not require grad");
  if (is_leaf() || impl().retains_grad) return;  // leaves keep .grad anyway
  impl().retains_grad = true;
  impl().grad_fn->retained.emplace_back(impl().output_nr, impl_);
}
void Tensor::backward(const Tensor& grad, bool retain_graph, bool create_graph) const {
  autograd::backward({*this}, grad.defined() ? std::vector<Tensor>{grad} : std::vector<Tensor>{}, retain_graph, create_graph);
}
Tensor Tensor::detach() const { return Tensor(array()); }

// In-place ops change data that the graph may depend on. We do not record them: they are refused
// where autograd would need to (PyTorch's "leaf ... used in an in-place operation" rule, extended to
// non-leaves), and otherwise bump the version counter so saved tensors can detect the change.
static void check_inplace(const Tensor& t, const Tensor* other, const char* op) {
  if (!is_grad_enabled()) return;
  if (t.requires_grad())
    throw AutogradError(cat(op, ": in-place change of a tensor that requires grad (shape ", shape_str(t.shape()), ", ",
                            t.is_leaf() ? "a leaf" : "produced by '" + std::string(op_name(t.grad_fn()->op())) + "'",
                            ") while grad mode is on; use the out-of-place op, or wrap in NoGradGuard (e.g. for an optimiser step)"));
  if (other && other->defined() && other->requires_grad())
    throw AutogradError(cat(op, ": in-place op with an argument that requires grad is not recorded by autograd; use the out-of-place op"));
}
Tensor& Tensor::fill_(double v) {
  check_inplace(*this, nullptr, "fill_");
  impl().data.fill_(v);
  return *this;
}
Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace(*this, &src, "copy_");
  impl().data.copy_(src.array());
  return *this;
}
Tensor& Tensor::add_(const Tensor& o, double alpha) {
  check_inplace(*this, &o, "add_");
  Array b = alpha == 1 ? o.array() : cpu::binary(cpu::Binary::Mul, o.array(), scalar_like(o, alpha).array());
  cpu::binary_(cpu::Binary::Add, impl().data, b);
  return *this;
}
Tensor& Tensor::mul_(const Tensor& o) {
  check_inplace(*this, &o, "mul_");
  cpu::binary_(cpu::Binary::Mul, impl().data, o.array());
  return *this;
}
Tensor& Tensor::mul_(double s) { return mul_(scalar_like(*this, s)); }
Tensor& Tensor::div_(const Tensor& o) {
  check_inplace(*this, &o, "div_");
  cpu::binary_(cpu::Binary::Div, impl().data, o.array());
  return *this;
}
Tensor& Tensor::masked_fill_(const Tensor& mask, double value) {
  check_inplace(*this, nullptr, "masked_fill_");
  Array filled = cpu::where(mask.array(), Array::scalar(value, dtype()), array());
  impl().data.copy_(filled);
  return *this;
}
void Tensor::set_data(const Array& a) {
  if (a.shape() != shape() || a.dtype() != dtype())
    throw ShapeError(cat("set_data: new data ", shape_str(a.shape()), " ", dtype_name(a.dtype()), " does not match ", shape_str(shape()),
                         " ", dtype_name(dtype())));
  impl().data.copy_(a);
}

// ---- method forms ------------------------------------------------------------------------------------
Tensor Tensor::exp() const { return dgm::exp(*this); }
Tensor Tensor::log() const { return dgm::log(*this); }
Tensor Tensor::sqrt() const { return dgm::sqrt(*this); }
Tensor Tensor::abs() const { return dgm::abs(*this); }
Tensor Tensor::tanh() const { return dgm::tanh(*this); }
Tensor Tensor::sigmoid() const { return dgm::sigmoid(*this); }
Tensor Tensor::relu() const { return dgm::relu(*this); }
Tensor Tensor::pow(double p) const { return dgm::pow(*this, p); }
Tensor Tensor::sum(std::vector<int64_t> dims, bool keepdim) const { return dgm::sum(*this, std::move(dims), keepdim); }
Tensor Tensor::mean(std::vector<int64_t> dims, bool keepdim) const { return dgm::mean(*this, std::move(dims), keepdim); }
Tensor Tensor::var(std::vector<int64_t> dims, int64_t correction, bool keepdim) const {
  return dgm::var(*this, std::move(dims), correction, keepdim);
}
Tensor Tensor::std(std::vector<int64_t> dims, int64_t correction, bool keepdim) const {
  return dgm::std(*this, std::move(dims), correction, keepdim);
}
Tensor Tensor::reshape(const Shape& s) const { return dgm::reshape(*this, s); }
Tensor Tensor::view(const Shape& s) const { return dgm::view(*this, s); }
Tensor Tensor::flatten(int64_t start, int64_t end) const { return dgm::flatten(*this, start, end); }
Tensor Tensor::permute(const std::vector<int64_t>& dims) const { return dgm::permute(*this, dims); }
Tensor Tensor::transpose(int64_t d0, int64_t d1) const { return dgm::transpose(*this, d0, d1); }
Tensor Tensor::t() const { return dim() < 2 ? *this : dgm::transpose(*this, -2, -1); }
Tensor Tensor::unsqueeze(int64_t d) const { return dgm::unsqueeze(*this, d); }
Tensor Tensor::squeeze(int64_t d) const { return dgm::squeeze(*this, d); }
Tensor Tensor::expand(const Shape& s) const { return dgm::expand(*this, s); }
Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const { return dgm::slice(*this, d, start, end, step); }
Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const { return dgm::narrow(*this, d, start, length); }
Tensor Tensor::select(int64_t d, int64_t i) const { return dgm::select(*this, d, i); }
Tensor Tensor::contiguous() const { return dgm::contiguous(*this); }
Tensor Tensor::clone() const { return dgm::clone(*this); }
Tensor Tensor::to(DType t) const { return dgm::to(*this, t); }
Tensor Tensor::matmul(const Tensor& o) const { return dgm::matmul(*this, o); }

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  std::string suffix;
  if (t.grad_fn()) suffix = cat(", grad_fn=<", t.grad_fn()->name(), ">");
  else if (t.requires_grad()) suffix = ", requires_grad=true";
  return os << format_array(t.array(), suffix);
}

// ---- creation ------------------------------------------------------------------------------------------
static Tensor make(Array a, const TensorOptions& o) { return Tensor(std::move(a), o.requires_grad); }
Tensor empty(const Shape& s, TensorOptions o) { return make(Array::empty(s, o.dtype), o); }
Tensor zeros(const Shape& s, TensorOptions o) { return make(Array::zeros(s, o.dtype), o); }
Tensor ones(const Shape& s, TensorOptions o) { return make(Array::ones(s, o.dtype), o); }
Tensor full(const Shape& s, double v, TensorOptions o) { return make(Array::full(s, v, o.dtype), o); }
Tensor scalar_tensor(double v, TensorOptions o) { return make(Array::scalar(v, o.dtype), o); }
Tensor zeros_like(const Tensor& t) { return Tensor(Array::zeros(t.shape(), t.dtype())); }
Tensor ones_like(const Tensor& t) { return Tensor(Array::ones(t.shape(), t.dtype())); }
Tensor arange(double end, TensorOptions o) { return make(Array::arange(0, end, 1, o.dtype), o); }
Tensor arange(double start, double end, double step, TensorOptions o) { return make(Array::arange(start, end, step, o.dtype), o); }
Tensor linspace(double start, double end, int64_t steps, TensorOptions o) { return make(Array::linspace(start, end, steps, o.dtype), o); }
Tensor eye(int64_t n, TensorOptions o) { return make(Array::eye(n, o.dtype), o); }
Tensor tensor(std::initializer_list<double> values, TensorOptions o) { return make(Array::from_list(values, o.dtype), o); }
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, TensorOptions o) { return make(Array::from_list(rows, o.dtype), o); }
static Generator& gen_or_default(Generator* g) { return g ? *g : default_generator(); }
Tensor rand(const Shape& s, TensorOptions o, Generator* g) { return make(cpu::rand(s, gen_or_default(g), o.dtype), o); }
Tensor randn(const Shape& s, TensorOptions o, Generator* g) { return make(cpu::randn(s, gen_or_default(g), o.dtype), o); }
Tensor randint(int64_t low, int64_t high, const Shape& s, Generator* g) { return Tensor(cpu::randint(low, high, s, gen_or_default(g))); }
Tensor bernoulli(const Tensor& p, Generator* g) { return Tensor(cpu::bernoulli(p.array(), gen_or_default(g))); }
Tensor multinomial(const Tensor& probs, int64_t n, bool replacement, Generator* g) {
  return Tensor(cpu::multinomial(probs.array(), n, replacement, gen_or_default(g)));
}

}  // namespace dgm
