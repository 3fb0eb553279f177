// Reductions over one or several dims (sum, mean, var, max/min, logsumexp) and cumsum.
#include <algorithm>
#include <cmath>
#include <limits>

#include <dgm/tensor/kernels.h>
#include <dgm/tensor/loops.h>

namespace dgm::cpu {

namespace {

// Which dims are reduced, and the shapes/strides of the kept and reduced parts of x.
struct ReducePlan {
  Shape out_shape;  // with or without the reduced dims, per keepdim
  Shape kept, red;
  Strides kept_st, red_st;
  int64_t red_numel = 1;
};

// Drops dims of size 1 and merges a dim into the one before it where the pair walks memory as one
// dim (stride[a] == size[b] * stride[b]): the same elements in the same order, in longer runs (a
// conv's bias gradient, summed over (N, H, W) of NCHW, walks runs of H * W values instead of W).
void merge_dims(Shape& shape, Strides& strides) {
  Shape s;
  Strides st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!s.empty() && st.back() == shape[d] * strides[d]) {
      s.back() *= shape[d];
      st.back() = strides[d];
    } else {
      s.push_back(shape[d]);
      st.push_back(strides[d]);
    }
  }
  shape = std::move(s);
  strides = std::move(st);
}

ReducePlan plan_reduce(const Array& x, std::vector<int64_t> dims, bool keepdim, const char* op) {
  int64_t nd = x.dim();
  std::vector<bool> reduced(std::max<int64_t>(nd, 1), dims.empty());  // a 0-dim x accepts dim 0 / -1 (as PyTorch)
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, nd, op);
    if (reduced[w]) throw ValueError(cat(op, ": dim ", w, " appears more than once"));
    reduced[w] = true;
  }
  ReducePlan p;
  for (int64_t d = 0; d < nd; ++d) {
    if (reduced[d]) {
      p.red.push_back(x.shape()[d]);
      p.red_st.push_back(x.strides()[d]);
      p.red_numel *= x.shape()[d];
      if (keepdim) p.out_shape.push_back(1);
    } else {
      p.kept.push_back(x.shape()[d]);
      p.kept_st.push_back(x.strides()[d]);
      p.out_shape.push_back(x.shape()[d]);
    }
  }
  merge_dims(p.red, p.red_st);
  merge_dims(p.kept, p.kept_st);
  return p;
}

// ---- splitting a reduction -----------------------------------------------------------------------
// A reduction with few outputs over many elements (a loss's mean, a norm, a bias gradient summed over
// a batch) must not run on one thread. Each output's reduced elements, in row-major order over the
// reduced dims, are cut into `reduce_chunks` consecutive ranges of at least kReduceChunk elements;
// the ranges of all outputs are reduced in parallel, and each output combines its ranges' results in
// range order. The cut depends on the number of reduced elements only, never on the thread count, so
// no result depends on it either; reductions of fewer than 2 * kReduceChunk elements are one range.
constexpr int64_t kReduceChunk = 8192;
int64_t reduce_chunks(int64_t red_numel) { return std::max<int64_t>(1, red_numel / kReduceChunk); }
// [begin, end) of range c of `chunks` near-equal ranges of [0, n)
void chunk_range(int64_t n, int64_t chunks, int64_t c, int64_t& begin, int64_t& end) {
  const int64_t size = n / chunks, extra = n % chunks;
  begin = c * size + std::min(c, extra);
  end = begin + size + (c < extra ? 1 : 0);
}

// Calls g(ptr, n, stride, e) for the reduced elements e0 <= e < e1 of the output whose first element
// is `start`, as runs along the last reduced dim (e: the index of ptr's element).
template <class T, class G>
void visit_range(const T* start, const ReducePlan& p, int64_t e0, int64_t e1, G&& g) {
  if (e0 >= e1) return;
  if (p.red.empty()) {
    g(start, int64_t{1}, int64_t{1}, int64_t{0});
    return;
  }
  const size_t outer_dims = p.red.size() - 1;
  const int64_t inner = p.red.back(), istride = p.red_st.back();
  int64_t row = e0 / inner, col = e0 % inner, off = 0;
  std::vector<int64_t> idx(outer_dims);
  for (size_t d = outer_dims; d-- > 0;) {
    idx[d] = row % p.red[d];
    off += idx[d] * p.red_st[d];
    row /= p.red[d];
  }
  for (int64_t e = e0; e < e1;) {
    const int64_t n = std::min(inner - col, e1 - e);
    g(start + off + col * istride, n, istride, e);
    e += n;
    col = 0;
    for (size_t d = outer_dims; d-- > 0;) {  // the next row (odometer)
      off += p.red_st[d];
      if (++idx[d] < p.red[d]) break;
      off -= idx[d] * p.red_st[d];
      idx[d] = 0;
    }
  }
}

// The generic reduction: for every output o (row-major over the kept dims) and each of its ranges,
// part = partial(start, e0, e1) where partial calls visit_range itself; then store(o, a) with a the
// ranges' parts combined in order by `combine(a, part)`.
template <class T, class Acc, class Partial, class Combine, class Store>
void reduce_split(const Array& x, const ReducePlan& p, Partial&& partial, Combine&& combine, Store&& store) {
  const T* base = static_cast<const T*>(x.storage()->data) + x.offset();
  const int64_t n_out = numel_of(p.kept), chunks = reduce_chunks(p.red_numel);
  auto start_of = [&](int64_t o) {
    int64_t off = 0;
    for (size_t d = p.kept.size(); d-- > 0;) {
      off += (o % p.kept[d]) * p.kept_st[d];
      o /= p.kept[d];
    }
    return base + off;
  };
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(p.red_numel / chunks, 1));
  if (chunks == 1) {
    parallel_for(n_out, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) store(o, partial(start_of(o), int64_t{0}, p.red_numel));
    }, grain);
    return;
  }
  std::vector<Acc> parts(static_cast<size_t>(n_out * chunks));
  parallel_for(n_out * chunks, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      int64_t e0, e1;
      chunk_range(p.red_numel, chunks, i % chunks, e0, e1);
      parts[static_cast<size_t>(i)] = partial(start_of(i / chunks), e0, e1);
    }
  }, grain);
  combine_chunks_in_order(parts.data(), n_out, chunks, 1, combine, store);
}

template <class T>
using acc_t = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;

// acc + r[0] + r[s] + ... + r[(n - 1) s] in acc_t, added in that order, except that a unit-stride
// run of 32 floats or more is added in 16 running sums (sum l takes elements l, l + 16, ...; the 16
// are added to acc in order at the end): the compiler vectorises that without reordering any sum it
// was given, and the adds do not wait on each other (one running sum is a chain of dependent adds,
// a few cycles per element).
template <class T>
acc_t<T> sum_run(acc_t<T> acc, const T* r, int64_t n, int64_t s) {
  int64_t i = 0;
  if constexpr (std::is_floating_point_v<T>) {
    constexpr int L = 16;
    if (s == 1 && n >= 2 * L) {
      acc_t<T> lane[L] = {};
      for (; i + L <= n; i += L)
        for (int l = 0; l < L; ++l) lane[l] += r[i + l];
      for (int l = 0; l < L; ++l) acc += lane[l];
    }
  }
  for (; i < n; ++i) acc += r[i * s];
  return acc;
}

// A contiguous x whose reduced dims are one run of consecutive dims before the last: x is
// (outer, R, inner) with inner > 1 (a mixture's K components in (B, K, C, H, W), logsumexp over
// dim 1; a bias gradient, (N, C) summed over dim 0). The generic walk would visit R strided elements
// for each of the outer * inner outputs; here blocks of kColumnBlock outputs accumulate the R
// contiguous rows in turn, a vectorised loop, cut into the same row ranges as the generic walk, each
// summed in order: the same sums as the generic walk gives a copy of x whose reduced elements are
// strided (adjacent ones it adds in 16 running sums, see sum_run). false: not this layout.
struct MiddleRun {
  int64_t outer = 1, red = 1, inner = 1;
};
bool middle_run(const Array& x, const std::vector<int64_t>& dims, MiddleRun& m) {
  const int64_t nd = x.dim();
  if (dims.empty() || nd < 2 || !x.is_contiguous()) return false;
  std::vector<bool> reduced(nd, false);
  for (int64_t d : dims) {
    const int64_t w = d < 0 ? d + nd : d;
    if (w < 0 || w >= nd || reduced[w]) return false;  // the generic path names the error
    reduced[w] = true;
  }
  int64_t first = -1, last = -1;
  for (int64_t d = 0; d < nd; ++d)
    if (reduced[d]) {
      if (first < 0) first = d;
      else if (last != d - 1) return false;  // not consecutive
      last = d;
    }
  if (last == nd - 1) return false;
  for (int64_t d = 0; d < first; ++d) m.outer *= x.shape()[d];
  for (int64_t d = first; d <= last; ++d) m.red *= x.shape()[d];
  for (int64_t d = last + 1; d < nd; ++d) m.inner *= x.shape()[d];
  return m.inner > 1 && m.red > 0;
}

// Runs fn(o, r0, r1, i0, i1, c) in parallel over the items of a middle-run reduction: outer row o,
// the columns [i0, i1) of one block of kColumnBlock, and range c = [r0, r1) of the reduce_chunks(red)
// ranges of rows.
constexpr int64_t kColumnBlock = 64;
template <class Fn>
void middle_run_items(const MiddleRun& m, int64_t chunks, Fn&& fn) {
  const int64_t blocks = (m.inner + kColumnBlock - 1) / kColumnBlock;
  const int64_t item_work = std::min(m.inner, kColumnBlock) * std::max<int64_t>(1, m.red / chunks);
  parallel_for(m.outer * blocks * chunks, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t c = j % chunks, b = j / chunks % blocks, o = j / chunks / blocks;
      int64_t r0, r1;
      chunk_range(m.red, chunks, c, r0, r1);
      fn(o, r0, r1, b * kColumnBlock, std::min(m.inner, (b + 1) * kColumnBlock), c);
    }
  }, std::max<int64_t>(1, kParallelGrain / item_work));
}

// best = v if v is NaN or beats best: NaN propagates (once best is NaN only a NaN replaces it)
template <class T>
T pick(T best, T v, bool is_max) {
  return (is_nan(v) || (is_max ? v > best : v < best)) ? v : best;
}

}  // namespace

Array sum(const Array& x, std::vector<int64_t> dims, bool keepdim) {
  ReducePlan p = plan_reduce(x, dims, keepdim, "sum");
  DType out_t = x.dtype() == DType::Bool ? DType::Int64 : x.dtype();
  Array xx = x.dtype() == DType::Bool ? x.to(DType::Int64) : x;
  if (x.dtype() == DType::Bool) p = plan_reduce(xx, dims, keepdim, "sum");
  Array out = Array::empty(p.out_shape, out_t);
  MiddleRun mr;
  if (middle_run(xx, dims, mr)) {
    dispatch_numeric(out_t, "sum", [&]<class T>() {
      const T* xp = xx.data<T>();
      T* op = out.data<T>();
      const int64_t chunks = reduce_chunks(mr.red);
      std::vector<acc_t<T>> parts(static_cast<size_t>(chunks > 1 ? mr.outer * chunks * mr.inner : 0));
      middle_run_items(mr, chunks, [&](int64_t o, int64_t r0, int64_t r1, int64_t i0, int64_t i1, int64_t c) {
        acc_t<T> acc[kColumnBlock] = {};
        const int64_t w = i1 - i0;
        for (int64_t r = r0; r < r1; ++r) {
          const T* row = xp + (o * mr.red + r) * mr.inner + i0;
          for (int64_t i = 0; i < w; ++i) acc[i] += row[i];
        }
        for (int64_t i = 0; i < w; ++i) {
          if (chunks == 1) op[o * mr.inner + i0 + i] = static_cast<T>(acc[i]);
          else parts[static_cast<size_t>((o * chunks + c) * mr.inner + i0 + i)] = acc[i];
        }
      });
      if (chunks > 1)  // each output adds its ranges' sums in order, as the generic walk
        combine_chunks_in_order(parts.data(), mr.outer, chunks, mr.inner, [](acc_t<T> a, acc_t<T> b) { return a + b; },
                                [&](int64_t j, acc_t<T> a) { op[j] = static_cast<T>(a); });
    });
    return out;
  }
  dispatch_numeric(out_t, "sum", [&]<class T>() {
    T* op = out.data<T>();
    reduce_split<T, acc_t<T>>(
        xx, p,
        [&](const T* start, int64_t e0, int64_t e1) {
          acc_t<T> acc = 0;
          visit_range(start, p, e0, e1, [&](const T* r, int64_t n, int64_t s, int64_t) { acc = sum_run(acc, r, n, s); });
          return acc;
        },
        [](acc_t<T> a, acc_t<T> b) { return a + b; }, [&](int64_t o, acc_t<T> a) { op[o] = static_cast<T>(a); });
  });
  return out;
}

Array mean(const Array& x, std::vector<int64_t> dims, bool keepdim) {
  if (!is_floating(x.dtype())) throw DTypeError(cat("mean: expected a floating dtype, got ", dtype_name(x.dtype())));
  ReducePlan p = plan_reduce(x, dims, keepdim, "mean");
  Array s = sum(x, dims, keepdim);
  Array scale = Array::scalar(1.0 / static_cast<double>(p.red_numel), x.dtype());
  return binary(Binary::Mul, s, scale);
}

Array var(const Array& x, std::vector<int64_t> dims, int64_t correction, bool keepdim) {
  if (!is_floating(x.dtype())) throw DTypeError(cat("var: expected a floating dtype, got ", dtype_name(x.dtype())));
  ReducePlan p = plan_reduce(x, dims, keepdim, "var");
  Array m = mean(x, dims, true);
  Array d = binary(Binary::Sub, x, m);
  Array ss = sum(binary(Binary::Mul, d, d), dims, keepdim);
  double denom = std::max<double>(0, static_cast<double>(p.red_numel - correction));
  return binary(Binary::Div, ss, Array::scalar(denom, x.dtype()));
}

static Array extreme(const Array& x, std::vector<int64_t> dims, bool keepdim, bool is_max, const char* op) {
  ReducePlan p = plan_reduce(x, dims, keepdim, op);
  if (p.red_numel == 0) throw ValueError(cat(op, ": cannot reduce over an empty dim (shape ", shape_str(x.shape()), ")"));
  Array out = Array::empty(p.out_shape, x.dtype());
  MiddleRun mr;
  if (middle_run(x, dims, mr)) {  // row by row, as in sum
    dispatch_numeric(x.dtype(), op, [&]<class T>() {
      const T* xp = x.data<T>();
      T* o_ = out.data<T>();
      const int64_t chunks = reduce_chunks(mr.red);
      std::vector<T> parts(static_cast<size_t>(chunks > 1 ? mr.outer * chunks * mr.inner : 0));
      middle_run_items(mr, chunks, [&](int64_t o, int64_t r0, int64_t r1, int64_t i0, int64_t i1, int64_t c) {
        T* best = chunks == 1 ? o_ + o * mr.inner + i0 : parts.data() + (o * chunks + c) * mr.inner + i0;
        const int64_t w = i1 - i0;
        std::copy(xp + (o * mr.red + r0) * mr.inner + i0, xp + (o * mr.red + r0) * mr.inner + i1, best);
        for (int64_t r = r0 + 1; r < r1; ++r) {
          const T* row = xp + (o * mr.red + r) * mr.inner + i0;
          for (int64_t i = 0; i < w; ++i) best[i] = pick(best[i], row[i], is_max);
        }
      });
      if (chunks > 1)
        combine_chunks_in_order(parts.data(), mr.outer, chunks, mr.inner, [&](T best, T v) { return pick(best, v, is_max); },
                                [&](int64_t j, T best) { o_[j] = best; });
    });
    return out;
  }
  dispatch_numeric(x.dtype(), op, [&]<class T>() {
    T* o_ = out.data<T>();
    // every range holds at least one element, so its best is a value of x (NaN when it holds one)
    reduce_split<T, T>(
        x, p,
        [&](const T* start, int64_t e0, int64_t e1) {
          T best{};
          bool have = false, nan = false;
          visit_range(start, p, e0, e1, [&](const T* r, int64_t n, int64_t s, int64_t) {
            for (int64_t i = 0; i < n; ++i) {
              T v = r[i * s];
              if (is_nan(v)) nan = true;  // NaN propagates, as in PyTorch
              else if (!have || (is_max ? v > best : v < best)) best = v, have = true;
            }
          });
          if constexpr (std::is_floating_point_v<T>) {
            if (nan) best = std::numeric_limits<T>::quiet_NaN();
          }
          return best;
        },
        [&](T a, T b) { return pick(a, b, is_max); }, [&](int64_t o, T best) { o_[o] = best; });
  });
  return out;
}
Array amax(const Array& x, std::vector<int64_t> dims, bool keepdim) { return extreme(x, dims, keepdim, true, "amax"); }
Array amin(const Array& x, std::vector<int64_t> dims, bool keepdim) { return extreme(x, dims, keepdim, false, "amin"); }

Array logsumexp(const Array& x, std::vector<int64_t> dims, bool keepdim) {
  if (!is_floating(x.dtype())) throw DTypeError(cat("logsumexp: expected a floating dtype, got ", dtype_name(x.dtype())));
  // log sum exp(x) = m + log sum exp(x - m), with m = max (0 where m is infinite, to avoid inf - inf)
  Array m = amax(x, dims, true);
  dispatch_floating(m.dtype(), "logsumexp", [&]<class T>() {
    T* mp = m.data<T>();
    for (int64_t i = 0; i < m.numel(); ++i)
      if (!std::isfinite(mp[i])) mp[i] = 0;
  });
  Array s = sum(unary(Unary::Exp, binary(Binary::Sub, x, m)), dims, true);
  Array out = binary(Binary::Add, unary(Unary::Log, s), m);
  if (!keepdim) {
    ReducePlan p = plan_reduce(x, dims, false, "logsumexp");
    out = out.reshape(p.out_shape);
  }
  return out;
}

static std::pair<Array, Array> arg_extreme(const Array& x, int64_t dim, bool keepdim, bool is_max, const char* op) {
  int64_t d = wrap_dim(dim, x.dim(), op);
  ReducePlan p = plan_reduce(x, {d}, keepdim, op);
  if (p.red_numel == 0) throw ValueError(cat(op, ": cannot reduce over an empty dim (shape ", shape_str(x.shape()), ")"));
  Array vals = Array::empty(p.out_shape, x.dtype());
  Array idx = Array::empty(p.out_shape, DType::Int64);
  dispatch_numeric(x.dtype(), op, [&]<class T>() {
    T* vp = vals.data<T>();
    int64_t* ip = idx.data<int64_t>();
    // the first best of each range; ranges combine in order, so a tie keeps the earlier index and
    // the first NaN wins, as in one pass (and in PyTorch)
    struct Best {
      T value;
      int64_t index;
    };
    reduce_split<T, Best>(
        x, p,
        [&](const T* start, int64_t e0, int64_t e1) {
          Best b{p.red.empty() ? start[0] : start[e0 * p.red_st[0]], e0};  // a 0-dim x reduces its one value
          visit_range(start, p, e0 + 1, e1, [&](const T* r, int64_t n, int64_t s, int64_t e) {
            for (int64_t i = 0; i < n && !is_nan(b.value); ++i) {
              T v = r[i * s];
              if (is_nan(v) || (is_max ? v > b.value : v < b.value)) b = {v, e + i};
            }
          });
          return b;
        },
        [&](Best a, Best b) { return !is_nan(a.value) && (is_nan(b.value) || (is_max ? b.value > a.value : b.value < a.value)) ? b : a; },
        [&](int64_t o, Best b) {
          vp[o] = b.value;
          ip[o] = b.index;
        });
  });
  return {vals, idx};
}
std::pair<Array, Array> max_dim(const Array& x, int64_t dim, bool keepdim) { return arg_extreme(x, dim, keepdim, true, "max"); }
std::pair<Array, Array> min_dim(const Array& x, int64_t dim, bool keepdim) { return arg_extreme(x, dim, keepdim, false, "min"); }
Array argmax(const Array& x, int64_t dim, bool keepdim) { return arg_extreme(x, dim, keepdim, true, "argmax").second; }
Array argmin(const Array& x, int64_t dim, bool keepdim) { return arg_extreme(x, dim, keepdim, false, "argmin").second; }

Array cumsum(const Array& x, int64_t dim) {
  int64_t d = wrap_dim(dim, x.dim(), "cumsum");
  DType t = x.dtype() == DType::Bool ? DType::Int64 : x.dtype();
  Array src = x.to(t);
  Array out = Array::empty(x.shape(), t);
  if (x.dim() == 0) {
    out.copy_(src);
    return out;
  }
  dispatch_numeric(t, "cumsum", [&]<class T>() {
    const T* sp = static_cast<const T*>(src.storage()->data) + src.offset();
    T* op = out.data<T>();
    Shape rest = x.shape();
    rest[d] = 1;
    Strides sst = src.strides(), ost = out.strides();
    int64_t n = x.shape()[d], ss = sst[d], os = ost[d];
    parallel_for(numel_of(rest), [&](int64_t l0, int64_t l1) {  // the lines along dim d, in parallel
      for (int64_t l = l0; l < l1; ++l) {
        int64_t so = 0, oo = 0, rem = l;
        for (size_t k = rest.size(); k-- > 0;) {
          const int64_t i = rem % rest[k];
          rem /= rest[k];
          so += i * sst[k];
          oo += i * ost[k];
        }
        acc_t<T> acc = 0;
        for (int64_t i = 0; i < n; ++i) {
          acc += sp[so + i * ss];
          op[oo + i * os] = static_cast<T>(acc);
        }
      }
    }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1)));
  });
  return out;
}

Array sum_to(const Array& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  if (shape.size() > x.shape().size())
    throw ShapeError(cat("sum_to: cannot sum shape ", shape_str(x.shape()), " down to ", shape_str(shape)));
  size_t lead = x.shape().size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t i = 0; i < x.shape().size(); ++i) {
    if (i < lead) dims.push_back(static_cast<int64_t>(i));
    else if (shape[i - lead] == 1 && x.shape()[i] != 1) dims.push_back(static_cast<int64_t>(i));
    else if (shape[i - lead] != x.shape()[i])
      throw ShapeError(cat("sum_to: cannot sum shape ", shape_str(x.shape()), " down to ", shape_str(shape)));
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, true).reshape(shape);
}

}  // namespace dgm::cpu
