#include <dgm/train/run_folder.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include <dgm/tensor/errors.h>

namespace dgm::train {

namespace fs = std::filesystem;

RunLock::RunLock(const std::string& folder) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (!fs::is_directory(folder, ec)) throw IOError(cat("cannot create the run folder ", folder, (ec ? ": " + ec.message() : std::string())));
  const std::string path = (fs::path(folder) / kLockFile).string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IOError(cat("cannot open the lock file ", path, " (", std::strerror(errno), ")"));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("?");
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    throw IOError(cat("the run folder ", folder, " is being written by process ", holder,
                      " (one writer at a time: wait for it, stop it, or choose another --out)"));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // the lock is held; only the holder's pid for others' messages is missing
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

bool holds_run(const std::string& folder) {
  std::error_code ec;
  return fs::exists(fs::path(folder) / "model.safetensors", ec) || fs::exists(fs::path(folder) / "log.csv", ec);
}

bool same_path(const std::string& a, const std::string& b) {
  std::error_code ea, eb;
  if (fs::exists(a, ea) && fs::exists(b, eb)) return fs::equivalent(a, b, ea);
  const fs::path ca = fs::weakly_canonical(fs::absolute(a), ea), cb = fs::weakly_canonical(fs::absolute(b), eb);
  return !ea && !eb && ca == cb;
}

bool inside(const std::string& path, const std::string& folder) {
  std::error_code ep, ef;
  const fs::path p = fs::weakly_canonical(fs::absolute(path), ep), f = fs::weakly_canonical(fs::absolute(folder), ef);
  if (ep || ef) return false;
  auto pi = p.begin(), fi = f.begin();
  for (; fi != f.end() && !fi->empty(); ++fi, ++pi)
    if (pi == p.end() || *pi != *fi) return false;
  return true;
}

}  // namespace dgm::train
