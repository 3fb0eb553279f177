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
  return p;
}

// For every output element o (row-major over the kept dims), calls
// fn(o, inner) where inner(g) visits every reduced element's pointer via g(const T* row, n, stride).
template <class T, class Fn>
void reduce_each(const Array& x, const ReducePlan& p, Fn&& fn) {
  const T* base = static_cast<const T*>(x.storage()->data) + x.offset();
  int64_t n_out = numel_of(p.kept);
  Strides kept_contig = contiguous_strides(p.kept);
  parallel_for(n_out, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      int64_t off = 0, rem = o;
      for (size_t d = p.kept.size(); d-- > 0;) {
        off += (rem % p.kept[d]) * p.kept_st[d];
        rem /= p.kept[d];
      }
      const T* start = base + off;
      auto visit = [&](auto&& g) {
        if (p.red.empty()) {
          g(start, int64_t{1}, int64_t{1});
          return;
        }
        // rows of the reduced sub-array, run sequentially (fixed order: reproducible sums)
        Shape shape = p.red;
        std::array<Strides, 1> st{p.red_st};
        int64_t inner = shape.back(), istride = st[0].back();
        Shape outer(shape.begin(), shape.end() - 1);
        Strides ost(st[0].begin(), st[0].end() - 1);
        if (outer.empty()) {
          g(start, inner, istride);
          return;
        }
        for_each_offset<1>(outer, {&ost}, [&](const std::array<int64_t, 1>& oo) { g(start + oo[0], inner, istride); });
      };
      fn(o, visit);
    }
  }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(p.red_numel, 1)));
  (void)kept_contig;
}

template <class T>
using acc_t = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;

// A contiguous x whose reduced dims are one run of consecutive dims before the last: x is
// (outer, R, inner) with inner > 1 (a mixture's K components in (B, K, C, H, W), logsumexp over
// dim 1). The per-output walk of reduce_each would visit R strided elements for each of the
// outer * inner outputs; here each output row of `inner` values accumulates the R contiguous rows in
// turn, a vectorised loop, in the same order (so the same sums). false: not this layout.
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
      parallel_for(mr.outer, [&](int64_t o0, int64_t o1) {
        std::vector<acc_t<T>> acc(static_cast<size_t>(mr.inner));
        for (int64_t o = o0; o < o1; ++o) {
          std::fill(acc.begin(), acc.end(), acc_t<T>{0});
          for (int64_t r = 0; r < mr.red; ++r) {
            const T* row = xp + (o * mr.red + r) * mr.inner;
            for (int64_t i = 0; i < mr.inner; ++i) acc[i] += row[i];
          }
          for (int64_t i = 0; i < mr.inner; ++i) op[o * mr.inner + i] = static_cast<T>(acc[i]);
        }
      }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(mr.red * mr.inner, 1)));
    });
    return out;
  }
  dispatch_numeric(out_t, "sum", [&]<class T>() {
    T* op = out.data<T>();
    reduce_each<T>(xx, p, [&](int64_t o, auto&& visit) {
      acc_t<T> acc = 0;
      visit([&](const T* r, int64_t n, int64_t s) {
        for (int64_t i = 0; i < n; ++i) acc += r[i * s];
      });
      op[o] = static_cast<T>(acc);
    });
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
  if (middle_run(x, dims, mr)) {  // row by row, as in sum; NaN propagates: once best is NaN it stays
    dispatch_numeric(x.dtype(), op, [&]<class T>() {
      const T* xp = x.data<T>();
      T* o_ = out.data<T>();
      parallel_for(mr.outer, [&](int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; ++o) {
          T* best = o_ + o * mr.inner;
          std::copy(xp + o * mr.red * mr.inner, xp + (o * mr.red + 1) * mr.inner, best);
          for (int64_t r = 1; r < mr.red; ++r) {
            const T* row = xp + (o * mr.red + r) * mr.inner;
            for (int64_t i = 0; i < mr.inner; ++i) {
              const T v = row[i];
              best[i] = (is_nan(v) || (is_max ? v > best[i] : v < best[i])) ? v : best[i];
            }
          }
        }
      }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(mr.red * mr.inner, 1)));
    });
    return out;
  }
  dispatch_numeric(x.dtype(), op, [&]<class T>() {
    T* o_ = out.data<T>();
    reduce_each<T>(x, p, [&](int64_t o, auto&& visit) {
      T best{};
      bool have = false, nan = false;
      visit([&](const T* r, int64_t n, int64_t s) {
        for (int64_t i = 0; i < n; ++i) {
          T v = r[i * s];
          if (is_nan(v)) nan = true;  // NaN propagates, as in PyTorch
          else if (!have || (is_max ? v > best : v < best)) best = v, have = true;
        }
      });
      if constexpr (std::is_floating_point_v<T>) {
        if (nan) best = std::numeric_limits<T>::quiet_NaN();
      }
      o_[o] = best;
    });
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
    reduce_each<T>(x, p, [&](int64_t o, auto&& visit) {
      visit([&](const T* r, int64_t n, int64_t s) {
        T best = r[0];
        int64_t bi = 0;
        for (int64_t i = 1; i < n; ++i) {
          T v = r[i * s];
          if (is_nan(best)) break;  // NaN wins, as in PyTorch
          if (is_nan(v) || (is_max ? v > best : v < best)) best = v, bi = i;
        }
        vp[o] = best;
        ip[o] = bi;
      });
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
    for_each_offset<2>(rest, {&sst, &ost}, [&](const std::array<int64_t, 2>& o) {
      acc_t<T> acc = 0;
      for (int64_t i = 0; i < n; ++i) {
        acc += sp[o[0] + i * ss];
        op[o[1] + i * os] = static_cast<T>(acc);
      }
    });
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
