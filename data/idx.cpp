// IDX reading/writing and the small file helpers it needs (gzip through zlib, atomic writes).
// See idx.h for the format.
#include <dgm/data/idx.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include <dgm/tensor/errors.h>
#include <dgm/tools/files.h>

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


namespace {

// ---- streaming: the bytes of a file or a buffer, gunzip'd on the fly when they start with 1f 8b ----
//
// Readers pull exactly as many bytes as they need, so that a header can bound what is read after
// it: memory stays O(what the reader asks for), whatever the compressed data would inflate to.
class ByteStream {
 public:
  // From a file (`file` stays open and owned by the caller) or from memory.
  ByteStream(std::FILE* file, const std::string& name) : file_(file), name_(name) {
    struct stat st{};
    if (::fstat(::fileno(file), &st) == 0 && S_ISREG(st.st_mode)) input_size_ = static_cast<uint64_t>(st.st_size);
    start();
  }
  ByteStream(const uint8_t* data, size_t size, const std::string& name) : mem_(data), mem_size_(size), name_(name) {
    input_size_ = size;
    start();
  }
  ~ByteStream() {
    if (gzip_) inflateEnd(&zs_);
  }
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;

  bool is_gzip() const { return gzip_; }
  // The size of the (raw) input when it is known: a regular file or a buffer. 0 if unknown.
  uint64_t input_size() const { return input_size_; }

  // Fills dst with up to n bytes of content; fewer only at its end (after which a gzip stream has
  // been checked completely: its CRC-32 and length trailer, and nothing but gzip after it).
  size_t read(uint8_t* dst, size_t n) { return gzip_ ? inflate_some(dst, n) : read_raw(dst, n); }

 private:
  void start() {
    // 256 KiB of input at a time; less for a small file or buffer (no need to clear more)
    in_.resize(input_size_ > 0 ? static_cast<size_t>(std::min<uint64_t>(input_size_ + 1, size_t{1} << 18)) : size_t{1} << 18);
    in_len_ = fill(in_.data(), in_.size());
    gzip_ = in_len_ >= 2 && in_[0] == kGzipMagic0 && in_[1] == kGzipMagic1;
    if (gzip_) {
      // 16 + MAX_WBITS: expect a gzip wrapper (header + CRC32 trailer), not raw zlib.
      if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) throw FormatError(cat(name_, ": zlib could not start decompressing"));
      zs_.next_in = in_.data();
      zs_.avail_in = static_cast<uInt>(in_len_);
    }
  }
  // Up to n bytes of the input itself, from the file or the buffer.
  size_t fill(uint8_t* dst, size_t n) {
    size_t got;
    if (file_) {
      got = std::fread(dst, 1, n, file_);
      if (got < n && std::ferror(file_)) throw IOError(cat(name_, ": read failed (", errno_text(), ")"));
    } else {
      got = std::min(n, mem_size_ - mem_pos_);
      if (got > 0) std::memcpy(dst, mem_ + mem_pos_, got);
      mem_pos_ += got;
    }
    consumed_ += got;
    return got;
  }
  size_t read_raw(uint8_t* dst, size_t n) {
    size_t out = 0;
    if (in_pos_ < in_len_) {  // what start() read ahead
      out = std::min(n, in_len_ - in_pos_);
      std::memcpy(dst, in_.data() + in_pos_, out);
      in_pos_ += out;
    }
    while (out < n) {
      size_t got = fill(dst + out, n - out);
      if (got == 0) break;
      out += got;
    }
    return out;
  }
  // Refills zlib's input when it is empty; false at the end of the input.
  bool refill() {
    if (zs_.avail_in > 0) return true;
    in_len_ = fill(in_.data(), in_.size());
    zs_.next_in = in_.data();
    zs_.avail_in = static_cast<uInt>(in_len_);
    return in_len_ > 0;
  }
  size_t inflate_some(uint8_t* dst, size_t n) {
    size_t out = 0;
    while (out < n && !ended_) {
      const bool more_input = refill();
      const size_t room = std::min(n - out, kZlibChunk);
      zs_.next_out = dst + out;
      zs_.avail_out = static_cast<uInt>(room);
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      out += room - zs_.avail_out;
      produced_ += room - zs_.avail_out;
      const uint64_t at = consumed_ - zs_.avail_in;  // compressed bytes used so far
      if (rc == Z_STREAM_END) {
        next_member(at);
        continue;
      }
      if (rc == Z_OK) continue;
      if (rc == Z_BUF_ERROR && !more_input)
        throw FormatError(cat(name_, ": gzip stream is truncated: the file ends after ", consumed_, " bytes (", produced_,
                              " bytes decompressed) without the gzip end marker"));
      if (rc == Z_BUF_ERROR) continue;
      if (rc == Z_MEM_ERROR) throw FormatError(cat(name_, ": out of memory while decompressing"));
      throw FormatError(cat(name_, ": corrupt gzip data at compressed byte ", at, " (zlib: ", zs_.msg ? zs_.msg : "unknown error", ")"));
    }
    return out;
  }
  // After the end of a gzip member: the input ends, or another member follows (`cat a.gz b.gz`).
  void next_member(uint64_t at) {
    if (zs_.avail_in < 2) {  // make sure two bytes are at hand to look for the gzip signature
      uint8_t keep = zs_.avail_in == 1 ? zs_.next_in[0] : 0;
      const size_t kept = zs_.avail_in;
      in_[0] = keep;
      in_len_ = kept + fill(in_.data() + kept, in_.size() - kept);
      zs_.next_in = in_.data();
      zs_.avail_in = static_cast<uInt>(in_len_);
    }
    if (zs_.avail_in == 0) {
      ended_ = true;
      return;
    }
    if (zs_.avail_in < 2 || zs_.next_in[0] != kGzipMagic0 || zs_.next_in[1] != kGzipMagic1) {
      const std::string count = input_size_ >= at ? std::to_string(input_size_ - at) + " bytes" : std::string("the bytes");
      throw FormatError(cat(name_, ": ", count, " after the end of the gzip stream (at byte ", at, ") are not gzip data"));
    }
    inflateReset(&zs_);
  }

  std::FILE* file_ = nullptr;
  const uint8_t* mem_ = nullptr;
  size_t mem_size_ = 0, mem_pos_ = 0;
  std::string name_;
  uint64_t input_size_ = 0, consumed_ = 0, produced_ = 0;
  std::vector<uint8_t> in_;
  size_t in_len_ = 0, in_pos_ = 0;
  bool gzip_ = false, ended_ = false;
  z_stream zs_{};
};

// Reads the whole stream, refusing more than `max_bytes` as soon as the first byte past it arrives.
std::vector<uint8_t> read_all(ByteStream& in, size_t max_bytes, const std::string& name) {
  std::vector<uint8_t> out;
  size_t len = 0;
  for (;;) {
    if (len == out.size()) out.resize(std::max<size_t>(64 * 1024, std::min(out.size() * 2, max_bytes + 1)));
    const size_t got = in.read(out.data() + len, out.size() - len);
    len += got;
    if (len > max_bytes)
      throw FormatError(cat(name, ": decompresses to more than ", max_bytes, " bytes, the limit for a data file"));
    if (len < out.size()) break;
  }
  out.resize(len);
  out.shrink_to_fit();
  return out;
}

// Opens a file for reading, refusing a folder. The FILE closes when the holder goes.
std::unique_ptr<std::FILE, int (*)(std::FILE*)> open_for_reading(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw IOError(cat(path, ": is a directory, expected a file"));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw IOError(cat(path, ": cannot open for reading (", errno_text(), ")"));
  return file;
}

// A name ending in ".gz" whose content is not gzip is almost always a broken download.
[[noreturn]] void refuse_fake_gzip(const std::string& path, const uint8_t* first, size_t n) {
  if (n == 0) throw FormatError(cat(path, ": file is empty, expected gzip data"));
  throw FormatError(cat(path, ": name ends in .gz but the content is not gzip (it starts with ", hex8(first[0]),
                        n > 1 ? " " + hex8(first[1]) : std::string(),
                        ", gzip starts with 0x1F 0x8B); an interrupted download or an HTML error page?"));
}

// The IDX array in `in`, reading no more than the header declares (plus one byte, to see that
// nothing follows): memory stays O(declared size) however far the data would inflate.
IdxArray read_idx_stream(ByteStream& in, const std::string& name) {
  uint8_t head[4 + 4 * 255];
  size_t got = in.read(head, 4);
  if (got < 4)
    throw FormatError(cat(name, ": truncated header: the file has ", got, " bytes, too few for the 4-byte IDX magic number"));
  const uint32_t magic = read_be32(head);
  if (head[0] != 0 || head[1] != 0)
    throw FormatError(cat(name, ": bad magic number ", hex32(magic), ": not an IDX file (IDX starts with two zero bytes: ",
                          hex32(kIdxImagesMagic), " for images, ", hex32(kIdxLabelsMagic), " for labels)"));
  const uint8_t type = head[2];
  if (type != kTypeUnsignedByte)
    throw FormatError(cat(name, ": magic number ", hex32(magic), " says element type ", hex8(type), " (", idx_type_name(type),
                          "); only ", hex8(kTypeUnsignedByte), " (unsigned byte) is supported"));
  const size_t ndims = head[3];
  if (ndims == 0) throw FormatError(cat(name, ": bad magic number ", hex32(magic), ": it says 0 dimensions"));
  const size_t header_size = 4 + 4 * ndims;
  got = in.read(head + 4, 4 * ndims);
  if (got < 4 * ndims)
    throw FormatError(cat(name, ": truncated header: magic number ", hex32(magic), " says ", ndims, " dimensions, so the header is ",
                          header_size, " bytes, but the file has only ", 4 + got));

  IdxArray array;
  for (size_t d = 0; d < ndims; ++d) array.dims.push_back(read_be32(head + 4 + 4 * d));
  // The claimed size, in checked arithmetic (a product of uint32 sizes can pass 2^64).
  uint64_t claimed = 1;
  bool overflow = false;
  for (int64_t d : array.dims) overflow = overflow || __builtin_mul_overflow(claimed, uint64_t(d), &claimed);
  const std::string claim = cat("header says ", describe_dims(array.dims), " (",
                                overflow ? std::string("more than 2^64") : std::to_string(claimed), " bytes)");
  // Uncompressed, the file's size says at once how much data there really is.
  const bool size_known = !in.is_gzip() && in.input_size() >= header_size;
  const uint64_t available = size_known ? in.input_size() - header_size : 0;
  if (size_known && (overflow || claimed > available))
    throw FormatError(cat(name, ": ", claim, " but only ", available, " bytes follow"));
  if (size_known && claimed < available)
    throw FormatError(cat(name, ": ", claim, " but ", available, " bytes follow: ", available - claimed, " trailing bytes"));
  if (overflow || claimed > kMaxIdxDataBytes)
    throw FormatError(cat(name, ": ", claim, ", more than the limit of ", kMaxIdxDataBytes, " bytes for one IDX file"));

  // The data: the buffer grows with what really arrives, never past the claim.
  size_t len = 0;
  while (len < claimed) {
    if (len == array.data.size())
      array.data.resize(std::min<uint64_t>(claimed, std::max<uint64_t>(size_t{1} << 16, 2 * array.data.size())));
    got = in.read(array.data.data() + len, array.data.size() - len);
    len += got;
    if (len < array.data.size()) break;  // the end of the data
  }
  if (len < claimed) throw FormatError(cat(name, ": ", claim, " but only ", len, " bytes follow"));
  // One byte more must not exist; reading for it also checks the gzip trailer (CRC-32, length).
  uint8_t extra;
  if (in.read(&extra, 1) != 0)
    throw FormatError(cat(name, ": ", claim, " but more bytes follow: the data goes on past the declared size"));
  return array;
}

}  // namespace

std::vector<uint8_t> gunzip(const std::vector<uint8_t>& compressed, const std::string& name, size_t max_bytes) {
  ByteStream in(compressed.data(), compressed.size(), name);
  if (!in.is_gzip()) {
    if (compressed.size() < 2) throw FormatError(cat(name, ": gzip stream is truncated: the data has ", compressed.size(), " bytes"));
    throw FormatError(cat(name, ": not gzip data (gzip starts with 0x1F 0x8B)"));
  }
  return read_all(in, max_bytes, name);
}

IdxArray decode_idx(const std::vector<uint8_t>& bytes, const std::string& name) {
  ByteStream in(bytes.data(), bytes.size(), name);
  return read_idx_stream(in, name);
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

std::vector<uint8_t> read_file_maybe_gzip(const std::string& path, size_t max_bytes) {
  auto file = open_for_reading(path);
  ByteStream in(file.get(), path);
  if (!in.is_gzip() && ends_with(path, ".gz")) {
    uint8_t first[2];
    refuse_fake_gzip(path, first, in.read(first, 2));
  }
  return read_all(in, max_bytes, path);
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

IdxArray read_idx(const std::string& path) {
  auto file = open_for_reading(path);
  ByteStream in(file.get(), path);
  if (!in.is_gzip() && ends_with(path, ".gz")) {
    uint8_t first[2];
    refuse_fake_gzip(path, first, in.read(first, 2));
  }
  return read_idx_stream(in, path);
}

IdxImages read_idx_images(const std::string& path) { return idx_images(read_idx(path), path); }

std::vector<uint8_t> read_idx_labels(const std::string& path) { return idx_labels(read_idx(path), path); }

IdxImages idx_images(IdxArray array, const std::string& path) {
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

std::vector<uint8_t> idx_labels(IdxArray array, const std::string& path) {
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
