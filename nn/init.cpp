#include <dgm/nn/init.h>

#include <cmath>

#include <dgm/autograd/ops.h>

namespace dgm::nn::init {

// Writes draw() into every element in row-major order. The data is changed directly (like an
// optimiser step), so the version counter is bumped for saved-tensor checks.
template <class Draw>
static void fill(Tensor& t, const char* op, Draw draw) {
  if (!t.is_contiguous()) throw ValueError(cat("init.", op, ": expected a contiguous tensor of shape ", shape_str(t.shape())));
  dispatch_floating(t.dtype(), op, [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(draw());
  });
  t.array().bump_version();
}

std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& w) {
  if (w.dim() < 2)
    throw ShapeError(cat("init: fan in and fan out need a tensor with at least 2 dims, got shape ", shape_str(w.shape())));
  int64_t receptive = 1;
  for (int64_t d = 2; d < w.dim(); ++d) receptive *= w.size(d);
  return {w.size(1) * receptive, w.size(0) * receptive};
}

void uniform_(Tensor& t, double low, double high, Generator& gen) {
  if (!(low <= high)) throw ValueError(cat("init.uniform_: low ", low, " must not exceed high ", high));
  fill(t, "uniform_", [&] { return low + (high - low) * gen.uniform(); });
}
void normal_(Tensor& t, double mean, double std, Generator& gen) {
  if (!(std >= 0)) throw ValueError(cat("init.normal_: std must be non-negative, got ", std));
  fill(t, "normal_", [&] { return mean + std * gen.normal(); });
}
void constant_(Tensor& t, double value) {
  NoGradGuard no_grad;
  t.fill_(value);
}
void zeros_(Tensor& t) { constant_(t, 0); }
void ones_(Tensor& t) { constant_(t, 1); }

double calculate_gain(const std::string& nonlinearity, double param) {
  if (nonlinearity == "linear" || nonlinearity == "sigmoid" || nonlinearity == "conv2d") return 1;
  if (nonlinearity == "tanh") return 5.0 / 3;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1 + param * param));
  throw ValueError(cat("init.calculate_gain: unknown nonlinearity '", nonlinearity,
                       "' (expected linear, conv2d, sigmoid, tanh, relu or leaky_relu)"));
}

void xavier_uniform_(Tensor& w, double gain, Generator& gen) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(w);
  double a = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  uniform_(w, -a, a, gen);
}
void xavier_normal_(Tensor& w, double gain, Generator& gen) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(w);
  normal_(w, 0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

static double kaiming_std(const Tensor& w, double a, const std::string& mode, const std::string& nonlinearity) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(w);
  if (mode != "fan_in" && mode != "fan_out") throw ValueError(cat("init.kaiming: mode must be 'fan_in' or 'fan_out', got '", mode, "'"));
  int64_t fan = mode == "fan_in" ? fan_in : fan_out;
  return calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
}
void kaiming_uniform_(Tensor& w, double a, const std::string& mode, const std::string& nonlinearity, Generator& gen) {
  double bound = std::sqrt(3.0) * kaiming_std(w, a, mode, nonlinearity);
  uniform_(w, -bound, bound, gen);
}
void kaiming_normal_(Tensor& w, double a, const std::string& mode, const std::string& nonlinearity, Generator& gen) {
  normal_(w, 0, kaiming_std(w, a, mode, nonlinearity), gen);
}

void default_linear_init_(Tensor& weight, Tensor* bias, Generator& gen) {
  // gain(leaky_relu, sqrt 5) = sqrt(2/6), so the bound sqrt(3) * gain / sqrt(fan_in) is 1/sqrt(fan_in)
  kaiming_uniform_(weight, std::sqrt(5.0), "fan_in", "leaky_relu", gen);
  if (bias && bias->defined()) {
    int64_t fan_in = fan_in_and_fan_out(weight).first;
    double bound = fan_in > 0 ? 1 / std::sqrt(static_cast<double>(fan_in)) : 0;
    uniform_(*bias, -bound, bound, gen);
  }
}

}  // namespace dgm::nn::init
