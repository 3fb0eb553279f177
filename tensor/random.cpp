#include <dgm/tensor/random.h>

#include <cmath>
#include <sstream>

namespace dgm {

double Generator::normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  double u1 = 1.0 - uniform(), u2 = uniform();  // u1 in (0, 1]: log(u1) is finite
  double r = std::sqrt(-2.0 * std::log(u1)), th = 2.0 * M_PI * u2;
  spare_normal_ = r * std::sin(th);
  has_spare_normal_ = true;
  return r * std::cos(th);
}

int64_t Generator::randint(int64_t low, int64_t high) {
  if (high <= low) throw ValueError(cat("randint: empty range [", low, ", ", high, ")"));
  uint64_t range = static_cast<uint64_t>(high - low);
  uint64_t limit = UINT64_MAX - UINT64_MAX % range;  // rejection keeps every value equally likely
  uint64_t v;
  do v = engine_();
  while (v >= limit);
  return low + static_cast<int64_t>(v % range);
}

std::string Generator::state() const {
  std::ostringstream os;
  os << engine_ << ' ' << has_spare_normal_ << ' ';
  os.precision(17);
  os << std::hexfloat << spare_normal_;
  return os.str();
}
void Generator::set_state(const std::string& s) {
  std::istringstream is(s);
  std::string spare;
  is >> engine_ >> has_spare_normal_ >> spare;
  if (!is) throw ValueError("Generator::set_state: malformed state string");
  spare_normal_ = std::strtod(spare.c_str(), nullptr);
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}
void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

namespace cpu {

template <class F>
static Array fill_random(const Shape& shape, DType dtype, const char* op, F draw) {
  Array out = Array::empty(shape, dtype);
  dispatch_floating(dtype, op, [&]<class T>() {
    T* p = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i) p[i] = static_cast<T>(draw());
  });
  return out;
}

Array rand(const Shape& shape, Generator& g, DType dtype) {
  Array out = fill_random(shape, dtype, "rand", [&] { return g.uniform(); });
  // A double just below 1 (u >= 1 - 2^-25) rounds to 1.0f; keep float32 draws in [0, 1) too.
  if (dtype == DType::Float32) {
    float* p = out.data<float>();
    for (int64_t i = 0; i < out.numel(); ++i)
      if (p[i] >= 1.0f) p[i] = std::nextafter(1.0f, 0.0f);
  }
  return out;
}
Array randn(const Shape& shape, Generator& g, DType dtype) {
  return fill_random(shape, dtype, "randn", [&] { return g.normal(); });
}
Array randint(int64_t low, int64_t high, const Shape& shape, Generator& g) {
  if (high <= low) throw ValueError(cat("randint: empty range [", low, ", ", high, ")"));
  Array out = Array::empty(shape, DType::Int64);
  int64_t* p = out.data<int64_t>();
  for (int64_t i = 0; i < out.numel(); ++i) p[i] = g.randint(low, high);
  return out;
}
Array bernoulli(const Array& p, Generator& g) {
  std::vector<double> pv = p.to_vector<double>();
  DType t = is_floating(p.dtype()) ? p.dtype() : DType::Float32;
  Array out = Array::empty(p.shape(), t);
  dispatch_floating(t, "bernoulli", [&]<class T>() {
    T* o = out.data<T>();
    for (size_t i = 0; i < pv.size(); ++i) {
      if (!(pv[i] >= 0 && pv[i] <= 1)) throw ValueError(cat("bernoulli: probability ", pv[i], " at index ", i, " is outside [0, 1]"));
      o[i] = g.uniform() < pv[i] ? T(1) : T(0);
    }
  });
  return out;
}

Array multinomial(const Array& probs, int64_t num_samples, bool replacement, Generator& g) {
  if (probs.dim() < 1 || probs.dim() > 2)
    throw ShapeError(cat("multinomial: probs must be 1-D or 2-D, got shape ", shape_str(probs.shape())));
  int64_t rows = probs.dim() == 2 ? probs.size(0) : 1, n = probs.size(-1);
  if (num_samples <= 0) throw ValueError(cat("multinomial: num_samples must be positive, got ", num_samples));
  if (!replacement && num_samples > n)
    throw ValueError(cat("multinomial: cannot draw ", num_samples, " samples without replacement from ", n, " categories"));
  std::vector<double> pv = probs.contiguous().to_vector<double>();
  Array out = Array::empty(probs.dim() == 2 ? Shape{rows, num_samples} : Shape{num_samples}, DType::Int64);
  int64_t* o = out.data<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> w(pv.begin() + r * n, pv.begin() + (r + 1) * n);
    for (double v : w)
      if (!(v >= 0) || std::isinf(v)) throw ValueError(cat("multinomial: probabilities must be finite and non-negative, got ", v));
    for (int64_t s = 0; s < num_samples; ++s) {
      double total = 0;
      for (double v : w) total += v;
      if (total <= 0) throw ValueError("multinomial: the probabilities sum to zero");
      // inverse CDF: the first category whose cumulative weight exceeds u * total
      double u = g.uniform() * total, c = 0;
      int64_t k = 0;
      for (; k < n - 1; ++k) {
        c += w[k];
        if (u < c && w[k] > 0) break;
      }
      while (w[k] == 0 && k > 0) --k;  // never return a zero-probability category through rounding
      o[r * num_samples + s] = k;
      if (!replacement) w[k] = 0;
    }
  }
  return out;
}

}  // namespace cpu
}  // namespace dgm
