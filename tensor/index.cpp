// Indexing and shaping kernels: gather/scatter, index_select/index_add, one_hot, cat/stack,
// tril/triu and constant padding.
#include <cstring>

#include <dgm/tensor/kernels.h>
#include <dgm/tensor/loops.h>

namespace dgm::cpu {

namespace {

void check_index_dtype(const Array& index, const char* op) {
  if (index.dtype() != DType::Int64)
    throw DTypeError(cat(op, ": index must be int64, got ", dtype_name(index.dtype())));
}

// These ops index into a dim, which a 0-dim tensor does not have (wrap_dim accepts dim 0 there).
void check_has_dims(const Array& x, const char* op) {
  if (x.dim() == 0) throw IndexError(cat(op, ": expected a tensor with at least 1 dim, got a 0-dim tensor"));
}

int64_t checked(int64_t v, int64_t n, const char* op, int64_t dim) {
  if (v < -n || v >= n) throw IndexError(cat(op, ": index ", v, " is out of bounds for dim ", dim, " with size ", n));
  return v < 0 ? v + n : v;
}

// Visits every multi-index of `shape` (row-major), passing the index vector.
template <class Fn>
void for_each_index(const Shape& shape, Fn&& fn) {
  int64_t n = numel_of(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    fn(idx);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

void check_gather_shapes(const Array& x, int64_t d, const Array& index, const char* op) {
  if (index.dim() != x.dim())
    throw ShapeError(cat(op, ": index has ", index.dim(), " dims but the input has ", x.dim(), " (shapes ",
                         shape_str(index.shape()), " and ", shape_str(x.shape()), ")"));
  for (int64_t i = 0; i < x.dim(); ++i)
    if (i != d && index.shape()[i] > x.shape()[i])
      throw ShapeError(cat(op, ": index shape ", shape_str(index.shape()), " is larger than the input ", shape_str(x.shape()),
                           " in dim ", i));
}

}  // namespace

Array gather(const Array& x, int64_t dim, const Array& index) {
  check_index_dtype(index, "gather");
  check_has_dims(x, "gather");
  int64_t d = wrap_dim(dim, x.dim(), "gather");
  check_gather_shapes(x, d, index, "gather");
  Array out = Array::empty(index.shape(), x.dtype());
  dispatch(x.dtype(), [&]<class T>() {
    const T* xp = static_cast<const T*>(x.storage()->data) + x.offset();
    const int64_t* ip = static_cast<const int64_t*>(index.storage()->data) + index.offset();
    T* op = out.data<T>();
    int64_t k = 0;
    for_each_index(index.shape(), [&](const std::vector<int64_t>& idx) {
      int64_t ioff = 0, xoff = 0;
      for (size_t i = 0; i < idx.size(); ++i) {
        ioff += idx[i] * index.strides()[i];
        if (static_cast<int64_t>(i) != d) xoff += idx[i] * x.strides()[i];
      }
      xoff += checked(ip[ioff], x.shape()[d], "gather", d) * x.strides()[d];
      op[k++] = xp[xoff];
    });
  });
  return out;
}

Array scatter_add(const Array& x, int64_t dim, const Array& index, const Array& src_in) {
  check_index_dtype(index, "scatter_add");
  check_has_dims(x, "scatter_add");
  int64_t d = wrap_dim(dim, x.dim(), "scatter_add");
  check_gather_shapes(x, d, index, "scatter_add");
  if (src_in.dim() != index.dim())
    throw ShapeError(cat("scatter_add: src shape ", shape_str(src_in.shape()), " and index shape ", shape_str(index.shape()),
                         " must have the same number of dims"));
  for (int64_t i = 0; i < index.dim(); ++i)
    if (index.shape()[i] > src_in.shape()[i])
      throw ShapeError(cat("scatter_add: index shape ", shape_str(index.shape()), " is larger than src ", shape_str(src_in.shape())));
  Array out = x.clone();
  Array src = src_in.to(x.dtype());
  dispatch_numeric(x.dtype(), "scatter_add", [&]<class T>() {
    const T* sp = static_cast<const T*>(src.storage()->data) + src.offset();
    const int64_t* ip = static_cast<const int64_t*>(index.storage()->data) + index.offset();
    T* op = out.data<T>();
    Strides ost = out.strides();
    for_each_index(index.shape(), [&](const std::vector<int64_t>& idx) {
      int64_t ioff = 0, soff = 0, ooff = 0;
      for (size_t i = 0; i < idx.size(); ++i) {
        ioff += idx[i] * index.strides()[i];
        soff += idx[i] * src.strides()[i];
        if (static_cast<int64_t>(i) != d) ooff += idx[i] * ost[i];
      }
      ooff += checked(ip[ioff], x.shape()[d], "scatter_add", d) * ost[d];
      op[ooff] += sp[soff];
    });
  });
  return out;
}

static std::vector<int64_t> index_values(const Array& index, int64_t n, const char* op, int64_t d) {
  check_index_dtype(index, op);
  if (index.dim() > 1) throw ShapeError(cat(op, ": index must be 1-D, got shape ", shape_str(index.shape())));
  std::vector<int64_t> v = index.to_vector<int64_t>();
  for (auto& i : v) i = checked(i, n, op, d);
  return v;
}

Array index_select(const Array& x, int64_t dim, const Array& index) {
  check_has_dims(x, "index_select");
  int64_t d = wrap_dim(dim, x.dim(), "index_select");
  std::vector<int64_t> idx = index_values(index, x.shape()[d], "index_select", d);
  Shape s = x.shape();
  s[d] = static_cast<int64_t>(idx.size());
  Array out = Array::empty(s, x.dtype());
  if (d == 0 && x.is_contiguous()) {  // embedding lookup: copy whole rows
    size_t row = static_cast<size_t>(x.numel() / std::max<int64_t>(x.shape()[0], 1)) * itemsize(x.dtype());
    const char* xp = static_cast<const char*>(x.raw_data());
    char* op = static_cast<char*>(out.raw_data());
    parallel_for(static_cast<int64_t>(idx.size()), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) std::memcpy(op + i * row, xp + idx[i] * row, row);
    }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(static_cast<int64_t>(row), 1)));
    return out;
  }
  for (size_t i = 0; i < idx.size(); ++i) out.select(d, static_cast<int64_t>(i)).copy_(x.select(d, idx[i]));
  return out;
}

Array index_add(const Array& x, int64_t dim, const Array& index, const Array& src_in) {
  check_has_dims(x, "index_add");
  int64_t d = wrap_dim(dim, x.dim(), "index_add");
  std::vector<int64_t> idx = index_values(index, x.shape()[d], "index_add", d);
  Shape expect = x.shape();
  expect[d] = static_cast<int64_t>(idx.size());
  if (src_in.shape() != expect)
    throw ShapeError(cat("index_add: src has shape ", shape_str(src_in.shape()), ", expected ", shape_str(expect)));
  Array out = x.clone();
  Array src = src_in.to(x.dtype()).contiguous();
  if (d == 0) {  // embedding backward: add whole rows (sequential: rows may repeat)
    int64_t row = x.numel() / std::max<int64_t>(x.shape()[0], 1);
    dispatch_numeric(x.dtype(), "index_add", [&]<class T>() {
      T* op = out.data<T>();
      const T* sp = src.data<T>();
      for (size_t i = 0; i < idx.size(); ++i) {
        T* o = op + idx[i] * row;
        const T* s = sp + i * row;
        for (int64_t j = 0; j < row; ++j) o[j] += s[j];
      }
    });
    return out;
  }
  for (size_t i = 0; i < idx.size(); ++i) {
    Array o = out.select(d, idx[i]);
    binary_(Binary::Add, o, src.select(d, static_cast<int64_t>(i)));
  }
  return out;
}

Array one_hot(const Array& index, int64_t num_classes) {
  check_index_dtype(index, "one_hot");
  if (num_classes <= 0) throw ValueError(cat("one_hot: num_classes must be positive, got ", num_classes));
  Shape s = index.shape();
  s.push_back(num_classes);
  Array out = Array::zeros(s, DType::Int64);
  std::vector<int64_t> v = index.to_vector<int64_t>();
  int64_t* op = out.data<int64_t>();
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] < 0 || v[i] >= num_classes)
      throw IndexError(cat("one_hot: class ", v[i], " out of range for num_classes ", num_classes));
    op[i * num_classes + v[i]] = 1;
  }
  return out;
}

Array concat(const std::vector<Array>& xs, int64_t dim) {
  if (xs.empty()) throw ValueError("cat: expected a non-empty list of tensors");
  for (size_t i = 0; i < xs.size(); ++i)
    if (xs[i].dim() == 0) throw ShapeError(cat("cat: tensor ", i, " is 0-dim and cannot be concatenated; use stack"));
  int64_t d = wrap_dim(dim, xs[0].dim(), "cat");
  DType t = xs[0].dtype();
  Shape s = xs[0].shape();
  s[d] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Array& x = xs[i];
    t = promote_types(t, x.dtype());
    bool ok = x.dim() == xs[0].dim();
    for (int64_t k = 0; ok && k < x.dim(); ++k) ok = k == d || x.shape()[k] == xs[0].shape()[k];
    if (!ok)
      throw ShapeError(cat("cat: tensor ", i, " has shape ", shape_str(x.shape()), " but tensor 0 has ", shape_str(xs[0].shape()),
                           "; sizes must match except in dim ", d));
    s[d] = checked_add(s[d], x.shape()[d], "cat");
  }
  Array out = Array::empty(s, t);
  int64_t at = 0;
  for (const Array& x : xs) {
    if (x.shape()[d] > 0) out.narrow(d, at, x.shape()[d]).copy_(x);
    at += x.shape()[d];
  }
  return out;
}

Array stack(const std::vector<Array>& xs, int64_t dim) {
  if (xs.empty()) throw ValueError("stack: expected a non-empty list of tensors");
  int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Array> us;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (xs[i].shape() != xs[0].shape())
      throw ShapeError(cat("stack: tensor ", i, " has shape ", shape_str(xs[i].shape()), " but tensor 0 has ", shape_str(xs[0].shape())));
    us.push_back(xs[i].unsqueeze(d));
  }
  return concat(us, d);
}

static Array tri(const Array& x, int64_t k, bool lower, const char* op) {
  if (x.dim() < 2) throw ShapeError(cat(op, ": expected at least 2 dims, got shape ", shape_str(x.shape())));
  Array out = x.clone();
  int64_t rows = x.shape()[x.dim() - 2], cols = x.shape()[x.dim() - 1], batch = x.numel() / std::max<int64_t>(rows * cols, 1);
  dispatch(x.dtype(), [&]<class T>() {
    T* p = out.data<T>();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j)
          if (lower ? j - i > k : j - i < k) p[(b * rows + i) * cols + j] = T{};
  });
  return out;
}
Array tril(const Array& x, int64_t k) { return tri(x, k, true, "tril"); }
Array triu(const Array& x, int64_t k) { return tri(x, k, false, "triu"); }

Array pad(const Array& x, const std::vector<int64_t>& pads, double value) {
  if (pads.size() % 2 != 0 || static_cast<int64_t>(pads.size() / 2) > x.dim())
    throw ShapeError(cat("pad: expected an even number of pads covering at most ", x.dim(), " dims, got ", pads.size()));
  Shape s = x.shape();
  Array src = x;
  std::vector<int64_t> left(x.dim(), 0);
  for (size_t p = 0; p < pads.size() / 2; ++p) {
    int64_t d = x.dim() - 1 - static_cast<int64_t>(p);
    int64_t lo = pads[2 * p], hi = pads[2 * p + 1];
    s[d] = checked_add(s[d], checked_add(lo, hi, "pad", "padding"), "pad");
    if (s[d] < 0) throw ShapeError(cat("pad: padding ", lo, ", ", hi, " makes dim ", d, " of size ", x.shape()[d], " negative"));
    // negative padding crops the source
    int64_t crop_lo = lo < 0 ? -lo : 0, crop_hi = hi < 0 ? -hi : 0;
    src = src.slice(d, crop_lo, x.shape()[d] - crop_hi);
    left[d] = lo > 0 ? lo : 0;
  }
  checked_numel(s, "pad");
  Array out = Array::full(s, value, x.dtype());
  Array dst = out;
  for (int64_t d = 0; d < x.dim(); ++d) dst = dst.narrow(d, left[d], src.shape()[d]);
  if (src.numel() > 0) dst.copy_(src);
  out.storage()->version = 0;
  return out;
}

}  // namespace dgm::cpu
