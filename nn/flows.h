// Normalizing-flow layers (lecture 2). A flow maps data to noise, z = f(x), and the density of x
// follows from the change of variables
//   log p(x) = log p(f(x)) + log|det J_f(x)|,   J_f = dz/dx;
// a composition f = f_K o ... o f_1 adds the log-dets of its layers. Every layer here has
//   forward_and_log_det(x) -> {z, log|det dz/dx|}       z shaped like x (Squeeze: rearranged), log-det (B,)
//   inverse(z) -> x                                      x = f^{-1}(z)
//   inverse_and_log_det(z) -> {x, log|det dx/dz|}        = -log|det J_f(x)| (inverse function theorem)
// and forward(x) (the Module interface) returns z alone. Dim 0 is the batch: each example is
// transformed independently (ActNorm's first training batch sets its initial values; see there).
// tests/test_flows.cpp checks every layer's inverse and its log-det against slogdet of
// autograd::batch_jacobian.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include <dgm/nn/layers.h>
#include <dgm/nn/module.h>

namespace dgm::nn {

struct FlowOutput {
  Tensor out;      // z for forward, x for inverse
  Tensor log_det;  // (B): log|det| of the Jacobian of the map just applied
};

// Sums every dim but the batch dim: (B, ...) -> (B).
Tensor sum_except_batch(const Tensor& t);

class Flow : public Module {
 public:
  using Module::Module;
  virtual FlowOutput forward_and_log_det(const Tensor& x) = 0;
  virtual Tensor inverse(const Tensor& z) = 0;
  // Default: x = inverse(z), then -log|det J_f(x)| from one more forward pass. Layers with a
  // cheaper way override it.
  virtual FlowOutput inverse_and_log_det(const Tensor& z);
  Tensor forward(const Tensor& x) override { return forward_and_log_det(x).out; }
};

// f = f_K o ... o f_1:  z = f_K(...f_1(x)),  log|det J_f(x)| = sum_k log|det J_{f_k}(x_{k-1})|,
// each layer's log-det taken at its own input x_{k-1}; inverse x = f_1^{-1}(...f_K^{-1}(z)).
// Children are named "0", "1", ...
class FlowSequence : public Flow {
 public:
  FlowSequence() : Flow("FlowSequence") {}
  explicit FlowSequence(const std::vector<std::shared_ptr<Flow>>& flows);
  void push_back(std::shared_ptr<Flow> flow);
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override;
  FlowOutput inverse_and_log_det(const Tensor& z) override;
  size_t size() const { return flows_.size(); }
  const std::shared_ptr<Flow>& operator[](size_t i) const;

 private:
  std::vector<std::shared_ptr<Flow>> flows_;
};

// g = f^{-1} as a flow: forward and inverse swapped (e.g. sigmoid = InverseFlow(LogitFlow)).
class InverseFlow : public Flow {
 public:
  explicit InverseFlow(std::shared_ptr<Flow> flow);
  FlowOutput forward_and_log_det(const Tensor& x) override { return flow_->inverse_and_log_det(x); }
  Tensor inverse(const Tensor& z) override { return flow_->forward(z); }
  FlowOutput inverse_and_log_det(const Tensor& z) override { return flow_->forward_and_log_det(z); }

 private:
  std::shared_ptr<Flow> flow_;
};

// Permutation of dim 1 (features or channels):  z_i = x_{perm[i]},  x_{perm[i]} = z_i,
// log|det| = 0 (|det P| = 1). perm and its inverse are int64 buffers, so checkpoints keep them.
class Permutation : public Flow {
 public:
  explicit Permutation(const std::vector<int64_t>& perm);
  static std::shared_ptr<Permutation> reverse(int64_t n);  // perm = (n-1, ..., 0)
  static std::shared_ptr<Permutation> random(int64_t n, Generator* gen = nullptr);
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override;
  std::string extra_repr() const override;

  Tensor perm, inverse_perm;  // (n) int64
};

// Dequantised data y in [0, 1] to the real line (RealNVP's preprocessing), elementwise:
//   y~ = alpha + (1 - 2 alpha) y,   v = logit(y~) = log y~ - log(1 - y~),
//   log|det| = sum [log(1 - 2 alpha) - log y~ - log(1 - y~)],
//   inverse y = (sigmoid(v) - alpha) / (1 - 2 alpha).
// alpha keeps y~ away from 0 and 1 (the homework: 1e-6; its 2025 edition 0.05). The sigmoid flow
// is InverseFlow(LogitFlow).
class LogitFlow : public Flow {
 public:
  explicit LogitFlow(double alpha = 1e-6);
  FlowOutput forward_and_log_det(const Tensor& y) override;
  Tensor inverse(const Tensor& v) override;
  // log|dy/dv| = log sigmoid(v) + log(1 - sigmoid(v)) - log(1 - 2 alpha)
  FlowOutput inverse_and_log_det(const Tensor& v) override;
  std::string extra_repr() const override;

  double alpha;
};

// ActNorm (Glow), a per-channel affine map on dim 1 of (B, C, ...):
//   z = x e^{l_c} + b_c,   x = (z - b_c) e^{-l_c},   log|det| = (elements per channel) * sum_c l_c.
// Data-dependent initialisation: the first forward while training sets
//   l_c = -log std_c(x),  b_c = -mean_c(x) e^{l_c}
// so that batch's output has zero mean and unit variance per channel ((x - mean) / std; the
// homework's b_c = -mean_c gives x / std - mean instead). The flag is the buffer "initialized"
// (0 or 1), so a loaded checkpoint is not initialised again.
class ActNorm : public Flow {
 public:
  explicit ActNorm(int64_t num_channels);
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override;
  std::string extra_repr() const override;
  bool is_initialized() const;

  int64_t num_channels;
  Tensor log_scale, bias;  // (C) parameters
  Tensor initialized;      // 0-dim float buffer: 1 once the data-dependent initialisation ran

 private:
  Tensor per_channel(const Tensor& v, int64_t ndim) const;  // (C) -> (1, C, 1, ...)
};

// Linear flow with the LU parameterisation, learned factor by factor (Glow's variant):
//   z = W x,  W = P L (U + diag(s)),  s = sign * exp(log_abs_s),
// P a fixed permutation, L unit lower-triangular, U strictly upper-triangular;
//   log|det W| = sum_i log|s_i|,
//   inverse: x = (U + diag s)^{-1} L^{-1} P^T z (two triangular solves, O(D^2) per example).
// Initialised by decomposing a random orthogonal matrix once (pivoted LU); sign of s fixed
// (a buffer): no continuous path of W changes the sign of det W. x: (B, D).
class LinearLU : public Flow {
 public:
  explicit LinearLU(int64_t dim, Generator* gen = nullptr);
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override;
  Tensor weight() const;  // W = P L (U + diag s), (D, D)
  std::string extra_repr() const override;

  int64_t dim;
  Tensor lower, upper, log_abs_s;  // parameters: (D, D) (strict lower part used), (D, D) (strict upper), (D)
  Tensor permutation, sign_s;      // buffers: P (D, D), sign(s) (D)

 private:
  Tensor unit_lower() const;
  Tensor upper_with_diagonal() const;
};

// Linear flow with the QR parameterisation:
//   z = W x,  W = Q R,  Q = H_1 ... H_D,  H_k = I - 2 v_k v_k^T / |v_k|^2 (Householder reflections),
//   R upper-triangular with diagonal exp(log_r);  log|det W| = sum_i log_r_i (|det Q| = 1),
//   inverse: x = R^{-1} Q^T z (Q^T = H_D ... H_1; one triangular solve).
// Initialised with random reflections and R = I. x: (B, D).
class LinearQR : public Flow {
 public:
  explicit LinearQR(int64_t dim, Generator* gen = nullptr);
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override;
  Tensor orthogonal() const;  // Q, (D, D)
  Tensor triangular() const;  // R, (D, D)
  Tensor weight() const { return matmul(orthogonal(), triangular()); }
  std::string extra_repr() const override;

  int64_t dim;
  Tensor householder;    // (D, D): row k is v_k
  Tensor upper, log_r;   // (D, D) (strict upper part used), (D)
};

// Planar flow (Rezende & Mohamed 2015; seminar 2), x: (B, D):
//   z = x + u^ h(w^T x + b),  h = tanh,
//   log|det| = log|1 + h'(w^T x + b) w^T u^|,
//   u^ = u + [m(w^T u) - w^T u] w / |w|^2,  m(a) = softplus(a) - 1 > -1,
// so w^T u^ > -1 and, as 0 < h' <= 1, the map is invertible. No closed-form inverse: inverse()
// solves the scalar equation w^T z = a + w^T u^ h(a + b) for a = w^T x (monotone; bisection in
// double precision), then x = z - u^ h(a + b). Its gradient treats a as a constant.
class PlanarFlow : public Flow {
 public:
  explicit PlanarFlow(int64_t dim, Generator* gen = nullptr);
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override;
  Tensor u_hat() const;
  std::string extra_repr() const override;

  int64_t dim;
  Tensor u, w, b;  // (D), (D), (1); N(0, 0.1^2) as the seminar
};

// Radial flow (Rezende & Mohamed 2015; seminar 2), x: (B, D):
//   z = x + beta h(alpha, r) (x - x0),  r = |x - x0|,  h = 1 / (alpha + r),
//   log|det| = (D - 1) log(1 + beta h) + log(1 + beta h + beta h' r),  h' = -1 / (alpha + r)^2,
// invertible for beta >= -alpha: alpha = softplus(alpha_raw) > 0, beta = -alpha + softplus(beta_raw).
// Inverse in closed form: rho = |z - x0| = r (1 + beta / (alpha + r)) gives the quadratic
//   r^2 + (alpha + beta - rho) r - alpha rho = 0,   x = x0 + (z - x0) / (1 + beta / (alpha + r)).
class RadialFlow : public Flow {
 public:
  explicit RadialFlow(int64_t dim, Generator* gen = nullptr);
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override;
  Tensor alpha() const;
  Tensor beta() const;
  std::string extra_repr() const override;

  int64_t dim;
  Tensor x0, alpha_raw, beta_raw;  // (D), (1), (1)
};

// A linear layer whose weight is multiplied by a fixed 0/1 mask: y = x (W * M)^T + b.
// x: (..., in) -> (..., out); mask (out, in) is a buffer. MADE's building block: a masked weight
// has no influence on the output and gets zero gradient.
class MaskedLinear : public Module {
 public:
  MaskedLinear(int64_t in_features, int64_t out_features, const Tensor& mask, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  int64_t in_features, out_features;
  Tensor weight, bias, mask;

 private:
  // Without a graph (sampling: D passes of a MADE with the same weights) W * M is kept from one call
  // to the next while the weight and the mask are the same views of the same storage at the same
  // version (an optimiser step, an in-place op or load_state_dict changes one of these). Not for
  // concurrent forward calls on one module from several threads.
  struct Seen {
    Array data;  // keeps the storage alive, so another storage cannot take its address
    uint64_t version = 0;
    bool matches(const Tensor& t) const;
  };
  Tensor masked_;
  Seen weight_seen_, mask_seen_;
};

// MADE (Germain et al. 2015): an MLP whose masks make output block k's unit d depend only on inputs
// of smaller degree. Input d has degree m(d) = d + 1 (1..D); hidden unit k degree 1 + k mod (D - 1);
// a hidden unit sees inputs with m(d) <= m(k), an output of degree m(d) sees hidden units with
// m(k) < m(d). x: (B, D) -> (B, outputs_per_dim * D), laid out as outputs_per_dim blocks of D.
// ReLU between layers.
class MADE : public Module {
 public:
  MADE(int64_t dim, const std::vector<int64_t>& hidden, int64_t outputs_per_dim = 2, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  int64_t dim, outputs_per_dim;
  std::vector<std::shared_ptr<MaskedLinear>> layers;
};

// Gaussian autoregressive flow with a MADE conditioner: mu_j, alpha_j = log sigma_j depend on the
// first j-1 coordinates of their argument, x: (B, D).
//   MAF (Papamakarios et al. 2017), conditioned on x:
//     z = (x - mu(x)) e^{-alpha(x)}   one pass (density evaluation is parallel),
//     x_j = z_j e^{alpha_j(x_{<j})} + mu_j(x_{<j})   D passes (sampling is sequential),
//     log|det dz/dx| = -sum_j alpha_j(x).
//   IAF (Kingma et al. 2016), conditioned on z: the same map run the other way,
//     x = z e^{alpha(z)} + mu(z)   one pass (sampling is parallel),
//     z_j = (x_j - mu_j(z_{<j})) e^{-alpha_j(z_{<j})}   D passes (density is sequential),
//     log|det dz/dx| = -sum_j alpha_j(z).
// max_log_scale = c > 0 bounds the log-scale softly, alpha = c tanh(a / c) for MADE's output a
// (about a for |a| << c, never beyond +-c): a deep MAF whose MADEs drift to |a| ~ 50 overflows
// e^{-alpha} in float32 and its loss becomes inf; RealNVP's couplings bound s with tanh the same way.
// 0 (the default): alpha = a, unbounded.
enum class AutoregressiveDirection { MAF, IAF };
class GaussianAutoregressiveFlow : public Flow {
 public:
  GaussianAutoregressiveFlow(int64_t dim, const std::vector<int64_t>& hidden, AutoregressiveDirection direction = AutoregressiveDirection::MAF,
                             Generator* gen = nullptr);
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override { return inverse_and_log_det(z).out; }
  FlowOutput inverse_and_log_det(const Tensor& z) override;
  std::string extra_repr() const override;

  int64_t dim;
  AutoregressiveDirection direction;
  std::shared_ptr<MADE> made;
  double max_log_scale = 0;  // c: alpha = c tanh(a / c); 0 = unbounded

 private:
  std::pair<Tensor, Tensor> mu_alpha(const Tensor& v);  // (B, D) each
  FlowOutput normalize_one_pass(const Tensor& x);       // z = (x - mu(x)) e^{-alpha(x)}
  FlowOutput normalize_sequential(const Tensor& x);     // z_j = (x_j - mu_j(z_<j)) e^{-alpha_j(z_<j)}
  FlowOutput generate_one_pass(const Tensor& z);        // x = z e^{alpha(z)} + mu(z)
  FlowOutput generate_sequential(const Tensor& z);      // x_j = z_j e^{alpha_j(x_<j)} + mu_j(x_<j)
  // the D passes of either, under no grad: {v built coordinate by coordinate, sum_k alpha_k}
  FlowOutput sequential_without_graph(const Tensor& like, const std::function<Tensor(int64_t, const Tensor&, const Tensor&)>& next);
};

// Affine coupling (RealNVP, Dinh et al. 2016) with a 0/1 mask b (1 = kept, the conditioning part):
//   (s_raw, t) = NN(b * x) split along dim 1,  s = (scale tanh(s_raw) + shift) (1 - b),  t <- t (1 - b),
//   z = x e^{s} + t        (so z = x where b = 1),
//   x = (z - t) e^{-s}     (s, t computed from b * z = b * x: one network pass either way),
//   log|det| = sum s.
// The conditioner maps (B, C, ...) to (B, 2C, ...) (an MLP for vectors, a CNN for images). scale
// and shift are scalars initialised to 0 (the homework's choice): a fresh layer has s = 0.
// Masks: checkerboard_mask for images, channel_mask for channel-wise splits, half_mask for vectors.
class AffineCoupling : public Flow {
 public:
  AffineCoupling(const Tensor& mask, std::shared_ptr<Module> conditioner);
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override;

  Tensor mask;                           // buffer, broadcast against x[0] (e.g. (1, H, W), (C, 1, 1), (D))
  Tensor scale, shift;                   // (1) parameters
  std::shared_ptr<Module> conditioner;

 private:
  std::pair<Tensor, Tensor> scale_and_shift(const Tensor& kept);  // s, t, both zero where mask = 1
};

// Mixture-of-logistics coupling (Flow++, Ho et al. 2019): the free part (mask 0) goes through the
// CDF of a K-component logistic mixture, its logit, then the affine map, every parameter from
// NN(b * x) per element:
//   F(x) = sum_k pi_k sigmoid(u_k),  u_k = (x - mu_k) e^{-l_k},    z = logit(F(x)) e^{s} + t,
//   log|dz/dx| = s + log f(x) - log F(x) - log(1 - F(x)),  f = F' = sum_k pi_k e^{-l_k} sigmoid(u_k) sigmoid(-u_k),
//   inverse: logit(F(x)) = (z - t) e^{-s}, solved for x by bisection (F increases; no closed form),
// with s = (scale tanh(s_raw) + shift) as in AffineCoupling and l_k >= -7. An affine coupling gives
// each element one bump per layer; this one a mixture, so a pixel that is black with probability
// 0.9 and anything else otherwise takes one layer instead of many. The conditioner maps (B, C, ...)
// to (B, (2 + 3K) C, ...): [s_raw, t, logits of pi (K blocks of C), mu (K x C), l (K x C)]. All-zero
// outputs give the identity (F = sigmoid, so logit(F(x)) = x), as a fresh coupling should be.
class MixtureLogisticCoupling : public Flow {
 public:
  MixtureLogisticCoupling(const Tensor& mask, int64_t components, std::shared_ptr<Module> conditioner);
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override;
  std::string extra_repr() const override;

  Tensor mask;          // buffer, as AffineCoupling's
  Tensor scale, shift;  // (1) parameters
  int64_t components;   // K
  std::shared_ptr<Module> conditioner;

 private:
  struct Params {
    Tensor s, t;              // (B, C, ...), zero where mask = 1
    Tensor log_pi, mu, log_s;  // (B, K, C, ...)
  };
  Params params(const Tensor& kept);
  // logit(F(x)) and, with log_det, log f - log F - log(1 - F) (B, C, ...)
  std::pair<Tensor, Tensor> logit_cdf(const Tensor& x, const Params& p, bool log_det);
};

// (1, H, W): 1 on pixels (h, w) with h + w even when top_left_kept (b_00 = 1), else on the odd ones.
Tensor checkerboard_mask(int64_t height, int64_t width, bool top_left_kept);
// (C, 1, 1): 1 on the first C/2 channels when first_half_kept, else on the last C - C/2.
Tensor channel_mask(int64_t channels, bool first_half_kept);
// (D): 1 on the first D/2 features when first_half_kept, else on the rest.
Tensor half_mask(int64_t dim, bool first_half_kept);
// Conditioners: D -> hidden -> hidden -> 2D with ReLU; C -> F -> 2C channels by 3x3 convolutions
// (padding 1) with ReLU.
std::shared_ptr<Module> mlp_conditioner(int64_t dim, int64_t hidden, Generator* gen = nullptr);
std::shared_ptr<Module> conv_conditioner(int64_t channels, int64_t filters, Generator* gen = nullptr);

// Squeeze (space to depth) as a flow: (B, C, H, W) -> (B, 4C, H/2, W/2), output channel 4c + 2i + j
// <- pixel (2h + i, 2w + j). A permutation of the coordinates: log|det| = 0.
class SqueezeFlow : public Flow {
 public:
  SqueezeFlow() : Flow("SqueezeFlow") {}
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override;
};

// A learned affine map per element of an example, z = x e^{l} + b with l, b shaped like one
// example ((C, H, W) or (D)), log|det| = sum l; both start at 0 (the identity). Last in a flow it is
// Glow's learned prior: N(0, 1) for z is N(-b e^{-l}, e^{-2l}) per position for the layer's input,
// so a position that is black in every image (MNIST's border) gets its own narrow density, which
// convolutions (translation-equivariant) and ActNorm (one scale per channel) cannot give it.
class ElementwiseAffine : public Flow {
 public:
  explicit ElementwiseAffine(const Shape& example_shape);
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override;
  std::string extra_repr() const override;

  Tensor log_scale, bias;  // parameters shaped like one example

 private:
  void check_input(const Tensor& x, const char* op) const;
};

// Multi-scale factor-out (RealNVP, Dinh et al. 2016, section 3.6) as a flow on (B, C, ...): `flow`
// transforms the first `channels` channels of dim 1 and the other C - channels pass through
// unchanged, so they reach the base distribution at this scale while the rest is transformed further
// (at a coarser scale, after a squeeze inside `flow`):
//   z = cat(flow(x[:, :k]), x[:, k:]),  x = cat(flow^{-1}(z[:, :k]), z[:, k:]),  log|det| = flow's.
// Its Jacobian is block diagonal (flow's block and the identity), hence the log-det. Later layers
// outside it may still mix the factored-out channels back in (RealNVP's U shape in models/).
class FactorOut : public Flow {
 public:
  FactorOut(int64_t channels, std::shared_ptr<Flow> flow);
  FlowOutput forward_and_log_det(const Tensor& x) override;
  Tensor inverse(const Tensor& z) override;
  FlowOutput inverse_and_log_det(const Tensor& z) override;
  std::string extra_repr() const override;

  int64_t channels;

 private:
  std::shared_ptr<Flow> flow_;
  void check_input(const Tensor& x, const char* op) const;
};

}  // namespace dgm::nn
