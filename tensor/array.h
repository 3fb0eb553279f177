// Array: the raw N-d array of dgm — a typed view (shape, strides, offset) into shared Storage.
// It knows nothing about gradients; autograd's Tensor wraps an Array and records the graph.
// Views (reshape, permute, slice, expand, ...) share storage and never copy.
#pragma once
#include <array>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <vector>

#include <dgm/tensor/dtype.h>
#include <dgm/tensor/shape.h>
#include <dgm/tensor/storage.h>

namespace dgm {

class Generator;

class Array {
 public:
  Array() = default;  // an undefined array (defined() == false)
  Array(std::shared_ptr<Storage> storage, Shape shape, Strides strides, int64_t offset, DType dtype);

  // ---- creation ----------------------------------------------------------------------------
  static Array empty(const Shape& shape, DType dtype = DType::Float32);
  static Array zeros(const Shape& shape, DType dtype = DType::Float32);
  static Array ones(const Shape& shape, DType dtype = DType::Float32);
  static Array full(const Shape& shape, double value, DType dtype = DType::Float32);
  static Array scalar(double value, DType dtype = DType::Float32);  // 0-dim
  static Array arange(double start, double end, double step = 1, DType dtype = DType::Float32);
  static Array linspace(double start, double end, int64_t steps, DType dtype = DType::Float32);
  static Array eye(int64_t n, DType dtype = DType::Float32);
  template <class T>
  static Array from_vector(const std::vector<T>& values, const Shape& shape);
  static Array from_list(std::initializer_list<double> values, DType dtype = DType::Float32);
  static Array from_list(std::initializer_list<std::initializer_list<double>> rows, DType dtype = DType::Float32);

  // ---- metadata ----------------------------------------------------------------------------
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  DType dtype() const { return dtype_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const { return numel_of(shape_); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  bool shares_storage(const Array& o) const { return storage_ == o.storage_; }

  // Typed pointer to the first element (checks the dtype).
  template <class T>
  T* data() const {
    if (dtype_of<T>() != dtype_)
      throw DTypeError(cat("data<", dtype_name(dtype_of<T>()), ">: array has dtype ", dtype_name(dtype_)));
    return static_cast<T*>(storage_->data) + offset_;
  }
  void* raw_data() const { return static_cast<char*>(storage_->data) + offset_ * itemsize(dtype_); }

  // Value of a one-element array, converted to double / T.
  double item() const;
  template <class T>
  T item() const {
    double v = item();  // checks that there is one element
    if constexpr (std::is_same_v<T, int64_t>)
      if (dtype_ == DType::Int64) return *data<int64_t>();  // exact beyond 2^53
    return static_cast<T>(v);
  }
  // All values in row-major order, converted to T.
  template <class T>
  std::vector<T> to_vector() const;

  // ---- views (no copy) ---------------------------------------------------------------------
  Array view(const Shape& shape) const;     // needs compatible strides; -1 infers one size
  Array reshape(const Shape& shape) const;  // view if possible, otherwise a contiguous copy
  Array permute(const std::vector<int64_t>& dims) const;
  Array transpose(int64_t d0, int64_t d1) const;
  Array t() const;  // transpose of a 2-D array (mT: last two dims)
  Array unsqueeze(int64_t d) const;
  Array squeeze(int64_t d) const;  // removes dim d if its size is 1
  Array squeeze() const;           // removes all dims of size 1
  Array expand(const Shape& shape) const;  // broadcast view: size-1 dims get stride 0
  Array slice(int64_t d, int64_t start, int64_t end, int64_t step = 1) const;  // python-style clamping
  Array narrow(int64_t d, int64_t start, int64_t length) const;
  Array select(int64_t d, int64_t index) const;
  Array as_strided(const Shape& shape, const Strides& strides, int64_t offset) const;

  // ---- copies --------------------------------------------------------------------------------
  Array contiguous() const;  // itself if already contiguous
  Array clone() const;       // always a fresh contiguous copy
  Array to(DType dtype) const;  // cast (itself if same dtype)

  // ---- in place (each bumps the storage's version counter) -----------------------------------
  void copy_(const Array& src);  // src broadcast to this shape, cast to this dtype
  void fill_(double value);
  void bump_version() const { ++storage_->version; }
  uint64_t version() const { return storage_->version; }

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Strides strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::Float32;
};

std::ostream& operator<<(std::ostream& os, const Array& a);
// Formats values like PyTorch: "tensor([[1.0000, 2.0000], ...])"; `suffix` is appended inside.
std::string format_array(const Array& a, const std::string& suffix = "");

// ---- strided iteration ----------------------------------------------------------------------
// Calls fn(offsets) for every index of `shape` in row-major order, where offsets[k] is the
// element offset into operand k given its strides. Plain loop; hot paths special-case contiguity.
template <size_t N, class Fn>
void for_each_offset(const Shape& shape, const std::array<const Strides*, N>& strides, Fn&& fn) {
  int64_t n = numel_of(shape);
  if (n == 0) return;
  size_t nd = shape.size();
  std::vector<int64_t> idx(nd, 0);
  std::array<int64_t, N> off{};
  for (int64_t i = 0; i < n; ++i) {
    fn(off);
    for (size_t d = nd; d-- > 0;) {  // odometer increment
      if (++idx[d] < shape[d]) {
        for (size_t k = 0; k < N; ++k) off[k] += (*strides[k])[d];
        break;
      }
      for (size_t k = 0; k < N; ++k) off[k] -= (*strides[k])[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

// Strides of `a` viewed as broadcast to `shape` (0 where `a` is broadcast).
Strides broadcast_strides(const Array& a, const Shape& shape);

template <class T>
Array Array::from_vector(const std::vector<T>& values, const Shape& shape) {
  if (checked_numel(shape, "from_vector") != static_cast<int64_t>(values.size()))
    throw ShapeError(cat("from_vector: ", values.size(), " values do not fill shape ", shape_str(shape)));
  Array a = empty(shape, dtype_of<T>());
  if constexpr (std::is_same_v<T, bool>) {
    for (size_t i = 0; i < values.size(); ++i) a.data<bool>()[i] = values[i];
  } else {
    if (!values.empty()) std::memcpy(a.raw_data(), values.data(), values.size() * sizeof(T));
  }
  return a;
}

template <class T>
std::vector<T> Array::to_vector() const {
  std::vector<T> out;
  out.reserve(numel());
  dispatch(dtype_, [&]<class S>() {
    const S* p = static_cast<const S*>(storage_->data) + offset_;
    if (is_contiguous()) {  // the common case: one plain loop
      out.assign(p, p + numel());
      return;
    }
    for_each_offset<1>(shape_, {&strides_}, [&](const std::array<int64_t, 1>& o) { out.push_back(static_cast<T>(p[o[0]])); });
  });
  return out;
}

}  // namespace dgm
