// A caching allocator for tensor storage. A training step allocates the same sizes every time
// (activations, gradients, temporaries); keeping freed blocks in per-size free lists means a
// steady-state step never goes back to the system allocator.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace dgm {

struct AllocatorStats {
  uint64_t system_allocs = 0;  // calls that went to the system allocator
  uint64_t cache_hits = 0;     // allocations served from the cache
  size_t bytes_in_use = 0;     // held by live tensors
  size_t bytes_cached = 0;     // freed, kept for reuse
  size_t peak_bytes_in_use = 0;
};
AllocatorStats allocator_stats();
void reset_peak_bytes();
// Returns every cached block to the system.
void empty_cache();
// DGM_CACHING_ALLOCATOR=0 turns caching off (every allocation goes to the system).
bool caching_enabled();

// No single allocation may exceed this (256 TiB): a larger request is a size computed from
// corrupt input, refused with a MemoryError before the system is asked.
constexpr size_t kMaxAllocationBytes = size_t{1} << 48;

// A memory budget for the code that runs on this thread while the scope lives: an allocation that
// would take the bytes allocated here (net of what was freed again) above `max_bytes` throws a
// MemoryError naming `what` before anything is allocated. Used to build a model from an untrusted
// config (models::create_model) without first trusting the config's sizes. Scopes nest; each
// enforces its own limit. Allocations made by other threads are not counted.
class AllocationLimit {
 public:
  AllocationLimit(size_t max_bytes, std::string what);
  ~AllocationLimit();
  AllocationLimit(const AllocationLimit&) = delete;
  AllocationLimit& operator=(const AllocationLimit&) = delete;
  size_t max_bytes() const { return max_bytes_; }
  size_t bytes() const { return bytes_; }  // allocated in the scope so far, net
  const std::string& what() const { return what_; }

 private:
  friend void* allocate_bytes(size_t);
  friend void free_bytes(void*, size_t);
  size_t max_bytes_, bytes_ = 0;
  std::string what_;
  AllocationLimit* outer_;
};

}  // namespace dgm
