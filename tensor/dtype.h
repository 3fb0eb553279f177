// Element types. float32 is the default; float64 is used for gradient checks; int64 holds indices
// and pixel values; bool is the result of comparisons.
#pragma once
#include <cstdint>
#include <string>

#include <dgm/tensor/errors.h>

namespace dgm {

enum class DType : uint8_t { Bool, Int64, Float32, Float64 };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Bool: return "bool";
    case DType::Int64: return "int64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
  }
  return "?";
}
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

inline size_t itemsize(DType t) {
  switch (t) {
    case DType::Bool: return 1;
    case DType::Int64: return 8;
    case DType::Float32: return 4;
    case DType::Float64: return 8;
  }
  return 0;
}
inline bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64; }

// PyTorch's promotion for two tensors: bool < int64 < float32 < float64.
inline DType promote_types(DType a, DType b) { return static_cast<uint8_t>(a) > static_cast<uint8_t>(b) ? a : b; }

// The C++ type stored for each dtype (bool is stored as one byte).
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }

// Calls fn.template operator()<T>() with T the C++ type of `t`:
//   dispatch(x.dtype(), [&]<class T>() { ... T* p = x.data<T>(); ... });
template <class Fn>
decltype(auto) dispatch(DType t, Fn&& fn) {
  switch (t) {
    case DType::Bool: return fn.template operator()<bool>();
    case DType::Int64: return fn.template operator()<int64_t>();
    case DType::Float32: return fn.template operator()<float>();
    case DType::Float64: return fn.template operator()<double>();
  }
  throw DTypeError("dispatch: unknown dtype");
}
// The same for ops defined only on floating types; `op` names the op in the error.
template <class Fn>
decltype(auto) dispatch_floating(DType t, const char* op, Fn&& fn) {
  if (t == DType::Float32) return fn.template operator()<float>();
  if (t == DType::Float64) return fn.template operator()<double>();
  throw DTypeError(cat(op, ": expected a floating dtype (float32 or float64), got ", dtype_name(t)));
}
// Numeric = int64, float32, float64 (arithmetic is not defined on bool, as in PyTorch's sub/neg).
template <class Fn>
decltype(auto) dispatch_numeric(DType t, const char* op, Fn&& fn) {
  if (t == DType::Float32) return fn.template operator()<float>();
  if (t == DType::Float64) return fn.template operator()<double>();
  if (t == DType::Int64) return fn.template operator()<int64_t>();
  throw DTypeError(cat(op, ": expected a numeric dtype (int64, float32, float64), got ", dtype_name(t)));
}

}  // namespace dgm
