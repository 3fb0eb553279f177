#include <dgm/tensor/allocator.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <dgm/tensor/errors.h>
#include <dgm/tensor/storage.h>

// GCC defines __SANITIZE_ADDRESS__ under -fsanitize=address; clang (before 18) only answers
// __has_feature(address_sanitizer).
#if defined(__SANITIZE_ADDRESS__)
#define DGM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DGM_ASAN 1
#endif
#endif
#ifndef DGM_ASAN
#define DGM_ASAN 0
#endif

namespace dgm {

namespace {

// Blocks are 64-byte aligned and rounded up to a size class: multiples of 64 B up to 4 KiB, then
// steps of 1/8 of the next power of two (at most 12.5% waste), so a repeated size always hits.
size_t size_class(size_t n) {
  n = n == 0 ? 64 : n;
  if (n <= 4096) return (n + 63) / 64 * 64;
  size_t p = 1;
  while (p < n) p <<= 1;
  size_t step = p / 8;
  return (n + step - 1) / step * step;
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // size class -> blocks
  AllocatorStats stats;
  bool enabled = [] {
    const char* e = std::getenv("DGM_CACHING_ALLOCATOR");
    if (e) return e[0] != '0';
#if DGM_ASAN
    return false;  // let AddressSanitizer see every use-after-free
#else
    return true;
#endif
  }();
  // Above this much cached memory, freed blocks go back to the system.
  size_t max_cached = size_t(8) << 30;
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: storages may be freed during static destruction
  return *c;
}

thread_local AllocationLimit* t_limit = nullptr;  // the innermost scope of this thread

}  // namespace

AllocationLimit::AllocationLimit(size_t max_bytes, std::string what) : max_bytes_(max_bytes), what_(std::move(what)), outer_(t_limit) {
  t_limit = this;
}
AllocationLimit::~AllocationLimit() { t_limit = outer_; }

void* allocate_bytes(size_t nbytes) {
  if (nbytes > kMaxAllocationBytes)
    throw MemoryError(cat("allocate: ", nbytes, " bytes requested, above the limit of ", kMaxAllocationBytes, " bytes for one block"));
  size_t sz = size_class(nbytes);
  for (AllocationLimit* l = t_limit; l; l = l->outer_)
    if (sz > l->max_bytes_ - std::min(l->bytes_, l->max_bytes_))
      throw MemoryError(cat(l->what_, ": needs more than the limit of ", l->max_bytes_, " bytes (", l->bytes_,
                            " bytes allocated so far, the next block is ", nbytes, ")"));
  for (AllocationLimit* l = t_limit; l; l = l->outer_) l->bytes_ += sz;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.stats.bytes_in_use += sz;
    c.stats.peak_bytes_in_use = std::max(c.stats.peak_bytes_in_use, c.stats.bytes_in_use);
    auto it = c.free_blocks.find(sz);
    if (c.enabled && it != c.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.stats.bytes_cached -= sz;
      ++c.stats.cache_hits;
      return p;
    }
    ++c.stats.system_allocs;
  }
  void* p = nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // Blocks of 4 MiB and more (activations, their gradients) go on 2 MiB pages where the kernel
  // offers them on request (transparent_hugepage=madvise, Debian's default): the hardware
  // prefetchers stop at page boundaries, and a pass over a 12.8 MB activation crosses 3,000 of
  // them on 4 KiB pages. The advice is a hint; refused, the block stays on small pages.
  constexpr size_t kHugePage = size_t{2} << 20;
  if (sz >= 2 * kHugePage) {
    const size_t rounded = (sz + kHugePage - 1) / kHugePage * kHugePage;
    p = std::aligned_alloc(kHugePage, rounded);
    if (p) madvise(p, rounded, MADV_HUGEPAGE);
  } else {
    p = std::aligned_alloc(64, sz);
  }
#else
  p = std::aligned_alloc(64, sz);
#endif
  if (!p) {
    for (AllocationLimit* l = t_limit; l; l = l->outer_) l->bytes_ -= sz;
    std::lock_guard<std::mutex> lock(c.mu);
    c.stats.bytes_in_use -= sz;
    throw MemoryError(cat("out of memory allocating ", nbytes, " bytes"));
  }
  return p;
}

void free_bytes(void* p, size_t nbytes) {
  if (!p) return;
  size_t sz = size_class(nbytes);
  for (AllocationLimit* l = t_limit; l; l = l->outer_) l->bytes_ -= std::min(l->bytes_, sz);  // blocks from before the scope count 0
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.stats.bytes_in_use -= sz;
    if (c.enabled && c.stats.bytes_cached + sz <= c.max_cached) {
      c.free_blocks[sz].push_back(p);
      c.stats.bytes_cached += sz;
      return;
    }
  }
  std::free(p);
}

AllocatorStats allocator_stats() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().stats;
}
void reset_peak_bytes() {
  std::lock_guard<std::mutex> lock(cache().mu);
  cache().stats.peak_bytes_in_use = cache().stats.bytes_in_use;
}
void empty_cache() {
  std::lock_guard<std::mutex> lock(cache().mu);
  for (auto& [sz, blocks] : cache().free_blocks)
    for (void* p : blocks) std::free(p);
  cache().free_blocks.clear();
  cache().stats.bytes_cached = 0;
}
bool caching_enabled() { return cache().enabled; }

}  // namespace dgm
