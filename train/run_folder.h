// A run folder belongs to one writer at a time, and is never overwritten without being asked.
//
//   RunLock lock("runs/x");       // flock on runs/x/.dgm-lock; IOError naming the holder's pid if taken
//   holds_run("runs/x")           // a checkpoint or a log is there: a run a new one would overwrite
//
// The lock is an advisory flock(2): the kernel drops it when its process ends, however it ends, so
// a killed run never leaves a folder locked.
#pragma once
#include <string>

namespace dgm::train {

inline constexpr const char* kLockFile = ".dgm-lock";

class RunLock {
 public:
  // Creates `folder` if needed and takes its lock, or throws dgm::IOError naming the process that
  // holds it ("... is being written by process 1234").
  explicit RunLock(const std::string& folder);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// True if `folder` holds a run's checkpoint or log (model.safetensors or log.csv).
bool holds_run(const std::string& folder);

// True if paths a and b name the same file or folder (after resolving links and ".."), including
// when neither exists yet but they spell the same place.
bool same_path(const std::string& a, const std::string& b);
// True if `path` lies inside `folder` (or is it).
bool inside(const std::string& path, const std::string& folder);

}  // namespace dgm::train
