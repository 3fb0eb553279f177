// A caching allocator for tensor storage. A training step allocates the same sizes every time
// (activations, gradients, temporaries); keeping freed blocks in per-size free lists means a
// steady-state step never goes back to the system allocator.
#pragma once
#include <cstddef>
#include <cstdint>

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

}  // namespace dgm
