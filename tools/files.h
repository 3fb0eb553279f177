// Writing files so that a crash, a kill or a full disk never leaves a half-written one behind.
//
//   tools::write_file_atomic("runs/x/report.md", text);   // "<path>.tmp.<pid>", fsync, rename, fsync the folder
//   tools::remove_stale_temporaries("runs/x");            // "*.tmp.<pid>" files of processes that are gone
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dgm::tools {

// Writes `size` bytes to "<path>.tmp.<pid>", flushes and fsyncs it, renames it over `path` and
// fsyncs the folder: a reader (or a crash halfway) sees the old file or the new one, never a part.
// Throws dgm::IOError naming the path and the reason (the temporary file is removed).
void write_file_atomic(const std::string& path, const void* data, size_t size);
void write_file_atomic(const std::string& path, const std::string& text);

// The whole file as bytes, exactly as stored. Throws dgm::IOError if it cannot be opened or read,
// or if it holds more than max_bytes (read in chunks, so a huge file is refused without reading it all).
std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes = size_t{1} << 32);

// The temporary name write_file_atomic (and nn::save_safetensors) uses for `path` in this process.
std::string temporary_path(const std::string& path);

// Removes the files "<name>.tmp.<pid>" in `folder` whose process no longer runs (left by a kill or
// a power cut); returns their names. Files of live processes, and everything else, stay.
std::vector<std::string> remove_stale_temporaries(const std::string& folder);

}  // namespace dgm::tools
