// Shapes and strides. A tensor of shape (d0, ..., dn-1) with strides (s0, ..., sn-1) stores
// element (i0, ..., in-1) at offset + i0*s0 + ... + in-1*sn-1 in its storage (in elements).
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "tensor/errors.h"

namespace dgm {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

inline int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// Row-major ("C") strides: the last dim moves fastest.
inline Strides contiguous_strides(const Shape& s) {
  Strides st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
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
