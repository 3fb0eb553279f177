// Optimisers and learning-rate schedules, with exactly torch.optim's update formulas (one
// parameter group). A step updates each parameter's data in place in a plain loop over its
// contiguous values: it runs every step on every parameter, so it must be cheap.
//
//   nn::AdamW opt(model->parameters(), {.lr = 1e-3});
//   for (...) { opt.zero_grad(); loss = ...; loss.backward(); nn::clip_grad_norm_(model->parameters(), 1.0); opt.step(); }
//
// State for checkpoints: state_dict() lists every state tensor by name ("0.exp_avg", "0.step",
// ...; step counts as 0-dim int64 tensors), load_state_dict() restores it, so an optimiser can be
// saved with save_safetensors and resumed bit for bit.
#pragma once
#include <vector>

#include <dgm/nn/module.h>

namespace dgm::nn {

class Optimizer {
 public:
  Optimizer(std::vector<Tensor> params, double lr);
  virtual ~Optimizer() = default;
  virtual void step() = 0;  // parameters without a gradient are skipped
  void zero_grad();         // every .grad becomes undefined (set_to_none)
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  const std::vector<Tensor>& params() const { return params_; }

  virtual NamedTensors state_dict() const = 0;
  virtual void load_state_dict(const NamedTensors& state) = 0;

 protected:
  std::vector<Tensor> params_;
  double lr_;
};

// ---- SGD ----------------------------------------------------------------------------------------------
//   g = grad + weight_decay p
//   momentum != 0:  b = g (first step), else b = momentum b + (1 - dampening) g;
//                   g = g + momentum b (nesterov) or g = b
//   p = p - lr g
struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options = {});
  void step() override;
  NamedTensors state_dict() const override;  // "<i>.momentum_buffer" for params that have one
  void load_state_dict(const NamedTensors& state) override;

  SGDOptions options;
  std::vector<Tensor> momentum_buffers;  // one per parameter, undefined until its first step
};

// ---- Adam / AdamW ------------------------------------------------------------------------------------
//   t = t + 1;  g = grad (+ weight_decay p for Adam: L2 in the gradient)
//   AdamW first decays the weights directly: p = p - lr weight_decay p
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
};
struct AdamWOptions {  // AdamOptions with AdamW's default decay
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};
struct AdamParamState {
  int64_t step = 0;
  Tensor exp_avg, exp_avg_sq;  // m and v, same shape and dtype as the parameter
};
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions options = {});
  void step() override;
  NamedTensors state_dict() const override;  // "<i>.step", "<i>.exp_avg", "<i>.exp_avg_sq"
  void load_state_dict(const NamedTensors& state) override;

  AdamOptions options;
  std::vector<AdamParamState> state;  // one per parameter

 protected:
  Adam(std::vector<Tensor> params, AdamOptions options, bool decoupled_weight_decay);

 private:
  bool decoupled_;
};
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, AdamWOptions options = {});
};

// Scales all gradients by max_norm / (total_norm + 1e-6) when the total L2 norm (of all gradients
// together) exceeds max_norm. Returns the total norm before clipping.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);

// ---- learning-rate schedules --------------------------------------------------------------------------
// get_lr(step) is a pure function of the step; step() advances the count and writes the new lr
// into the optimiser. Constructing a scheduler sets lr = get_lr(0), as PyTorch does.
class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;
  virtual double get_lr(int64_t step) const = 0;
  void step();
  int64_t last_step() const { return step_; }
  void set_step(int64_t step);  // e.g. when resuming from a checkpoint; also sets the lr
  double base_lr() const { return base_lr_; }

 protected:
  void start() { set_step(0); }  // called by each constructor, once get_lr is usable

 private:
  Optimizer& optimizer_;
  double base_lr_;
  int64_t step_ = 0;
};

// lr = base_lr * gamma^floor(step / step_size)
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);
  double get_lr(int64_t step) const override;
  int64_t step_size;
  double gamma;
};

// lr = eta_min + (base_lr - eta_min) (1 + cos(pi step / T_max)) / 2
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0);
  double get_lr(int64_t step) const override;
  int64_t T_max;
  double eta_min;
};

// Linear warm-up then cosine decay (llm.c / nanoGPT):
//   step < warmup:        base_lr (step + 1) / warmup
//   step > total_steps:   min_lr
//   otherwise:            min_lr + (base_lr - min_lr) (1 + cos(pi r)) / 2,  r = (step - warmup) / (total_steps - warmup)
class WarmupCosineLR : public LRScheduler {
 public:
  WarmupCosineLR(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps, double min_lr = 0);
  double get_lr(int64_t step) const override;
  int64_t warmup_steps, total_steps;
  double min_lr;
};

}  // namespace dgm::nn
