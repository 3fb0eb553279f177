// Shapes and strides. A tensor of shape (d0, ..., dn-1) with strides (s0, ..., sn-1) stores
// element (i0, ..., in-1) at offset + i0*s0 + ... + in-1*sn-1 in its storage (in elements).
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <dgm/tensor/errors.h>

namespace dgm {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

inline std::string shape_str(const Shape& s);

// The number of elements. Every Array's shape has passed checked_numel (below) when it was made,
// so this plain product cannot overflow for one; for a shape that came from outside (a file, a
// config, a sum of sizes), call checked_numel.
inline int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// Size arithmetic on untrusted numbers: ShapeError naming `op` (and `what`) on int64 overflow.
inline int64_t checked_mul(int64_t a, int64_t b, const char* op, const char* what = "size") {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw ShapeError(cat(op, ": ", what, " ", a, " * ", b, " overflows int64"));
  return r;
}
inline int64_t checked_add(int64_t a, int64_t b, const char* op, const char* what = "size") {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw ShapeError(cat(op, ": ", what, " ", a, " + ", b, " overflows int64"));
  return r;
}

// Validates a shape before anything is made for it: every size >= 0 (ValueError, as errors.h
// says of negative sizes), and the product of the sizes (zeros skipped, so that contiguous strides
// fit too) at most 2^62, so that numel * itemsize and every stride and offset computed from it fit
// int64 (ShapeError). Returns numel. Both errors name `op` and the shape.
inline int64_t checked_numel(const Shape& s, const char* op) {
  constexpr int64_t kMaxExtent = int64_t{1} << 62;
  int64_t extent = 1;
  bool empty = false;
  for (int64_t d : s) {
    if (d < 0) throw ValueError(cat(op, ": negative size ", d, " in shape ", shape_str(s)));
    if (d == 0) {
      empty = true;
      continue;
    }
    if (__builtin_mul_overflow(extent, d, &extent) || extent > kMaxExtent)
      throw ShapeError(cat(op, ": shape ", shape_str(s), " has more than 2^62 elements (its size overflows)"));
  }
  return empty ? 0 : extent;
}

// Bytes of a contiguous array of `shape` and element size `itemsize`, checked as above.
inline size_t checked_nbytes(const Shape& s, size_t itemsize, const char* op) {
  size_t bytes;
  if (__builtin_mul_overflow(static_cast<size_t>(checked_numel(s, op)), itemsize, &bytes))
    throw ShapeError(cat(op, ": shape ", shape_str(s), " needs more bytes than fit in 64 bits"));
  return bytes;
}

// Row-major ("C") strides: the last dim moves fastest. A size 0 counts as 1 (as in PyTorch), so
// that for a shape that passed checked_numel every stride stays in range.
inline Strides contiguous_strides(const Shape& s) {
  Strides st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i] > 1 ? s[i] : 1;
  }
  return st;
}

inline std::string shape_str(const Shape& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  if (s.size() == 1) r += ",";
  return r + ")";
}

// Wraps a possibly negative dim into [0, ndim); `op` names the caller in the error.
inline int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  if (dim < lo || dim > hi)
    throw IndexError(cat(op, ": dim ", dim, " out of range for a tensor with ", ndim, " dims (expected ", lo, "..", hi, ")"));
  return dim < 0 ? dim + (ndim == 0 ? 1 : ndim) : dim;
}

// NumPy broadcasting: align from the right; sizes must match or be 1.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape r(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw ShapeError(cat(op, ": shapes ", shape_str(a), " and ", shape_str(b), " cannot be broadcast (dim ", i,
                           ": ", da, " vs ", db, ")"));
    r[i] = da == 1 ? db : da;
  }
  return r;
}

}  // namespace dgm
