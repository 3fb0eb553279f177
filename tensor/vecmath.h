// Vectorisable float math for hot loops. std::exp is a library call the compiler cannot
// vectorise; this inline exp (Cody-Waite range reduction + a degree-6 minimax polynomial,
// relative error ~2e-7) turns a loop of exps into SIMD code.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace dgm::cpu {

inline float exp_approx(float x) {
  // e^x = 2^n e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2]
  float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;  // ln 2 split in two for accuracy
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float e = p * r * r + r + 1.0f;
  float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return x < -87.0f ? 0.0f : e * scale;  // below ~1e-38 (and -inf): exactly 0
}
inline double exp_approx(double x) { return std::exp(x); }  // float64 is for checks, not speed

}  // namespace dgm::cpu
