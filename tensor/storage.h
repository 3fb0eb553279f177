// A Storage is one owned, 64-byte aligned block of memory, shared by a tensor and all its views.
// It also carries the version counter that autograd uses to detect in-place changes to tensors
// saved for backward (every in-place op bumps it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace dgm {

// Memory comes from here, so that a caching allocator can be slotted in without touching users.
void* allocate_bytes(size_t nbytes);
void free_bytes(void* p, size_t nbytes);

struct Storage {
  explicit Storage(size_t nbytes) : nbytes(nbytes), data(allocate_bytes(nbytes)) {}
  ~Storage() { free_bytes(data, nbytes); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  size_t nbytes;
  void* data;
  uint64_t version = 0;
};

}  // namespace dgm
