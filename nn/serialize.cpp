#include <dgm/nn/serialize.h>

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

namespace dgm::nn {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; this build assumes a little-endian host");

using Json = nlohmann::ordered_json;  // keeps the tensors in file order

namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // a header beyond 100 MB is corrupt, not large
constexpr size_t kMaxDims = 64;                     // a tensor with more dims is corrupt, not large

// zlib's CRC-32, fed in pieces of at most 1 GiB (its length argument is an unsigned int).
uint32_t crc32_update(uint32_t crc, const void* data, size_t n) {
  const Bytef* p = static_cast<const Bytef*>(data);
  while (n > 0) {
    const uInt k = static_cast<uInt>(std::min<size_t>(n, size_t{1} << 30));
    crc = static_cast<uint32_t>(::crc32(crc, p, k));
    p += k;
    n -= k;
  }
  return crc;
}

std::string hex_crc(uint32_t crc) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", crc);
  return buf;
}

// Makes a rename durable: fsync the folder that holds `path`. Best effort: some file systems
// cannot fsync a folder, and the file itself is already safely in place.
void fsync_parent(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
    case DType::Bool: return "BOOL";
  }
  return "?";
}
bool parse_dtype(const std::string& s, DType& out) {
  for (DType t : {DType::Float32, DType::Float64, DType::Int64, DType::Bool})
    if (s == safetensors_dtype(t)) return out = t, true;
  return false;
}

std::string errno_text() { return std::strerror(errno); }

// Closes the FILE on every path out of a function.
struct File {
  std::FILE* f = nullptr;
  ~File() {
    if (f) std::fclose(f);
  }
};

}  // namespace

// ---- writing ---------------------------------------------------------------------------------------------
void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  std::vector<Array> data;
  std::set<std::string> names;
  uint32_t crc = 0;  // of the data section: every tensor's bytes, in file order
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__") throw ValueError(cat("save_safetensors(", path, "): invalid tensor name '", name, "'"));
    if (!names.insert(name).second) throw ValueError(cat("save_safetensors(", path, "): tensor name '", name, "' appears twice"));
    if (!t.defined()) throw ValueError(cat("save_safetensors(", path, "): tensor '", name, "' is undefined"));
    data.push_back(t.array().contiguous());
    crc = crc32_update(crc, data.back().raw_data(), static_cast<size_t>(data.back().numel()) * itemsize(data.back().dtype()));
  }
  Json header = Json::object();
  Json meta = Json::object();
  for (const auto& [k, v] : metadata)
    if (k != kChecksumKey) meta[k] = v;
  meta[kChecksumKey] = hex_crc(crc);
  header["__metadata__"] = meta;
  uint64_t offset = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    const Array& a = data[i];
    uint64_t nbytes = static_cast<uint64_t>(a.numel()) * itemsize(a.dtype());
    header[tensors[i].first] = {{"dtype", safetensors_dtype(a.dtype())}, {"shape", a.shape()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // as the reference: data starts 8-byte aligned

  const std::string tmp = cat(path, ".tmp.", ::getpid());
  auto fail = [&](const std::string& what) {
    std::string reason = errno_text();
    std::remove(tmp.c_str());
    throw IOError(cat("save_safetensors(", path, "): ", what, ": ", reason));
  };
  {
    File file{std::fopen(tmp.c_str(), "wb")};
    if (!file.f) fail(cat("cannot create ", tmp));
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));
    bool ok = std::fwrite(len, 1, 8, file.f) == 8 && std::fwrite(text.data(), 1, text.size(), file.f) == text.size();
    for (const Array& a : data) {
      size_t nbytes = static_cast<size_t>(a.numel()) * itemsize(a.dtype());
      ok = ok && (nbytes == 0 || std::fwrite(a.raw_data(), 1, nbytes, file.f) == nbytes);
    }
    if (!ok || std::fflush(file.f) != 0 || ::fsync(::fileno(file.f)) != 0) fail("write failed");
    std::FILE* f = file.f;
    file.f = nullptr;
    if (std::fclose(f) != 0) fail("close failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(cat("cannot rename ", tmp, " to ", path));
  fsync_parent(path);
}

// ---- reading ---------------------------------------------------------------------------------------------
SafetensorsFile load_safetensors(const std::string& path) {
  auto bad = [&](const std::string& what) { return FormatError(cat("load_safetensors(", path, "): ", what)); };
  File file{std::fopen(path.c_str(), "rb")};
  if (!file.f) throw IOError(cat("load_safetensors(", path, "): cannot open: ", errno_text()));
  if (std::fseek(file.f, 0, SEEK_END) != 0) throw IOError(cat("load_safetensors(", path, "): cannot seek: ", errno_text()));
  const long end = std::ftell(file.f);
  if (end < 0) throw IOError(cat("load_safetensors(", path, "): cannot tell the file size: ", errno_text()));
  const uint64_t file_size = static_cast<uint64_t>(end);
  std::rewind(file.f);

  // 1. the header length
  if (file_size < 8) throw bad(cat("the file has ", file_size, " bytes, too short for the 8-byte header length (truncated?)"));
  unsigned char len[8];
  if (std::fread(len, 1, 8, file.f) != 8) throw IOError(cat("load_safetensors(", path, "): read failed"));
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(len[i]) << (8 * i);
  if (header_len > file_size - 8)
    throw bad(cat("the header length ", header_len, " exceeds the ", file_size - 8, " bytes after the length field (truncated?)"));
  if (header_len > kMaxHeaderBytes) throw bad(cat("the header length ", header_len, " is above the limit of ", kMaxHeaderBytes, " bytes"));
  const uint64_t data_len = file_size - 8 - header_len;

  // 2. the JSON header
  std::string text(header_len, '\0');
  if (header_len > 0 && std::fread(text.data(), 1, header_len, file.f) != header_len) throw IOError(cat("load_safetensors(", path, "): read failed"));
  // JSON lets a key appear twice in an object (the parser keeps one); a header that does is refused
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  const Json::parser_callback_t find_duplicates = [&](int, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) open_objects.emplace_back();
    if (event == Json::parse_event_t::object_end && !open_objects.empty()) open_objects.pop_back();
    if (event == Json::parse_event_t::key && !open_objects.empty() && parsed.is_string() &&
        !open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  Json header = Json::parse(text, find_duplicates, /*allow_exceptions=*/false);
  if (header.is_discarded()) throw bad("the header is not valid JSON");
  if (!duplicate.empty()) throw bad(cat("the header names '", duplicate, "' twice in one object"));
  if (!header.is_object()) throw bad(cat("the header must be a JSON object, got a JSON ", header.type_name()));

  // 3. every entry, checked before any tensor is allocated
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  SafetensorsFile out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) throw bad("'__metadata__' must be an object of strings");
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) throw bad(cat("'__metadata__' entry '", k, "' must be a string, got a JSON ", v.type_name()));
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    // (captures a reference, not the structured binding: clang 16 rejects that under -fopenmp)
    auto bad_entry = [&, &entry = name](const std::string& what) { return bad(cat("entry '", entry, "': ", what)); };
    if (!info.is_object()) throw bad_entry("expected an object with dtype, shape and data_offsets");
    Entry e{name, DType::Float32, {}, 0, 0};
    if (!info.contains("dtype") || !info["dtype"].is_string()) throw bad_entry("missing or non-string 'dtype'");
    std::string dtype = info["dtype"].get<std::string>();
    if (!parse_dtype(dtype, e.dtype)) throw bad_entry(cat("unsupported dtype '", dtype, "' (expected F32, F64, I64 or BOOL)"));
    if (!info.contains("shape") || !info["shape"].is_array()) throw bad_entry("missing 'shape' (expected an array of non-negative integers)");
    if (info["shape"].size() > kMaxDims) throw bad_entry(cat("shape has ", info["shape"].size(), " dims, more than the limit of ", kMaxDims));
    for (const auto& d : info["shape"]) {
      if (!d.is_number_unsigned()) throw bad_entry(cat("shape ", info["shape"].dump(), " must hold non-negative integers"));
      e.shape.push_back(static_cast<int64_t>(std::min<uint64_t>(d.get<uint64_t>(), INT64_MAX)));
    }
    // numel, refusing early (and without overflow) a shape larger than the whole data
    uint64_t numel = std::count(e.shape.begin(), e.shape.end(), 0) ? 0 : 1;
    for (int64_t n : e.shape) {
      if (numel == 0) break;
      if (numel > data_len / static_cast<uint64_t>(n))
        throw bad_entry(cat("shape ", info["shape"].dump(), " needs more bytes than the ", data_len, " bytes of data"));
      numel *= static_cast<uint64_t>(n);
    }
    try {
      checked_numel(e.shape, "shape");  // with 0 elements, its strides must still fit
    } catch (const Error&) {
      throw bad_entry(cat("shape ", shape_str(e.shape), " is too large to hold (its sizes multiply past 2^62)"));
    }
    const auto& offsets = info.contains("data_offsets") ? info["data_offsets"] : Json();
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      throw bad_entry("'data_offsets' must be [begin, end] with non-negative integers");
    e.begin = offsets[0].get<uint64_t>(), e.end = offsets[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_len)
      throw bad_entry(cat("data_offsets [", e.begin, ", ", e.end, "] are outside the ", data_len, " bytes of data (truncated?)"));
    uint64_t expected = numel * itemsize(e.dtype);
    if (e.end - e.begin != expected)
      throw bad_entry(cat("data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin, " bytes, but shape ", shape_str(e.shape), " of ",
                          dtype, " needs ", expected));
    entries.push_back(std::move(e));
  }
  // the regions must tile the data exactly: no overlaps, no gaps, nothing after the last one
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin || (a->begin == b->begin && a->end < b->end); });
  uint64_t covered = 0;
  for (size_t i = 0; i < by_offset.size(); ++i) {
    const Entry& e = *by_offset[i];
    if (e.begin < covered)
      throw bad(cat("entry '", e.name, "' [", e.begin, ", ", e.end, "] overlaps entry '", by_offset[i - 1]->name, "' ending at ", covered));
    if (e.begin > covered) throw bad(cat("bytes [", covered, ", ", e.begin, ") of the data belong to no tensor (before entry '", e.name, "')"));
    covered = e.end;
  }
  if (covered != data_len) throw bad(cat("the data has ", data_len, " bytes but the tensors cover only ", covered));

  // 4. the data
  for (const Entry& e : entries) {
    Array a = Array::empty(e.shape, e.dtype);
    size_t nbytes = static_cast<size_t>(e.end - e.begin);
    if (nbytes > 0) {
      if (std::fseek(file.f, static_cast<long>(8 + header_len + e.begin), SEEK_SET) != 0 || std::fread(a.raw_data(), 1, nbytes, file.f) != nbytes)
        throw IOError(cat("load_safetensors(", path, "): cannot read the data of entry '", e.name, "'"));
    }
    if (e.dtype == DType::Bool) {
      const unsigned char* b = static_cast<const unsigned char*>(a.raw_data());
      for (size_t i = 0; i < nbytes; ++i)
        if (b[i] > 1) throw bad(cat("entry '", e.name, "': BOOL value ", int(b[i]), " at index ", i, " is not 0 or 1"));
    }
    out.tensors.emplace_back(e.name, Tensor(a));
  }

  // 5. integrity: the CRC-32 of the data section (the tensors in offset order tile it exactly)
  if (auto it = out.metadata.find(kChecksumKey); it != out.metadata.end()) {
    const std::string& stored = it->second;
    const bool hex8 = stored.size() == 8 && std::all_of(stored.begin(), stored.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
    if (!hex8) throw bad(cat("metadata '", kChecksumKey, "' = '", stored, "' is not a CRC-32 (8 hex digits)"));
    std::vector<size_t> order(entries.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return entries[a].begin < entries[b].begin; });
    uint32_t crc = 0;
    for (size_t i : order) {
      const Array& a = out.tensors[i].second.array();
      crc = crc32_update(crc, a.raw_data(), static_cast<size_t>(entries[i].end - entries[i].begin));
    }
    if (crc != static_cast<uint32_t>(std::stoul(stored, nullptr, 16)))
      throw bad(cat("the tensor data does not match its checksum (CRC-32 ", hex_crc(crc), ", metadata '", kChecksumKey, "' says ", stored,
                    "): the file is corrupt (a changed byte or a damaged copy)"));
    out.metadata.erase(it);
    out.checksum = Checksum::Verified;
  }
  return out;
}

// ---- modules ----------------------------------------------------------------------------------------------
void save(const Module& module, const std::string& path, const Metadata& metadata) { save_safetensors(path, module.state_dict(), metadata); }

Metadata load(Module& module, const std::string& path, Checksum* checksum) {
  SafetensorsFile f = load_safetensors(path);
  if (checksum) *checksum = f.checksum;
  try {
    module.load_state_dict(f.tensors);
  } catch (const ShapeError& e) {
    throw ShapeError(cat("load(", path, "): ", e.what()));
  } catch (const DTypeError& e) {
    throw DTypeError(cat("load(", path, "): ", e.what()));
  } catch (const ValueError& e) {
    throw ValueError(cat("load(", path, "): ", e.what()));
  }
  return f.metadata;
}

}  // namespace dgm::nn
