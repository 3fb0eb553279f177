// libFuzzer target: the IDX readers (raw and gzip'd; the bounded streaming one and the in-memory
// gunzip + parse_idx, which must agree) must turn any byte string into either a
// parsed array or a dgm::Error — never a crash, a hang, an uncaught std:: exception or a huge
// allocation driven by a header's claimed size.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <dgm/data/idx.h>
#include <dgm/tensor/errors.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  // the bounded reader (read_idx's path: inflates only as far as the header declares)
  dgm::data::IdxArray a;
  bool decoded = false;
  try {
    a = dgm::data::decode_idx(bytes, "fuzz");
    size_t n = 1;
    for (auto d : a.dims) n *= d;
    if (n != a.data.size()) __builtin_trap();  // a parsed array must be consistent
    decoded = true;
  } catch (const dgm::Error&) {
    // refused with a message: fine
  }
  // the in-memory path (gunzip, then parse): it must agree with the bounded reader
  try {
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) bytes = dgm::data::gunzip(bytes, "fuzz.gz");
    dgm::data::IdxArray b = dgm::data::parse_idx(bytes, "fuzz");
    if (!decoded || b.dims != a.dims || b.data != a.data) __builtin_trap();
  } catch (const dgm::Error&) {
    if (decoded) __builtin_trap();
  }
  return 0;
}
