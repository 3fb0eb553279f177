// The few vector operations the hand-written SIMD kernels need (the GEMM micro-kernel in
// tensor/gemm.cpp, the direct convolution in tensor/conv.cpp, the attention tiles in
// tensor/fused.cpp), per element type and register width, so that one kernel body serves float and
// double, AVX-512 and AVX2. DGM_SIMD_KERNELS is 1 when the build targets either (-DDGM_NATIVE=ON on
// such a CPU); other builds use the portable code paths that stand beside each kernel.
// DGM_WIDE_VECTORS is 1 where the kernels take their AVX-512 shapes (16 floats a vector, 32
// registers): AVX-512 builds, and AVX2 builds with DGM_EMULATE_AVX512 (CMake -DDGM_EMULATE_AVX512=ON),
// whose vectors are pairs of AVX2 registers. The emulation runs every AVX-512 tile shape, panel width
// and edge case on an AVX2 machine, each operation the AVX-512 one lane by lane (lane sums in the
// same order), at spilled-register speed: scripts/test-wide.sh runs the kernels' tests so on CPUs
// without AVX-512. Only the AVX-512 intrinsics themselves (this file's first branch, the softmax exp's
// in tensor/fused.cpp) are left to AVX-512 machines.
//
// DGM_NEON_KERNELS is 1 on 64-bit ARM (Apple silicon, Graviton, a Raspberry Pi 4/5), where NEON and
// its fused multiply-add are in the base instruction set, so every build has them: Float4 and
// Double2 below, used by the GEMM micro-kernel only (tensor/gemm.cpp). The convolution and attention
// tiles keep their portable paths there: their shapes were chosen for x86 registers and no ARM
// machine has measured others.
#pragma once

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define DGM_SIMD_KERNELS 1
#include <immintrin.h>
#else
#define DGM_SIMD_KERNELS 0
#endif
#if defined(DGM_EMULATE_AVX512) && !defined(__AVX512F__) && !(defined(__AVX2__) && defined(__FMA__))
#error "DGM_EMULATE_AVX512 emulates AVX-512 vectors with AVX2 + FMA ones: build for a CPU that has them (-DDGM_NATIVE=ON)"
#endif
#if defined(__AVX512F__) || defined(DGM_EMULATE_AVX512)
#define DGM_WIDE_VECTORS 1
#else
#define DGM_WIDE_VECTORS 0
#endif

#if DGM_SIMD_KERNELS
namespace dgm::cpu {

// The sum of a vector's lanes, by a fixed tree (the same bits on every call).
inline float sum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
inline double sum256(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

#if defined(__AVX512F__)
inline constexpr int kVectorRegisters = 32;
struct FloatVec {
  using scalar = float;
  using type = __m512;
  static constexpr int width = 16;
  static type zero() { return _mm512_setzero_ps(); }
  static type broadcast(float x) { return _mm512_set1_ps(x); }
  static type load(const float* p) { return _mm512_load_ps(p); }  // 64-byte aligned p
  static type loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, type v) { _mm512_storeu_ps(p, v); }
  static type add(type a, type b) { return _mm512_add_ps(a, b); }
  static type mul(type a, type b) { return _mm512_mul_ps(a, b); }
  static type fmadd(type a, type b, type c) { return _mm512_fmadd_ps(a, b, c); }
  static type max(type a, type b) { return _mm512_mask_max_ps(a, 0xFFFF, a, b); }  // a > b ? a : b (b when either is NaN; masked: see sum)
  static float sum(type v) {  // a fixed tree of lane sums (the upper half folded onto the lower first)
    // (the masked forms, whose pass-through operand is given: GCC 12's plain ones read an undefined
    // register and warn)
    const __m512d h = _mm512_castps_pd(_mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, 0xEE)));
    return sum256(_mm256_castpd_ps(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xF, h, 0)));
  }
};
struct DoubleVec {
  using scalar = double;
  using type = __m512d;
  static constexpr int width = 8;
  static type zero() { return _mm512_setzero_pd(); }
  static type broadcast(double x) { return _mm512_set1_pd(x); }
  static type load(const double* p) { return _mm512_load_pd(p); }
  static type loadu(const double* p) { return _mm512_loadu_pd(p); }
  static void storeu(double* p, type v) { _mm512_storeu_pd(p, v); }
  static type add(type a, type b) { return _mm512_add_pd(a, b); }
  static type mul(type a, type b) { return _mm512_mul_pd(a, b); }
  static type fmadd(type a, type b, type c) { return _mm512_fmadd_pd(a, b, c); }
  static type max(type a, type b) { return _mm512_mask_max_pd(a, 0xFF, a, b); }  // a > b ? a : b (b when either is NaN; masked: see sum)
  static double sum(type v) {
    const __m512d h = _mm512_add_pd(v, _mm512_mask_shuffle_f64x2(v, 0xFF, v, v, 0xEE));
    return sum256(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xF, h, 0));
  }
};
#else
// AVX2's 8 floats and 4 doubles.
struct Float8 {
  using scalar = float;
  using type = __m256;
  static constexpr int width = 8;
  static type zero() { return _mm256_setzero_ps(); }
  static type broadcast(float x) { return _mm256_set1_ps(x); }
  static type load(const float* p) { return _mm256_load_ps(p); }  // 32-byte aligned p
  static type loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, type v) { _mm256_storeu_ps(p, v); }
  static type add(type a, type b) { return _mm256_add_ps(a, b); }
  static type mul(type a, type b) { return _mm256_mul_ps(a, b); }
  static type fmadd(type a, type b, type c) { return _mm256_fmadd_ps(a, b, c); }
  static type max(type a, type b) { return _mm256_max_ps(a, b); }  // a > b ? a : b (b when either is NaN)
  static float sum(type v) { return sum256(v); }
};
struct Double4 {
  using scalar = double;
  using type = __m256d;
  static constexpr int width = 4;
  static type zero() { return _mm256_setzero_pd(); }
  static type broadcast(double x) { return _mm256_set1_pd(x); }
  static type load(const double* p) { return _mm256_load_pd(p); }
  static type loadu(const double* p) { return _mm256_loadu_pd(p); }
  static void storeu(double* p, type v) { _mm256_storeu_pd(p, v); }
  static type add(type a, type b) { return _mm256_add_pd(a, b); }
  static type mul(type a, type b) { return _mm256_mul_pd(a, b); }
  static type fmadd(type a, type b, type c) { return _mm256_fmadd_pd(a, b, c); }
  static type max(type a, type b) { return _mm256_max_pd(a, b); }  // a > b ? a : b (b when either is NaN)
  static double sum(type v) { return sum256(v); }
};
#if defined(DGM_EMULATE_AVX512)
inline constexpr int kVectorRegisters = 32;
// AVX-512's FloatVec and DoubleVec as pairs of AVX2 registers (lo: the low lanes). Each operation is
// the AVX-512 one lane by lane; `sum` folds hi onto lo first, as the AVX-512 `sum` does.
template <class Half>
struct PairOf {
  typename Half::type lo, hi;
};
template <class Half>
struct EmulatedVec {
  using scalar = typename Half::scalar;
  using type = PairOf<Half>;
  static constexpr int width = 2 * Half::width;
  static type zero() { return {Half::zero(), Half::zero()}; }
  static type broadcast(scalar x) { return {Half::broadcast(x), Half::broadcast(x)}; }
  static type load(const scalar* p) { return {Half::load(p), Half::load(p + Half::width)}; }  // 64-byte aligned p
  static type loadu(const scalar* p) { return {Half::loadu(p), Half::loadu(p + Half::width)}; }
  static void storeu(scalar* p, type v) { Half::storeu(p, v.lo), Half::storeu(p + Half::width, v.hi); }
  static type add(type a, type b) { return {Half::add(a.lo, b.lo), Half::add(a.hi, b.hi)}; }
  static type mul(type a, type b) { return {Half::mul(a.lo, b.lo), Half::mul(a.hi, b.hi)}; }
  static type fmadd(type a, type b, type c) { return {Half::fmadd(a.lo, b.lo, c.lo), Half::fmadd(a.hi, b.hi, c.hi)}; }
  static type max(type a, type b) { return {Half::max(a.lo, b.lo), Half::max(a.hi, b.hi)}; }
  static scalar sum(type v) { return Half::sum(Half::add(v.lo, v.hi)); }
};
using FloatVec = EmulatedVec<Float8>;
using DoubleVec = EmulatedVec<Double4>;
#else
inline constexpr int kVectorRegisters = 16;
using FloatVec = Float8;
using DoubleVec = Double4;
#endif
#endif

// The vector type of element type T.
template <class T>
struct VecOf;
template <>
struct VecOf<float> {
  using type = FloatVec;
};
template <>
struct VecOf<double> {
  using type = DoubleVec;
};

}  // namespace dgm::cpu
#endif

#if defined(__aarch64__) && defined(__ARM_NEON)
#define DGM_NEON_KERNELS 1
#include <arm_neon.h>
namespace dgm::cpu {
// NEON's 4 floats and 2 doubles, with the operations of Float8 and Double4 that the GEMM kernel uses,
// and one of NEON's own: `fmadd_lane<L>(a, b, c)` = c + b * (lane L of a), one instruction (fmla by
// element). The kernel multiplies by A's values so, from A vectors, instead of broadcasting each into
// a register of its own (with 24 accumulators there are too few registers left for that: GCC
// spilled accumulators).
struct Float4 {
  using scalar = float;
  using type = float32x4_t;
  static constexpr int width = 4;
  static constexpr bool kFmaByLane = true;
  template <int L>
  static type fmadd_lane(type a, type b, type c) { return vfmaq_laneq_f32(c, b, a, L); }
  static type zero() { return vdupq_n_f32(0.0f); }
  static type broadcast(float x) { return vdupq_n_f32(x); }
  static type load(const float* p) { return vld1q_f32(p); }
  static type loadu(const float* p) { return vld1q_f32(p); }
  static void storeu(float* p, type v) { vst1q_f32(p, v); }
  static type add(type a, type b) { return vaddq_f32(a, b); }
  static type mul(type a, type b) { return vmulq_f32(a, b); }
  static type fmadd(type a, type b, type c) { return vfmaq_f32(c, a, b); }
  static type max(type a, type b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }  // a > b ? a : b, as the x86 max
};
struct Double2 {
  using scalar = double;
  using type = float64x2_t;
  static constexpr int width = 2;
  static constexpr bool kFmaByLane = true;
  template <int L>
  static type fmadd_lane(type a, type b, type c) { return vfmaq_laneq_f64(c, b, a, L); }
  static type zero() { return vdupq_n_f64(0.0); }
  static type broadcast(double x) { return vdupq_n_f64(x); }
  static type load(const double* p) { return vld1q_f64(p); }
  static type loadu(const double* p) { return vld1q_f64(p); }
  static void storeu(double* p, type v) { vst1q_f64(p, v); }
  static type add(type a, type b) { return vaddq_f64(a, b); }
  static type mul(type a, type b) { return vmulq_f64(a, b); }
  static type fmadd(type a, type b, type c) { return vfmaq_f64(c, a, b); }
  static type max(type a, type b) { return vbslq_f64(vcgtq_f64(a, b), a, b); }
};
}  // namespace dgm::cpu
#else
#define DGM_NEON_KERNELS 0
#endif
