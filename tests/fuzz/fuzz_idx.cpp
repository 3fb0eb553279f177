// libFuzzer target: the IDX reader (raw and gzip'd) must turn any byte string into either a
// parsed array or a dgm::Error — never a crash, a hang, an uncaught std:: exception or a huge
// allocation driven by a header's claimed size.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "data/idx.h"
#include "tensor/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  try {
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) bytes = dgm::data::gunzip(bytes, "fuzz.gz");
    dgm::data::IdxArray a = dgm::data::parse_idx(bytes, "fuzz");
    size_t n = 1;
    for (auto d : a.dims) n *= d;
    if (n != a.data.size()) __builtin_trap();  // a parsed array must be consistent
  } catch (const dgm::Error&) {
    // refused with a message: fine
  }
  return 0;
}
