// Vectorisable float math for hot loops. std::exp is a library call the compiler cannot
// vectorise; this inline exp (Cody-Waite range reduction + a degree-6 minimax polynomial,
// relative error ~2e-7) turns a loop of exps into SIMD code.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace dgm::cpu {

inline float exp_approx(float x) {
  // e^x = 2^n e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2]. From x = 127.5 ln 2
  // ~ 88.376 on, n = 128, whose 2^n is +inf: the result is +inf (as e^x from 88.72 on; between the
  // two, e^x would still be a float within 30% of the largest one).
  float xc = x < -87.0f ? -87.0f : (x > 88.5f ? 88.5f : x);
  // n = round(xc / ln 2) by the 1.5 * 2^23 trick: adding it leaves the rounded integer in the low
  // mantissa bits (std::floor would do, but GCC does not vectorise it without -fno-trapping-math)
  const float shifted = xc * 1.44269504088896341f + 12582912.0f;
  float n = shifted - 12582912.0f;
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;  // ln 2 split in two for accuracy
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float e = p * r * r + r + 1.0f;
  float scale = std::bit_cast<float>((std::bit_cast<int32_t>(shifted) - 0x4B400000 + 127) << 23);
  return x < -87.0f ? 0.0f : e * scale;  // below ~1e-38 (and -inf): exactly 0
}
inline double exp_approx(double x) { return std::exp(x); }  // float64 is for checks, not speed

// e^x - 1 (the ELU's negative side) = 2^n (e^r - 1) + (2^n - 1), with n = round(x / ln 2) and
// r = x - n ln 2 in [-ln2/2, ln2/2], where e^r - 1 is its Taylor polynomial to degree 8 (truncation
// below 1e-9 relative): near 0 (n = 0) that is the polynomial alone, so e^x - 1 never cancels its
// leading digits, and one range reduction serves every x (an earlier version computed a second,
// exp-based branch for every value and selected). Vectorises; relative error ~3e-7. Below -88: -1.
inline float expm1_approx(float x) {
  const float xc = x < -88.0f ? -88.0f : (x > 88.0f ? 88.0f : x);
  const float shifted = xc * 1.44269504088896341f + 12582912.0f;  // n in the low mantissa bits
  const float n = shifted - 12582912.0f;
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.0f / 40320;
  p = p * r + 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  const float em1 = (p * r + 1.0f) * r;                                                   // e^r - 1
  const float scale = std::bit_cast<float>((std::bit_cast<int32_t>(shifted) - 0x4B400000 + 127) << 23);  // 2^n (0 at n = -127)
  return scale * em1 + (scale - 1.0f);
}
inline double expm1_approx(double x) { return std::expm1(x); }

// log(1 + e^x) = max(x, 0) + log(1 + e) with e = e^{-|x|} in (0, 1]; log(1 + e) = 2 atanh(s),
// s = e / (2 + e) in (0, 1/3], by its odd series to s^13 (truncation below 1e-8 relative): no
// library call, so a loop of them vectorises. Relative error ~3e-7.
inline float softplus_approx(float x) {
  const float e = exp_approx(x > 0 ? -x : x), s = e / (2.0f + e), s2 = s * s;
  float p = 1.0f / 13;
  p = p * s2 + 1.0f / 11;
  p = p * s2 + 1.0f / 9;
  p = p * s2 + 1.0f / 7;
  p = p * s2 + 1.0f / 5;
  p = p * s2 + 1.0f / 3;
  p = p * s2 + 1.0f;
  return (x > 0 ? x : 0.0f) + 2.0f * s * p;
}
inline double softplus_approx(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }

// 1 / (1 + e^{-x}) with one exp of -|x| (never overflows) and a select: vectorisable in float
// (exp_approx, relative error ~2e-7), where two library exps per value kept the loop scalar. Used by
// the sigmoid op and the fused kernels that contain one.
template <class T>
inline T sigmoid_approx(T x) {
  const T e = exp_approx(x >= 0 ? -x : x);
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

// tanh x = sign(x) (1 - e) / (1 + e), e = e^{-2|x|}, written as -m / (2 + m) with m = e - 1 from
// expm1_approx, so that small |x| loses no digits to 1 - e. No library call (libm's tanhf, which
// calls expm1f, kept a flow's loop scalar). |x| is clamped at 9, where tanh is 1 in float.
// Relative error ~5e-7.
inline float tanh_approx(float x) {
  const float a = std::fabs(x);
  const float m = expm1_approx(-2.0f * (a > 9.0f ? 9.0f : a));
  return std::copysign(std::fabs(m) / (2.0f + m), x);  // tanh(-0) = -0
}
inline double tanh_approx(double x) { return std::tanh(x); }

// erf and the standard normal CDF without a library call (libm's erff kept GELU loops scalar):
//   |x| < 1:  erf(x) = x P(x^2), P of degree 5;
//   w >= 1:   erfc(w) = t H(t) e^{-w^2}, t = 1 / (1 + w/2), H of degree 8,
// both fitted for this file with mpmath.chebyfit (P to erf(x)/x on x^2 in [0, 1], H to
// erfc(w) e^{w^2} / t on w in [1, inf)). Both parts are computed and one selected, so a loop
// vectorises. erf: at most 2.3 ulp from the correctly rounded value (1.7e-7 relative) over
// [-12, 12]. normal_cdf_approx(x) = Phi(x) = erfc(-x / sqrt 2) / 2 takes the tail for x << 0
// directly (1.5e-5 relative at x = -12.7, where 1 + erf(x / sqrt 2) in float has no digit left).
inline float erfc_scaled_tail_approx(float w) {  // erfc(w) e^{w^2} for w >= 1
  const float t = 1.0f / (1.0f + 0.5f * w);
  float h = 0.0183742326f;
  h = h * t + 0.042652186f;
  h = h * t - 0.169874936f;
  h = h * t + 0.0512059405f;
  h = h * t + 0.0693496093f;
  h = h * t + 0.178300068f;
  h = h * t + 0.246698841f;
  h = h * t + 0.282098204f;
  h = h * t + 0.282094777f;
  return t * h;
}
inline float erfc_tail_approx(float w) { return erfc_scaled_tail_approx(w) * exp_approx(-w * w); }  // erfc(w), w >= 1
inline float erf_small_approx(float x) {  // erf(x) for |x| < 1
  const float s = x * x;
  float p = -0.000564805989f;
  p = p * s + 0.00492176181f;
  p = p * s - 0.0267150551f;
  p = p * s + 0.112803169f;
  p = p * s - 0.376123428f;
  p = p * s + 1.12837911f;
  return x * p;
}
inline float erf_approx(float x) {
  const float a = std::fabs(x);
  const float big = 1.0f - erfc_tail_approx(a < 1.0f ? 1.0f : a);  // NaN stays NaN
  return a < 1.0f ? erf_small_approx(x) : std::copysign(big, x);
}
inline double erf_approx(double x) { return std::erf(x); }
inline float normal_cdf_approx(float x) {
  const float z = x * 0.707106781f, a = std::fabs(z);
  const float tail = 0.5f * erfc_tail_approx(a < 1.0f ? 1.0f : a);
  return a < 1.0f ? 0.5f + 0.5f * erf_small_approx(z) : (x > 0.0f ? 1.0f - tail : tail);
}
inline double normal_cdf_approx(double x) { return 0.5 * std::erfc(-x * M_SQRT1_2); }
// d/dx x Phi(x) = Phi(x) + x phi(x), GELU's slope: one exp serves phi and Phi's tail.
inline float gelu_slope_approx(float x) {
  const float z = x * 0.707106781f, a = std::fabs(z);
  const float e = exp_approx(-z * z);  // e^{-x^2 / 2}
  const float tail = 0.5f * erfc_scaled_tail_approx(a < 1.0f ? 1.0f : a) * e;
  const float cdf = a < 1.0f ? 0.5f + 0.5f * erf_small_approx(z) : (x > 0.0f ? 1.0f - tail : tail);
  return cdf + x * 0.398942280f * e;
}
inline double gelu_slope_approx(double x) { return normal_cdf_approx(x) + x * 0.3989422804014327 * std::exp(-0.5 * x * x); }

// Row reductions for the softmax kernels. A loop `m = max(m, p[j])` is a serial chain the compiler
// may not reorder; `omp simd reduction` helps for short sums (LayerNorm) but left the attention
// max loop scalar at run time. kLanes independent partial results, one per SIMD lane, are what it
// reliably vectorises, and they are combined at the end; `omp simd` on the lane loop asks for it
// (without, GCC 12 kept max_of's 16 lanes as 16 scalar maxes: cross-entropy forward + backward over
// MLP-AR's 12544 x 256 logits, bench/ab.sh on Zen 5, 1.78 -> 1.53 ms; AVX2 build 2.62 -> 2.40).
constexpr int kLanes = 16;

template <class T>
T max_of(const T* p, int64_t n) {
  T lane[kLanes];
  for (int l = 0; l < kLanes; ++l) lane[l] = -INFINITY;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) lane[l] = lane[l] > p[j + l] ? lane[l] : p[j + l];
  T m = -INFINITY;
  for (int l = 0; l < kLanes; ++l) m = m > lane[l] ? m : lane[l];
  for (; j < n; ++j) m = m > p[j] ? m : p[j];
  return m;
}

// sum_j exp(x[j] - shift) for j < n
template <class T>
T sum_exp_shift(const T* x, int64_t n, T shift) {
  T lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) lane[l] += exp_approx(x[j + l] - shift);
  T sum = 0;
  for (int l = 0; l < kLanes; ++l) sum += lane[l];
  for (; j < n; ++j) sum += exp_approx(x[j] - shift);
  return sum;
}

// p[j] = exp(p[j] - shift) for j < n; returns the sum of the new values.
template <class T>
T exp_shift_sum(T* p, int64_t n, T shift) {
  T lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      p[j + l] = exp_approx(p[j + l] - shift);
      lane[l] += p[j + l];
    }
  T sum = 0;
  for (int l = 0; l < kLanes; ++l) sum += lane[l];
  for (; j < n; ++j) sum += p[j] = exp_approx(p[j] - shift);
  return sum;
}

}  // namespace dgm::cpu
