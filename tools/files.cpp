#include <dgm/tools/files.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <dgm/tensor/errors.h>

namespace dgm::tools {

namespace fs = std::filesystem;

namespace {
std::string errno_text() { return std::strerror(errno); }

// Makes a rename durable: fsync the folder that holds the new name (best effort: some file systems
// refuse to open a folder for it).
void sync_folder(const std::string& path) {
  fs::path folder = fs::path(path).parent_path();
  if (folder.empty()) folder = ".";
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}
}  // namespace

std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw IOError(cat(path, ": is a directory, expected a file"));
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) throw IOError(cat(path, ": cannot open for reading (", errno_text(), ")"));
  // Read in chunks rather than trusting a size from stat: works for pipes and growing files too.
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(size_t{1} << 20);
  bool failed = false, too_big = false;
  for (;;) {
    const size_t got = std::fread(chunk.data(), 1, chunk.size(), file);
    if (bytes.size() + got > max_bytes) {
      too_big = true;
      break;
    }
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(got));
    if (got < chunk.size()) {
      failed = std::ferror(file) != 0;
      break;
    }
  }
  const std::string reason = errno_text();
  std::fclose(file);
  if (too_big) throw IOError(cat(path, ": larger than the ", max_bytes, " bytes expected at most"));
  if (failed) throw IOError(cat(path, ": read failed (", reason, ")"));
  return bytes;
}

std::string temporary_path(const std::string& path) { return cat(path, ".tmp.", ::getpid()); }

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  const std::string tmp = temporary_path(path);
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (!file) throw IOError(cat(path, ": cannot open ", tmp, " for writing (", errno_text(), ")"));
  bool ok = size == 0 || std::fwrite(data, 1, size, file) == size;  // fwrite(nullptr, ...) is undefined, even for 0 bytes
  ok = std::fflush(file) == 0 && ok;
  ok = ok && ::fsync(::fileno(file)) == 0;
  std::string reason = ok ? "" : errno_text();
  ok = std::fclose(file) == 0 && ok;
  if (!ok) {
    if (reason.empty()) reason = errno_text();
    std::remove(tmp.c_str());
    throw IOError(cat(path, ": writing ", size, " bytes to ", tmp, " failed (", reason, ")"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    reason = errno_text();
    std::remove(tmp.c_str());
    throw IOError(cat(path, ": cannot rename ", tmp, " to it (", reason, ")"));
  }
  sync_folder(path);
}

void write_file_atomic(const std::string& path, const std::string& text) { write_file_atomic(path, text.data(), text.size()); }

std::vector<std::string> remove_stale_temporaries(const std::string& folder) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t at = name.rfind(".tmp.");
    if (at == std::string::npos || at + 5 >= name.size()) continue;
    const std::string digits = name.substr(at + 5);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const long pid = std::stol(digits);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to ask): keep
    std::error_code rm;
    if (fs::remove(it->path(), rm)) removed.push_back(name);
  }
  return removed;
}

}  // namespace dgm::tools
