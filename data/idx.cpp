// IDX reading/writing and the small file helpers it needs (gzip through zlib, atomic writes).
// See idx.h for the format.
#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include "tensor/errors.h"
#include "tools/files.h"

namespace dgm::data {

namespace {

constexpr uint8_t kTypeUnsignedByte = 0x08;
constexpr uint8_t kGzipMagic0 = 0x1f, kGzipMagic1 = 0x8b;
// zlib counts bytes in `unsigned int`; feeding it at most 1 GiB per call keeps every count in range
// even for files larger than 4 GiB.
constexpr size_t kZlibChunk = size_t{1} << 30;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

std::string hex8(uint8_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", v);
  return buf;
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void append_be32(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v >> 24));
  out.push_back(static_cast<uint8_t>(v >> 16));
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

// IDX element types other than unsigned byte, named so the error can say what the file holds.
const char* idx_type_name(uint8_t type) {
  switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown type";
  }
}

// "9000 images of 28x28", "9000 labels", or "an array of 2x3x4x5": what the header claims, in words.
std::string describe_dims(const std::vector<int64_t>& dims) {
  if (dims.size() == 3) return cat(dims[0], " images of ", dims[1], "x", dims[2]);
  if (dims.size() == 1) return cat(dims[0], " labels");
  std::string s = "an array of ";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
  return s;
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Files and gzip

std::vector<uint8_t> gunzip(const std::vector<uint8_t>& compressed, const std::string& name) {
  z_stream zs{};
  // 16 + MAX_WBITS: expect a gzip wrapper (header + CRC32 trailer), not raw zlib.
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw FormatError(cat(name, ": zlib could not start decompressing"));
  struct InflateGuard {
    z_stream* zs;
    ~InflateGuard() { inflateEnd(zs); }
  } guard{&zs};

  std::vector<uint8_t> out(std::max<size_t>(compressed.size() * 2, 64 * 1024));
  size_t out_len = 0;
  size_t in_pos = 0;  // bytes of `compressed` handed to zlib so far
  for (;;) {
    if (zs.avail_in == 0 && in_pos < compressed.size()) {
      size_t n = std::min(compressed.size() - in_pos, kZlibChunk);
      zs.next_in = const_cast<Bytef*>(compressed.data() + in_pos);
      zs.avail_in = static_cast<uInt>(n);
      in_pos += n;
    }
    if (out_len == out.size()) out.resize(out.size() * 2);  // grows with the real output only
    size_t room = std::min(out.size() - out_len, kZlibChunk);
    zs.next_out = out.data() + out_len;
    zs.avail_out = static_cast<uInt>(room);

    int rc = inflate(&zs, Z_NO_FLUSH);
    out_len += room - zs.avail_out;
    size_t unread = zs.avail_in + (compressed.size() - in_pos);

    if (rc == Z_STREAM_END) {
      if (unread == 0) break;
      // gzip allows several members back to back (`cat a.gz b.gz`); anything else is garbage.
      size_t at = compressed.size() - unread;
      if (unread < 2 || compressed[at] != kGzipMagic0 || compressed[at + 1] != kGzipMagic1)
        throw FormatError(cat(name, ": ", unread, " bytes after the end of the gzip stream (at byte ", at,
                              ") are not gzip data"));
      inflateReset(&zs);
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && unread > 0) continue;  // only the output was full; it grows above
    if (rc == Z_BUF_ERROR)
      throw FormatError(cat(name, ": gzip stream is truncated: the file ends after ", compressed.size(),
                            " bytes (", out_len, " bytes decompressed) without the gzip end marker"));
    if (rc == Z_MEM_ERROR) throw FormatError(cat(name, ": out of memory while decompressing"));
    throw FormatError(cat(name, ": corrupt gzip data at compressed byte ", compressed.size() - unread, " (zlib: ",
                          zs.msg ? zs.msg : "unknown error", ")"));
  }
  out.resize(out_len);
  out.shrink_to_fit();  // the buffer grew by doubling; do not keep up to 2x the data alive
  return out;
}

std::vector<uint8_t> gzip(const std::vector<uint8_t>& data, int level) {
  if (level < 0 || level > 9) throw ValueError(cat("gzip: compression level ", level, " is outside 0..9"));
  z_stream zs{};
  // No gz_header is set, so zlib writes a minimal header: no file name, mtime 0. Deterministic.
  if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw ValueError("gzip: zlib could not start compressing");
  struct DeflateGuard {
    z_stream* zs;
    ~DeflateGuard() { deflateEnd(zs); }
  } guard{&zs};

  std::vector<uint8_t> out(64 * 1024 + data.size() / 2);
  size_t out_len = 0, in_pos = 0;
  for (;;) {
    if (zs.avail_in == 0 && in_pos < data.size()) {
      size_t n = std::min(data.size() - in_pos, kZlibChunk);
      zs.next_in = const_cast<Bytef*>(data.data() + in_pos);
      zs.avail_in = static_cast<uInt>(n);
      in_pos += n;
    }
    if (out_len == out.size()) out.resize(out.size() * 2);
    size_t room = std::min(out.size() - out_len, kZlibChunk);
    zs.next_out = out.data() + out_len;
    zs.avail_out = static_cast<uInt>(room);
    bool last_input = in_pos == data.size();
    int rc = deflate(&zs, last_input ? Z_FINISH : Z_NO_FLUSH);
    out_len += room - zs.avail_out;
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) throw ValueError(cat("gzip: zlib deflate failed with code ", rc));
  }
  out.resize(out_len);
  return out;
}

std::vector<uint8_t> read_file_maybe_gzip(const std::string& path) {
  std::vector<uint8_t> bytes = tools::read_file_bytes(path);
  bool is_gzip = bytes.size() >= 2 && bytes[0] == kGzipMagic0 && bytes[1] == kGzipMagic1;
  if (is_gzip) return gunzip(bytes, path);
  if (ends_with(path, ".gz")) {
    if (bytes.empty()) throw FormatError(cat(path, ": file is empty, expected gzip data"));
    throw FormatError(cat(path, ": name ends in .gz but the content is not gzip (it starts with ", hex8(bytes[0]),
                          bytes.size() > 1 ? " " + hex8(bytes[1]) : std::string(),
                          ", gzip starts with 0x1F 0x8B); an interrupted download or an HTML error page?"));
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// IDX

IdxArray parse_idx(std::vector<uint8_t> bytes, const std::string& name) {
  if (bytes.size() < 4)
    throw FormatError(cat(name, ": truncated header: the file has ", bytes.size(),
                          " bytes, too few for the 4-byte IDX magic number"));
  const uint32_t magic = read_be32(bytes.data());
  if (bytes[0] != 0 || bytes[1] != 0)
    throw FormatError(cat(name, ": bad magic number ", hex32(magic), ": not an IDX file (IDX starts with two zero bytes: ",
                          hex32(kIdxImagesMagic), " for images, ", hex32(kIdxLabelsMagic), " for labels)"));
  const uint8_t type = bytes[2];
  if (type != kTypeUnsignedByte)
    throw FormatError(cat(name, ": magic number ", hex32(magic), " says element type ", hex8(type), " (",
                          idx_type_name(type), "); only ", hex8(kTypeUnsignedByte), " (unsigned byte) is supported"));
  const size_t ndims = bytes[3];
  if (ndims == 0) throw FormatError(cat(name, ": bad magic number ", hex32(magic), ": it says 0 dimensions"));

  const size_t header_size = 4 + 4 * ndims;
  if (bytes.size() < header_size)
    throw FormatError(cat(name, ": truncated header: magic number ", hex32(magic), " says ", ndims,
                          " dimensions, so the header is ", header_size, " bytes, but the file has only ",
                          bytes.size()));

  IdxArray array;
  for (size_t d = 0; d < ndims; ++d) array.dims.push_back(read_be32(bytes.data() + 4 + 4 * d));

  // Compare the claimed size with what is really there *before* trusting it for anything.
  // The product of several uint32 sizes can overflow 64 bits; then it certainly exceeds the file.
  const uint64_t available = bytes.size() - header_size;
  uint64_t claimed = 1;
  bool overflow = false;
  for (int64_t d : array.dims) overflow = overflow || __builtin_mul_overflow(claimed, uint64_t(d), &claimed);
  if (overflow || claimed > available)
    throw FormatError(cat(name, ": header says ", describe_dims(array.dims), " (",
                          overflow ? std::string("more than 2^64") : std::to_string(claimed), " bytes) but only ",
                          available, " bytes follow"));
  if (claimed < available)
    throw FormatError(cat(name, ": header says ", describe_dims(array.dims), " (", claimed, " bytes) but ", available,
                          " bytes follow: ", available - claimed, " trailing bytes"));

  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header_size));
  array.data = std::move(bytes);
  return array;
}

IdxArray read_idx(const std::string& path) { return parse_idx(read_file_maybe_gzip(path), path); }

IdxImages read_idx_images(const std::string& path) {
  IdxArray array = read_idx(path);
  if (array.dims.size() != 3)
    throw FormatError(cat(path, ": magic number ", hex32(0x0800 | uint32_t(array.dims.size())), " says ",
                          array.dims.size(), " dimension(s), expected ", hex32(kIdxImagesMagic),
                          " (images: n, rows, cols)", array.dims.size() == 1 ? "; is this a labels file?" : ""));
  IdxImages images;
  images.n = array.dims[0];
  images.rows = array.dims[1];
  images.cols = array.dims[2];
  if (images.rows == 0 || images.cols == 0)
    throw FormatError(cat(path, ": header says images of ", images.rows, "x", images.cols,
                          " pixels; rows and cols must be at least 1"));
  images.pixels = std::move(array.data);
  return images;
}

std::vector<uint8_t> read_idx_labels(const std::string& path) {
  IdxArray array = read_idx(path);
  if (array.dims.size() != 1)
    throw FormatError(cat(path, ": magic number ", hex32(0x0800 | uint32_t(array.dims.size())), " says ",
                          array.dims.size(), " dimension(s), expected ", hex32(kIdxLabelsMagic), " (labels: n)",
                          array.dims.size() == 3 ? "; is this an images file?" : ""));
  return std::move(array.data);
}

std::vector<uint8_t> encode_idx(const IdxArray& array, const std::string& name) {
  if (array.dims.empty() || array.dims.size() > 255)
    throw ValueError(cat(name, ": ", array.dims.size(), " dimensions; IDX stores 1 to 255"));
  uint64_t count = 1;
  bool overflow = false;
  for (int64_t d : array.dims) {
    if (d < 0 || d > int64_t{std::numeric_limits<uint32_t>::max()})
      throw ValueError(cat(name, ": dimension size ", d, " does not fit IDX's uint32"));
    overflow = overflow || __builtin_mul_overflow(count, uint64_t(d), &count);
  }
  if (overflow || count != array.data.size())
    throw ValueError(cat(name, ": ", describe_dims(array.dims), " need ",
                         overflow ? std::string("more than 2^64") : std::to_string(count), " bytes but the data has ",
                         array.data.size()));
  std::vector<uint8_t> out;
  out.reserve(4 + 4 * array.dims.size() + array.data.size());
  out.push_back(0);
  out.push_back(0);
  out.push_back(kTypeUnsignedByte);
  out.push_back(static_cast<uint8_t>(array.dims.size()));
  for (int64_t d : array.dims) append_be32(out, static_cast<uint32_t>(d));
  out.insert(out.end(), array.data.begin(), array.data.end());
  return out;
}

void write_idx(const std::string& path, const IdxArray& array) {
  std::vector<uint8_t> bytes = encode_idx(array, path);
  if (ends_with(path, ".gz")) bytes = gzip(bytes);
  tools::write_file_atomic(path, bytes.data(), bytes.size());
}

void write_idx_images(const std::string& path, const IdxImages& images) {
  if (images.n < 0 || images.rows <= 0 || images.cols <= 0)
    throw ValueError(cat(path, ": cannot write ", images.n, " images of ", images.rows, "x", images.cols,
                         " (n must be >= 0, rows and cols >= 1)"));
  write_idx(path, IdxArray{{images.n, images.rows, images.cols}, images.pixels});
}

void write_idx_labels(const std::string& path, const std::vector<uint8_t>& labels) {
  write_idx(path, IdxArray{{static_cast<int64_t>(labels.size())}, labels});
}

}  // namespace dgm::data
