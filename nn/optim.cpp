#include <dgm/nn/optim.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <type_traits>
#include <utility>

#include <dgm/autograd/ops.h>

namespace dgm::nn {

namespace {

// The raw data of a parameter and its gradient, for the in-place update loops.
template <class T>
struct ParamView {
  T* p;
  const T* g;
  int64_t n;
  Array grad;  // keeps the (possibly converted) gradient alive
};

template <class T>
ParamView<T> view_param(const Tensor& param, const char* op) {
  if (!param.is_contiguous()) throw ValueError(cat(op, ": parameters must be contiguous, got one of shape ", shape_str(param.shape())));
  Array g = param.grad().array().to(param.dtype()).contiguous();
  return {param.data<T>(), g.data<T>(), param.numel(), g};
}

Tensor zeros_as(const Tensor& p) { return zeros(p.shape(), {.dtype = p.dtype()}); }

std::map<std::string, Tensor> by_name(const NamedTensors& state) {
  std::map<std::string, Tensor> m;
  for (const auto& [k, v] : state) m[k] = v;
  return m;
}

// Copies state[key] (shape of `like`) into a fresh tensor; a missing or mis-shaped entry is an error.
Tensor restore(const std::map<std::string, Tensor>& state, const std::string& key, const Tensor& like, const char* op) {
  auto it = state.find(key);
  if (it == state.end()) throw ValueError(cat(op, ".load_state_dict: missing key '", key, "'"));
  if (it->second.shape() != like.shape())
    throw ShapeError(cat(op, ".load_state_dict: '", key, "' has shape ", shape_str(it->second.shape()), ", the parameter has ",
                         shape_str(like.shape())));
  return Tensor(it->second.array().to(like.dtype()).clone());
}

void check_known_keys(const NamedTensors& state, const NamedTensors& expected, const char* op) {
  std::map<std::string, bool> known;
  for (const auto& [k, v] : expected) known[k] = true;
  for (const auto& [k, v] : state)
    if (!known.count(k)) throw ValueError(cat(op, ".load_state_dict: unexpected key '", k, "'"));
}

constexpr int64_t kParallelUpdate = 1 << 16;  // elements below which one thread does the update

// Runs update(i, begin, end) over chunks of 16384 elements of every parameter i (sizes[i] values) in
// one parallel loop (PyTorch's multi-tensor optimizers): a model's biases and norms no longer run on
// one thread while the others wait, and a step opens one parallel region instead of one per
// parameter. Each element gets the same arithmetic whatever thread or chunk it falls in, so the
// result does not depend on the thread count.
template <class Fn>
void for_each_chunk(const std::vector<int64_t>& sizes, Fn&& update) {
  constexpr int64_t kChunk = 1 << 14;
  std::vector<std::pair<size_t, int64_t>> chunks;  // (parameter, first element)
  int64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    for (int64_t b = 0; b < sizes[i]; b += kChunk) chunks.emplace_back(i, b);
    total += sizes[i];
  }
  const int64_t count = static_cast<int64_t>(chunks.size());
#pragma omp parallel for schedule(dynamic, 1) if (total > kParallelUpdate)
  for (int64_t c = 0; c < count; ++c) {
    const auto [i, b] = chunks[size_t(c)];
    update(i, b, std::min(sizes[i], b + kChunk));
  }
}

// The parameters that have a gradient, their gradients as contiguous arrays of their dtype: all
// checked before a step changes any parameter or state.
std::vector<size_t> with_gradients(const std::vector<Tensor>& params, const char* op, std::vector<Array>& grads) {
  std::vector<size_t> stepped;
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].grad().defined()) continue;
    dispatch_floating(params[i].dtype(), op, [&]<class T>() { grads.push_back(view_param<T>(params[i], op).grad); });
    stepped.push_back(i);
  }
  return stepped;
}

}  // namespace

// ---- Optimizer ---------------------------------------------------------------------------------------
Optimizer::Optimizer(std::vector<Tensor> params, double lr) : params_(std::move(params)), lr_(lr) {
  if (!(lr >= 0)) throw ValueError(cat("optimizer: learning rate must be non-negative, got ", lr));
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    // a frozen parameter (requires_grad off) is allowed: it never has a gradient, so it is skipped
    if (!p.defined() || !p.is_leaf())
      throw ValueError(cat("optimizer: parameter ", i, " must be a defined leaf tensor (got ", p.defined() ? "the result of an op" : "undefined",
                           "); pass the module's parameters, not values computed from them"));
    if (!is_floating(p.dtype())) throw DTypeError(cat("optimizer: parameter ", i, " is ", dtype_name(p.dtype()), ", expected floating"));
    for (size_t j = 0; j < i; ++j)
      if (params_[j].is_same(p)) throw ValueError(cat("optimizer: parameter ", i, " appears twice (also at ", j, ")"));
  }
}

void Optimizer::zero_grad() {
  for (Tensor& p : params_) p.zero_grad();
}

// ---- SGD ------------------------------------------------------------------------------------------------
SGD::SGD(std::vector<Tensor> params, SGDOptions o) : Optimizer(std::move(params), o.lr), options(o), momentum_buffers(params_.size()) {
  if (o.momentum < 0 || o.dampening < 0 || o.weight_decay < 0)
    throw ValueError(cat("SGD: momentum, dampening and weight_decay must be non-negative, got ", o.momentum, ", ", o.dampening, ", ", o.weight_decay));
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0)) throw ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0");
}

namespace {
template <class T>
struct SGDSlice {
  T* p;
  const T* g;
  T* buf;      // momentum buffer, or null
  bool first;  // the buffer's first step: PyTorch starts it at the first gradient, not at 0
};
template <class T>
void sgd_update(const std::vector<SGDSlice<T>>& slices, const std::vector<int64_t>& sizes, const SGDOptions& o, double lr) {
  const T wd = static_cast<T>(o.weight_decay), mu = static_cast<T>(o.momentum), one_damp = static_cast<T>(1 - o.dampening),
          rate = static_cast<T>(lr);
  for_each_chunk(sizes, [&](size_t i, int64_t b, int64_t e) {
    const SGDSlice<T>& s = slices[i];
    for (int64_t j = b; j < e; ++j) {
      T d = s.g[j] + wd * s.p[j];
      if (s.buf) {
        s.buf[j] = s.first ? d : mu * s.buf[j] + one_damp * d;
        d = o.nesterov ? d + mu * s.buf[j] : s.buf[j];
      }
      s.p[j] -= rate * d;
    }
  });
}
}  // namespace

void SGD::step() {
  std::vector<Array> grads;
  const std::vector<size_t> stepped = with_gradients(params_, "SGD.step", grads);
  std::vector<SGDSlice<float>> f32;
  std::vector<SGDSlice<double>> f64;
  std::vector<int64_t> n32, n64;
  for (size_t k = 0; k < stepped.size(); ++k) {
    const size_t i = stepped[k];
    const Tensor& param = params_[i];
    bool first = false;
    if (options.momentum != 0 && !momentum_buffers[i].defined()) {
      momentum_buffers[i] = zeros_as(param);
      first = true;
    }
    dispatch_floating(param.dtype(), "SGD.step", [&]<class T>() {
      SGDSlice<T> slice{param.data<T>(), grads[k].data<T>(), options.momentum != 0 ? momentum_buffers[i].data<T>() : nullptr, first};
      if constexpr (std::is_same_v<T, float>) f32.push_back(slice), n32.push_back(param.numel());
      else f64.push_back(slice), n64.push_back(param.numel());
    });
  }
  sgd_update(f32, n32, options, lr_);
  sgd_update(f64, n64, options, lr_);
  for (size_t i : stepped) params_[i].array().bump_version();
}

NamedTensors SGD::state_dict() const {
  NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i)
    if (momentum_buffers[i].defined()) out.emplace_back(cat(i, ".momentum_buffer"), momentum_buffers[i]);
  return out;
}
void SGD::load_state_dict(const NamedTensors& state) {
  auto m = by_name(state);
  NamedTensors expected;
  std::vector<Tensor> buffers(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    std::string key = cat(i, ".momentum_buffer");
    if (!m.count(key)) continue;  // no buffer yet for this parameter
    buffers[i] = restore(m, key, params_[i], "SGD");
    expected.emplace_back(key, buffers[i]);
  }
  check_known_keys(state, expected, "SGD");
  momentum_buffers = buffers;
}

// ---- Adam / AdamW -------------------------------------------------------------------------------------
Adam::Adam(std::vector<Tensor> params, AdamOptions o) : Adam(std::move(params), o, false) {}
Adam::Adam(std::vector<Tensor> params, AdamOptions o, bool decoupled)
    : Optimizer(std::move(params), o.lr), options(o), state(params_.size()), decoupled_(decoupled) {
  if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1))
    throw ValueError(cat(decoupled ? "AdamW" : "Adam", ": betas must be in [0, 1), got ", o.beta1, ", ", o.beta2));
  if (!(o.eps >= 0) || !(o.weight_decay >= 0))
    throw ValueError(cat(decoupled ? "AdamW" : "Adam", ": eps and weight_decay must be non-negative, got ", o.eps, ", ", o.weight_decay));
}
AdamW::AdamW(std::vector<Tensor> params, AdamWOptions o)
    : Adam(std::move(params), {.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps, .weight_decay = o.weight_decay}, true) {}

namespace {
// One parameter's part of an Adam step: its scalars for this step, and its arrays.
template <class T>
struct AdamSlice {
  T *p, *m, *m2;
  const T* g;
  T step_size, bias_correction2_sqrt;
};
template <class T>
void adam_update(const std::vector<AdamSlice<T>>& slices, const std::vector<int64_t>& sizes, const AdamOptions& o, double lr,
                 bool decoupled) {
  const T b1 = static_cast<T>(o.beta1), b2 = static_cast<T>(o.beta2), one_b1 = static_cast<T>(1 - o.beta1),
          one_b2 = static_cast<T>(1 - o.beta2), wd = static_cast<T>(o.weight_decay), eps = static_cast<T>(o.eps),
          decay = static_cast<T>(1 - lr * o.weight_decay);
  for_each_chunk(sizes, [&](size_t i, int64_t b, int64_t e) {
    const AdamSlice<T>& s = slices[i];
    for (int64_t j = b; j < e; ++j) {
      T g = s.g[j];
      if (decoupled) s.p[j] *= decay;  // AdamW: p -= lr wd p
      else g += wd * s.p[j];           // Adam: L2 term in the gradient
      s.m[j] = b1 * s.m[j] + one_b1 * g;
      s.m2[j] = b2 * s.m2[j] + one_b2 * g * g;
      const T denom = std::sqrt(s.m2[j]) / s.bias_correction2_sqrt + eps;
      s.p[j] -= s.step_size * s.m[j] / denom;
    }
  });
}
}  // namespace

void Adam::step() {
  const double lr = lr_, b1 = options.beta1, b2 = options.beta2;
  const char* op = decoupled_ ? "AdamW.step" : "Adam.step";
  std::vector<Array> grads;
  const std::vector<size_t> stepped = with_gradients(params_, op, grads);
  std::vector<AdamSlice<float>> f32;
  std::vector<AdamSlice<double>> f64;
  std::vector<int64_t> n32, n64;
  for (size_t k = 0; k < stepped.size(); ++k) {
    const Tensor& param = params_[stepped[k]];
    AdamParamState& s = state[stepped[k]];
    if (!s.exp_avg.defined()) {
      s.exp_avg = zeros_as(param);
      s.exp_avg_sq = zeros_as(param);
    }
    s.step += 1;
    const double t = static_cast<double>(s.step);
    const double step_size = lr / (1 - std::pow(b1, t));  // lr / bias_correction1
    const double bias_correction2_sqrt = std::sqrt(1 - std::pow(b2, t));
    dispatch_floating(param.dtype(), op, [&]<class T>() {
      AdamSlice<T> slice{param.data<T>(), s.exp_avg.data<T>(), s.exp_avg_sq.data<T>(), grads[k].data<T>(), static_cast<T>(step_size),
                         static_cast<T>(bias_correction2_sqrt)};
      if constexpr (std::is_same_v<T, float>) f32.push_back(slice), n32.push_back(param.numel());
      else f64.push_back(slice), n64.push_back(param.numel());
    });
  }
  adam_update(f32, n32, options, lr, decoupled_);
  adam_update(f64, n64, options, lr, decoupled_);
  for (size_t i : stepped) params_[i].array().bump_version();
}

NamedTensors Adam::state_dict() const {
  NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!state[i].exp_avg.defined()) continue;
    out.emplace_back(cat(i, ".step"), Tensor(Array::scalar(static_cast<double>(state[i].step), DType::Int64)));
    out.emplace_back(cat(i, ".exp_avg"), state[i].exp_avg);
    out.emplace_back(cat(i, ".exp_avg_sq"), state[i].exp_avg_sq);
  }
  return out;
}
void Adam::load_state_dict(const NamedTensors& state_in) {
  auto m = by_name(state_in);
  const char* op = decoupled_ ? "AdamW" : "Adam";
  NamedTensors expected;
  std::vector<AdamParamState> restored(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    std::string key = cat(i, ".step");
    if (!m.count(key)) continue;  // this parameter has not been stepped yet
    const Tensor& t = m.at(key);
    if (t.numel() != 1) throw ShapeError(cat(op, ".load_state_dict: '", key, "' must hold one number, got shape ", shape_str(t.shape())));
    restored[i].step = static_cast<int64_t>(t.item());
    restored[i].exp_avg = restore(m, cat(i, ".exp_avg"), params_[i], op);
    restored[i].exp_avg_sq = restore(m, cat(i, ".exp_avg_sq"), params_[i], op);
    expected.emplace_back(key, t);
    expected.emplace_back(cat(i, ".exp_avg"), t);
    expected.emplace_back(cat(i, ".exp_avg_sq"), t);
  }
  check_known_keys(state_in, expected, op);
  state = restored;
}

// ---- gradient clipping -----------------------------------------------------------------------------------
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  if (!(max_norm >= 0)) throw ValueError(cat("clip_grad_norm_: max_norm must be non-negative, got ", max_norm));
  std::vector<Array> grads;  // contiguous gradients, made the parameters' own .grad
  for (Tensor p : params) {  // a handle: p.set_grad changes the parameter itself
    if (!p.defined() || !p.grad().defined()) continue;
    Tensor g = p.grad();
    if (!g.is_contiguous()) p.set_grad(g = Tensor(g.array().contiguous()));
    grads.push_back(g.array());
  }
  double total_sq = 0;
  for (const Array& g : grads)
    dispatch_floating(g.dtype(), "clip_grad_norm_", [&]<class T>() {
      const T* d = g.data<T>();
      for (int64_t j = 0; j < g.numel(); ++j) total_sq += static_cast<double>(d[j]) * static_cast<double>(d[j]);
    });
  const double total = std::sqrt(total_sq);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1) {
    for (const Array& g : grads) {
      dispatch_floating(g.dtype(), "clip_grad_norm_", [&]<class T>() {
        T* d = g.data<T>();
        for (int64_t j = 0; j < g.numel(); ++j) d[j] *= static_cast<T>(coef);
      });
      g.bump_version();
    }
  }
  return total;
}

// ---- schedules -------------------------------------------------------------------------------------------
LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer), base_lr_(optimizer.lr()) {}
void LRScheduler::step() { set_step(step_ + 1); }
void LRScheduler::set_step(int64_t step) {
  if (step < 0) throw ValueError(cat("LRScheduler: step must be non-negative, got ", step));
  step_ = step;
  optimizer_.set_lr(get_lr(step));
}

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma) : LRScheduler(optimizer), step_size(step_size), gamma(gamma) {
  if (step_size <= 0) throw ValueError(cat("StepLR: step_size must be positive, got ", step_size));
  start();
}
double StepLR::get_lr(int64_t step) const { return base_lr() * std::pow(gamma, static_cast<double>(step / step_size)); }

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min)
    : LRScheduler(optimizer), T_max(T_max), eta_min(eta_min) {
  if (T_max <= 0) throw ValueError(cat("CosineAnnealingLR: T_max must be positive, got ", T_max));
  start();
}
double CosineAnnealingLR::get_lr(int64_t step) const {
  return eta_min + (base_lr() - eta_min) * (1 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(T_max))) / 2;
}

WarmupCosineLR::WarmupCosineLR(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps, double min_lr)
    : LRScheduler(optimizer), warmup_steps(warmup_steps), total_steps(total_steps), min_lr(min_lr) {
  if (warmup_steps < 0 || total_steps <= warmup_steps)
    throw ValueError(cat("WarmupCosineLR: need 0 <= warmup_steps < total_steps, got ", warmup_steps, " and ", total_steps));
  start();
}
double WarmupCosineLR::get_lr(int64_t step) const {
  if (step < warmup_steps) return base_lr() * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (step > total_steps) return min_lr;
  double r = static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
  return min_lr + (base_lr() - min_lr) * (1 + std::cos(M_PI * r)) / 2;
}

}  // namespace dgm::nn
