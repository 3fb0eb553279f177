// Loop helpers shared by the CPU kernels (internal header).
#pragma once
#include <omp.h>

#include <algorithm>
#include <array>
#include <memory>
#include <utility>
#include <vector>
#include <cmath>
#include <type_traits>

#include <dgm/tensor/array.h>
#include <dgm/tensor/kernels.h>

namespace dgm::cpu {

template <class T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(v);
  else return false;
}

// A non-owning reference to a callable (as C++26's std::function_ref): what the loop drivers below
// take, so that their OpenMP regions and index arithmetic are compiled once (tensor/loops.cpp) instead
// of once per kernel lambda; only the lambda's own loop is compiled per kernel. That instantiation per
// (op x dtype) was most of the build time of tensor/elementwise.cpp (58 s on one Zen 3 core).
template <class Sig>
class FunctionRef;
template <class R, class... Args>
class FunctionRef<R(Args...)> {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::remove_cv_t<F>, FunctionRef>>>  // copies stay copies
  FunctionRef(F& f)  // NOLINT: implicit, as the callable is passed straight through
      : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o, Args... a) -> R { return (*static_cast<F*>(o))(std::forward<Args>(a)...); }) {}
  R operator()(Args... a) const { return call_(obj_, std::forward<Args>(a)...); }

 private:
  void* obj_;
  R (*call_)(void*, Args...);
};

// Runs fn(begin, end) over [0, n) in disjoint ranges, split across threads only when n is large
// enough that the threads pay for themselves: at least `grain` items in all and half a grain per
// thread (as PyTorch's grain size: 16 cores are not woken for 8192 values). Up to `per_thread` ranges
// per thread (none shorter than a quarter of the grain), taken by whichever thread is free: a thread
// slowed by the machine's other load takes fewer instead of holding up the rest. Loops of heavy items
// (attention's heads, a millisecond each) ask for more, so that the last range taken is short. On
// one thread (or below the grain, or inside another parallel region) fn(0, n) runs right there.
void parallel_ranges(int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> fn, int64_t per_thread = 4);
// The threads a loop of n items with this grain is split across (see parallel_ranges).
int team_for(int64_t n, int64_t grain);
// Both cases call the kernel through the FunctionRef, never inlined into the caller: so its loop is
// compiled once, in a small function, and vectorises alike on any thread count. Inlined into the
// caller's one-thread branch, a loop of vecmath calls in a big kernel function stayed scalar (GCC's
// inlining budget ran out: the fused Linear+GELU's forward took 81 ms on one thread, 24 ms this way).
template <class Fn>
void parallel_for(int64_t n, Fn&& fn, int64_t grain = kParallelGrain, int64_t per_thread = 4) {
  parallel_ranges(n, grain, FunctionRef<void(int64_t, int64_t)>(fn), per_thread);
}

// The second half of a reproducible parallel reduction. The first half computed one partial per
// chunk of the reduced items (chunks fixed by the sizes, never by the thread count), each chunk's
// `width` partials at parts[(o * chunks + c) * width + i] for group o < outer. This folds each output
// (o, i) over its chunks in chunk order, a = combine(a, next) from chunk 0, and hands the result to
// store(o * width + i, a); the outputs run in parallel, one thread each. So the result has the same
// bits on any thread count (the reductions, the bias and LayerNorm gradients). Needs chunks >= 1.
template <class P, class Combine, class Store>
void combine_chunks_in_order(const P* parts, int64_t outer, int64_t chunks, int64_t width, Combine&& combine, Store&& store) {
  parallel_for(outer * width, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const P* p = parts + (j / width) * chunks * width + j % width;
      P a = p[0];
      for (int64_t c = 1; c < chunks; ++c) a = combine(a, p[c * width]);
      store(j, a);
    }
  }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(chunks, 1)));
}

// Iterates an N-d shape row by row: fn(offsets, inner_size, inner_strides) is called once per
// "row" along the last dim, where offsets[k] is operand k's element offset of the row start.
// Dims that are laid out contiguously for every operand are merged first, so a contiguous or
// simply-broadcast operation becomes a few long rows. Rows are split across threads when there is
// enough work (a few long rows: their elements); every element is computed by the same code, so the
// result does not depend on the thread count. N = 2, 3 or 4 operands (tensor/loops.cpp).
// Underneath, for_each_tile_ref hands over tiles of consecutive rows along the next dim (rows, and
// each operand's row stride), and this wrapper walks a tile's rows with fn inlined: a broadcast whose
// last dim is short ((R, 1) against (R, 5), a (B, 2) batch times a (2,) parameter) paid an indirect
// call and an index step per row, 10-50x the contiguous op's time per element.
template <size_t N>
using TileFn = FunctionRef<void(const std::array<int64_t, N>&, int64_t, const std::array<int64_t, N>&, int64_t, const std::array<int64_t, N>&)>;
template <size_t N>
void for_each_tile_ref(const Shape& shape, std::array<Strides, N> st, TileFn<N> fn);
template <size_t N, class Fn>
void for_each_row(const Shape& shape, std::array<Strides, N> st, Fn&& fn) {
  auto tile = [&](const std::array<int64_t, N>& off, int64_t n, const std::array<int64_t, N>& inner_st, int64_t rows,
                  const std::array<int64_t, N>& row_st) {
    std::array<int64_t, N> o = off;
    for (int64_t r = 0; r < rows; ++r) {
      fn(o, n, inner_st);
      for (size_t k = 0; k < N; ++k) o[k] += row_st[k];
    }
  };
  for_each_tile_ref<N>(shape, std::move(st), TileFn<N>(tile));
}

}  // namespace dgm::cpu
