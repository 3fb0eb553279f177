// Lecture 1, divergence minimisation: the computations (report and figures in divergences_chapter.cpp).
#include <dgm/lectures/lecture01/divergences.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <dgm/autograd/ops.h>
#include <dgm/nn/distributions.h>
#include <dgm/nn/optim.h>

namespace dgm::lecture01 {

namespace {
constexpr TensorOptions f64{.dtype = DType::Float64};

Tensor as_tensor(const std::vector<double>& v) { return from_vector(v, {int64_t(v.size())}); }

nn::GaussianMixture to_distribution(const Mixture1d& m) {
  return nn::GaussianMixture(as_tensor(m.weights), as_tensor(m.means), as_tensor(m.stds));
}

double normal_log_density(double x, double mu, double sigma) {
  double z = (x - mu) / sigma;
  return -0.5 * z * z - std::log(sigma) - 0.5 * std::log(2 * M_PI);
}

// A scalar parameter tensor (float64, requires grad).
Tensor parameter(double v) { return full({}, v, {.dtype = DType::Float64, .requires_grad = true}); }
}  // namespace

double Mixture1d::log_density(double x) const {
  double top = -std::numeric_limits<double>::infinity();
  std::vector<double> terms;
  for (size_t k = 0; k < weights.size(); ++k) {
    terms.push_back(std::log(weights[k]) + normal_log_density(x, means[k], stds[k]));
    top = std::max(top, terms.back());
  }
  double s = 0;
  for (double t : terms) s += std::exp(t - top);
  return top + std::log(s);  // log sum_k w_k N(x; mu_k, s_k^2), without underflow
}
double Mixture1d::mean() const {
  double m = 0;
  for (size_t k = 0; k < weights.size(); ++k) m += weights[k] * means[k];
  return m;
}
double Mixture1d::stddev() const {
  double second = 0;  // E x^2 = sum_k w_k (s_k^2 + mu_k^2)
  for (size_t k = 0; k < weights.size(); ++k) second += weights[k] * (stds[k] * stds[k] + means[k] * means[k]);
  return std::sqrt(second - mean() * mean());
}

Mixture1d two_modes() { return {{0.5, 0.5}, {-2.0, 2.0}, {0.5, 0.5}}; }

double kl_quadrature(const std::function<double(double)>& log_p, const std::function<double(double)>& log_q, double lo,
                     double hi, int64_t points) {
  const double h = (hi - lo) / double(points - 1);
  double kl = 0;
  for (int64_t i = 0; i < points; ++i) {
    double x = lo + h * double(i), lp = log_p(x);
    double p = std::exp(lp);
    if (p == 0) continue;  // 0 log 0 = 0
    double w = (i == 0 || i == points - 1) ? 0.5 * h : h;  // trapezoid rule
    kl += w * p * (lp - log_q(x));
  }
  return kl;
}

double kl_normal(double m1, double s1, double m2, double s2) {
  return std::log(s2 / s1) + (s1 * s1 + (m1 - m2) * (m1 - m2)) / (2 * s2 * s2) - 0.5;
}

// ---- forward vs reverse KL -----------------------------------------------------------------------

namespace {

GaussianFit finish(GaussianFit fit, const Mixture1d& target) {
  auto log_pi = [&](double x) { return target.log_density(x); };
  auto log_q = [&](double x) { return normal_log_density(x, fit.mu, fit.sigma); };
  fit.forward_kl = kl_quadrature(log_pi, log_q);
  fit.reverse_kl = kl_quadrature(log_q, log_pi);
  return fit;
}

// Adam on (mu, log sigma) with a cosine-decaying learning rate, so the last iterate settles even
// when the loss is a noisy Monte-Carlo estimate. loss(q) is built from q = N(mu, sigma^2).
GaussianFit fit_gaussian(const std::function<Tensor(const nn::Normal&)>& loss, int64_t steps, double lr) {
  Tensor mu = parameter(0.5), log_sigma = parameter(0.0);  // start: N(0.5, 1), off-centre
  nn::Adam opt({mu, log_sigma}, {.lr = lr});
  nn::CosineAnnealingLR schedule(opt, steps);
  GaussianFit fit;
  for (int64_t step = 0; step < steps; ++step) {
    opt.zero_grad();
    loss(nn::Normal(mu, exp(log_sigma))).backward();
    opt.step();
    schedule.step();
    fit.mu_path.push_back(mu.item());
    fit.sigma_path.push_back(std::exp(log_sigma.item()));
  }
  fit.mu = mu.item(), fit.sigma = std::exp(log_sigma.item());
  return fit;
}

}  // namespace

ForwardVsReverse forward_vs_reverse(int64_t n_data, int64_t mc_samples, int64_t steps, uint64_t seed) {
  Generator gen(seed);
  ForwardVsReverse r;
  r.target = two_modes();
  r.n_data = n_data, r.mc_samples = mc_samples, r.steps = steps;
  nn::GaussianMixture pi = to_distribution(r.target);

  // (a) forward KL: only samples of pi are needed; minimise -(1/n) sum log q(x_i)
  Tensor data = pi.sample(n_data, gen);
  r.sample_mean = mean(data).item();
  r.sample_std = std::sqrt(var(data, {}, /*correction=*/0).item());
  r.moment_mu = r.target.mean(), r.moment_sigma = r.target.stddev();
  r.forward = finish(fit_gaussian([&](const nn::Normal& q) { return -mean(q.log_prob(data)); }, steps, 0.05), r.target);

  // (b) reverse KL: samples of q (reparameterised, so gradients reach mu and sigma) and log pi
  r.reverse = finish(fit_gaussian(
                         [&](const nn::Normal& q) {
                           Tensor x = q.rsample({mc_samples}, gen);
                           return mean(q.log_prob(x) - pi.log_prob(x));  // E_q [log q(x) - log pi(x)]
                         },
                         steps, 0.05),
                     r.target);

  // The reverse-KL optimum without sampling noise: the same objective by quadrature on a grid.
  {
    Tensor grid = linspace(-10, 10, 4001, f64);
    const double h = 20.0 / 4000;
    Tensor log_pi = pi.log_prob(grid);
    GaussianFit exact = fit_gaussian(
        [&](const nn::Normal& q) {
          Tensor log_q = q.log_prob(grid);
          return h * sum(exp(log_q) * (log_q - log_pi));  // int q (log q - log pi) dx
        },
        3000, 0.02);
    exact = finish(exact, r.target);
    r.reverse_opt_mu = exact.mu, r.reverse_opt_sigma = exact.sigma, r.reverse_opt_kl = exact.reverse_kl;
  }
  return r;
}

// ---- KL properties ---------------------------------------------------------------------------------

std::vector<KlPair> kl_gaussian_pairs(int64_t n, uint64_t seed) {
  Generator gen(seed);
  const double pairs[][4] = {{0, 1, 0, 1}, {0, 1, 1, 1}, {0, 1, 0, 2}, {0, 2, 0, 1}, {0, 1, 2, 0.5}, {2, 0.5, 0, 1}};
  std::vector<KlPair> out;
  for (const auto& p : pairs) {
    nn::Normal P(scalar_tensor(p[0], f64), scalar_tensor(p[1], f64)), Q(scalar_tensor(p[2], f64), scalar_tensor(p[3], f64));
    Tensor x = P.sample({n}, gen);
    Tensor log_ratio = P.log_prob(x) - Q.log_prob(x);  // KL(P || Q) = E_P log P/Q
    KlPair k;
    k.m1 = p[0], k.s1 = p[1], k.m2 = p[2], k.s2 = p[3];
    k.closed_form = kl_normal(p[0], p[1], p[2], p[3]);
    k.mc = mean(log_ratio).item();
    k.mc_se = std::sqrt(var(log_ratio).item() / double(n));
    out.push_back(k);
  }
  return out;
}

KlProperties kl_properties(int64_t pairs, int64_t classes, uint64_t seed) {
  Generator gen(seed);
  KlProperties r;
  r.pairs = pairs;
  // categorical: KL(p || q) = sum_k p_k log(p_k / q_k), exactly
  Tensor logits_p = 2.0 * randn({pairs, classes}, f64, &gen), logits_q = 2.0 * randn({pairs, classes}, f64, &gen);
  Tensor log_p = log_softmax(logits_p, 1), log_q = log_softmax(logits_q, 1);
  Tensor p = exp(log_p);
  r.min_kl_categorical = amin(sum(p * (log_p - log_q), {1})).item();
  r.max_self_kl = amax(abs(sum(p * (log_p - log_p), {1}))).item();
  Tensor log_near = log_softmax(logits_p + 1e-3 * randn({pairs, classes}, f64, &gen), 1);
  r.min_kl_near_equal = amin(sum(p * (log_p - log_near), {1})).item();
  // Gaussians, closed form
  std::vector<double> m = (2.0 * randn({pairs, 2}, f64, &gen)).to_vector<double>();
  std::vector<double> s = exp(0.7 * randn({pairs, 2}, f64, &gen)).to_vector<double>();
  r.min_kl_gaussian = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < pairs; ++i) {
    double forward = kl_normal(m[2 * i], s[2 * i], m[2 * i + 1], s[2 * i + 1]);
    double reverse = kl_normal(m[2 * i + 1], s[2 * i + 1], m[2 * i], s[2 * i]);
    r.min_kl_gaussian = std::min({r.min_kl_gaussian, forward, reverse});
    r.max_asymmetry = std::max(r.max_asymmetry, std::abs(forward - reverse));
    r.max_self_kl = std::max(r.max_self_kl, std::abs(kl_normal(m[2 * i], s[2 * i], m[2 * i], s[2 * i])));
  }
  return r;
}

// ---- MLE = minimising the Monte-Carlo forward KL ----------------------------------------------------

MleVsForwardKl mle_vs_forward_kl(int64_t n, int64_t steps, uint64_t seed) {
  Generator gen(seed);
  MleVsForwardKl r;
  r.target = {{0.3, 0.7}, {-1.5, 1.0}, {0.4, 0.8}};
  r.n = n, r.steps = steps;
  nn::GaussianMixture pi = to_distribution(r.target);
  Tensor x = pi.sample(n, gen);
  Tensor log_pi = pi.log_prob(x);  // known here, but a constant for the optimisation
  r.constant = mean(log_pi).item();

  // q(x | theta): 2 components, theta = (logits, means, log stds), the same start for both runs
  struct Run {
    Tensor logits = from_vector(std::vector<double>{0, 0}, {2}, true);
    Tensor means = from_vector(std::vector<double>{-0.5, 0.5}, {2}, true);
    Tensor log_stds = from_vector(std::vector<double>{0, 0}, {2}, true);
    Tensor log_q(const Tensor& x) const {
      return nn::GaussianMixture(softmax(logits, 0), means, exp(log_stds)).log_prob(x);
    }
    std::vector<double> theta() const {
      std::vector<double> v;
      for (const Tensor* t : {&logits, &means, &log_stds})
        for (double e : t->to_vector<double>()) v.push_back(e);
      return v;
    }
    Mixture1d mixture() const {
      return {softmax(logits.detach(), 0).to_vector<double>(), means.to_vector<double>(), exp(log_stds.detach()).to_vector<double>()};
    }
  };
  Run mle, kl;
  nn::Adam opt_mle({mle.logits, mle.means, mle.log_stds}, {.lr = 0.05});
  nn::Adam opt_kl({kl.logits, kl.means, kl.log_stds}, {.lr = 0.05});
  for (int64_t step = 0; step < steps; ++step) {
    opt_mle.zero_grad();
    Tensor nll = -mean(mle.log_q(x));                    // -(1/n) sum log q(x_i | theta)
    nll.backward();
    opt_mle.step();
    opt_kl.zero_grad();
    Tensor forward_kl = mean(log_pi - kl.log_q(x));      // (1/n) sum [log pi(x_i) - log q(x_i | theta)]
    forward_kl.backward();
    opt_kl.step();
    r.nll_curve.push_back(nll.item());
    r.kl_curve.push_back(forward_kl.item());
    r.max_constant_dev = std::max(r.max_constant_dev, std::abs((forward_kl.item() - nll.item()) - r.constant));
    std::vector<double> a = mle.theta(), b = kl.theta();
    for (size_t i = 0; i < a.size(); ++i) r.max_param_diff = std::max(r.max_param_diff, std::abs(a[i] - b[i]));
  }
  r.fit_nll = mle.mixture(), r.fit_kl = kl.mixture();
  const Mixture1d& fit = r.fit_nll;
  r.final_forward_kl = kl_quadrature([&](double v) { return r.target.log_density(v); }, [&](double v) { return fit.log_density(v); });
  return r;
}

}  // namespace dgm::lecture01
