// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors), readable by
// Python's safetensors / numpy with a few lines:
//   8 bytes   N, the header length (unsigned little-endian)
//   N bytes   JSON: {"__metadata__": {"key": "string value", ...},
//                    "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//             padded with spaces to a multiple of 8
//   the rest  raw little-endian tensor data; offsets count from the byte after the header
// dtypes: F32, F64, I64, BOOL. Tensors are packed contiguously in the given order.
#pragma once
#include <map>
#include <string>

#include "nn/module.h"

namespace dgm::nn {

using Metadata = std::map<std::string, std::string>;

struct SafetensorsFile {
  NamedTensors tensors;  // in file order
  Metadata metadata;
};

// Writes atomically: to "<path>.tmp.<pid>", flushed and fsync'ed, then renamed over `path`, so a
// crash never leaves a half-written checkpoint. IOError if the file cannot be written.
void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {});
// Validates the whole header before allocating anything: the length fields, the JSON, every
// entry's dtype, shape and offsets (inside the data, matching numel * itemsize, no overlaps or
// gaps). Any problem is a FormatError naming the file and the entry; IOError if unreadable.
SafetensorsFile load_safetensors(const std::string& path);

// A module's state_dict to / from a file. load checks keys and shapes strictly (see
// Module::load_state_dict), with the file named in the error.
void save(const Module& module, const std::string& path, const Metadata& metadata = {});
Metadata load(Module& module, const std::string& path);  // returns the file's metadata

}  // namespace dgm::nn
