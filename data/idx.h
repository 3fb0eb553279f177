// IDX files: the format MNIST (and Fashion-MNIST, EMNIST, ...) are distributed in.
//
// An IDX file is a big-endian header followed by the raw array, row-major:
//   bytes 0-1   always 0x00 0x00
//   byte  2     element type: 0x08 unsigned byte (the only type MNIST uses, and the only one read here)
//   byte  3     number of dimensions D
//   then D      uint32 sizes, big-endian
//   then        size_0 * ... * size_{D-1} elements
// So images have magic 0x00000803 (D = 3: n, rows, cols) and labels 0x00000801 (D = 1: n).
// Files are often gzip'd (name ends in .gz); reading recognises gzip by its first two bytes 1f 8b.
//
// The reader trusts nothing in the header: every size is compared with the number of bytes really
// present before anything is allocated for it, so a corrupt or hostile header cannot make it
// allocate gigabytes. Nor can the data: a .gz file is inflated as it is read, only as far as the
// header declares (plus one byte, which must not exist), so a small file that would inflate to
// gigabytes ("a zip bomb") is refused after reading little more than its declared size, and
// memory stays O(declared size). A declared size above kMaxIdxDataBytes (2 GiB; the largest MNIST-
// style file, EMNIST ByClass's training images, is 0.55 GB) is refused outright. Problems are reported as dgm::FormatError (corrupt content) or dgm::IOError
// (file cannot be opened/written), each message starting with the file name.
//
// This layer works on plain std::vector<uint8_t>; it does not depend on the tensor engine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dgm::data {

constexpr uint32_t kIdxImagesMagic = 0x00000803;  // unsigned bytes, 3 dimensions (n, rows, cols)
constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension (n)
constexpr uint64_t kMaxIdxDataBytes = uint64_t{1} << 31;  // 2 GiB: the most data one IDX file may declare

// Any IDX array of unsigned bytes: dims as stored, data row-major with product(dims) bytes.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// A stack of grey images, n * rows * cols bytes, image i starting at pixels[i * rows * cols].
struct IdxImages {
  int64_t n = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;
};

// ---- reading ----

// Any unsigned-byte IDX file, raw or gzip'd.
IdxArray read_idx(const std::string& path);
// Images: magic must be 0x00000803, rows and cols non-zero.
IdxImages read_idx_images(const std::string& path);
// Labels: magic must be 0x00000801.
std::vector<uint8_t> read_idx_labels(const std::string& path);
// The same two checks on an array already read (`name` in the messages).
IdxImages idx_images(IdxArray array, const std::string& name);
std::vector<uint8_t> idx_labels(IdxArray array, const std::string& name);

// Parses IDX bytes already in memory (after decompression). `name` is used in error messages.
IdxArray parse_idx(std::vector<uint8_t> bytes, const std::string& name);
// Same for bytes that may be gzip'd, inflated only as far as the header declares (as read_idx).
IdxArray decode_idx(const std::vector<uint8_t>& bytes, const std::string& name);

// ---- writing (gzip'd when the path ends in ".gz"; written atomically) ----

void write_idx(const std::string& path, const IdxArray& array);
void write_idx_images(const std::string& path, const IdxImages& images);
void write_idx_labels(const std::string& path, const std::vector<uint8_t>& labels);

// Serialises to IDX bytes (no compression). Throws dgm::ValueError, naming `name`, if
// data.size() != product(dims) or a size does not fit the format.
std::vector<uint8_t> encode_idx(const IdxArray& array, const std::string& name = "encode_idx");

// ---- gzip-aware reading used by the readers above (plain file helpers: tools/files.h) ----

// The file's content, gunzip'd if it starts with the gzip signature 1f 8b. A name ending in ".gz"
// whose content is not gzip is refused (dgm::FormatError): it is almost always a broken download.
// At most `max_bytes` of content (FormatError as soon as more arrives).
std::vector<uint8_t> read_file_maybe_gzip(const std::string& path, size_t max_bytes = kMaxIdxDataBytes);

// Decompresses gzip data (one or more concatenated members). Throws dgm::FormatError naming `name`
// on a truncated stream, a failed checksum, bytes after the last member that are not gzip, or
// output beyond `max_bytes` (as soon as the first byte past it is inflated).
std::vector<uint8_t> gunzip(const std::vector<uint8_t>& compressed, const std::string& name, size_t max_bytes = kMaxIdxDataBytes);
// Compresses to the gzip format, deterministically (no file name, mtime 0), so equal input gives
// equal output bytes.
std::vector<uint8_t> gzip(const std::vector<uint8_t>& data, int level = 9);


}  // namespace dgm::data
