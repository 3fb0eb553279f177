// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors), readable by
// Python's safetensors / numpy with a few lines:
//   8 bytes   N, the header length (unsigned little-endian)
//   N bytes   JSON: {"__metadata__": {"key": "string value", ...},
//                    "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//             padded with spaces to a multiple of 8
//   the rest  raw little-endian tensor data; offsets count from the byte after the header
// dtypes: F32, F64, I64, BOOL. Tensors are packed contiguously in the given order.
//
// Integrity: dgm writes the CRC-32 (zlib's, as in gzip and PNG) of the whole data section into the
// metadata as "dgm.crc32" (8 lowercase hex digits), and refuses on load a file whose data does not
// match it (one flipped bit is caught). Files without the key (written by other tools or older
// dgm) still load; SafetensorsFile::checksum says which case it was.
#pragma once
#include <map>
#include <string>

#include <dgm/nn/module.h>

namespace dgm::nn {

using Metadata = std::map<std::string, std::string>;

inline constexpr const char* kChecksumKey = "dgm.crc32";  // reserved metadata key

enum class Checksum {
  Absent,    // the file carries no "dgm.crc32": its data could not be checked
  Verified,  // the data matches the file's CRC-32
};

struct SafetensorsFile {
  NamedTensors tensors;  // in file order
  Metadata metadata;     // as stored, less the reserved "dgm.crc32"
  Checksum checksum = Checksum::Absent;
};

// Writes atomically: to "<path>.tmp.<pid>", flushed and fsync'ed, then renamed over `path` (and
// the folder fsync'ed), so a crash never leaves a half-written checkpoint. The metadata gets the
// data's CRC-32 under "dgm.crc32" (a value given for that key is replaced). IOError if the file
// cannot be written.
void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {});
// Validates the whole header before allocating anything: the length fields, the JSON (no key twice
// in an object), every entry's dtype, shape (at most 64 dims, sizes in checked arithmetic) and
// offsets (inside the data, matching numel * itemsize, no overlaps or gaps), then the data's
// CRC-32 when the file has one. Any problem is a FormatError naming the file (and the entry);
// IOError if unreadable.
SafetensorsFile load_safetensors(const std::string& path);

// A module's state_dict to / from a file. load checks keys and shapes strictly (see
// Module::load_state_dict), with the file named in the error.
void save(const Module& module, const std::string& path, const Metadata& metadata = {});
// Returns the file's metadata; `checksum`, when given, says whether the data could be verified.
Metadata load(Module& module, const std::string& path, Checksum* checksum = nullptr);

}  // namespace dgm::nn
