// GEMM: C = alpha * A @ B + beta * C on strided operands (see tensor/gemm.h).
//
// The fast path follows the BLIS / GotoBLAS design:
//
//   for jc in N, step NC:
//     for pc in K, step KC:
//       pack B[pc:pc+KC, jc:jc+NC] into NR-column panels          (the B block stays in L3)
//       for ic in M, step MC:
//         pack A[ic:ic+MC, pc:pc+KC] into MR-row panels            (the A block stays in L2)
//         for jr in NC, step NR:                                   (one KC x NR B panel stays in L1)
//           for ir in MC, step MR:
//             micro-kernel: C[ir:ir+MR, jr:jr+NR] += A panel @ B panel (an MR x NR tile in registers)
//
// Why this order is fast: each B panel is read from L1 by all MC/MR A panels, each A panel from L2
// by all NC/NR B panels, so no level of the memory hierarchy is asked for more bytes per FMA than
// it can deliver. KC, MC and NC follow the cache sizes the CPU reports (see `blocking`).
// Packing copies a block once into the exact order the micro-kernel reads it (contiguous, aligned,
// zero-padded to whole panels), whatever its strides were.
// Products whose B is a single NR-column panel (e.g. attention's probs @ v with a head size of 16)
// keep the older order: a row- or column-major A is read in place, one MR-row panel at a time (it
// stays in L1) against the B panel; packing A there would cost as much as the product saves
// (measured: up to 1.4x). So do products with a row-major A of one KC block and at most 128 columns
// of B (ImageGPT's 64-wide layers and their input gradients): each A panel, MR rows of K <= KC
// contiguous values, stays in L1 while the panels of B (in L2) pass it. On one Zen 3 core, medians
// of 37 interleaved calls (s15): 25088 x 64 x 64 51 -> 56 GFLOP/s, x 32 x 64 44 -> 60, x 64 x 256
// 51 -> 57, x 128 x 256 72 -> 79; from 12 panels on packing wins (x 192 x 64 64 vs 60, x 256 x 64
// 64 vs 61; MLP-AR's 12544 x 256 x 256 equal). In s13, with other blocking and prefetching, 12544
// x 256 x 256 ran at 68 vs 85 in place vs packed and 12544 x 32 x 256 at 37 vs 43.
// Threads (`gemm_threaded`): tall products share out blocks of rows; where the cores share an L3,
// products whose packed B fits in half of it pack it once with all threads and share out blocks of
// rows against it; others give each thread a rectangle of C; deep products (K many times M and N:
// weight gradients) are cut along K into a number of slices fixed by the shape and the CPU
// (`gemm_sliced`). Every C element sees the same summation order whichever thread computes it (it
// depends on KC, which depends on K and the CPU only, and on the slices), so the result does not
// depend on the thread count.
#include <dgm/tensor/gemm.h>

#include <omp.h>

#include <unistd.h>
#if defined(__linux__)
#include <sched.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <dgm/tensor/errors.h>
#include <dgm/tensor/simd.h>

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__AVX__)
#include <immintrin.h>
#endif

namespace dgm::cpu {
namespace {

// ---- scratch memory ----------------------------------------------------------------------------

// A grow-only, 64-byte aligned buffer. Each thread keeps one per use (packed A, packed B, ...), so
// after the first call of a given size gemm allocates nothing.
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer() { ::operator delete(data_, std::align_val_t{64}); }

  template <class T>
  T* get(size_t count) {
    size_t bytes = count * sizeof(T);
    if (bytes > bytes_) {
      ::operator delete(data_, std::align_val_t{64});
      data_ = nullptr;  // stays valid if the allocation below throws
      bytes_ = 0;
      data_ = ::operator new(bytes, std::align_val_t{64});
      bytes_ = bytes;
    }
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

enum ScratchSlot { kPackedA, kPackedB, kRowAccumulator, kSlicePartials, kNumSlots };

template <class T>
T* scratch(ScratchSlot slot, size_t count) {
  thread_local ScratchBuffer buffers[kNumSlots];
  return buffers[slot].get<T>(count);
}

// ---- micro-kernels -----------------------------------------------------------------------------
//
// Every micro-kernel has the same contract:
//   tile[i][j] = alpha * sum_k A(i,k) * b[k*NR + j]  (+ beta * tile[i][j] if beta != 0)
// for a full MR x NR tile stored at c[i*ldc + j], where `b` is a packed B panel (see pack_block)
// and A(i,k) is either a[i*lda + k] (kRowMajorA: A read in place) or a[k*lda + i] (a packed A
// micro-panel, lda = MR; or a column-major A read in place, lda = its column stride; the portable
// kernel is only given packed panels). With beta == 0 the old tile is never read. With an epilogue
// `ep` (bias from the tile's first column, ReLU) the tile is finished in registers: the same
// operations, in the same order, as apply_epilogue on the stored tile, without loading it again.

// Portable version for CPUs without AVX2: plain loops, written so that the compiler can keep a
// column of A and a row of B in registers and vectorise over j.
template <class T, int MR_, int NR_>
struct PortableKernel {
  static constexpr int MR = MR_, NR = NR_;
  // Reading A in place measured 4x slower here (the compiler vectorises that loop poorly), so
  // this kernel is always given a packed A.
  static constexpr bool kReadsAInPlace = false, kReadsRowMajorAInPlace = false;
  template <bool kRowMajorA>
  static void run(int64_t kc, const T* __restrict a, int64_t lda, const T* __restrict b, T alpha, T beta, T* __restrict c,
                  int64_t ldc, const GemmEpilogue<T>* ep) {
    T acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k, a += kRowMajorA ? 1 : MR, b += NR) {
      T a_col[MR], b_row[NR];
      for (int i = 0; i < MR; ++i) a_col[i] = kRowMajorA ? a[i * lda] : a[i];
      for (int j = 0; j < NR; ++j) b_row[j] = b[j];
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] += a_col[i] * b_row[j];
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) {
        T v = beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
        if (ep) {
          if (ep->bias) v = v + ep->bias[j];
          if (ep->relu && v < T(0)) v = T(0);
        }
        c[i * ldc + j] = v;
      }
  }
};

#if DGM_SIMD_KERNELS || DGM_NEON_KERNELS

// Register-blocked kernel: the MR x NR tile of C lives in MR * NV vector registers (NR = NV
// vectors) for the whole k loop. Each step loads one row of the B panel (NV vectors), broadcasts MR
// values of A and does MR * NV independent FMAs, enough to hide the FMA latency.
// The loops over registers are fully unrolled so that `acc` is register-allocated, not an array.
template <class V, int MR_, int NV>
struct SimdKernel {
  using T = typename V::scalar;
  using Reg = typename V::type;
  static constexpr int MR = MR_, NR = NV * V::width;
  static constexpr bool kReadsAInPlace = true;
  // NEON (simd.h): A's MR values of one k (adjacent: a packed or column-major panel) as MR / width
  // vectors, each row's FMAs taking its value from a lane.
  static constexpr bool kByLane = requires { V::kFmaByLane; };
  // A row-major A read in place gives the MR values of each k from MR rows: x86 broadcasts each with
  // one load; NEON would gather them lane by lane (8 loads and 8 address adds per k beside 24 FMAs),
  // so there a row-major A is packed and run<true> never instantiated.
  static constexpr bool kReadsRowMajorAInPlace = !kByLane;
  [[gnu::always_inline]] static inline void fma_by_lane(const T* a, const Reg (&b_row)[NV], Reg (&acc)[MR][NV]) {
    constexpr int W = V::width;
    static_assert(MR % W == 0, "the tile's rows must fill whole vectors of A");
    Reg a_vec[MR / W];
#pragma GCC unroll 16
    for (int g = 0; g < MR / W; ++g) a_vec[g] = V::loadu(a + g * W);
    [&]<int... I>(std::integer_sequence<int, I...>) {
      const auto row = [&]<int i>(std::integral_constant<int, i>) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = V::template fmadd_lane<i % W>(a_vec[i / W], b_row[v], acc[i][v]);
      };
      (row(std::integral_constant<int, I>{}), ...);
    }(std::make_integer_sequence<int, MR>{});
  }
  // Not inlined: its code is then the same whatever calls it. Inlined, GCC once compiled it in one
  // caller with every FMA taking its B operand from memory (18 loads per 12 FMAs), 15% slower.
  template <bool kRowMajorA>
  [[gnu::noinline]] static void run(int64_t kc, const T* __restrict a, int64_t lda, const T* __restrict b, T alpha, T beta, T* __restrict c,
                  int64_t ldc, const GemmEpilogue<T>* ep) {
    Reg acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
    // The tile of C is only touched at the end: ask for it now so it is in L1 by then.
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      __builtin_prefetch(c + i * ldc, 0, 3);
      __builtin_prefetch(c + i * ldc + NR - 1, 0, 3);
    }
    // Four steps per loop turn (GCC does not unroll without being asked): the pointer updates and
    // the branch are paid once per 48 FMAs. On 2 Zen 3 cores, the two versions in one process,
    // alternated, medians of 15 calls: 256^3 114 -> 120 GFLOP/s, 1024^3 144 -> 153, MLP-AR's
    // 12544 x 256 x 256 134 -> 144 and its weight gradient 121 -> 131; 8 steps measured within noise.
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k, a += kRowMajorA ? 1 : lda, b += NR) {
      Reg b_row[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) b_row[v] = V::load(b + v * V::width);
      // Fetch ahead the operand that streams: a packed or column-major A micro-panel comes from L2
      // against a B panel kept in L1 (16 steps ahead; on 2 Zen 3 cores +5% at 256^3-1024^3 and on
      // MLP-AR's layers, medians of 9-15 calls, against fetching B); a row-major A read in place
      // stays in L1 against B panels that stream.
      __builtin_prefetch(kRowMajorA ? b + 8 * NR : a + 16 * lda, 0, 3);
      if constexpr (kByLane) {
        static_assert(!kRowMajorA, "a row-major A is packed for this kernel");
        fma_by_lane(a, b_row, acc);
      } else {
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
          Reg a_ik = V::broadcast(kRowMajorA ? a[i * lda] : a[i]);
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) acc[i][v] = V::fmadd(a_ik, b_row[v], acc[i][v]);
        }
      }
    }
    const Reg va = V::broadcast(alpha), vb = V::broadcast(beta);
    // the epilogue: + bias, then ReLU as max(0, r), which keeps a NaN (max returns its second operand)
    const bool relu = ep && ep->relu;
    const T* bias = ep ? ep->bias : nullptr;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        T* p = c + i * ldc + v * V::width;
        Reg r = V::mul(acc[i][v], va);
        if (beta != T(0)) r = V::fmadd(vb, V::loadu(p), r);
        if (bias) r = V::add(r, V::loadu(bias + v * V::width));
        if (relu) r = V::max(V::zero(), r);
        V::storeu(p, r);
      }
  }
};

#endif

// A micro-kernel (its MR x NR tile) and, chosen at run time from the cache sizes (see
// `blocking`), the depth KC of one rank-KC update, the rows MC of A packed at a time and the
// width NC of the packed B block.
template <class Kernel_>
struct Config {
  using Kernel = Kernel_;
  static constexpr int MR = Kernel::MR, NR = Kernel::NR;
};

// The configurations per type and instruction set. `Narrow` is for products with N <= its NR,
// where the wide tile would be mostly padding (e.g. attention's probs @ v with a head size of 16).
template <class T>
struct Configs;

#if DGM_WIDE_VECTORS
// 8 x 32 tile = 16 zmm accumulators + 2 for B + 1 broadcast. On Zen 4 it measured a few % faster
// than 12 x 32, 6 x 64 and 8 x 48 (fewer broadcasts per FMA), and 8 divides the sizes our models
// use (64, 192, 256, 784), so edge tiles are rare.
template <>
struct Configs<float> {
  using Wide = Config<SimdKernel<FloatVec, 8, 2>>;
  using Narrow = Config<SimdKernel<FloatVec, 8, 1>>;
};
template <>
struct Configs<double> {
  using Wide = Config<SimdKernel<DoubleVec, 8, 2>>;
  using Narrow = Config<SimdKernel<DoubleVec, 8, 1>>;
};
#elif defined(__AVX2__) && defined(__FMA__)
// 6 x 2-vector tile = 12 ymm accumulators + 2 for B + 1 broadcast, of 16 registers: per k, 2 loads
// and 6 broadcasts (loads from L1 on Zen 3) feed 12 FMAs.
template <>
struct Configs<float> {
  using Wide = Config<SimdKernel<FloatVec, 6, 2>>;
  using Narrow = Wide;
};
template <>
struct Configs<double> {
  using Wide = Config<SimdKernel<DoubleVec, 6, 2>>;
  using Narrow = Wide;
};
#elif DGM_NEON_KERNELS
// 64-bit ARM, 32 NEON registers of 4 floats: an 8 x 12 float tile (6 x 8 doubles) = 24 accumulators
// + 3 for B + 1 for A's value, as BLIS's ARMv8 kernels. A core with 4 FMA pipes of latency 4 (Apple's
// performance cores) needs 16 independent accumulators; the portable kernel's 8 would cap it at half
// its peak. Not yet timed on ARM hardware (tests: qemu-aarch64, scripts/test-arm.sh).
template <>
struct Configs<float> {
  using Wide = Config<SimdKernel<Float4, 8, 3>>;
  using Narrow = Wide;
};
template <>
struct Configs<double> {
  using Wide = Config<SimdKernel<Double2, 6, 4>>;
  using Narrow = Wide;
};
#else
// 4 x 8 floats = 8 SSE accumulators of 16 registers (4 x 16 spilled and ran at half the speed).
template <>
struct Configs<float> {
  using Wide = Config<PortableKernel<float, 4, 8>>;
  using Narrow = Wide;
};
template <>
struct Configs<double> {
  using Wide = Config<PortableKernel<double, 4, 4>>;
  using Narrow = Wide;
};
#endif

// ---- cache blocking ----------------------------------------------------------------------------

int64_t sysfs_cache_size(int index) {
  std::ifstream in("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
  int64_t value = 0;
  char unit = 0;
  if (!(in >> value) || value <= 0) return 0;
  if (in >> unit) value *= unit == 'K' ? 1024 : unit == 'M' ? 1024 * 1024 : 1;
  return value;
}

// Whether the L3 of cpu 0 (the sysfs cache index of level 3) is shared by every CPU in this
// process's affinity mask, by its shared_cpu_list ("0-7,16-23").
bool sysfs_l3_shared_by_all() {
#if defined(__linux__)
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index);
    std::ifstream level_in(dir + "/level");
    int level = 0;
    if (!(level_in >> level)) return false;
    if (level != 3) continue;
    std::ifstream list_in(dir + "/shared_cpu_list");
    std::string list;
    cpu_set_t allowed;
    if (!(list_in >> list) || sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return false;
    std::vector<int> cpus;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
    return cpu_list_covers(list, cpus);
  }
#endif
  return false;
}

CacheSizes detect_cache_sizes() {
  CacheSizes sizes;
  sizes.l3_shared = sysfs_l3_shared_by_all();
  // sysfs index0 = L1d, index1 = L1i, index2 = L2, index3 = L3 (sysconf's L3 can be the whole
  // host's under a hypervisor, so sysfs comes first)
  int64_t reported[3] = {sysfs_cache_size(0), sysfs_cache_size(2), sysfs_cache_size(3)};
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
  if (reported[0] <= 0) reported[0] = sysconf(_SC_LEVEL1_DCACHE_SIZE);
  if (reported[1] <= 0) reported[1] = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (reported[2] <= 0) reported[2] = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
  // Ignore absurd reports (some hypervisors say 0 or a few bytes).
  if (reported[0] >= (8 << 10)) sizes.l1 = std::min<int64_t>(reported[0], 256 << 10);
  if (reported[1] >= (128 << 10)) sizes.l2 = std::min<int64_t>(reported[1], 16 << 20);
  if (reported[2] >= (1 << 20)) sizes.l3 = reported[2];
  return sizes;
}

// -1: as reported; 0 or 1: set_l3_shared's override
std::atomic<int> l3_shared_override{-1};
bool l3_shared() {
  const int o = l3_shared_override.load(std::memory_order_relaxed);
  return o < 0 ? cache_sizes().l3_shared : o == 1;
}

struct Blocking {
  int64_t kc, mc, nc;
};

// KC: a KC x NR B panel fills half of L1 (the rest holds the A panel streaming through and C);
// with AVX2's 6 x 16 tile, all of L1: per k the tile needs 64 bytes of B and 24 of A, which L2 alone
// could deliver, and a deeper KC halves the passes over C. On 2 Zen 3 cores (32 KiB L1, so KC 512
// instead of 256), interleaved in one process, medians of 9-15 calls: 512^3 92-137 -> 108-150
// GFLOP/s, 1024^3 83-130 -> 93-147, MLP-AR's layers and weight gradient equal or better, one core
// equal or better. AVX-512's 8 x 32 tile: two thirds of L1 (with the A micro-panel, 5/6 of it).
// On 2 Zen 5 cores (48 KiB L1, so KC 256 instead of 192), three alternated runs of medians of 11
// calls: 256^3 362-384 -> 410-415 GFLOP/s (one K block instead of two), 512^3 354-378 -> 375-392,
// 1024^3 350-379 -> 360-378, MLP-AR's layers and weight gradient equal or +1-5%; one core equal or
// better. (On Zen 4, at half of 32 KiB, the tile measured 86-89% of peak.)
// MC: an MC x KC A block fills half of L2; with AVX2, three quarters (the B panel in L1 needs
// little L2 behind it): on the same 2 cores, medians 512^3 108-111 -> 131-139 GFLOP/s, 1024^3
// 68-130 -> 112-138, one core at 256^3 62 -> 79 in a noisy minute, equal in a quiet one.
// NC: a KC x NC B block takes a core's share of half of L3. KC is the only one that affects the
// summation order, and it depends on the CPU only.
template <class Cfg, class T>
Blocking blocking() {
  const CacheSizes& caches = cache_sizes();
  constexpr int64_t MR = Cfg::MR, NR = Cfg::NR, size = sizeof(T);
#if defined(__AVX2__) && defined(__FMA__) && !DGM_WIDE_VECTORS
  const int64_t l1_for_B = caches.l1, l2_for_A = caches.l2 * 3 / 4;
#else
  const int64_t l1_for_B = DGM_WIDE_VECTORS ? caches.l1 * 2 / 3 : caches.l1 / 2, l2_for_A = caches.l2 / 2;
#endif
  const int64_t kc = std::clamp<int64_t>(l1_for_B / (NR * size) / 16 * 16, 64, 1024);
  const int64_t mc = std::clamp<int64_t>(l2_for_A / (kc * size) / MR * MR, MR, 1024 / MR * MR);
  const int64_t cores = std::max<int64_t>(1, omp_get_num_procs());
  const int64_t nc = std::clamp<int64_t>(caches.l3 / 2 / cores / (kc * size) / NR * NR, 4 * NR, 8192 / NR * NR);
  return {kc, mc, nc};
}

// ---- packing -----------------------------------------------------------------------------------

// dst[k*W + r] = src[r*step + k] for r < width, k < kc: a transpose, since src rows run along k.
// This packs a transposed B (x @ W^T) and the last row panel of a row-major A; it is worth SIMD
// because a plain loop would gather from `width` rows with scalar loads.
template <int W, class T>
void pack_transposed(const T* src, int64_t step, int64_t width, int64_t kc, T* dst) {
  int64_t r0 = 0;
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float>) {
    // 8 rows x 8 k at a time (panels of 8 or more: AVX-512's A panels, transposed B panels): an 8x8
    // transpose whose 8 results are whole 8-value runs of dst, one store each (the 4-row blocks
    // below need 16 half-size stores for the same values).
    if constexpr (W >= 8) {
      for (; r0 + 8 <= width; r0 += 8) {
        const float* s = src + r0 * step;
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
          __m256 x[8];
          for (int r = 0; r < 8; ++r) x[r] = _mm256_loadu_ps(s + r * step + k);
          // rows (0,1), (2,3), ... interleaved, then 4-row groups of each k in each 128-bit lane
          __m256 t[8], u[8];
          for (int r = 0; r < 8; r += 2) t[r] = _mm256_unpacklo_ps(x[r], x[r + 1]), t[r + 1] = _mm256_unpackhi_ps(x[r], x[r + 1]);
          for (int h = 0; h < 8; h += 4) {
            u[h + 0] = _mm256_shuffle_ps(t[h + 0], t[h + 2], 0x44);  // k 0 | 4 of rows h..h+3
            u[h + 1] = _mm256_shuffle_ps(t[h + 0], t[h + 2], 0xEE);  // k 1 | 5
            u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);  // k 2 | 6
            u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);  // k 3 | 7
          }
          float* d = dst + k * W + r0;
          for (int j = 0; j < 4; ++j) {
            _mm256_storeu_ps(d + j * W, _mm256_permute2f128_ps(u[j], u[j + 4], 0x20));
            _mm256_storeu_ps(d + (j + 4) * W, _mm256_permute2f128_ps(u[j], u[j + 4], 0x31));
          }
        }
        for (; k < kc; ++k)
          for (int64_t r = 0; r < 8; ++r) dst[k * W + r0 + r] = s[r * step + k];
      }
    }
    // 4 rows x 8 k at a time: two 4x4 transposes side by side in the two 128-bit lanes of a ymm;
    // lane 0 of the result holds k..k+3, lane 1 holds k+4..k+7.
    for (; r0 + 4 <= width; r0 += 4) {
      const float* s = src + r0 * step;
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        __m256 x0 = _mm256_loadu_ps(s + k), x1 = _mm256_loadu_ps(s + step + k);
        __m256 x2 = _mm256_loadu_ps(s + 2 * step + k), x3 = _mm256_loadu_ps(s + 3 * step + k);
        __m256 t0 = _mm256_unpacklo_ps(x0, x1), t1 = _mm256_unpackhi_ps(x0, x1);
        __m256 t2 = _mm256_unpacklo_ps(x2, x3), t3 = _mm256_unpackhi_ps(x2, x3);
        __m256 c0 = _mm256_shuffle_ps(t0, t2, 0x44), c1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        __m256 c2 = _mm256_shuffle_ps(t1, t3, 0x44), c3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        float* d = dst + k * W + r0;
        _mm_storeu_ps(d + 0 * W, _mm256_castps256_ps128(c0));
        _mm_storeu_ps(d + 1 * W, _mm256_castps256_ps128(c1));
        _mm_storeu_ps(d + 2 * W, _mm256_castps256_ps128(c2));
        _mm_storeu_ps(d + 3 * W, _mm256_castps256_ps128(c3));
        _mm_storeu_ps(d + 4 * W, _mm256_extractf128_ps(c0, 1));
        _mm_storeu_ps(d + 5 * W, _mm256_extractf128_ps(c1, 1));
        _mm_storeu_ps(d + 6 * W, _mm256_extractf128_ps(c2, 1));
        _mm_storeu_ps(d + 7 * W, _mm256_extractf128_ps(c3, 1));
      }
      for (; k < kc; ++k)
        for (int64_t r = 0; r < 4; ++r) dst[k * W + r0 + r] = s[r * step + k];
    }
    // 2 rows x 8 k (the last two rows of AVX2's 6-row panels): unpacking interleaves them into
    // the (row r0, row r0 + 1) pairs of each k, stored as 8-byte halves
    for (; r0 + 2 <= width; r0 += 2) {
      const float* s = src + r0 * step;
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        __m256 x0 = _mm256_loadu_ps(s + k), x1 = _mm256_loadu_ps(s + step + k);
        __m256 lo = _mm256_unpacklo_ps(x0, x1), hi = _mm256_unpackhi_ps(x0, x1);  // k 0 1 4 5 | k 2 3 6 7
        float* d = dst + k * W + r0;
        __m128 l0 = _mm256_castps256_ps128(lo), l1 = _mm256_extractf128_ps(lo, 1);
        __m128 h0 = _mm256_castps256_ps128(hi), h1 = _mm256_extractf128_ps(hi, 1);
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 0 * W), l0);
        _mm_storeh_pi(reinterpret_cast<__m64*>(d + 1 * W), l0);
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 2 * W), h0);
        _mm_storeh_pi(reinterpret_cast<__m64*>(d + 3 * W), h0);
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 4 * W), l1);
        _mm_storeh_pi(reinterpret_cast<__m64*>(d + 5 * W), l1);
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 6 * W), h1);
        _mm_storeh_pi(reinterpret_cast<__m64*>(d + 7 * W), h1);
      }
      for (; k < kc; ++k)
        for (int64_t r = 0; r < 2; ++r) dst[k * W + r0 + r] = s[r * step + k];
    }
  }
#endif
  for (int64_t r = r0; r < width; ++r)
    for (int64_t k = 0; k < kc; ++k) dst[k * W + r] = src[r * step + k];
}

// Packs n lines (A: rows; B: columns) of depth kc into ceil(n / W) panels of W lines each,
// stored k-major: panel p holds dst[p*W*kc + k*W + r] = src[(p*W + r)*step + k*kstride].
// A's MR-row panels use (step, kstride) = (rsA, csA); B's NR-column panels use (csB, rsB).
// The last panel is padded with zeros to a whole tile: the padding only feeds tile entries that are
// thrown away, and zeros keep them finite and fast.
template <int W, class T>
void pack_block(const T* src, int64_t step, int64_t kstride, int64_t n, int64_t kc, T* dst) {
  const int64_t panels = (n + W - 1) / W;
  if (n % W != 0) {  // zero the last panel first, in one go; only its first n % W lines get data
    T* last = dst + (panels - 1) * W * kc;
    std::fill(last, last + W * kc, T(0));
  }
  if (step == 1) {
    // The lines are contiguous along each k: plain copies. Going through 16 values of k for all
    // panels at a time reads whole source rows and writes runs of 16*W values: both sides stream
    // (panel by panel would read a few bytes per source row; k by k would scatter the writes).
    constexpr int64_t kChunk = 16;
    for (int64_t k0 = 0; k0 < kc; k0 += kChunk) {
      const int64_t k1 = std::min(kc, k0 + kChunk);
      // ask for the next chunk's lines now: 16 rows read side by side are more streams than the
      // hardware prefetcher follows (MLP-AR's weight gradient: +3-5% with this and the memcpy below)
      for (int64_t k = k0 + kChunk; k < std::min(kc, k0 + 2 * kChunk); ++k)
        for (int64_t j = 0; j < n; j += 64 / int64_t(sizeof(T))) __builtin_prefetch(src + k * kstride + j);
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t width = std::min<int64_t>(W, n - p * W);
        for (int64_t k = k0; k < k1; ++k) {
          const T* s = src + k * kstride + p * W;
          T* d = dst + p * W * kc + k * W;
          if (width == W) {
            std::memcpy(d, s, W * sizeof(T));  // a few vector moves (GCC made W scalar moves of a loop)
          } else {
            for (int64_t r = 0; r < width; ++r) d[r] = s[r];
          }
        }
      }
    }
    return;
  }
  for (int64_t p = 0; p < panels; ++p) {
    const T* s = src + p * W * step;
    T* d = dst + p * W * kc;
    const int64_t width = std::min<int64_t>(W, n - p * W);
    if (kstride == 1 && p + 2 < panels) {
      // ask for the lines two panels ahead: the transposing loads walk W rows side by side, which
      // the hardware prefetcher follows late (a row-major A coming from memory: MLP-AR's and
      // ImageGPT's activations). On 2 Zen 3 cores, interleaved in one process (with 4 panels ahead),
      // medians of 31 calls on one core: 12544 x 256 x 256 71.5 -> 74.8 GFLOP/s, 3136 x 256 x 256
      // 69.1 -> 72.9; of 41 on two: 145.2 -> 150.5, 142.0 -> 148.7, ImageGPT's 25088 x 192 x 64
      // 121.5 -> 125.5 (the old code fastest in 3-8 calls of 41); 1024^3 145.0 -> 144.8.
      const T* ahead = src + (p + 2) * W * step;
      for (int64_t r = 0; r < W; ++r)
        for (int64_t k = 0; k < kc; k += 64 / int64_t(sizeof(T))) __builtin_prefetch(ahead + r * step + k);
    }
    if (kstride == 1) {
      pack_transposed<W>(s, step, width, kc, d);
    } else {
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = 0; r < width; ++r) d[k * W + r] = s[r * step + k * kstride];
    }
  }
}

// ---- one thread's blocked GEMM -----------------------------------------------------------------

// C[i, j] = act(C[i, j] + bias[j]) over `rows` rows of `n` columns (row-major or not)
template <class T>
void apply_epilogue(int64_t rows, int64_t n, T* C, int64_t rsC, int64_t csC, const GemmEpilogue<T>& ep) {
  for (int64_t i = 0; i < rows; ++i) {
    T* c = C + i * rsC;
    if (csC == 1) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        const T v = ep.bias ? c[j] + ep.bias[j] : c[j];
        c[j] = ep.relu && v < T(0) ? T(0) : v;
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        const T v = ep.bias ? c[j * csC] + ep.bias[j] : c[j * csC];
        c[j * csC] = ep.relu && v < T(0) ? T(0) : v;
      }
    }
  }
}

// One m x n tile (m <= MR, n <= NR) of C at `c`: `run(tile_beta, out, ldc, tile_ep)` computes a whole
// MR x NR tile into `out`. Whole tiles of a row-major C are written in place, finished by the kernel
// with the epilogue `ep` (or null, on all but the last K block; its bias starts at the tile's first
// column); edge tiles and other layouts go through a local tile and get the epilogue after.
template <int MR, int NR, class T, class Run>
void store_tile(int64_t m, int64_t n, T beta, T* c, int64_t rsC, int64_t csC, const GemmEpilogue<T>* ep, const Run& run) {
  if (m == MR && n == NR && csC == 1) {
    run(beta, c, rsC, ep);
    return;
  }
  alignas(64) T tile[MR * NR];
  run(T(0), tile, int64_t(NR), static_cast<const GemmEpilogue<T>*>(nullptr));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      T& out = c[i * rsC + j * csC];
      out = beta == T(0) ? tile[i * NR + j] : tile[i * NR + j] + beta * out;
    }
  if (ep) apply_epilogue(m, n, c, rsC, csC, *ep);
}

// The bias from column j on (the epilogue of the tiles that start at column j), or null.
template <class T>
const GemmEpilogue<T>* epilogue_from(const GemmEpilogue<T>* ep, int64_t j, GemmEpilogue<T>& storage) {
  if (!ep) return nullptr;
  storage = {ep->bias ? ep->bias + j : nullptr, ep->relu};
  return &storage;
}

// An mc x nc block of C against a packed A block (MR-row panels) and a packed B block (NR-column
// panels) of depth kc: B panel outside (it stays in L1), A panels inside (they stream from L2).
template <class Cfg, class T>
void macro_kernel_packed(int64_t mc, int64_t nc, int64_t kc, T alpha, T beta, const T* packed_A, const T* packed_B, T* C,
                         int64_t rsC, int64_t csC, const GemmEpilogue<T>* ep) {
  using Kernel = typename Cfg::Kernel;
  constexpr int MR = Cfg::MR, NR = Cfg::NR;
  GemmEpilogue<T> ep_tile;
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const T* b = packed_B + jr * kc;
    const int64_t n = std::min<int64_t>(NR, nc - jr);
    const GemmEpilogue<T>* ep_here = epilogue_from(ep, jr, ep_tile);
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const T* a = packed_A + ir * kc;
      store_tile<MR, NR>(std::min<int64_t>(MR, mc - ir), n, beta, C + ir * rsC + jr * csC, rsC, csC, ep_here,
                         [&](T tile_beta, T* out, int64_t ldc, const GemmEpilogue<T>* tile_ep) {
                           Kernel::template run<false>(kc, a, MR, b, alpha, tile_beta, out, ldc, tile_ep);
                         });
    }
  }
}

// An mc x nc block of C against a packed B block, with a column-major A read in place: the order
// of macro_kernel_packed, each A micro-panel read where it lies (MR adjacent values per k, one cache
// line apart); a partial last row panel is packed into `packed_A`. For the deep products with few
// columns (see gemm_blocked).
template <class Cfg, class T>
void macro_kernel_column_A(int64_t mc, int64_t nc, int64_t kc, T alpha, T beta, const T* A, int64_t csA, T* packed_A,
                           const T* packed_B, T* C, int64_t rsC, int64_t csC, const GemmEpilogue<T>* ep) {
  using Kernel = typename Cfg::Kernel;
  constexpr int MR = Cfg::MR, NR = Cfg::NR;
  GemmEpilogue<T> ep_tile;
  const int64_t full = mc / MR * MR;
  if (full < mc) pack_block<MR>(A + full, int64_t{1}, csA, mc - full, kc, packed_A);
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const T* b = packed_B + jr * kc;
    const int64_t n = std::min<int64_t>(NR, nc - jr);
    const GemmEpilogue<T>* ep_here = epilogue_from(ep, jr, ep_tile);
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const T* a = ir < full ? A + ir : packed_A;
      const int64_t lda = ir < full ? csA : int64_t{MR};
      store_tile<MR, NR>(std::min<int64_t>(MR, mc - ir), n, beta, C + ir * rsC + jr * csC, rsC, csC, ep_here,
                         [&](T tile_beta, T* out, int64_t ldc, const GemmEpilogue<T>* tile_ep) {
                           Kernel::template run<false>(kc, a, lda, b, alpha, tile_beta, out, ldc, tile_ep);
                         });
    }
  }
}

// An mc x nc block of C with A read in place (row-major A when csA == 1, column-major otherwise),
// for products whose B is one panel: A panel outside (it stays in L1), the B panel inside (it stays
// in L1 too). A partial last row panel is packed into `packed_A` to make a whole tile.
template <class Cfg, class T>
void macro_kernel_streamed(int64_t mc, int64_t nc, int64_t kc, T alpha, T beta, const T* A, int64_t rsA, int64_t csA,
                           T* packed_A, const T* packed_B, T* C, int64_t rsC, int64_t csC, const GemmEpilogue<T>* ep) {
  using Kernel = typename Cfg::Kernel;
  constexpr int MR = Cfg::MR, NR = Cfg::NR;
  GemmEpilogue<T> ep_tile;
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int64_t m = std::min<int64_t>(MR, mc - ir);
    if (m < MR) pack_block<MR>(A + ir * rsA, rsA, csA, m, kc, packed_A);
    auto run = [&](const T* b, T tile_beta, T* out, int64_t ldc, const GemmEpilogue<T>* tile_ep) {
      if (m < MR)
        Kernel::template run<false>(kc, packed_A, MR, b, alpha, tile_beta, out, ldc, tile_ep);
      else if (csA == 1) {  // row-major A (for a kernel without kReadsRowMajorAInPlace, gemm_blocked packs it)
        if constexpr (Kernel::kReadsRowMajorAInPlace) Kernel::template run<true>(kc, A + ir * rsA, rsA, b, alpha, tile_beta, out, ldc, tile_ep);
      } else {  // column-major A: a column of the panel is MR adjacent values, like a packed panel
        Kernel::template run<false>(kc, A + ir, csA, b, alpha, tile_beta, out, ldc, tile_ep);
      }
    };
    for (int64_t jr = 0; jr < nc; jr += NR) {
      const T* b = packed_B + jr * kc;
      store_tile<MR, NR>(m, std::min<int64_t>(NR, nc - jr), beta, C + ir * rsC + jr * csC, rsC, csC,
                         epilogue_from(ep, jr, ep_tile),
                         [&](T tile_beta, T* out, int64_t ldc, const GemmEpilogue<T>* tile_ep) { run(b, tile_beta, out, ldc, tile_ep); });
    }
  }
}

// Splits `total` into the fewest blocks of at most `max_block`, of nearly equal size (a multiple
// of `multiple`): K = 600 becomes 2 x 300 rather than 512 + 88, which would waste a pass.
int64_t even_block(int64_t total, int64_t max_block, int64_t multiple) {
  int64_t blocks = (total + max_block - 1) / max_block;
  int64_t size = (total + blocks - 1) / blocks;
  return (size + multiple - 1) / multiple * multiple;
}

// The whole loop nest of the header comment, on one thread.
template <class Cfg, class T>
void gemm_blocked(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsA, int64_t csA, const T* B, int64_t rsB,
                  int64_t csB, T beta, T* C, int64_t rsC, int64_t csC, const GemmEpilogue<T>* ep = nullptr) {
  constexpr int MR = Cfg::MR, NR = Cfg::NR;
  static const Blocking block = blocking<Cfg, T>();
  // A deep product (K over one KC block) with a column-major A and at most 64 columns (ImageGPT's
  // weight gradients, gp^T @ x with x 64 wide) reads A in place: a packed A panel would feed only
  // N/NR B panels. In L1 each k then takes a line of A beside the B panel's row, so KC halves. On 2
  // Zen 3 cores, one process, alternated, 21 calls: 192 x 64 x 25088 96 -> 117 GFLOP/s, 256 x 64 x
  // 25088 93 -> 105 (wins 18-19 of 21; one core likewise); at 256 columns (MLP-AR's dW) packing won.
  const bool column_A = rsA == 1 && csA != 1 && Cfg::Kernel::kReadsAInPlace && K > block.kc && N <= 64;
  const int64_t kc_in_place = std::clamp<int64_t>(cache_sizes().l1 / int64_t(NR * sizeof(T) + 64) / 16 * 16, 64, block.kc);
  const int64_t kc_max = even_block(K, column_A ? kc_in_place : block.kc, 1);
  const int64_t nc_max = even_block(N, block.nc, NR);
  // Read A in place (see the header comment) against one panel of B, or, for a row-major A of one
  // KC block, against up to 128 columns (8 AVX2 panels; measured on AVX2 only).
  const bool stream_A = (csA == 1 ? Cfg::Kernel::kReadsRowMajorAInPlace : rsA == 1 && Cfg::Kernel::kReadsAInPlace) &&
                        (nc_max <= NR || (csA == 1 && K <= kc_max && nc_max <= 128));
  const int64_t mc_max = stream_A ? M : even_block(M, block.mc, MR);
  T* packed_B = scratch<T>(kPackedB, size_t(nc_max * kc_max));
  T* packed_A = scratch<T>(kPackedA, size_t((stream_A ? MR : mc_max) * kc_max));
  GemmEpilogue<T> ep_block;
  for (int64_t jc = 0; jc < N; jc += nc_max) {
    const int64_t nc = std::min(nc_max, N - jc);
    for (int64_t pc = 0; pc < K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, K - pc);
      const T beta_block = pc == 0 ? beta : T(1);  // later K blocks accumulate onto the first
      // the epilogue runs on the last K block only, with the bias from column jc on
      const GemmEpilogue<T>* ep_here = pc + kc >= K ? epilogue_from(ep, jc, ep_block) : nullptr;
      pack_block<NR>(B + pc * rsB + jc * csB, csB, rsB, nc, kc, packed_B);  // kc x NR panels
      for (int64_t ic = 0; ic < M; ic += mc_max) {
        const int64_t mc = std::min(mc_max, M - ic);
        const T* A_block = A + ic * rsA + pc * csA;
        T* C_block = C + ic * rsC + jc * csC;
        if (stream_A) {
          macro_kernel_streamed<Cfg>(mc, nc, kc, alpha, beta_block, A_block, rsA, csA, packed_A, packed_B, C_block, rsC, csC,
                                     ep_here);
        } else if (column_A) {
          macro_kernel_column_A<Cfg>(mc, nc, kc, alpha, beta_block, A_block, csA, packed_A, packed_B, C_block, rsC, csC, ep_here);
        } else {
          pack_block<MR>(A_block, rsA, csA, mc, kc, packed_A);  // MR x kc panels
          macro_kernel_packed<Cfg>(mc, nc, kc, alpha, beta_block, packed_A, packed_B, C_block, rsC, csC, ep_here);
        }
      }
    }
  }
}

// ---- small and degenerate shapes ---------------------------------------------------------------

// C = beta * C (beta == 0 writes zeros without reading C).
template <class T>
void scale_C(int64_t M, int64_t N, T beta, T* C, int64_t rsC, int64_t csC) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      T& c = C[i * rsC + j * csC];
      c = beta == T(0) ? T(0) : beta * c;
    }
}

// sum_k x[k*sx] * y[k*sy]. Sixteen running sums instead of one, so that with unit strides the
// compiler can vectorise the loop without reordering a single float sum (which it may not do),
// and the vector adds do not wait on each other (measured 6x faster than 8 sums at K = 512).
template <class T>
T dot(int64_t K, const T* x, int64_t sx, const T* y, int64_t sy) {
  constexpr int L = 16;
  T part[L] = {};
  int64_t k = 0;
  if (sx == 1 && sy == 1) {
    for (; k + L <= K; k += L)
      for (int l = 0; l < L; ++l) part[l] += x[k + l] * y[k + l];
  } else {
    for (; k + L <= K; k += L)
      for (int l = 0; l < L; ++l) part[l] += x[(k + l) * sx] * y[(k + l) * sy];
  }
  // the running sums added as a tree (vector adds): added one after another they were a chain of 16
  // dependent adds, more than the products themselves when K is a head size of 16 (KV-cache sampling)
  static_assert(L == 16);
  for (int l = 0; l < 8; ++l) part[l] += part[l + 8];
  for (int l = 0; l < 4; ++l) part[l] += part[l + 4];
  T sum = (part[0] + part[2]) + (part[1] + part[3]);
  for (; k < K; ++k) sum += x[k * sx] * y[k * sy];
  return sum;
}

// One row of C: c = alpha * a @ B + beta * c, for M == 1 (a vector-matrix product). Packing would
// pad the single row to a whole MR-row tile, so stream B once instead, along its contiguous side.
template <class T>
void gemm_row(int64_t N, int64_t K, T alpha, const T* a, int64_t sa, const T* B, int64_t rsB, int64_t csB, T beta, T* c,
              int64_t sc) {
  if (N > 1 && (csB == 1 || rsB != 1)) {
    // c += a[k] * B[k, :] for each k: contiguous rows of B, summed into a scratch row.
    T* acc = scratch<T>(kRowAccumulator, size_t(N));
    std::fill(acc, acc + N, T(0));
    int64_t j0 = 0;
    if (csB == 1) {
      // Blocks of 32, 16 or 8 columns kept in registers across all of K: the scratch row loaded and
      // stored again for every k was a chain through memory (probs @ V in KV-cache sampling, 16
      // columns). Each column still sums its k in order from 0, as the scratch row below.
      const auto block = [&]<int64_t W>(std::integral_constant<int64_t, W>) {
        T part[W] = {};
        for (int64_t k = 0; k < K; ++k) {
          const T ak = a[k * sa];
          const T* b = B + k * rsB + j0;
          for (int64_t j = 0; j < W; ++j) part[j] += ak * b[j];
        }
        std::copy(part, part + W, acc + j0);
      };
      for (; j0 + 32 <= N; j0 += 32) block(std::integral_constant<int64_t, 32>{});
      for (; j0 + 16 <= N; j0 += 16) block(std::integral_constant<int64_t, 16>{});
      for (; j0 + 8 <= N; j0 += 8) block(std::integral_constant<int64_t, 8>{});
    }
    for (int64_t k = 0; k < K && j0 < N; ++k) {
      T ak = a[k * sa];
      const T* b = B + k * rsB;
      if (csB == 1) {
        for (int64_t j = j0; j < N; ++j) acc[j] += ak * b[j];
      } else {
        for (int64_t j = 0; j < N; ++j) acc[j] += ak * b[j * csB];
      }
    }
    for (int64_t j = 0; j < N; ++j) c[j * sc] = beta == T(0) ? alpha * acc[j] : alpha * acc[j] + beta * c[j * sc];
  } else {
    // Columns of B are contiguous (B is a transposed matrix), or there is only one: a dot
    // product per column.
    for (int64_t j = 0; j < N; ++j) {
      T s = alpha * dot(K, a, sa, B + j * csB, rsB);
      c[j * sc] = beta == T(0) ? s : s + beta * c[j * sc];
    }
  }
}

// Plain loops for products too small to repay packing (a few hundred multiply-adds).
template <class T>
void gemm_small(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsA, int64_t csA, const T* B, int64_t rsB,
                int64_t csB, T beta, T* C, int64_t rsC, int64_t csC) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      T sum = T(0);
      for (int64_t k = 0; k < K; ++k) sum += A[i * rsA + k * csA] * B[k * rsB + j * csB];
      T& c = C[i * rsC + j * csC];
      c = beta == T(0) ? alpha * sum : alpha * sum + beta * c;
    }
}

// ---- threading and dispatch --------------------------------------------------------------------

// Products with fewer multiply-adds than this are not worth packing: plain loops are faster
// (measured crossover near 6 x 6 x 6).
constexpr int64_t kSmallWork = 256;
// Each thread should get at least this many multiply-adds, or waking it costs more than it saves.
constexpr int64_t kWorkPerThread = 64 * 64 * 64;

// How many threads a product of M*N*K multiply-adds deserves (1 inside another parallel region).
int threads_for(int64_t work) {
  if (omp_in_parallel()) return 1;
  int64_t useful = std::max<int64_t>(1, work / kWorkPerThread);
  return int(std::min<int64_t>(omp_get_max_threads(), useful));
}

// Splits C into a tm x tn grid of rectangles for `nt` threads (tm * tn == nt), choosing the grid
// with the least work for the busiest thread, per unit of K: its padded tile area, plus packing
// its columns of B (a packed element costs about as much as 16 multiply-adds), plus reading its
// rows of A (packed too unless A is row-major, otherwise just streamed).
void thread_grid(int64_t M, int64_t N, int MR, int NR, bool A_packed, int nt, int& tm, int& tn) {
  int64_t panels_m = (M + MR - 1) / MR, panels_n = (N + NR - 1) / NR;
  int64_t best = -1;
  for (int d = 1; d <= nt; ++d) {
    if (nt % d) continue;
    int64_t rows = (panels_m + d - 1) / d * MR, cols = (panels_n + nt / d - 1) / (nt / d) * NR;
    int64_t cost = rows * cols + 16 * cols + (A_packed ? 16 : 1) * rows;
    if (best < 0 || cost < best) best = cost, tm = d, tn = nt / d;
  }
}

// The [begin, end) range of rows (or columns) that part t of `parts` owns: whole tiles of `tile`.
void tile_range(int64_t total, int tile, int t, int parts, int64_t& begin, int64_t& end) {
  int64_t panels = (total + tile - 1) / tile;
  begin = std::min(total, panels * t / parts * tile);
  end = std::min(total, panels * (t + 1) / parts * tile);
}

// Products whose packed B fits in half of L3 (the cubes up to ~1400, ImageGPT's and the flows'
// layers): the threads pack all of B together, in items of 8 panels of one KC block (the only
// barrier), then take blocks of rows of C, whichever thread is free, each packing its rows of A per
// KC block against the shared B. Rectangles of C (below) would have each thread pack all of A or
// all of B, and wait at the end for the slowest: on 2 Zen 3 cores, interleaved in one process with
// the rectangles, medians of 11-15 calls 512^3 117-134 -> 123-144 GFLOP/s, 1024^3 with a busy loop
// on one core 85 -> 100. Only where the OS reports one L3 for all our CPUs (`l3_shared`): on 2 Zen 5
// cores of a VM whose cores sit on different CCDs (a cache line written by one reaches the other in
// ~250 ns; the hypervisor hides the cache topology), every thread reading the B panels the other
// packed ran 512^3 at 265 GFLOP/s and 1024^3 at 275 against 366 and 362 with rectangles (medians of
// 15 calls; one thread alone ran this order at the speed of gemm_blocked, 173-187).
// Each C element sums its K blocks in the same order as on one thread.
template <class Cfg, class T>
void gemm_shared_B(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsA, int64_t csA, const T* B, int64_t rsB,
                   int64_t csB, T beta, T* C, int64_t rsC, int64_t csC, int nt, const GemmEpilogue<T>* ep, int64_t rows) {
  constexpr int MR = Cfg::MR, NR = Cfg::NR;
  static const Blocking block = blocking<Cfg, T>();
  const int64_t kc_max = even_block(K, block.kc, 1), kblocks = (K + kc_max - 1) / kc_max;
  const int64_t panels = (N + NR - 1) / NR, Npad = panels * NR;
  // the calling thread's B buffer: nothing here runs gemm_blocked, the one other user of it
  T* packed_B = scratch<T>(kPackedB, size_t(kblocks * kc_max * Npad));
  const int64_t chunk = 8;  // panels per packing item
  const int64_t chunks = (panels + chunk - 1) / chunk, blocks = (M + rows - 1) / rows;
#pragma omp parallel num_threads(nt)
  {
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < kblocks * chunks; ++item) {
      const int64_t q = item / chunks, p0 = item % chunks * chunk, pc = q * kc_max, kc = std::min(kc_max, K - pc);
      const int64_t j0 = p0 * NR, width = std::min(N, (p0 + chunk) * NR) - j0;
      pack_block<NR>(B + pc * rsB + j0 * csB, csB, rsB, width, kc, packed_B + q * kc_max * Npad + j0 * kc);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t r = 0; r < blocks; ++r) {
      const int64_t m0 = r * rows, mc = std::min(rows, M - m0);
      T* packed_A = scratch<T>(kPackedA, size_t(rows * kc_max));
      GemmEpilogue<T> ep_block;
      for (int64_t q = 0; q < kblocks; ++q) {
        const int64_t pc = q * kc_max, kc = std::min(kc_max, K - pc);
        const GemmEpilogue<T>* ep_here = pc + kc >= K ? epilogue_from(ep, 0, ep_block) : nullptr;
        pack_block<MR>(A + m0 * rsA + pc * csA, rsA, csA, mc, kc, packed_A);
        macro_kernel_packed<Cfg>(mc, N, kc, alpha, pc == 0 ? beta : T(1), packed_A, packed_B + q * kc_max * Npad, C + m0 * rsC, rsC,
                                 csC, ep_here);
      }
    }
  }
}

// The blocked product on `nt` threads: row blocks for tall products, a shared packed B when it fits
// in half of an L3 that all cores share, otherwise a rectangle of C per thread, each running
// gemm_blocked on it.
template <class Cfg, class T>
void gemm_threaded(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsA, int64_t csA, const T* B, int64_t rsB,
                   int64_t csB, T beta, T* C, int64_t rsC, int64_t csC, int nt, const GemmEpilogue<T>* ep) {
  if (nt <= 1) {
    gemm_blocked<Cfg>(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, rsC, csC, ep);
    return;
  }
  // Tall products (MLP-AR's 12544 x 256 x 256): row blocks, taken by whichever thread is free, so
  // that a thread slowed by the machine's other load takes fewer (each block packs B again, a cost
  // of N*K per block against its rows*N*K multiply-adds, hence at least 512 rows a block). With a
  // busy loop on one of 2 Zen 3 cores: 92-103 GFLOP/s against 62-77 for two fixed halves.
  const int64_t panels_m = (M + Cfg::MR - 1) / Cfg::MR;
  const int64_t block_rows = std::max<int64_t>(512, (panels_m + 4 * nt - 1) / (4 * nt) * Cfg::MR) / Cfg::MR * Cfg::MR;
  if (M >= 2 * nt * block_rows) {
    const int64_t blocks = (M + block_rows - 1) / block_rows;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t q = 0; q < blocks; ++q) {
      const int64_t m0 = q * block_rows, m1 = std::min(M, m0 + block_rows);
      gemm_blocked<Cfg>(m1 - m0, N, K, alpha, A + m0 * rsA, rsA, csA, B, rsB, csB, beta, C + m0 * rsC, rsC, csC, ep);
    }
    return;
  }
  {  // shared B: row blocks of ~1/4 of a thread's share, at most an L2 block, at least 4 panels
    static const Blocking block = blocking<Cfg, T>();
    const int64_t rows = std::max<int64_t>(4 * Cfg::MR, (panels_m + 4 * nt - 1) / (4 * nt) * Cfg::MR);
    const int64_t npad = (N + Cfg::NR - 1) / Cfg::NR * Cfg::NR;
    if (l3_shared() && N > Cfg::NR && N <= block.nc && K * npad * int64_t(sizeof(T)) <= cache_sizes().l3 / 2 &&
        M >= 2 * nt * rows) {
      gemm_shared_B<Cfg>(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, rsC, csC, nt, ep, std::min(rows, block.mc / Cfg::MR * Cfg::MR));
      return;
    }
  }
#pragma omp parallel num_threads(nt)
  {
    int tm = 1, tn = 1, team = omp_get_num_threads(), t = omp_get_thread_num();
    const bool A_in_place = csA == 1 ? Cfg::Kernel::kReadsRowMajorAInPlace : rsA == 1 && Cfg::Kernel::kReadsAInPlace;
    thread_grid(M, N, Cfg::MR, Cfg::NR, !A_in_place, team, tm, tn);
    int64_t m0, m1, n0, n1;
    tile_range(M, Cfg::MR, t / tn, tm, m0, m1);
    tile_range(N, Cfg::NR, t % tn, tn, n0, n1);
    GemmEpilogue<T> ep_part;  // this thread's columns of the bias
    if (ep) ep_part = {ep->bias ? ep->bias + n0 : nullptr, ep->relu};
    if (m0 < m1 && n0 < n1)
      gemm_blocked<Cfg>(m1 - m0, n1 - n0, K, alpha, A + m0 * rsA, rsA, csA, B + n0 * csB, rsB, csB, beta,
                        C + m0 * rsC + n0 * csC, rsC, csC, ep ? &ep_part : nullptr);
  }
}

// ---- deep products -----------------------------------------------------------------------------

// Deep products (weight gradients: C of a few hundred rows and columns, K = batch x pixels of many
// thousands) are cut along K. Cut into rectangles of C, every thread would pack all of A or all of
// B, over all of K (the packing of MLP-AR's 256 x 256 x 12544 dW was twice what one thread packs).
// Instead K is split into `slices` ranges of whole KC blocks, each range's product is computed on
// its own (the first into C, the others into scratch) and the partial products are added in slice
// order. The count depends on the shape and the CPU's core count, never on the thread count, so
// the result does not either. 1 when the product is not deep; the partials take at most 16 MiB.
template <class Cfg, class T>
int deep_slices(int64_t M, int64_t N, int64_t K) {
  static const Blocking block = blocking<Cfg, T>();
  const int64_t kc = even_block(K, block.kc, 1), blocks = (K + kc - 1) / kc;
  if (blocks < 16 || K < 8 * std::max(M, N)) return 1;
  const int64_t by_memory = 1 + (int64_t{16} << 20) / int64_t(sizeof(T)) / (M * N);
  return int(std::clamp<int64_t>(std::min({int64_t(omp_get_num_procs()), blocks / 8, by_memory}), 1, 64));
}

// The deep product on `nt` threads: tasks of (slice, rectangle of C), the rectangles only when
// there are more threads than slices; then C += partials row by row, and the epilogue.
// MLP-AR's dW on 2 Zen 3 cores: 138-141 -> 153-155 GFLOP/s (best of 21), on 1 the same as before.
template <class Cfg, class T>
void gemm_sliced(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsA, int64_t csA, const T* B, int64_t rsB,
                 int64_t csB, T beta, T* C, int64_t rsC, int64_t csC, int slices, int nt, const GemmEpilogue<T>* ep) {
  static const Blocking block = blocking<Cfg, T>();
  const int64_t kc = even_block(K, block.kc, 1), blocks = (K + kc - 1) / kc;
  T* partials = scratch<T>(kSlicePartials, size_t((slices - 1) * M * N));
#pragma omp parallel num_threads(nt)
  {
    const int parts = std::max(1, omp_get_num_threads() / slices);
    int tm = 1, tn = 1;
    thread_grid(M, N, Cfg::MR, Cfg::NR, true, parts, tm, tn);
#pragma omp for schedule(dynamic, 1)
    for (int task = 0; task < slices * parts; ++task) {
      const int s = task / parts, r = task % parts;
      const int64_t k0 = blocks * s / slices * kc, k1 = std::min(K, blocks * (s + 1) / slices * kc);
      int64_t m0, m1, n0, n1;
      tile_range(M, Cfg::MR, r / tn, tm, m0, m1);
      tile_range(N, Cfg::NR, r % tn, tn, n0, n1);
      if (m0 >= m1 || n0 >= n1) continue;
      const T* a = A + m0 * rsA + k0 * csA;
      const T* b = B + k0 * rsB + n0 * csB;
      if (s == 0)
        gemm_blocked<Cfg>(m1 - m0, n1 - n0, k1 - k0, alpha, a, rsA, csA, b, rsB, csB, beta, C + m0 * rsC + n0 * csC, rsC, csC);
      else
        gemm_blocked<Cfg>(m1 - m0, n1 - n0, k1 - k0, alpha, a, rsA, csA, b, rsB, csB, T(0),
                          partials + (s - 1) * M * N + m0 * N + n0, N, int64_t{1});
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      T* c = C + i * rsC;
      for (int s = 1; s < slices; ++s) {
        const T* p = partials + (s - 1) * M * N + i * N;
        if (csC == 1) {
#pragma omp simd
          for (int64_t j = 0; j < N; ++j) c[j] += p[j];
        } else {
          for (int64_t j = 0; j < N; ++j) c[j * csC] += p[j];
        }
      }
      if (ep) apply_epilogue(int64_t{1}, N, c, rsC, csC, *ep);
    }
  }
}

// One product with at most `max_threads` threads; handles every shape and stride.
template <class T>
void gemm_impl(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsA, int64_t csA, const T* B, int64_t rsB,
               int64_t csB, T beta, T* C, int64_t rsC, int64_t csC, int max_threads, const GemmEpilogue<T>* ep = nullptr) {
  if (M == 0 || N == 0) return;
  // The epilogue rides along only in the blocked kernel on a row-major C; elsewhere it is a pass after.
  if (ep && !(K > 0 && alpha != T(0) && csC == 1 && M > 1 && N > 1 && M * N * K > kSmallWork)) {
    gemm_impl(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, rsC, csC, max_threads);
    apply_epilogue(M, N, C, rsC, csC, *ep);
    return;
  }
  if (K == 0 || alpha == T(0)) {
    scale_C(M, N, beta, C, rsC, csC);
    return;
  }
  // The kernels like row vectors and row-major C; if C is column-major (or a column vector),
  // compute C^T = B^T @ A^T instead: the same memory, with rows and columns swapped.
  if ((N == 1 && M > 1) || (csC != 1 && rsC == 1 && M > 1 && N > 1)) {
    std::swap(M, N);
    std::swap(A, B);
    std::swap(rsA, csB);
    std::swap(csA, rsB);
    std::swap(rsC, csC);
  }
  if (M == 1) {
    gemm_row(N, K, alpha, A, csA, B, rsB, csB, beta, C, csC);
    return;
  }
  const int64_t work = M * N * K;
  if (work <= kSmallWork) {
    gemm_small(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, rsC, csC);
    return;
  }
  const int nt = std::min(max_threads, threads_for(work));
  if (N > Configs<T>::Narrow::NR) {
    using Wide = typename Configs<T>::Wide;
    if (const int slices = deep_slices<Wide, T>(M, N, K); slices > 1) {
      gemm_sliced<Wide>(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, rsC, csC, slices, nt, ep);
      return;
    }
  }
  if (N <= Configs<T>::Narrow::NR)
    gemm_threaded<typename Configs<T>::Narrow>(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, rsC, csC, nt, ep);
  else
    gemm_threaded<typename Configs<T>::Wide>(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, rsC, csC, nt, ep);
}

void check_sizes(const char* op, int64_t batch, int64_t M, int64_t N, int64_t K) {
  if (batch < 0 || M < 0 || N < 0 || K < 0)
    throw ValueError(cat(op, ": sizes must be non-negative, got batch=", batch, " M=", M, " N=", N, " K=", K));
}

template <class T>
void gemm_batched_impl(int64_t batch, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t bsA, int64_t rsA,
                       int64_t csA, const T* B, int64_t bsB, int64_t rsB, int64_t csB, T beta, T* C, int64_t bsC, int64_t rsC,
                       int64_t csC) {
  check_sizes("gemm_batched", batch, M, N, K);
  if (batch > 1 && bsC == 0 && M > 0 && N > 0)
    throw ValueError(cat("gemm_batched: batch stride of C is 0 for a batch of ", batch,
                         " products of ", M, "x", N, "; each product needs its own output"));
  if (batch == 0) return;
  int nt = threads_for(batch * M * N * K);
  // Whole products per thread when they divide evenly (or are too many to matter); otherwise one
  // product at a time with all threads inside it, so no thread idles at the end.
  if (nt > 1 && batch >= nt && (batch % nt == 0 || batch >= 4 * nt || M * N * K < nt * kWorkPerThread)) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      gemm_impl(M, N, K, alpha, A + b * bsA, rsA, csA, B + b * bsB, rsB, csB, beta, C + b * bsC, rsC, csC, 1);
  } else {
    for (int64_t b = 0; b < batch; ++b)
      gemm_impl(M, N, K, alpha, A + b * bsA, rsA, csA, B + b * bsB, rsB, csB, beta, C + b * bsC, rsC, csC, nt);
  }
}

}  // namespace

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = detect_cache_sizes();
  return sizes;
}
bool cpu_list_covers(std::string_view list, const std::vector<int>& cpus) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  size_t pos = 0;
  // a number of at most 9 digits (no sign, no space), or -1
  auto number = [&]() -> int64_t {
    int64_t value = 0;
    size_t digits = 0;
    for (; pos < list.size() && list[pos] >= '0' && list[pos] <= '9' && digits < 9; ++pos, ++digits) value = value * 10 + (list[pos] - '0');
    return digits == 0 || (pos < list.size() && list[pos] >= '0' && list[pos] <= '9') ? -1 : value;
  };
  while (true) {
    const int64_t first = number();
    int64_t last = first;
    if (first < 0) return false;
    if (pos < list.size() && list[pos] == '-') {
      ++pos;
      last = number();
      if (last < first) return false;
    }
    ranges.emplace_back(first, last);
    if (pos == list.size()) break;
    if (list[pos++] != ',') return false;
  }
  return std::all_of(cpus.begin(), cpus.end(), [&](int cpu) {
    return std::any_of(ranges.begin(), ranges.end(), [&](const auto& r) { return cpu >= r.first && cpu <= r.second; });
  });
}
void set_l3_shared(bool shared) { l3_shared_override.store(shared ? 1 : 0); }
void reset_l3_shared() { l3_shared_override.store(-1); }

void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsA, int64_t csA, const float* B, int64_t rsB,
          int64_t csB, float beta, float* C, int64_t rsC, int64_t csC) {
  check_sizes("gemm", 1, M, N, K);
  gemm_impl(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, rsC, csC, omp_get_max_threads());
}

void gemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rsA, int64_t csA, const double* B,
          int64_t rsB, int64_t csB, double beta, double* C, int64_t rsC, int64_t csC) {
  check_sizes("gemm", 1, M, N, K);
  gemm_impl(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, rsC, csC, omp_get_max_threads());
}

void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsA, int64_t csA, const float* B, int64_t rsB,
          int64_t csB, float beta, float* C, int64_t rsC, int64_t csC, const GemmEpilogue<float>& epilogue) {
  check_sizes("gemm", 1, M, N, K);
  gemm_impl(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, rsC, csC, omp_get_max_threads(), &epilogue);
}

void gemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rsA, int64_t csA, const double* B,
          int64_t rsB, int64_t csB, double beta, double* C, int64_t rsC, int64_t csC, const GemmEpilogue<double>& epilogue) {
  check_sizes("gemm", 1, M, N, K);
  gemm_impl(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, rsC, csC, omp_get_max_threads(), &epilogue);
}

namespace {
template <class T>
void pack_panels_impl(int width, const T* src, int64_t step, int64_t kstride, int64_t n, int64_t kc, T* dst) {
  switch (width) {
    case 4: return pack_block<4>(src, step, kstride, n, kc, dst);
    case 6: return pack_block<6>(src, step, kstride, n, kc, dst);
    case 8: return pack_block<8>(src, step, kstride, n, kc, dst);
    case 16: return pack_block<16>(src, step, kstride, n, kc, dst);
    case 32: return pack_block<32>(src, step, kstride, n, kc, dst);
    default: throw ValueError(cat("pack_panels: width must be 4, 6, 8, 16 or 32, got ", width));
  }
}
}  // namespace

void pack_panels(int width, const float* src, int64_t step, int64_t kstride, int64_t n, int64_t kc, float* dst) {
  pack_panels_impl(width, src, step, kstride, n, kc, dst);
}
void pack_panels(int width, const double* src, int64_t step, int64_t kstride, int64_t n, int64_t kc, double* dst) {
  pack_panels_impl(width, src, step, kstride, n, kc, dst);
}

void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t bsA, int64_t rsA,
                  int64_t csA, const float* B, int64_t bsB, int64_t rsB, int64_t csB, float beta, float* C, int64_t bsC,
                  int64_t rsC, int64_t csC) {
  gemm_batched_impl(batch, M, N, K, alpha, A, bsA, rsA, csA, B, bsB, rsB, csB, beta, C, bsC, rsC, csC);
}

void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t bsA, int64_t rsA,
                  int64_t csA, const double* B, int64_t bsB, int64_t rsB, int64_t csB, double beta, double* C, int64_t bsC,
                  int64_t rsC, int64_t csC) {
  gemm_batched_impl(batch, M, N, K, alpha, A, bsA, rsA, csA, B, bsB, rsB, csB, beta, C, bsC, rsC, csC);
}

const char* gemm_kernel_isa() {
#if defined(__AVX512F__)
  return "AVX-512";
#elif DGM_WIDE_VECTORS
  return "AVX-512 emulated on AVX2";
#elif defined(__AVX2__) && defined(__FMA__)
  return "AVX2+FMA";
#elif DGM_NEON_KERNELS
  return "NEON";
#else
  return "portable";
#endif
}

}  // namespace dgm::cpu
