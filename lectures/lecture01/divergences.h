// Lecture 1, "Divergence minimization framework".
//
//   forward KL   KL(pi || p) = E_pi [log pi(x) - log p(x | theta)] = -E_pi log p(x | theta) + const
//                  ~ -(1/n) sum_i log p(x_i | theta) + const        (MLE)
//   reverse KL   KL(p || pi) = E_p(x|theta) [log p(x | theta) - log pi(x)]
//   properties   KL >= 0;  KL = 0 iff p = q;  KL(p || q) != KL(q || p)
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dgm::lecture01 {

// A 1-D mixture of Gaussians with plain numbers (the target pi of this chapter).
struct Mixture1d {
  std::vector<double> weights, means, stds;
  double log_density(double x) const;
  double mean() const;
  double stddev() const;
};
// pi = 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2): two well separated modes.
Mixture1d two_modes();

// KL between 1-D densities by the trapezoid rule on [lo, hi] (both given as log densities).
double kl_quadrature(const std::function<double(double)>& log_p, const std::function<double(double)>& log_q,
                     double lo = -20, double hi = 20, int64_t points = 40001);

// Closed form: KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2 / s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2.
double kl_normal(double m1, double s1, double m2, double s2);

// ---- forward vs reverse KL -----------------------------------------------------------------------

// One Gaussian q = N(mu, sigma^2) fitted to pi with Adam on (mu, log sigma).
struct GaussianFit {
  double mu = 0, sigma = 0;
  double forward_kl = 0, reverse_kl = 0;  // KL(pi || q) and KL(q || pi) by quadrature
  std::vector<double> mu_path, sigma_path;
};
struct ForwardVsReverse {
  Mixture1d target;
  int64_t n_data = 0, mc_samples = 0, steps = 0;
  // (a) forward KL = MLE on n_data samples of pi
  GaussianFit forward;
  double sample_mean = 0, sample_std = 0;  // the MLE in closed form (biased std)
  double moment_mu = 0, moment_sigma = 0;  // the exact forward-KL optimum: pi's mean and std
  // (b) reverse KL with mc_samples reparameterised samples of q per step and the known log pi
  GaussianFit reverse;
  double reverse_opt_mu = 0, reverse_opt_sigma = 0, reverse_opt_kl = 0;  // minimised by quadrature
};
ForwardVsReverse forward_vs_reverse(int64_t n_data, int64_t mc_samples, int64_t steps, uint64_t seed);

// ---- KL properties ---------------------------------------------------------------------------------

struct KlPair {
  double m1 = 0, s1 = 0, m2 = 0, s2 = 0;
  double closed_form = 0;
  double mc = 0, mc_se = 0;  // mean of log p(x) - log q(x), x ~ p
};
// KL(p || q) and KL(q || p) for a few pairs of Gaussians (including p = q), closed form and Monte Carlo.
std::vector<KlPair> kl_gaussian_pairs(int64_t n, uint64_t seed);

// Many random pairs of categorical distributions over K classes (exact sums) and of Gaussians
// (closed form): the smallest KL seen, KL(p || p), and how asymmetric KL is.
struct KlProperties {
  int64_t pairs = 0;
  double min_kl_categorical = 0, min_kl_gaussian = 0;
  double max_self_kl = 0;             // max over p of |KL(p || p)|
  double max_asymmetry = 0;           // max |KL(p || q) - KL(q || p)| over the Gaussian pairs
  double min_kl_near_equal = 0;       // KL(p || p + small perturbation): small but > 0
};
KlProperties kl_properties(int64_t pairs, int64_t classes, uint64_t seed);

// ---- MLE = minimising the Monte-Carlo forward KL ----------------------------------------------------

// A 2-component Gaussian mixture q(x | theta) trained on n samples of pi twice, from the same start
// with the same Adam settings: once on the NLL -(1/n) sum log q(x_i), once on the Monte-Carlo forward
// KL (1/n) sum [log pi(x_i) - log q(x_i)]. The objectives differ by the constant (1/n) sum log pi(x_i),
// so the gradients, the steps and the parameters are the same.
struct MleVsForwardKl {
  Mixture1d target, fit_nll, fit_kl;
  int64_t n = 0, steps = 0;
  std::vector<double> nll_curve, kl_curve;
  double constant = 0;            // (1/n) sum log pi(x_i) = -(Monte-Carlo entropy of pi)
  double max_constant_dev = 0;    // max over steps |(kl - nll) - constant|: the curves are parallel
  double max_param_diff = 0;      // max over steps and parameters |theta_nll - theta_kl|
  double final_forward_kl = 0;    // KL(pi || q) by quadrature after training
};
MleVsForwardKl mle_vs_forward_kl(int64_t n, int64_t steps, uint64_t seed);

}  // namespace dgm::lecture01
