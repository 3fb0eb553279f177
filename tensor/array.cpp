#include <dgm/tensor/array.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include <dgm/tensor/loops.h>

namespace dgm {

// ---- construction -----------------------------------------------------------------------------
Array::Array(std::shared_ptr<Storage> storage, Shape shape, Strides strides, int64_t offset, DType dtype)
    : storage_(std::move(storage)), shape_(std::move(shape)), strides_(std::move(strides)), offset_(offset), dtype_(dtype) {}

// Every creation goes through here: the shape is checked (sizes >= 0, element and byte counts
// without overflow) before a byte is allocated.
Array Array::empty(const Shape& shape, DType dtype) {
  auto st = std::make_shared<Storage>(checked_nbytes(shape, itemsize(dtype), "empty"));
  return Array(std::move(st), shape, contiguous_strides(shape), 0, dtype);
}
Array Array::zeros(const Shape& shape, DType dtype) {
  Array a = empty(shape, dtype);
  // Split across threads from 256 KiB on: one memset of a large gradient buffer (attention's dK and
  // dV, 6 MiB each in ImageGPT's backward) was a serial section of the step, the other threads idle.
  auto* bytes = static_cast<unsigned char*>(a.raw_data());
  cpu::parallel_for(a.numel() * itemsize(dtype), [bytes](int64_t b, int64_t e) { std::memset(bytes + b, 0, size_t(e - b)); },
                    int64_t{1} << 18);
  return a;
}
Array Array::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }
Array Array::full(const Shape& shape, double value, DType dtype) {
  Array a = empty(shape, dtype);
  a.fill_(value);
  a.storage_->version = 0;
  return a;
}
Array Array::scalar(double value, DType dtype) { return full({}, value, dtype); }

Array Array::arange(double start, double end, double step, DType dtype) {
  if (step == 0) throw ValueError("arange: step must be nonzero");
  if ((end - start) / step < 0) throw ValueError(cat("arange: empty range from ", start, " to ", end, " with step ", step));
  const double count = std::ceil((end - start) / step);
  if (!(count < 0x1p62))  // also NaN (an infinite or NaN bound)
    throw ShapeError(cat("arange: ", start, " to ", end, " with step ", step, " gives ", count, " elements, more than 2^62"));
  int64_t n = static_cast<int64_t>(count);
  Array a = empty({n}, dtype);
  dispatch(dtype, [&]<class T>() {
    T* p = a.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + i * step);
  });
  return a;
}
Array Array::linspace(double start, double end, int64_t steps, DType dtype) {
  if (steps < 0) throw ValueError(cat("linspace: steps must be >= 0, got ", steps));
  Array a = empty({steps}, dtype);
  double h = steps > 1 ? (end - start) / (steps - 1) : 0;
  dispatch(dtype, [&]<class T>() {
    T* p = a.data<T>();
    for (int64_t i = 0; i < steps; ++i) p[i] = static_cast<T>(i == steps - 1 && steps > 1 ? end : start + i * h);
  });
  return a;
}
Array Array::eye(int64_t n, DType dtype) {
  Array a = zeros({n, n}, dtype);
  dispatch(dtype, [&]<class T>() {
    for (int64_t i = 0; i < n; ++i) a.data<T>()[i * n + i] = static_cast<T>(1);
  });
  return a;
}
Array Array::from_list(std::initializer_list<double> values, DType dtype) {
  return from_vector(std::vector<double>(values), {static_cast<int64_t>(values.size())}).to(dtype);
}
Array Array::from_list(std::initializer_list<std::initializer_list<double>> rows, DType dtype) {
  std::vector<double> v;
  int64_t cols = rows.size() ? static_cast<int64_t>(rows.begin()->size()) : 0;
  for (auto& r : rows) {
    if (static_cast<int64_t>(r.size()) != cols) throw ShapeError("from_list: rows have different lengths");
    v.insert(v.end(), r.begin(), r.end());
  }
  return from_vector(v, {static_cast<int64_t>(rows.size()), cols}).to(dtype);
}

// ---- metadata -----------------------------------------------------------------------------------
// wrap_dim accepts dim 0 / -1 of a 0-dim array (as PyTorch does for reductions); ops that index
// into a dim cannot use it there.
static int64_t wrap_indexed_dim(int64_t d, int64_t ndim, const char* op) {
  if (ndim == 0) throw IndexError(cat(op, ": dim ", d, " cannot be used on a 0-dim tensor (it has no dims)"));
  return wrap_dim(d, ndim, op);
}

int64_t Array::size(int64_t d) const { return shape_[wrap_indexed_dim(d, dim(), "size")]; }
int64_t Array::stride(int64_t d) const { return strides_[wrap_indexed_dim(d, dim(), "stride")]; }
bool Array::is_contiguous() const {
  if (numel() == 0) return true;  // no element to misplace (as in PyTorch)
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

double Array::item() const {
  if (numel() != 1) throw ShapeError(cat("item: expected a tensor with one element, got shape ", shape_str(shape_)));
  return dispatch(dtype_, [&]<class T>() { return static_cast<double>(*(static_cast<const T*>(storage_->data) + offset_)); });
}

Strides broadcast_strides(const Array& a, const Shape& shape) {
  if (a.shape().size() > shape.size())
    throw ShapeError(cat("expand: shape ", shape_str(a.shape()), " cannot be broadcast to ", shape_str(shape)));
  Strides st(shape.size(), 0);
  size_t lead = shape.size() - a.shape().size();
  for (size_t i = 0; i < a.shape().size(); ++i) {
    if (a.shape()[i] == shape[lead + i]) st[lead + i] = a.strides()[i];
    else if (a.shape()[i] != 1)
      throw ShapeError(cat("expand: shape ", shape_str(a.shape()), " cannot be broadcast to ", shape_str(shape)));
  }
  return st;
}

// ---- views --------------------------------------------------------------------------------------
static Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Shape& from) {
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) throw ShapeError(cat(op, ": only one dimension can be -1, got ", shape_str(shape)));
      infer = static_cast<int64_t>(i);
    } else if (s[i] < 0) {
      throw ShapeError(cat(op, ": invalid size ", s[i], " in ", shape_str(shape)));
    } else {
      known = checked_mul(known, s[i], op);
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      throw ShapeError(cat(op, ": shape ", shape_str(shape), " is invalid for input of shape ", shape_str(from)));
    s[infer] = numel / known;
  }
  if (checked_numel(s, op) != numel)
    throw ShapeError(cat(op, ": shape ", shape_str(shape), " is invalid for input of shape ", shape_str(from), " (",
                         numel, " elements)"));
  return s;
}

// Strides for viewing this array with a new shape without copying, if possible (as torch.view).
// Walk the old dims from the back in "chunks" that are contiguous among themselves; each chunk
// must be covered exactly by a run of new dims, which then get strides inside that chunk.
static bool view_strides(const Shape& old_shape, const Strides& old_strides, const Shape& new_shape, Strides& out) {
  out.assign(new_shape.size(), 1);
  if (numel_of(old_shape) == 0 || old_shape.empty()) {
    out = contiguous_strides(new_shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t base = old_strides.back(), chunk_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    chunk_numel *= old_shape[d];
    bool chunk_ends = d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != chunk_numel * base);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < chunk_numel || new_shape[view_d] == 1)) {
      out[view_d] = view_numel * base;
      view_numel *= new_shape[view_d];
      --view_d;
    }
    if (view_numel != chunk_numel) return false;
    if (d > 0) {
      base = old_strides[d - 1];
      chunk_numel = view_numel = 1;
    }
  }
  return view_d == -1;
}

Array Array::view(const Shape& shape) const {
  Shape s = infer_shape(shape, numel(), "view", shape_);
  Strides st;
  if (!view_strides(shape_, strides_, s, st))
    throw ShapeError(cat("view: shape ", shape_str(s), " is incompatible with the strides of the input (shape ",
                         shape_str(shape_), "); use reshape (which copies) or call contiguous() first"));
  return Array(storage_, s, st, offset_, dtype_);
}
Array Array::reshape(const Shape& shape) const {
  Shape s = infer_shape(shape, numel(), "reshape", shape_);
  Strides st;
  if (view_strides(shape_, strides_, s, st)) return Array(storage_, s, st, offset_, dtype_);
  return contiguous().view(s);
}
Array Array::permute(const std::vector<int64_t>& dims) const {
  if (static_cast<int64_t>(dims.size()) != dim())
    throw ShapeError(cat("permute: got ", dims.size(), " dims for a tensor of shape ", shape_str(shape_)));
  Shape s(dims.size());
  Strides st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    if (seen[d]) throw ShapeError(cat("permute: dim ", d, " repeated"));
    seen[d] = true;
    s[i] = shape_[d];
    st[i] = strides_[d];
  }
  return Array(storage_, s, st, offset_, dtype_);
}
Array Array::transpose(int64_t d0, int64_t d1) const {
  d0 = wrap_dim(d0, dim(), "transpose");
  d1 = wrap_dim(d1, dim(), "transpose");
  if (dim() == 0) return *this;  // torch.tensor(1.).transpose(0, -1) is the tensor itself
  Shape s = shape_;
  Strides st = strides_;
  std::swap(s[d0], s[d1]);
  std::swap(st[d0], st[d1]);
  return Array(storage_, s, st, offset_, dtype_);
}
Array Array::t() const {
  if (dim() < 2) return *this;
  return transpose(-2, -1);
}
Array Array::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape_;
  Strides st = strides_;
  int64_t stride = d < dim() ? strides_[d] * shape_[d] : 1;
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, stride);
  return Array(storage_, s, st, offset_, dtype_);
}
Array Array::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (dim() == 0 || shape_[d] != 1) return *this;  // as torch.squeeze(dim): no-op on a dim of size > 1
  Shape s = shape_;
  Strides st = strides_;
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return Array(storage_, s, st, offset_, dtype_);
}
Array Array::squeeze() const {
  Shape s;
  Strides st;
  for (size_t i = 0; i < shape_.size(); ++i)
    if (shape_[i] != 1) s.push_back(shape_[i]), st.push_back(strides_[i]);
  return Array(storage_, s, st, offset_, dtype_);
}
Array Array::expand(const Shape& shape) const {
  if (shape.size() < shape_.size())
    throw ShapeError(cat("expand: target ", shape_str(shape), " has fewer dims than the input ", shape_str(shape_)));
  Shape s = shape;
  size_t lead = shape.size() - shape_.size();
  for (size_t i = 0; i < shape_.size(); ++i)
    if (s[lead + i] == -1) s[lead + i] = shape_[i];
  for (int64_t d : s)
    if (d < 0)
      throw ShapeError(cat("expand: invalid target ", shape_str(shape), " for an input of shape ", shape_str(shape_),
                           " (-1 is only allowed for existing dims)"));
  checked_numel(s, "expand");  // a broadcast view holds no memory, but its numel must still fit
  return Array(storage_, s, broadcast_strides(*this, s), offset_, dtype_);
}
Array Array::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_indexed_dim(d, dim(), "slice");
  if (step <= 0) throw ValueError(cat("slice: step must be positive, got ", step));
  int64_t n = shape_[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape_;
  Strides st = strides_;
  s[d] = end > start ? (end - start - 1) / step + 1 : 0;  // ceil((end - start) / step) without overflow
  st[d] = s[d] > 1 ? checked_mul(strides_[d], step, "slice", "stride") : strides_[d];
  return Array(storage_, s, st, offset_ + start * strides_[d], dtype_);
}
Array Array::narrow(int64_t d, int64_t start, int64_t length) const {
  int64_t dd = wrap_indexed_dim(d, dim(), "narrow");
  if (start < 0) start += shape_[dd];
  if (start < 0 || length < 0 || start > shape_[dd] || length > shape_[dd] - start)
    throw IndexError(cat("narrow: start ", start, " length ", length, " out of range for dim ", dd, " of size ", shape_[dd]));
  return slice(dd, start, start + length);
}
Array Array::select(int64_t d, int64_t index) const {
  d = wrap_indexed_dim(d, dim(), "select");
  int64_t n = shape_[d];
  if (index < -n || index >= n)
    throw IndexError(cat("select: index ", index, " out of range for dim ", d, " of size ", n));
  if (index < 0) index += n;
  Shape s = shape_;
  Strides st = strides_;
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return Array(storage_, s, st, offset_ + index * strides_[d], dtype_);
}
// Untrusted geometry: every element the view can reach must lie inside the storage.
Array Array::as_strided(const Shape& shape, const Strides& strides, int64_t offset) const {
  if (strides.size() != shape.size())
    throw ShapeError(cat("as_strided: ", strides.size(), " strides for shape ", shape_str(shape)));
  int64_t n = checked_numel(shape, "as_strided");
  if (n > 0) {
    int64_t lo = offset, hi = offset;  // the lowest and highest element offsets reached
    for (size_t i = 0; i < shape.size(); ++i) {
      int64_t reach = checked_mul(shape[i] - 1, strides[i], "as_strided", "offset");
      (reach < 0 ? lo : hi) = checked_add(reach < 0 ? lo : hi, reach, "as_strided", "offset");
    }
    const int64_t capacity = static_cast<int64_t>(storage_->nbytes / itemsize(dtype_));
    if (lo < 0 || hi >= capacity)
      throw IndexError(cat("as_strided: shape ", shape_str(shape), " with strides ", shape_str(strides), " and offset ", offset,
                           " reaches elements ", lo, "..", hi, ", outside the storage of ", capacity, " elements"));
  }
  return Array(storage_, shape, strides, offset, dtype_);
}

// ---- copies -------------------------------------------------------------------------------------
Array Array::contiguous() const { return is_contiguous() ? *this : clone(); }
Array Array::clone() const {
  Array out = empty(shape_, dtype_);
  out.copy_(*this);
  out.storage_->version = 0;
  return out;
}
Array Array::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Array out = empty(shape_, dtype);
  out.copy_(*this);
  out.storage_->version = 0;
  return out;
}

void Array::copy_(const Array& src) {
  Strides sst = broadcast_strides(src, shape_);
  dispatch(dtype_, [&]<class D>() {
    D* dst = static_cast<D*>(storage_->data) + offset_;
    dispatch(src.dtype_, [&]<class S>() {
      const S* sp = static_cast<const S*>(src.storage_->data) + src.offset_;
      if (is_contiguous() && src.is_contiguous() && src.shape_ == shape_) {
        const int64_t n = numel();
        auto copy = [&](int64_t b, int64_t e) {
          if constexpr (std::is_same_v<S, D>) {
            std::memmove(dst + b, sp + b, (e - b) * sizeof(D));
          } else {
            for (int64_t i = b; i < e; ++i) dst[i] = static_cast<D>(sp[i]);
          }
        };
        // Split across threads (a large clone or dtype change is otherwise one core's serial section
        // of a step: ReLU's backward mask, bool -> float, in PixelCNN) unless the two may overlap,
        // where only one memmove keeps its meaning.
        if (storage_ != src.storage_)
          cpu::parallel_for(n, copy, int64_t{1} << 16);
        else
          copy(0, n);
        return;
      }
      // strided: row by row along the last (merged) dim, rows split across threads
      cpu::for_each_row<2>(shape_, {strides_, sst}, [&](const std::array<int64_t, 2>& o, int64_t n, const std::array<int64_t, 2>& is) {
        D* d = dst + o[0];
        const S* s = sp + o[1];
        if (is[0] == 1 && is[1] == 1)
          for (int64_t i = 0; i < n; ++i) d[i] = static_cast<D>(s[i]);
        else
          for (int64_t i = 0; i < n; ++i) d[i * is[0]] = static_cast<D>(s[i * is[1]]);
      });
    });
  });
  bump_version();
}
void Array::fill_(double value) {
  dispatch(dtype_, [&]<class T>() {
    T* p = static_cast<T*>(storage_->data) + offset_;
    T v = static_cast<T>(value);
    if (is_contiguous()) std::fill(p, p + numel(), v);
    else for_each_offset<1>(shape_, {&strides_}, [&](const std::array<int64_t, 1>& o) { p[o[0]] = v; });
  });
  bump_version();
}

// ---- printing -----------------------------------------------------------------------------------
namespace {
struct Formatter {
  DType dtype;
  bool integral = true, sci = false;
  int width = 1;
  std::string fmt(double v) const {
    char buf[64];
    if (dtype == DType::Bool) return v != 0 ? "true" : "false";
    if (dtype == DType::Int64) return fmt_int(static_cast<int64_t>(v));
    if (std::isnan(v)) std::snprintf(buf, sizeof buf, "nan");
    else if (std::isinf(v)) std::snprintf(buf, sizeof buf, v > 0 ? "inf" : "-inf");
    else if (sci) std::snprintf(buf, sizeof buf, "%.4e", v);
    else if (integral) std::snprintf(buf, sizeof buf, "%.0f.", v);
    else std::snprintf(buf, sizeof buf, "%.4f", v);
    return buf;
  }
  // int64 values are printed from the integer itself: a double holds only 53 bits
  std::string fmt_int(int64_t v) const { return std::to_string(v); }
  std::string fmt_element(const Array& a) const { return dtype == DType::Int64 ? fmt_int(*a.data<int64_t>()) : fmt(a.item()); }
};
constexpr int64_t kSummarizeAbove = 1000, kEdgeItems = 3;

void print_rec(std::ostringstream& os, const Array& a, const Formatter& f, int indent, bool summarize) {
  if (a.dim() == 0) {
    std::string s = f.fmt_element(a);
    os << std::string(std::max<int>(0, f.width - static_cast<int>(s.size())), ' ') << s;
    return;
  }
  int64_t n = a.size(0);
  // as PyTorch: ", " between numbers; between sub-arrays a comma and dim - 1 newlines
  std::string sep = ", ";
  if (a.dim() > 1) {
    sep = ",";
    sep.append(a.dim() - 1, '\n');
    sep.append(indent + 1, ' ');
  }
  os << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      os << (a.dim() == 1 ? " ..." : "...") << sep;
      i = n - kEdgeItems;
    }
    print_rec(os, a.select(0, i), f, indent + 1, summarize);
    if (i + 1 < n) os << sep;
  }
  os << "]";
}
}  // namespace

std::string format_array(const Array& a, const std::string& suffix) {
  if (!a.defined()) return "tensor(undefined)";
  std::vector<double> vals = a.to_vector<double>();
  Formatter f{a.dtype()};
  double amax = 0, amin = INFINITY;
  for (double v : vals) {
    if (!std::isfinite(v)) continue;
    if (v != std::floor(v)) f.integral = false;
    amax = std::max(amax, std::abs(v));
    if (v != 0) amin = std::min(amin, std::abs(v));
  }
  // PyTorch's rule, on the nonzero finite |values|: max/min > 1000 or max > 1e8, or (non-integral) min < 1e-4
  bool any_nonzero = amin != INFINITY;
  if (is_floating(a.dtype()) && any_nonzero && (amax / amin > 1000 || amax > 1e8 || (!f.integral && amin < 1e-4))) f.sci = true;
  bool summarize = a.numel() > kSummarizeAbove;
  // as PyTorch, the common width of floats comes from the nonzero finite values (0, nan, inf are padded to it)
  if (a.dtype() == DType::Int64) {
    for (int64_t v : a.to_vector<int64_t>()) f.width = std::max<int>(f.width, static_cast<int>(f.fmt_int(v).size()));
  } else {
    for (double v : vals)
      if (!is_floating(a.dtype()) || (std::isfinite(v) && v != 0)) f.width = std::max<int>(f.width, static_cast<int>(f.fmt(v).size()));
  }
  std::ostringstream os;
  os << "tensor(";
  if (a.numel() == 0) os << "[]";
  else print_rec(os, a, f, 7, summarize);
  os << ", shape=" << shape_str(a.shape()) << ", dtype=" << dtype_name(a.dtype()) << suffix << ")";
  return os.str();
}
std::ostream& operator<<(std::ostream& os, const Array& a) { return os << format_array(a); }

}  // namespace dgm
