// Tensor: an Array plus what reverse-mode autograd needs (requires_grad, .grad, the node that
// created it). Copies of a Tensor are handles to the same tensor, as in PyTorch.
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include <dgm/autograd/ops_list.h>
#include <dgm/tensor/array.h>
#include <dgm/tensor/random.h>

namespace dgm {

class Node;
class Tensor;

struct TensorImpl {
  Array data;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;       // accumulated gradient (leaves, and non-leaves with retain_grad)
  std::shared_ptr<Node> grad_fn;          // the node that produced this tensor (null for leaves)
  uint32_t output_nr = 0;                 // which output of grad_fn this is
  std::weak_ptr<Node> grad_accumulator;   // leaves: the node that accumulates into .grad
  bool retains_grad = false;
};

struct TensorOptions {
  DType dtype = DType::Float32;
  bool requires_grad = false;
};

class Tensor {
 public:
  Tensor() = default;  // undefined
  explicit Tensor(Array data, bool requires_grad = false);
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- data and metadata -------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Array& array() const { return impl().data; }
  const Shape& shape() const { return array().shape(); }
  int64_t dim() const { return array().dim(); }
  int64_t size(int64_t d) const { return array().size(d); }
  int64_t numel() const { return array().numel(); }
  DType dtype() const { return array().dtype(); }
  bool is_contiguous() const { return array().is_contiguous(); }
  template <class T>
  T* data() const { return array().data<T>(); }
  double item() const { return array().item(); }
  template <class T>
  T item() const { return array().item<T>(); }
  template <class T>
  std::vector<T> to_vector() const { return array().to_vector<T>(); }
  uint64_t version() const { return array().version(); }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  // ---- autograd ------------------------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& requires_grad_(bool on = true);  // only on leaves
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  uint32_t output_nr() const { return impl().output_nr; }
  Tensor grad() const;             // undefined until a backward reaches this tensor
  void set_grad(const Tensor& g);  // e.g. to reset or clip
  void zero_grad() { impl().grad.reset(); }  // sets .grad to undefined (PyTorch's set_to_none)
  void retain_grad();              // keep .grad of a non-leaf tensor after backward
  // Gradient of this tensor (a scalar, or with `grad` of the same shape) w.r.t. the leaves.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false, bool create_graph = false) const;
  Tensor detach() const;  // same data, no history

  // ---- in place (refused when autograd would need to record them) ----------------------------
  Tensor& fill_(double v);
  Tensor& zero_() { return fill_(0); }
  Tensor& copy_(const Tensor& src);
  Tensor& add_(const Tensor& o, double alpha = 1);
  Tensor& sub_(const Tensor& o) { return add_(o, -1); }
  Tensor& mul_(const Tensor& o);
  Tensor& mul_(double s);
  Tensor& div_(const Tensor& o);
  Tensor& masked_fill_(const Tensor& mask, double value);
  // Replaces the data wholesale (for optimisers and loading checkpoints); bumps the version.
  void set_data(const Array& a);

  // ---- method forms of the differentiable ops (see autograd/ops.h) ---------------------------
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor abs() const;
  Tensor tanh() const;
  Tensor sigmoid() const;
  Tensor relu() const;
  Tensor pow(double p) const;
  Tensor sum(std::vector<int64_t> dims = {}, bool keepdim = false) const;
  Tensor mean(std::vector<int64_t> dims = {}, bool keepdim = false) const;
  Tensor var(std::vector<int64_t> dims = {}, int64_t correction = 1, bool keepdim = false) const;
  Tensor std(std::vector<int64_t> dims = {}, int64_t correction = 1, bool keepdim = false) const;  // x.std({1}): no clash with namespace std
  Tensor reshape(const Shape& s) const;
  Tensor view(const Shape& s) const;
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // swaps the last two dims
  Tensor unsqueeze(int64_t d) const;
  Tensor squeeze(int64_t d) const;
  Tensor expand(const Shape& s) const;
  Tensor slice(int64_t d, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor narrow(int64_t d, int64_t start, int64_t length) const;
  Tensor select(int64_t d, int64_t i) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType t) const;
  Tensor matmul(const Tensor& o) const;

 private:
  TensorImpl& impl() const {
    if (!impl_) throw ValueError("use of an undefined tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
  friend struct TensorAccess;
};

// Internal access for autograd's own machinery.
struct TensorAccess {
  static const std::shared_ptr<TensorImpl>& impl(const Tensor& t) { return t.impl_; }
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- grad mode ------------------------------------------------------------------------------------
bool is_grad_enabled();
void set_grad_enabled(bool on);
struct NoGradGuard {  // no graph is recorded in its scope (evaluation, sampling, optimiser steps)
  NoGradGuard() : prev_(is_grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};
struct EnableGradGuard {
  EnableGradGuard() : prev_(is_grad_enabled()) { set_grad_enabled(true); }
  ~EnableGradGuard() { set_grad_enabled(prev_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

// ---- anomaly mode ---------------------------------------------------------------------------------
// While on, every op checks its forward output and every backward node its gradients for NaN/Inf,
// and throws AnomalyError naming the op that produced the first one.
bool is_anomaly_enabled();
void set_anomaly_enabled(bool on);
struct AnomalyGuard {
  AnomalyGuard() : prev_(is_anomaly_enabled()) { set_anomaly_enabled(true); }
  ~AnomalyGuard() { set_anomaly_enabled(prev_); }
  AnomalyGuard(const AnomalyGuard&) = delete;
  AnomalyGuard& operator=(const AnomalyGuard&) = delete;

 private:
  bool prev_;
};

// ---- creation -------------------------------------------------------------------------------------
Tensor empty(const Shape& shape, TensorOptions o = {});
Tensor zeros(const Shape& shape, TensorOptions o = {});
Tensor ones(const Shape& shape, TensorOptions o = {});
Tensor full(const Shape& shape, double value, TensorOptions o = {});
Tensor scalar_tensor(double value, TensorOptions o = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor arange(double end, TensorOptions o = {});
Tensor arange(double start, double end, double step = 1, TensorOptions o = {});
Tensor linspace(double start, double end, int64_t steps, TensorOptions o = {});
Tensor eye(int64_t n, TensorOptions o = {});
Tensor tensor(std::initializer_list<double> values, TensorOptions o = {});
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, TensorOptions o = {});
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, bool requires_grad = false) {
  return Tensor(Array::from_vector(values, shape), requires_grad);
}
// Random tensors; `gen` defaults to the global generator (dgm::manual_seed).
Tensor rand(const Shape& shape, TensorOptions o = {}, Generator* gen = nullptr);
Tensor randn(const Shape& shape, TensorOptions o = {}, Generator* gen = nullptr);
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator* gen = nullptr);
Tensor bernoulli(const Tensor& p, Generator* gen = nullptr);
Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement = false, Generator* gen = nullptr);

}  // namespace dgm
