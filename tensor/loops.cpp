// The loop drivers of tensor/loops.h, compiled once: parallel ranges and row iteration.
#include <dgm/tensor/loops.h>

namespace dgm::cpu {

int team_for(int64_t n, int64_t grain) {
  return int(std::clamp<int64_t>(n / std::max<int64_t>(1, grain / 2), 1, omp_get_max_threads()));
}

void parallel_ranges(int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> fn, int64_t per_thread) {
  const int nt = team_for(n, grain);
  if (n < grain || nt == 1 || omp_in_parallel()) {
    fn(int64_t{0}, n);
    return;
  }
  const int64_t pieces = std::min<int64_t>(std::max<int64_t>(1, per_thread) * nt, std::max<int64_t>(nt, n / std::max<int64_t>(1, grain / 4)));
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t p = 0; p < pieces; ++p) {
    const int64_t b = n * p / pieces, e = n * (p + 1) / pieces;
    if (b < e) fn(b, e);
  }
}

namespace {
// Steps the row index `idx` over the outer dims (row-major) and each operand's offset with it.
template <size_t N>
void next_row(const Shape& outer, const std::array<Strides, N>& outer_st, std::vector<int64_t>& idx, std::array<int64_t, N>& off) {
  for (size_t d = outer.size(); d-- > 0;) {
    if (++idx[d] < outer[d]) {
      for (size_t k = 0; k < N; ++k) off[k] += outer_st[k][d];
      return;
    }
    for (size_t k = 0; k < N; ++k) off[k] -= outer_st[k][d] * (outer[d] - 1);
    idx[d] = 0;
  }
}
}  // namespace

template <size_t N>
void for_each_tile_ref(const Shape& shape_in, std::array<Strides, N> st, TileFn<N> fn) {
  if (numel_of(shape_in) == 0) return;
  Shape shape = shape_in;
  if (shape.empty()) {
    shape = {1};
    for (auto& s : st) s = {0};
  }
  // merge dim d into d+1 when every operand has stride[d] == stride[d+1] * shape[d+1]
  Shape ms{shape.back()};
  std::array<Strides, N> mst;
  for (size_t k = 0; k < N; ++k) mst[k] = {st[k].back()};
  for (size_t d = shape.size() - 1; d-- > 0;) {
    bool merge = true;
    for (size_t k = 0; k < N; ++k) merge &= st[k][d] == mst[k].front() * ms.front();
    if (merge) {
      ms.front() *= shape[d];
    } else {
      ms.insert(ms.begin(), shape[d]);
      for (size_t k = 0; k < N; ++k) mst[k].insert(mst[k].begin(), st[k][d]);
    }
  }
  int64_t inner = ms.back();
  std::array<int64_t, N> inner_st;
  for (size_t k = 0; k < N; ++k) inner_st[k] = mst[k].back();
  Shape outer(ms.begin(), ms.end() - 1);
  std::array<Strides, N> outer_st;
  for (size_t k = 0; k < N; ++k) outer_st[k] = Strides(mst[k].begin(), mst[k].end() - 1);
  int64_t rows = numel_of(outer);
  std::array<int64_t, N> row_st{};  // along the last outer dim: the dim a tile's rows follow
  if (!outer.empty())
    for (size_t k = 0; k < N; ++k) row_st[k] = outer_st[k].back();
  const int nt = omp_in_parallel() ? 1 : team_for(rows * inner, kParallelGrain);
  if (nt > 1 && rows < nt && rows * inner >= kParallelGrain) {
    // A few long rows (a contiguous operation merges into one): split each row's elements across
    // the threads instead, or all but one thread would idle. Every element is still computed by
    // the same code, so the result does not depend on the thread count.
    std::vector<std::array<int64_t, N>> row_off(static_cast<size_t>(rows));
    std::vector<int64_t> idx(outer.size(), 0);
    std::array<int64_t, N> off{};
    for (int64_t r = 0; r < rows; ++r) {
      row_off[size_t(r)] = off;
      next_row<N>(outer, outer_st, idx, off);
    }
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num(), team = omp_get_num_threads();
      for (int64_t r = 0; r < rows; ++r) {
        // whole cache lines (16 floats) per thread where possible
        const int64_t b = std::min(inner, (inner * t / team + 15) / 16 * 16), e = t + 1 == team ? inner : std::min(inner, (inner * (t + 1) / team + 15) / 16 * 16);
        if (b >= e) continue;
        std::array<int64_t, N> o = row_off[size_t(r)];
        for (size_t k = 0; k < N; ++k) o[k] += b * inner_st[k];
        fn(o, e - b, inner_st, 1, row_st);
      }
    }
    return;
  }
  // rows are independent: split them across threads when there is enough work
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    std::array<int64_t, N> off{};
    std::vector<int64_t> idx(outer.size());
    int64_t rem = r0;
    for (size_t d = outer.size(); d-- > 0;) {
      idx[d] = rem % outer[d];
      rem /= outer[d];
      for (size_t k = 0; k < N; ++k) off[k] += idx[d] * outer_st[k][d];
    }
    // tiles: the rows left along the last outer dim (all of the range when there is no outer dim)
    for (int64_t r = r0; r < r1;) {
      const int64_t t = outer.empty() ? r1 - r : std::min(outer.back() - idx.back(), r1 - r);
      fn(off, inner, inner_st, t, row_st);
      r += t;
      if (outer.empty()) break;
      idx.back() += t - 1;
      for (size_t k = 0; k < N; ++k) off[k] += (t - 1) * row_st[k];
      next_row<N>(outer, outer_st, idx, off);
    }
  }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(inner, 1)));
}

template void for_each_tile_ref<2>(const Shape&, std::array<Strides, 2>, TileFn<2>);
template void for_each_tile_ref<3>(const Shape&, std::array<Strides, 3>, TileFn<3>);
template void for_each_tile_ref<4>(const Shape&, std::array<Strides, 4>, TileFn<4>);

}  // namespace dgm::cpu
