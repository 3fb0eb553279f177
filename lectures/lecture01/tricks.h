// Lecture 1, "Course tricks": each trick as a function that returns the numbers that show it.
//
//   log-derivative trick   grad log f(x) = grad f(x) / f(x)
//   Jensen's inequality    E f(x) >= f(E x) for convex f;   E log x <= log E x
//   Monte-Carlo            E_p f(x) ~ (1/n) sum_i f(x_i),  error ~ n^-1/2, CLT intervals
//   change of variables    p(y) = p(f^-1(y)) |det d f^-1(y) / dy|
//   LOTUS                  E_p(y) g(y) = E_p(x) g(f(x))
//   Dirac delta            E_{N(x0, s^2)} f(x) -> f(x0) as s -> 0
//
// All computations are in float64 and draw from an explicit, seeded Generator.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <dgm/autograd/tensor.h>

namespace dgm::lecture01 {

// ---- log-derivative trick ------------------------------------------------------------------------

// grad log f(x) (autograd through log) against grad f(x) / f(x), at a random x in R^3 per function.
struct LogDerivativeCheck {
  std::string formula;
  double max_abs_diff = 0;  // max_j |d log f / dx_j - (d f / dx_j) / f|
};
std::vector<LogDerivativeCheck> check_log_derivative(uint64_t seed);

// One unbiased estimator of a gradient: the mean of per-sample terms, with their variance.
struct GradientEstimate {
  double estimate = 0;         // mean of the n per-sample terms
  double exact = 0;            // the true gradient
  double variance = 0;         // sample variance of the per-sample terms
  double exact_variance = 0;   // their variance in closed form (NaN where not derived)
  double variance_se = 0;      // standard error of `variance`: sqrt((m4 - variance^2) / n)
  double std_error = 0;        // sqrt(variance / n)
  std::vector<double> terms;   // the per-sample terms (for running-mean plots)
};

// What the trick is for: d/dtheta E_{x ~ N(mu, sigma^2)} x^2 = (2 mu, 2 sigma), theta = (mu, sigma).
//   score function:      grad E f = E[ f(x) grad log p(x | theta) ]     (autograd of log p)
//   reparameterisation:  x = mu + sigma eps, grad E f = E[ grad f(mu + sigma eps) ]  (autograd of f)
struct ScoreVsReparam {
  double mu = 0, sigma = 0;
  int64_t n = 0;
  GradientEstimate score_mu, reparam_mu, score_sigma, reparam_sigma;
};
ScoreVsReparam score_vs_reparam(double mu, double sigma, int64_t n, uint64_t seed);

// ---- Jensen's inequality -------------------------------------------------------------------------

struct JensenRow {
  std::string f, distribution;
  double mean_f = 0, ci95 = 0;  // Monte-Carlo E f(x) +- 1.96 standard errors
  double exact_mean_f = 0;      // E f(x) in closed form
  double f_of_mean = 0;         // f(E x) with the exact E x
  double sample_gap = 0;        // mean_i f(x_i) - f(mean_i x_i): >= 0 for every sample (Jensen for the empirical distribution)
};
std::vector<JensenRow> jensen_examples(int64_t n, uint64_t seed);

// The gap E log x - log E x <= 0 for x = exp(z), z ~ N(0, s^2): exactly -s^2 / 2. The shape of
// every bound to come (the ELBO): the gap grows with the spread of x.
struct JensenLogGap {
  std::vector<double> spread, gap, ci95, exact_gap;
};
JensenLogGap jensen_log_gap(const std::vector<double>& spreads, int64_t n, uint64_t seed);

// ---- Monte-Carlo estimation ----------------------------------------------------------------------

// An expectation with a known value: draw(rows, n, gen) returns (rows, n) values f(x_i), x_i ~ p.
struct McTarget {
  std::string name;
  double exact = 0;
  double sd = 0;  // standard deviation of f(x), in closed form: RMSE of an n-sample mean = sd / sqrt(n)
  std::function<Tensor(int64_t rows, int64_t n, Generator& gen)> draw;
};
// E_{N(0,1)} x^2 = 1;  E_{N(0,1)} cos x = e^{-1/2};  P(|x| < 1), x ~ N(0, I_2), = 1 - e^{-1/2};
// E_{U[0,1]^2} 4 [u1^2 + u2^2 < 1] = pi.
std::vector<McTarget> mc_targets();

// R replications of the n-sample estimate for each n: its RMSE and how often the CLT interval
// mean +- 1.96 s / sqrt(n) covers the truth; the log-log slope of RMSE against n (theory: -1/2,
// since RMSE = sd(f) / sqrt(n) exactly) with its standard error from the spread of the errors.
struct McConvergence {
  std::string name;
  double exact = 0;
  int64_t replications = 0;
  std::vector<int64_t> n;
  std::vector<double> rmse, rmse_theory, coverage;
  double slope = 0, slope_se = 0, intercept = 0;  // log10 RMSE = intercept + slope log10 n
  double coverage_se = 0;                         // sqrt(0.95 * 0.05 / R)
};
McConvergence mc_convergence(const McTarget& target, const std::vector<int64_t>& ns, int64_t replications, uint64_t seed);

// One growing sample: the running estimate and its 95% CLT interval after each of n draws.
struct RunningEstimate {
  std::string name;
  double exact = 0;
  std::vector<double> n, estimate, lo, hi;  // at logarithmically spaced n
};
RunningEstimate mc_running_estimate(const McTarget& target, int64_t n, uint64_t seed);

// ---- change of variables -------------------------------------------------------------------------

// An invertible map y = f(x) of x ~ N(0, I_d), d = 1 or 2, with p(y) known independently of the
// theorem (a named distribution, or a Gaussian times a conditional Gaussian).
struct InvertibleMap {
  std::string name, formula;
  int dim = 1;
  std::function<Tensor(const Tensor&)> forward;  // x: (N, d) -> y: (N, d)
  std::function<Tensor(const Tensor&)> inverse;  // y: (d) -> x: (d), differentiable (for the Jacobian)
  std::function<double(const std::vector<double>&)> exact_log_density;  // log p(y)
  double lo[2] = {0, 0}, hi[2] = {0, 0};                                // box for plots and histograms
};
// 1-D: exp (log-normal), sigmoid (logit-normal), 0.5 x + 1 (a normal).
std::vector<InvertibleMap> cov_maps_1d();
// 2-D: affine A x + b with a random A (a correlated normal), elementwise sinh, a coupling layer
// y = (x1, x2 e^{s(x1)} + t(x1)) (a banana).
std::vector<InvertibleMap> cov_maps_2d(uint64_t seed);

// log p(y) by the theorem: log N(f^-1(y); 0, I) + log |det d f^-1(y) / dy|, the Jacobian from
// autograd (dgm::jacobian) and its log-determinant from linalg::slogdet.
double cov_log_density(const InvertibleMap& map, const std::vector<double>& y);

struct CovCheck {
  std::string name;
  // the theorem against the analytic density on a grid of points of the box
  int64_t grid_points = 0;
  double max_abs_log_diff = 0;
  // a histogram of n transformed samples against the bin probabilities of the theorem's density
  int64_t n = 0, bins = 0;       // bins per dimension (plus one bin for everything outside the box)
  double chi2 = 0;               // Pearson statistic over the bins with expected count >= 5
  int64_t dof = 0;               // those bins - 1; chi2 ~ dof +- sqrt(2 dof) when the density is right
  // for plots: the grid (1-D: points; 2-D: row-major ny x nx), both densities, the sample histogram
  std::vector<double> grid, density_cov, density_exact, hist_density;
};
CovCheck check_change_of_variables(const InvertibleMap& map, int64_t n, int64_t bins, uint64_t seed);

// ---- LOTUS ---------------------------------------------------------------------------------------

// E g(y) from samples of y drawn directly, against E g(f(x)) from samples of x: the same number.
struct LotusRow {
  std::string description;
  double via_y = 0, via_y_se = 0;  // mean of g(y_i), y_i ~ p(y)
  double via_x = 0, via_x_se = 0;  // mean of g(f(x_i)), x_i ~ p(x)
  double exact = 0;
};
std::vector<LotusRow> lotus_examples(int64_t n, uint64_t seed);

// ---- Dirac delta ---------------------------------------------------------------------------------

// E_{N(x0, s^2)} f(x) for f(x) = sin x + x^2: sin(x0) e^{-s^2/2} + x0^2 + s^2 -> f(x0) as s -> 0.
struct DiracRow {
  double sigma = 0;
  double exact = 0;          // E f(x) in closed form
  double mc = 0, mc_se = 0;  // Monte-Carlo with n / 2 antithetic pairs x0 +- s eps
  double error = 0;          // |E f(x) - f(x0)|, closed form
};
struct DiracDelta {
  double x0 = 0, f_x0 = 0;
  std::vector<DiracRow> rows;
};
DiracDelta dirac_delta_limit(double x0, const std::vector<double>& sigmas, int64_t n, uint64_t seed);

}  // namespace dgm::lecture01
