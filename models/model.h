// The one interface every generative model of the course implements, so that the trainer, the
// evaluator, the sampler, the benchmarks and the lecture programs work for any model — including
// yours. It fits every family the course meets:
//
//   family (lecture)            log_prob(batch)              loss(batch, gen)                      what the number is
//   autoregressive (1)          log p(x), exact              -mean log p(x) / D                     Objective::ExactNLL
//   flows (2)                   log p(x + u), dequantised    the same on noisy x (gen draws u)      Objective::ExactNLL
//   VAEs (3-4)                  ELBO(x) <= log p(x)          -ELBO / D, z ~ q(z|x) drawn from gen   Objective::NLLBound
//   GANs (5)                    none (throws)                custom train_step, two optimisers      Objective::None
//   diffusion, flow matching    a bound, or none             a random time step per example (gen)   NLLBound / None
//
// A Batch is the data of a step: x of any kind (binary or 8-bit pixels as int64, continuous values
// as float) and, for conditional models, a class label per example.
//
// Images are flattened in raster order: x has shape (B, D) with D = height * width.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <dgm/autograd/ops.h>
#include <dgm/nn/module.h>
#include <dgm/nn/optim.h>

namespace dgm::models {

// What x holds:
//   Binary      int64 0/1 (binarized MNIST, pixel > 128)           NLL reported in nats/dim
//   Byte        int64 0..255 (8-bit MNIST)                           NLL reported in bits/dim
//   Continuous  float values (2-D toy densities, latent codes, ...)  NLL reported in nats/dim
enum class DataKind { Binary, Byte, Continuous };
const char* data_kind_name(DataKind k);  // "binary", "8-bit", "continuous"
// The unit the course reports NLLs of this kind of data in: nats/dim, or bits/dim for 8-bit data.
const char* nll_unit(DataKind k);

// What the number a model reports is; the evaluator labels it so.
enum class Objective {
  ExactNLL,  // -log p(x): autoregressive models, flows, counting baselines
  NLLBound,  // an upper bound on -log p(x) (the negative ELBO of a VAE, a diffusion bound)
  None,      // no likelihood: the evaluator reports the model's loss instead (GANs)
};
// "test_nll", "test_nll_bound" or "test_loss": the name of the figure the evaluator prints.
const char* objective_label(Objective o);

// The data of one step: x (B, D) and, for conditional models, y (B,) int64 class labels.
// Converts implicitly from a Tensor, so an unconditional call reads model.log_prob(x).
struct Batch {
  Batch() = default;
  Batch(Tensor x, Tensor y = Tensor()) : x(std::move(x)), y(std::move(y)) {}  // NOLINT: implicit on purpose
  int64_t size() const { return x.size(0); }
  bool has_labels() const { return y.defined(); }
  Tensor x;  // (B, D)
  Tensor y;  // (B,) int64 in [0, num_classes), or undefined
};

struct SampleOptions {
  Tensor labels;             // (n,) int64 class labels for a conditional model; undefined: unconditional
  double temperature = 1.0;  // scales the base noise of a flow, or divides logits (1: the model itself)
};

// The optimisers a model trains with. The default is one over every parameter at the run's
// learning rate; a GAN returns two (generator and discriminator), each with its own scale.
struct OptimizerGroup {
  std::string name;            // "" for the default single group; else a short distinct name ("generator")
  std::vector<Tensor> params;
  double lr_scale = 1.0;       // the run's learning rate times this
};

class GenerativeModel : public nn::Module {
 public:
  using nn::Module::Module;

  // ---- likelihood ------------------------------------------------------------------------------
  // batch.x (B, D) -> (B,) log p(x) in nats (or the bound of objective()). Models without a
  // likelihood keep the default, a ValueError.
  virtual Tensor log_prob(const Batch& batch);
  // The training objective per dimension, in nats: by default -mean(log_prob) / D. Stochastic
  // objectives (dequantisation noise, sampled latents, a random time step) draw from `gen`.
  virtual Tensor loss(const Batch& batch, Generator& gen);
  virtual Objective objective() const { return Objective::ExactNLL; }

  // ---- sampling --------------------------------------------------------------------------------
  // n samples (n, D), drawn from `gen`, in the data's own kind (int64 pixels, or floats).
  virtual Tensor sample(int64_t n, Generator& gen, const SampleOptions& options = {}) = 0;
  // Keeps the first k raster pixels of each row of batch.x and samples the rest (autocompletion).
  virtual Tensor complete(const Batch& batch, int64_t k, Generator& gen);

  // ---- training --------------------------------------------------------------------------------
  // Models with a closed-form maximum-likelihood fit (the counting baselines) fit `train` directly
  // and return true; gradient-trained models return false.
  virtual bool fit(const Batch& train) {
    (void)train;
    return false;
  }
  virtual std::vector<OptimizerGroup> optimizer_groups() { return {{"", parameters(), 1.0}}; }
  // One optimisation step on a batch; returns the loss to log (per dimension, nats). The default:
  // zero every optimiser's gradients, loss(batch, gen).backward(), step every optimiser. A model
  // with several optimisers (one per optimizer_groups() entry, in that order) overrides it.
  virtual double train_step(const Batch& batch, Generator& gen, const std::vector<nn::Optimizer*>& optimizers);
  // The default train_step rescales the gradients of every parameter to this total L2 norm when
  // they exceed it, before the optimisers step (nn::clip_grad_norm_; 0: never). Flows clip at 1.0,
  // as the course's homework does: an unlucky batch can otherwise throw a coupling's scale far off.
  virtual double max_grad_norm() const { return 0; }

  // ---- what the data is ----------------------------------------------------------------------------
  virtual DataKind data_kind() const = 0;
  virtual int64_t height() const { return 28; }
  virtual int64_t width() const { return 28; }
  int64_t dim() const { return height() * width(); }
  // Classes a conditional model takes labels of (y in [0, num_classes)); 0: unconditional.
  virtual int64_t num_classes() const { return 0; }
  // The hyper-parameters that rebuild this model (saved in checkpoints' metadata).
  virtual nlohmann::json config() const = 0;
};

// For a conditional model (num_classes() > 0): ShapeError / DTypeError / ValueError unless batch.y
// is (B,) int64 with every label in [0, num_classes). Unconditional models ignore labels.
void check_labels(const GenerativeModel& model, const Batch& batch, const char* op);

}  // namespace dgm::models
