// General matrix multiply on strided operands: the one kernel behind matmul, linear layers,
// attention scores and every weight gradient.
//
//   C[M,N] = alpha * A[M,K] @ B[K,N] + beta * C
//
// Element (i,j) of a matrix X lives at X[i*rsX + j*csX] (row stride, column stride), so a
// transposed or sliced operand is passed as-is, never copied by the caller: A^T is (A, csA, rsA).
// beta == 0 means C is write-only: its old contents are never read (they may be NaN garbage).
// alpha == 0 or K == 0 means A and B are not read: C = beta * C.
//
// The result does not depend on the number of threads: every element of C is summed in the same
// order whichever thread computes it. The order depends on the shape and the CPU only (its cache
// sizes and, for deep products such as weight gradients, its core count).
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace dgm::cpu {

void gemm(int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t rsA, int64_t csA,
          const float* B, int64_t rsB, int64_t csB,
          float beta, float* C, int64_t rsC, int64_t csC);
void gemm(int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t rsA, int64_t csA,
          const double* B, int64_t rsB, int64_t csB,
          double beta, double* C, int64_t rsC, int64_t csC);

// An epilogue finishes C in the same pass: C[i, j] = act(C[i, j] + bias[j]), bias (N) or null, act
// ReLU or identity. For a row-major C it runs on each row panel right after its last rank-K
// update, while the panel is still in L1 (a linear layer's bias and ReLU then cost no pass over
// the output); other layouts and small products get a pass over C afterwards.
template <class T>
struct GemmEpilogue {
  const T* bias = nullptr;
  bool relu = false;
};
void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsA, int64_t csA, const float* B, int64_t rsB,
          int64_t csB, float beta, float* C, int64_t rsC, int64_t csC, const GemmEpilogue<float>& epilogue);
void gemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rsA, int64_t csA, const double* B,
          int64_t rsB, int64_t csB, double beta, double* C, int64_t rsC, int64_t csC, const GemmEpilogue<double>& epilogue);

// `batch` independent products: C[b] = alpha * A[b] @ B[b] + beta * C[b], where X[b] starts at
// X + b*bsX. A batch stride of 0 broadcasts one matrix to every product (e.g. a shared weight);
// bsC must not be 0 when batch > 1 (the products would overwrite each other).
void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t bsA, int64_t rsA, int64_t csA,
                  const float* B, int64_t bsB, int64_t rsB, int64_t csB,
                  float beta, float* C, int64_t bsC, int64_t rsC, int64_t csC);
void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, double alpha,
                  const double* A, int64_t bsA, int64_t rsA, int64_t csA,
                  const double* B, int64_t bsB, int64_t rsB, int64_t csB,
                  double beta, double* C, int64_t bsC, int64_t rsC, int64_t csC);

// The GEMM's packing, for kernels that keep an operand in register-tile panels (attention's K^T,
// K and V): n lines of depth kc into ceil(n / width) panels of `width` lines, k-major,
//   dst[p*width*kc + k*width + r] = src[(p*width + r)*step + k*kstride],
// the last panel padded with zeros. Lines that run along k (kstride 1) are transposed in SIMD
// registers, 8 x 8 at a time. width: 4, 6, 8, 16 or 32 (else ValueError).
void pack_panels(int width, const float* src, int64_t step, int64_t kstride, int64_t n, int64_t kc, float* dst);
void pack_panels(int width, const double* src, int64_t step, int64_t kstride, int64_t n, int64_t kc, double* dst);

// The instruction set the GEMM micro-kernel was compiled for: "AVX-512", "AVX2+FMA" (with
// -DDGM_NATIVE=ON on such a CPU) or "portable" (plain C++, which the compiler vectorises as it can).
const char* gemm_kernel_isa();

// Data cache sizes in bytes (per core for L1 and L2, the whole L3), as the CPU reports them
// (Linux's /sys first, then sysconf, then typical sizes of a current x86 core): the GEMM's and the
// convolution's blocking follow them.
// `l3_shared`: whether the OS reports that every CPU this process may run on shares one L3 (Linux's
// /sys; false where it does not say, e.g. under hypervisors that hide the cache topology). Data one
// core writes is then cheap for another to read; across L3s (two CCDs, two sockets) a cache line
// written by one core costs the other ~250 ns.
struct CacheSizes {
  int64_t l1 = 32 << 10, l2 = 512 << 10, l3 = 8 << 20;
  bool l3_shared = false;
};
const CacheSizes& cache_sizes();
// Overrides the reported `l3_shared` for the products that follow (tests run both thread splits;
// a user who knows the machine may too); `reset` returns to the report.
void set_l3_shared(bool shared);
void reset_l3_shared();
// Whether a Linux CPU list ("0-7,16-23": sysfs's shared_cpu_list) names every CPU of `cpus`; false
// for a list that is not one (empty, signs, spaces, a reversed range, a number of 10 or more digits).
bool cpu_list_covers(std::string_view list, const std::vector<int>& cpus);

}  // namespace dgm::cpu
