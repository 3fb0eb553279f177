// softmax / log_softmax along one dim, numerically stable (the max is subtracted first).
#include <cmath>
#include <type_traits>

#include <dgm/tensor/kernels.h>
#include <dgm/tensor/loops.h>
#include <dgm/tensor/vecmath.h>

namespace dgm::cpu {

template <bool Log>
static Array softmax_impl(const Array& x, int64_t dim, const char* op) {
  int64_t d = wrap_dim(dim, x.dim(), op);
  Array src = x.contiguous();
  Array out = Array::empty(x.shape(), x.dtype());
  if (x.dim() == 0) {
    out.fill_(Log ? 0.0 : 1.0);
    return out;
  }
  dispatch_floating(x.dtype(), op, [&]<class T>() {
    const T* sp = src.data<T>();
    T* op_ = out.data<T>();
    int64_t n = x.shape()[d], inner = 1, outer = 1;
    for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.shape()[i];
    for (int64_t i = 0; i < d; ++i) outer *= x.shape()[i];
    if constexpr (std::is_same_v<T, float>) {
      if (inner == 1) {  // contiguous rows (the usual last-dim softmax): vectorised max, exp and sum
        parallel_for(outer, [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) {
            const float* xr = sp + r * n;
            float* yr = op_ + r * n;
            float m = max_of(xr, n);
            if (!std::isfinite(m)) m = 0;
            const float s = sum_exp_shift(xr, n, m);
            if constexpr (Log) {
              const float log_s = std::log(s);
              for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - m) - log_s;
            } else {
              const float inv = 1.0f / s;
              for (int64_t i = 0; i < n; ++i) yr[i] = exp_approx(xr[i] - m) * inv;
            }
          }
        }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1)));
        return;
      }
    }
    // each (outer, inner) pair is one softmax over n elements spaced `inner` apart
    parallel_for(outer * inner, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int64_t base = (r / inner) * n * inner + r % inner;
        const T* xr = sp + base;
        T* yr = op_ + base;
        T m = -INFINITY;
        for (int64_t i = 0; i < n; ++i) m = std::max(m, xr[i * inner]);
        if (!std::isfinite(m)) m = 0;
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(xr[i * inner] - m));
        if constexpr (Log) {
          // (x - m) - log s: subtracting m first keeps float32 precision when |m| is large
          T log_s = static_cast<T>(std::log(s));
          for (int64_t i = 0; i < n; ++i) yr[i * inner] = (xr[i * inner] - m) - log_s;
        } else {
          T inv = static_cast<T>(1.0 / s);
          for (int64_t i = 0; i < n; ++i) yr[i * inner] = std::exp(xr[i * inner] - m) * inv;
        }
      }
    }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1)));
  });
  return out;
}

Array softmax(const Array& x, int64_t dim) { return softmax_impl<false>(x, dim, "softmax"); }
Array log_softmax(const Array& x, int64_t dim) { return softmax_impl<true>(x, dim, "log_softmax"); }

}  // namespace dgm::cpu
