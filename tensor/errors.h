// Typed errors. Every user mistake becomes one of these, with a message that names the op,
// the shapes/dtypes involved and what was expected. The CLI turns them into one line on stderr.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace dgm {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ShapeError : Error { using Error::Error; };     // incompatible / invalid shapes
struct DTypeError : Error { using Error::Error; };     // unsupported or mismatched dtypes
struct IndexError : Error { using Error::Error; };     // dim or index out of range
struct ValueError : Error { using Error::Error; };     // bad argument value (negative size, p outside [0,1], ...)
struct AutogradError : Error { using Error::Error; };  // backward misuse, in-place modification of saved tensors
struct AnomalyError : Error { using Error::Error; };   // NaN/Inf found in anomaly mode
struct IOError : Error { using Error::Error; };        // a file cannot be opened / written
struct FormatError : Error { using Error::Error; };    // a file is corrupt or not in the expected format
struct MemoryError : Error { using Error::Error; };    // an allocation above a limit, or the system is out of memory

// Builds a message from pieces: throw ShapeError(cat("matmul: ", a, " vs ", b)).
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace dgm
