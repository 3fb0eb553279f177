// Normalizing flows on images of K grey levels (lecture 2; homework 1's RealNVP): 8-bit pixels
// (K = 256), or with the config key binary = true the homework's binarized pixels (K = 2). A flow f
// maps dequantised pixels to Gaussian noise, and the change of variables gives the density:
//
//   dequantise   y = (x + u) / K,  u ~ U[0, 1)^D            x in {0..K-1}^D, y in [0, 1)^D
//   flow         z = f(y) = f_K o ... o f_1 (logit first),  log p(y) = log N(z; 0, I) + log|det J_f(y)|
//   discrete     log P(x) >= E_u [log p(y)] - D log K       (the density of K y; Jensen)
//
// so -log P(x) / (D ln 2) in bits/dim (8-bit) or -log P(x) / D in nats/dim (binary) is comparable
// with the discrete models of lecture 1. The homework reports the continuous nll = -log p(y) in nats
// per image instead: nll = D * (nats/dim) - D log K.
//
//   loss(batch, gen)   u drawn from gen: a fresh single-sample estimate of -E_u log p every step
//   log_prob(batch)    deterministic: u for an image is drawn from a generator seeded by a hash of
//                      that image's pixels, so the same image always gets the same noise, whatever
//                      its batch or position (a fixed single-sample estimate of the bound above)
//   sample(n, gen, T)  z ~ N(0, T^2 I), y = f^{-1}(z), x = clamp(floor(K y), 0, K - 1)
//
// With the config key dequantization = variational (Ho et al. 2019, Flow++, in its smallest form)
// the noise is not uniform but drawn from a learned q(u | x), a logit-normal per grey level,
//   u = sigmoid(m_x + e^{l_x} eps),  eps ~ N(0, 1),  log q(u | x) = log N(eps) - l_x - log u - log(1 - u),
// and with dequantization = conditional m and l also get the output of a small CNN of the whole
// image (two 3x3 convolutions of 16 channels with ReLU, then one to 2 channels that starts at zero),
// and the bound becomes log P(x) >= E_q [log p(y) - log q(u | x)] - D log K: still an upper bound
// on the discrete NLL (equal to it when q matches the flow's density inside each bin), so its
// bits/dim compare with lecture 1's baselines as before. A uniform q (log q = 0) is the special
// case above. It pays where the data are sharp: a flow of affine couplings puts a smooth bump
// on a background pixel's bin [0, 1/256), and against uniform noise that costs KL(uniform || bump),
// at least 0.25 bits per pixel for a Gaussian bump (0.5 log2(2 pi e / 12)); q learns the bump's shape.
//
// Two models:
//   realnvp  multi-scale RealNVP (Dinh et al. 2016) on (B, 1, H, W): logit, then
//            checkerboard couplings -> squeeze -> channel couplings -> unsqueeze -> checkerboard
//            couplings, ActNorm after every coupling, parities alternating; each coupling's
//            conditioner is a small residual CNN (homework 1's SimpleResnet with gated blocks);
//            then a learned prior (nn::ElementwiseAffine: a mean and scale of the base per pixel).
//            Config: filters (16), blocks (1), checkerboard (4: layers before and after the squeeze),
//            channel (4), image_size (28), learned_prior (true), input_affine (false: a scale and
//            shift per pixel right after the logit), dequantization (conditional; uniform when
//            binary). The defaults are sized for dgm's current im2col convolutions: 20 epochs of
//            batch 32 on 2 cores must fit the 20-minute default budget (models/README.md).
//            scales (1): with 2, a second scale runs inside an nn::FactorOut on half the channels
//            after the channel couplings (checkerboard couplings at H/2, squeeze, channel couplings
//            at H/4, unsqueeze, checkerboard couplings), and so on; image_size must be divisible by
//            2^scales. mixtures (0): K > 0 makes every coupling an nn::MixtureLogisticCoupling of K
//            components instead of an affine one.
//            The homework's architecture: --checkerboard 3 --channel 3 --learned-prior false
//            --dequantization uniform (what bench/realnvp_ref.py builds in PyTorch); its binarized
//            variant: --binary true --image-size 32 (MNIST resized to 32x32 and binarized, K = 2,
//            logit alpha 1e-6, uniform noise).
//   maf      MAF (Papamakarios et al. 2017) over the flattened image: logit, then `layers` x
//            [MADE Gaussian autoregressive layer, reverse permutation], each layer starting as the
//            identity (MADE's output layer at zero), each log-scale softly bounded,
//            alpha = c tanh(a / c) with c = max_log_scale (3; 0 = unbounded; unbounded, MADE's
//            outputs drifted until e^{-alpha} overflowed). No ActNorm: initialised per pixel from one
//            batch, it scales the near-constant border pixels by ~100 and training diverges.
//            Config: layers (5), hidden (512), image_size (28), max_log_scale (3).
// Both take the keys binary (false), logit_alpha (1e-6: the homework's, and MAF's for MNIST; 0.05,
// RealNVP's for CIFAR, cost 0.36 bits/dim after 5 epochs, models/README.md), max_grad_norm (1.0: gradients clipped to that norm per step) and
// dequantization (uniform, variational or conditional, see above; maf's default is uniform).
#pragma once
#include <memory>

#include <dgm/models/model.h>
#include <dgm/nn/flows.h>

namespace dgm::models {

// What realnvp and maf share: dequantisation, the base density, sampling. A subclass builds `flow`
// (LogitFlow first) and says which shape it works on.
class DequantizedFlow : public GenerativeModel {
 public:
  using GenerativeModel::GenerativeModel;

  // log p(y) - D log K for x (B, D) int64 in 0..K-1 and noise u (B, D) in [0, 1): (B,) nats.
  Tensor log_prob_with_noise(const Tensor& x, const Tensor& u);
  Tensor log_prob(const Batch& batch) override;                 // u from per-image hashed seeds
  Tensor loss(const Batch& batch, Generator& gen) override;     // u ~ U[0, 1) from gen
  Tensor sample(int64_t n, Generator& gen, const SampleOptions& options = {}) override;
  DataKind data_kind() const override { return levels_ == 2 ? DataKind::Binary : DataKind::Byte; }
  int64_t levels() const { return levels_; }  // K: 256, or 2 for binarized pixels
  double max_grad_norm() const override { return max_grad_norm_; }
  int64_t height() const override { return image_size_; }
  int64_t width() const override { return image_size_; }

  // The deterministic noise of log_prob: (B, D) in [0, 1) (or N(0, 1) with normal = true).
  static Tensor hashed_noise(const Tensor& x, bool normal = false);
  // u ~ q(u | x) from eps (B, D): {u, log q(u | x) summed per example (B,)}; uniform
  // dequantisation takes u = eps in [0, 1) and log q = 0.
  std::pair<Tensor, Tensor> dequantize(const Tensor& x, const Tensor& eps);
  bool variational() const { return dequant_mean.defined(); }
  // Uniform noise: log_prob is the exact density of the dequantised pixels. Variational: a bound
  // (it subtracts log q), so the evaluator says test_nll_bound.
  Objective objective() const override { return variational() ? Objective::NLLBound : Objective::ExactNLL; }

  std::shared_ptr<nn::FlowSequence> flow;  // y (flow_shape) -> z (any shape with D per example)
  Tensor dequant_mean, dequant_log_scale;   // (K) parameters of q(u | x); undefined when uniform
  std::shared_ptr<nn::Module> dequant_net;  // conditional: (B, 1, H, W) image -> (B, 2, H, W) added to m, l

 protected:
  virtual Shape flow_shape(int64_t batch) const = 0;  // (B, 1, H, W) or (B, D)
  // What every dequantised flow's constructor does first: K = 2 or 256 levels, the image size, the
  // clipping norm, and `flow` started with the logit transform of strength alpha.
  void start_flow(int64_t image_size, bool binary, double logit_alpha, double max_grad_norm, const std::string& dequantization);
  int64_t image_size_ = 28;
  int64_t levels_ = 256;
  double max_grad_norm_ = 1.0;  // config key "max_grad_norm" (0: no clipping)
};

// The conditioner of a RealNVP coupling: conv3x3(in -> F) + ELU, `blocks` x [gated residual block
// + ELU], conv3x3(F -> out) whose second half of outputs (the coupling's shift t) starts at zero. The
// first half (the raw log-scale, which AffineCoupling multiplies by its scalar `scale`, itself 0 at
// first) keeps its random initialisation: a fresh coupling is still the identity (s = 0, t = 0), and
// `scale` gets a gradient from the first step. Zeroing both halves would leave s_raw and `scale` with
// zero gradients for ever (each is the other's factor), a coupling that can only shift. A gated block:
//   a = ELU(conv3x3(h)),  (v, g) = split(ELU(conv1x1(a)))  (F -> 2F),  ELU(h + v * sigmoid(g)), the last
//   as one op each way (fused::gated_residual).
// x: (B, in, H, W) -> (B, out, H, W).
class ResidualConditioner : public nn::Module {
 public:
  ResidualConditioner(int64_t in_channels, int64_t out_channels, int64_t filters, int64_t blocks, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<nn::Conv2d> in_conv_, out_conv_;
  std::vector<std::shared_ptr<nn::Conv2d>> conv3_, conv1_;
};

struct RealNVPConfig {
  int64_t filters = 16, blocks = 1, checkerboard = 4, channel = 4, scales = 1, image_size = 28;
  int64_t mixtures = 0;  // 0: affine couplings; K > 0: mixture-of-logistics couplings of K components
  bool learned_prior = true;  // an nn::ElementwiseAffine last: a mean and scale of the base per pixel
  bool input_affine = false;  // an nn::ElementwiseAffine right after the logit: a scale and shift per pixel
  bool binary = false;
  std::string dequantization = "";  // uniform, variational or conditional; "": conditional (uniform when binary)
  double logit_alpha = 0;  // 0: 1e-6 (checkpoints without the key: 0.05)
  double max_grad_norm = 1.0;
};

class RealNVP : public DequantizedFlow {
 public:
  explicit RealNVP(RealNVPConfig config = {}, Generator* gen = nullptr);
  static std::shared_ptr<GenerativeModel> create(const nlohmann::json& config);
  nlohmann::json config() const override;

 protected:
  Shape flow_shape(int64_t batch) const override { return {batch, 1, image_size_, image_size_}; }

 private:
  RealNVPConfig config_;
  std::shared_ptr<nn::Flow> coupling(const Tensor& mask, int64_t channels, Generator* gen) const;
  void add_scale(nn::FlowSequence& seq, int64_t channels, int64_t size, int64_t level, bool& parity, Generator* gen);
};

struct MAFConfig {
  int64_t layers = 5, hidden = 512, image_size = 28;
  double max_log_scale = 3.0;  // each layer's alpha = c tanh(a / c) (nn::GaussianAutoregressiveFlow); 0: unbounded
  bool binary = false;
  std::string dequantization = "uniform";  // or variational, conditional
  double logit_alpha = 0;  // 0: 1e-6 (checkpoints without the key: 0.05)
  double max_grad_norm = 1.0;
};

class MAF : public DequantizedFlow {
 public:
  explicit MAF(MAFConfig config = {}, Generator* gen = nullptr);
  static std::shared_ptr<GenerativeModel> create(const nlohmann::json& config);
  nlohmann::json config() const override;

 protected:
  Shape flow_shape(int64_t batch) const override { return {batch, image_size_ * image_size_}; }

 private:
  MAFConfig config_;
};

}  // namespace dgm::models
