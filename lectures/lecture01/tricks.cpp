// Lecture 1, course tricks: the computations (the report and the figures are in tricks_chapter.cpp).
#include <dgm/lectures/lecture01/tricks.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <dgm/autograd/engine.h>
#include <dgm/autograd/gradcheck.h>
#include <dgm/autograd/ops.h>
#include <dgm/nn/distributions.h>

namespace dgm::lecture01 {

namespace {

constexpr TensorOptions f64{.dtype = DType::Float64};
constexpr TensorOptions f64_grad{.dtype = DType::Float64, .requires_grad = true};
const double kLog2Pi = std::log(2 * M_PI);

double Phi(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }  // standard normal CDF

// Mean and standard error of the values of a tensor.
struct MeanSe {
  double mean, se;
};
MeanSe mean_se(const Tensor& values) {
  double n = static_cast<double>(values.numel());
  return {mean(values).item(), std::sqrt(var(values).item() / n)};
}

// The per-sample terms of a gradient estimator, summarised (see GradientEstimate).
GradientEstimate summarise(const Tensor& terms, double exact, double exact_variance) {
  GradientEstimate g;
  g.terms = terms.to_vector<double>();
  const double n = static_cast<double>(g.terms.size());
  g.estimate = mean(terms).item();
  g.variance = var(terms).item();
  g.std_error = std::sqrt(g.variance / n);
  double m4 = mean(pow(terms - g.estimate, 4.0)).item();
  g.variance_se = std::sqrt(std::max(m4 - g.variance * g.variance, 0.0) / n);
  g.exact = exact;
  g.exact_variance = exact_variance;
  return g;
}

}  // namespace

// ---- log-derivative trick ------------------------------------------------------------------------

std::vector<LogDerivativeCheck> check_log_derivative(uint64_t seed) {
  Generator gen(seed);
  struct Fn {
    const char* formula;
    std::function<Tensor(const Tensor&)> f;  // x: (3) -> f(x) > 0: ()
  };
  const Tensor w = tensor({0.5, -1.0, 2.0}, f64);
  const Fn fns[] = {
      {"|x|^2 + 1", [](const Tensor& x) { return sum(x * x) + 1.0; }},
      {"exp(sin x1) (x2^2 + 1) + x3^4 + 2",
       [](const Tensor& x) {
         return exp(sin(select(x, 0, 0))) * (square(select(x, 0, 1)) + 1.0) + pow(select(x, 0, 2), 4.0) + 2.0;
       }},
      {"softplus(w . x)", [&](const Tensor& x) { return softplus(sum(w * x)); }},
      {"N(x; 0, I) (score: -x)", [](const Tensor& x) { return exp(-0.5 * sum(x * x) - 1.5 * std::log(2 * M_PI)); }},
  };
  std::vector<LogDerivativeCheck> out;
  for (const Fn& fn : fns) {
    Tensor x = randn({3}, f64_grad, &gen);
    Tensor grad_log_f = autograd::grad({log(fn.f(x))}, {x})[0];  // d log f / dx through autograd
    Tensor fx = fn.f(x);
    Tensor grad_f = autograd::grad({fx}, {x})[0];
    Tensor ratio = grad_f / fx.detach();                          // (d f / dx) / f
    out.push_back({fn.formula, amax(abs(grad_log_f - ratio)).item()});
  }
  return out;
}

ScoreVsReparam score_vs_reparam(double mu, double sigma, int64_t n, uint64_t seed) {
  Generator gen(seed);
  // One copy of (mu, sigma) per sample, so that autograd returns each sample's gradient term.
  Tensor mu_t = full({n}, mu, f64_grad), sigma_t = full({n}, sigma, f64_grad);
  nn::Normal p(mu_t, sigma_t);
  Tensor x = p.rsample({}, gen);  // x = mu + sigma * eps: (n), differentiable in mu and sigma

  // reparameterisation: the gradient of f(mu + sigma eps) = x^2 for each eps
  std::vector<Tensor> reparam = autograd::grad({sum(square(x))}, {mu_t, sigma_t});
  // score function: f(x) times the gradient of log N(x | mu, sigma), with x held fixed
  Tensor xs = x.detach();
  std::vector<Tensor> score = autograd::grad({sum(p.log_prob(xs))}, {mu_t, sigma_t});
  Tensor f = square(xs);

  // The variances in closed form (x = mu + sigma eps, E eps^2k = 1, 3, 15, 105): see the report.
  const double m2 = mu * mu, s2 = sigma * sigma;
  ScoreVsReparam r;
  r.mu = mu, r.sigma = sigma, r.n = n;
  r.score_mu = summarise(f * score[0], 2 * mu, (m2 * m2 + 18 * m2 * s2 + 15 * s2 * s2) / s2 - 4 * m2);
  r.reparam_mu = summarise(reparam[0], 2 * mu, 4 * s2);
  r.score_sigma = summarise(f * score[1], 2 * sigma, (2 * m2 * m2 + 60 * m2 * s2 + 78 * s2 * s2) / s2 - 4 * s2);
  r.reparam_sigma = summarise(reparam[1], 2 * sigma, 4 * m2 + 8 * s2);
  return r;
}

// ---- Jensen's inequality -------------------------------------------------------------------------

std::vector<JensenRow> jensen_examples(int64_t n, uint64_t seed) {
  Generator gen(seed);
  struct Case {
    const char* f;
    const char* distribution;
    std::function<Tensor(const Tensor&)> fn;
    bool uniform;  // x ~ U(0, 1) instead of N(1, 1)
    double mean_x, exact_mean_f;
  };
  const double abs_mean = std::sqrt(2 / M_PI) * std::exp(-0.5) + (1 - 2 * Phi(-1));  // E|x|, x ~ N(1, 1)
  const Case cases[] = {
      {"x^2", "N(1, 1)", [](const Tensor& x) { return square(x); }, false, 1, 2},
      {"exp(x)", "N(1, 1)", [](const Tensor& x) { return exp(x); }, false, 1, std::exp(1.5)},
      {"|x|", "N(1, 1)", [](const Tensor& x) { return abs(x); }, false, 1, abs_mean},
      {"-log(x)", "U(0, 1)", [](const Tensor& x) { return -log(x); }, true, 0.5, 1},
  };
  std::vector<JensenRow> rows;
  for (const Case& c : cases) {
    Tensor x = c.uniform ? 1.0 - rand({n}, f64, &gen)  // (0, 1]: log x is finite
                         : 1.0 + randn({n}, f64, &gen);
    Tensor fx = c.fn(x);
    MeanSe m = mean_se(fx);
    JensenRow r;
    r.f = c.f, r.distribution = c.distribution;
    r.mean_f = m.mean, r.ci95 = 1.96 * m.se;
    r.exact_mean_f = c.exact_mean_f;
    r.f_of_mean = c.fn(scalar_tensor(c.mean_x, f64)).item();
    r.sample_gap = m.mean - c.fn(mean(x)).item();
    rows.push_back(r);
  }
  return rows;
}

JensenLogGap jensen_log_gap(const std::vector<double>& spreads, int64_t n, uint64_t seed) {
  Generator gen(seed);
  JensenLogGap out;
  for (double s : spreads) {
    Tensor z = s * randn({n}, f64, &gen);
    Tensor x = exp(z);  // log-normal: E log x = 0, log E x = s^2 / 2
    double mean_x = mean(x).item();
    double gap = mean(z).item() - std::log(mean_x);
    // delta method: the estimate moves with the influence (log x_i - E log x) - (x_i - E x) / E x
    double se = std::sqrt(var(z - x / mean_x).item() / static_cast<double>(n));
    out.spread.push_back(s);
    out.gap.push_back(gap);
    out.ci95.push_back(1.96 * se);
    out.exact_gap.push_back(-s * s / 2);
  }
  return out;
}

// ---- Monte-Carlo estimation ----------------------------------------------------------------------

std::vector<McTarget> mc_targets() {
  const double p_disc = 1 - std::exp(-0.5);  // P(x1^2 + x2^2 < 1): the chi-square(2) CDF at 1
  return {
      {"E x^2, x ~ N(0,1)", 1.0, std::sqrt(2.0),
       [](int64_t rows, int64_t n, Generator& g) { return square(randn({rows, n}, f64, &g)); }},
      {"E cos x, x ~ N(0,1)", std::exp(-0.5), std::sqrt((1 + std::exp(-2.0)) / 2 - std::exp(-1.0)),
       [](int64_t rows, int64_t n, Generator& g) { return cos(randn({rows, n}, f64, &g)); }},
      {"P(|x| < 1), x ~ N(0, I_2)", p_disc, std::sqrt(p_disc * (1 - p_disc)),
       [](int64_t rows, int64_t n, Generator& g) {
         Tensor x1 = randn({rows, n}, f64, &g), x2 = randn({rows, n}, f64, &g);
         return to(x1 * x1 + x2 * x2 < 1.0, DType::Float64);
       }},
      {"pi = 4 P(u1^2 + u2^2 < 1), u ~ U[0,1]^2", M_PI, 4 * std::sqrt(M_PI / 4 * (1 - M_PI / 4)),
       [](int64_t rows, int64_t n, Generator& g) {
         Tensor u1 = rand({rows, n}, f64, &g), u2 = rand({rows, n}, f64, &g);
         return 4.0 * to(u1 * u1 + u2 * u2 < 1.0, DType::Float64);
       }},
  };
}

McConvergence mc_convergence(const McTarget& target, const std::vector<int64_t>& ns, int64_t replications, uint64_t seed) {
  Generator gen(seed);
  McConvergence out;
  out.name = target.name, out.exact = target.exact, out.replications = replications, out.n = ns;
  const double R = static_cast<double>(replications);
  out.coverage_se = std::sqrt(0.95 * 0.05 / R);
  std::vector<double> log_n, log_rmse, log_rmse_var;
  for (int64_t n : ns) {
    // R independent n-sample estimates, a block of rows at a time to bound the memory
    std::vector<double> sq_err, covered;
    const int64_t block = std::max<int64_t>(1, (int64_t{1} << 20) / n);
    for (int64_t done = 0; done < replications; done += block) {
      int64_t rows = std::min(block, replications - done);
      Tensor f = target.draw(rows, n, gen);                                // (rows, n)
      Tensor err = mean(f, {1}) - target.exact;                            // (rows)
      Tensor half_width = 1.96 * std(f, {1}) / std::sqrt(double(n));       // CLT 95% interval
      for (double e : square(err).to_vector<double>()) sq_err.push_back(e);
      for (double c : to(abs(err) <= half_width, DType::Float64).to_vector<double>()) covered.push_back(c);
    }
    double mse = 0, cov = 0;
    for (size_t i = 0; i < sq_err.size(); ++i) mse += sq_err[i] / R, cov += covered[i] / R;
    double var_sq = 0;  // spread of the squared errors -> uncertainty of log10 RMSE (delta method)
    for (double e : sq_err) var_sq += (e - mse) * (e - mse) / (R - 1);
    out.rmse.push_back(std::sqrt(mse));
    out.rmse_theory.push_back(target.sd / std::sqrt(double(n)));
    out.coverage.push_back(cov);
    log_n.push_back(std::log10(double(n)));
    log_rmse.push_back(0.5 * std::log10(mse));
    // sd(log10 RMSE) = sd(MSE estimate) / (2 ln 10 MSE), sd(MSE estimate) = sqrt(var_sq / R)
    double sd = std::sqrt(var_sq / R) / (2 * std::log(10.0) * mse);
    log_rmse_var.push_back(sd * sd);
  }
  // ordinary least squares in log10-log10 space; its slope's variance from the points' variances
  const double k = static_cast<double>(log_n.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < log_n.size(); ++i) mx += log_n[i] / k, my += log_rmse[i] / k;
  double sxx = 0, sxy = 0, var_num = 0;
  for (size_t i = 0; i < log_n.size(); ++i) {
    sxx += (log_n[i] - mx) * (log_n[i] - mx);
    sxy += (log_n[i] - mx) * (log_rmse[i] - my);
    var_num += (log_n[i] - mx) * (log_n[i] - mx) * log_rmse_var[i];
  }
  out.slope = sxy / sxx;
  out.intercept = my - out.slope * mx;
  out.slope_se = std::sqrt(var_num) / sxx;
  return out;
}

RunningEstimate mc_running_estimate(const McTarget& target, int64_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<double> f = target.draw(1, n, gen).to_vector<double>();
  RunningEstimate out;
  out.name = target.name, out.exact = target.exact;
  double sum = 0, sum_sq = 0;
  int64_t next = 10;
  for (int64_t i = 1; i <= n; ++i) {
    sum += f[i - 1], sum_sq += f[i - 1] * f[i - 1];
    if (i == next || i == n) {
      double m = sum / double(i), v = (sum_sq - double(i) * m * m) / double(i - 1);
      double h = 1.96 * std::sqrt(std::max(v, 0.0) / double(i));
      out.n.push_back(double(i)), out.estimate.push_back(m), out.lo.push_back(m - h), out.hi.push_back(m + h);
      next = std::max(next + 1, static_cast<int64_t>(double(next) * 1.05));  // log-spaced points
    }
  }
  return out;
}

// ---- change of variables -------------------------------------------------------------------------

namespace {
double std_normal_log_density(double x) { return -0.5 * x * x - 0.5 * kLog2Pi; }
}  // namespace

std::vector<InvertibleMap> cov_maps_1d() {
  std::vector<InvertibleMap> maps;
  auto x0 = [](const std::vector<double>& y) { return y[0]; };
  {
    InvertibleMap m;
    m.name = "exp", m.formula = "y = exp(x)  (log-normal)", m.dim = 1;
    m.forward = [](const Tensor& x) { return exp(x); };
    m.inverse = [](const Tensor& y) { return log(y); };
    m.exact_log_density = [x0](const std::vector<double>& y) {  // log-normal(0, 1)
      double v = x0(y);
      return std_normal_log_density(std::log(v)) - std::log(v);
    };
    m.lo[0] = 0, m.hi[0] = 5;
    maps.push_back(m);
  }
  {
    InvertibleMap m;
    m.name = "sigmoid", m.formula = "y = sigmoid(2x)  (logit-normal)", m.dim = 1;
    m.forward = [](const Tensor& x) { return sigmoid(2.0 * x); };
    m.inverse = [](const Tensor& y) { return 0.5 * (log(y) - log(1.0 - y)); };
    m.exact_log_density = [x0](const std::vector<double>& y) {  // logit(y) ~ N(0, 2^2)
      double v = x0(y), z = std::log(v / (1 - v));
      return std_normal_log_density(z / 2) - std::log(2.0) - std::log(v) - std::log(1 - v);
    };
    m.lo[0] = 0, m.hi[0] = 1;
    maps.push_back(m);
  }
  {
    InvertibleMap m;
    m.name = "affine", m.formula = "y = 0.5 x + 1  (N(1, 0.5^2))", m.dim = 1;
    m.forward = [](const Tensor& x) { return 0.5 * x + 1.0; };
    m.inverse = [](const Tensor& y) { return 2.0 * (y - 1.0); };
    m.exact_log_density = [x0](const std::vector<double>& y) {
      return std_normal_log_density((x0(y) - 1) / 0.5) - std::log(0.5);
    };
    m.lo[0] = -1, m.hi[0] = 3;
    maps.push_back(m);
  }
  return maps;
}

std::vector<InvertibleMap> cov_maps_2d(uint64_t seed) {
  std::vector<InvertibleMap> maps;
  {
    // A random matrix, redrawn until it is comfortably invertible.
    Generator gen(seed);
    std::vector<double> a;
    auto well_conditioned = [](const std::vector<double>& m) {  // |det| / (squared Frobenius norm / 2) is 1 for a rotation
      return std::abs(m[0] * m[3] - m[1] * m[2]) > 0.3 * (m[0] * m[0] + m[1] * m[1] + m[2] * m[2] + m[3] * m[3]) / 2;
    };
    do a = randn({2, 2}, f64, &gen).to_vector<double>();
    while (!well_conditioned(a));
    const double b[2] = {0.5, -0.5};
    Tensor A = from_vector(a, {2, 2}), bias = tensor({b[0], b[1]}, f64), A_inv = linalg::inv(A);
    // y ~ N(b, S), S = A A^T, written out for 2x2
    const double s11 = a[0] * a[0] + a[1] * a[1], s12 = a[0] * a[2] + a[1] * a[3], s22 = a[2] * a[2] + a[3] * a[3];
    const double det = s11 * s22 - s12 * s12;
    InvertibleMap m;
    m.name = "affine", m.dim = 2;
    char formula[160];
    std::snprintf(formula, sizeof formula, "y = A x + b, A = [[%.2f, %.2f], [%.2f, %.2f]], b = (%.1f, %.1f)", a[0], a[1], a[2],
                  a[3], b[0], b[1]);
    m.formula = formula;
    m.forward = [A, bias](const Tensor& x) { return matmul(x, A.t()) + bias; };
    m.inverse = [A_inv, bias](const Tensor& y) { return matmul(A_inv, y - bias); };
    m.exact_log_density = [=](const std::vector<double>& y) {
      double d1 = y[0] - b[0], d2 = y[1] - b[1];
      double quad = (s22 * d1 * d1 - 2 * s12 * d1 * d2 + s11 * d2 * d2) / det;
      return -0.5 * quad - 0.5 * std::log(det) - kLog2Pi;
    };
    const double r1 = 3.5 * std::sqrt(s11), r2 = 3.5 * std::sqrt(s22);
    m.lo[0] = b[0] - r1, m.hi[0] = b[0] + r1, m.lo[1] = b[1] - r2, m.hi[1] = b[1] + r2;
    maps.push_back(m);
  }
  {
    InvertibleMap m;
    m.name = "sinh", m.formula = "y_i = sinh(x_i)", m.dim = 2;
    m.forward = [](const Tensor& x) { return 0.5 * (exp(x) - exp(-x)); };
    m.inverse = [](const Tensor& y) { return log(y + sqrt(y * y + 1.0)); };  // asinh
    m.exact_log_density = [](const std::vector<double>& y) {  // independent coordinates
      double lp = 0;
      for (double v : y) lp += std_normal_log_density(std::asinh(v)) - 0.5 * std::log1p(v * v);
      return lp;
    };
    m.lo[0] = m.lo[1] = -4, m.hi[0] = m.hi[1] = 4;
    maps.push_back(m);
  }
  {
    // coupling: y1 = x1, y2 = x2 exp(s(x1)) + t(x1), s(x1) = 0.3 x1 - 0.8, t(x1) = x1^2 - 1;
    // so y1 ~ N(0, 1) and y2 | y1 ~ N(t(y1), exp(2 s(y1))): a banana.
    InvertibleMap m;
    m.name = "coupling", m.formula = "y = (x1, x2 exp(0.3 x1 - 0.8) + x1^2 - 1)", m.dim = 2;
    m.forward = [](const Tensor& x) {
      Tensor x1 = narrow(x, 1, 0, 1), x2 = narrow(x, 1, 1, 1);  // (N, 1) each
      return cat({x1, x2 * exp(0.3 * x1 - 0.8) + square(x1) - 1.0}, 1);
    };
    m.inverse = [](const Tensor& y) {
      Tensor y1 = narrow(y, 0, 0, 1), y2 = narrow(y, 0, 1, 1);
      return cat({y1, (y2 - square(y1) + 1.0) * exp(0.8 - 0.3 * y1)}, 0);
    };
    m.exact_log_density = [](const std::vector<double>& y) {
      double s = 0.3 * y[0] - 0.8, t = y[0] * y[0] - 1;
      return std_normal_log_density(y[0]) + std_normal_log_density((y[1] - t) * std::exp(-s)) - s;
    };
    m.lo[0] = -3, m.hi[0] = 3, m.lo[1] = -2, m.hi[1] = 6;
    maps.push_back(m);
  }
  return maps;
}

double cov_log_density(const InvertibleMap& map, const std::vector<double>& y) {
  Tensor yt = from_vector(y, {map.dim}, /*requires_grad=*/true);
  Tensor J = jacobian(map.inverse, yt);                 // d f^-1(y) / dy: (d, d)
  double log_abs_det = linalg::slogdet(J).logabsdet.item();
  std::vector<double> x = map.inverse(yt.detach()).to_vector<double>();
  double log_px = 0;
  for (double v : x) log_px += std_normal_log_density(v);  // x ~ N(0, I)
  return log_px + log_abs_det;
}

CovCheck check_change_of_variables(const InvertibleMap& map, int64_t n, int64_t bins, uint64_t seed) {
  CovCheck out;
  out.name = map.name, out.n = n, out.bins = bins;
  const int d = map.dim;
  const double w0 = (map.hi[0] - map.lo[0]) / double(bins);
  const double w1 = d == 2 ? (map.hi[1] - map.lo[1]) / double(bins) : 1.0;
  // The grid: 1-D, 4 points per bin; 2-D, the bin centres (row-major, y2 outer).
  const int64_t g0 = d == 1 ? 4 * bins : bins, g1 = d == 2 ? bins : 1;
  for (int64_t j = 0; j < g1; ++j)
    for (int64_t i = 0; i < g0; ++i) {
      std::vector<double> y = {map.lo[0] + (double(i) + 0.5) * (map.hi[0] - map.lo[0]) / double(g0)};
      if (d == 2) y.push_back(map.lo[1] + (double(j) + 0.5) * w1);
      double by_theorem = cov_log_density(map, y), exact = map.exact_log_density(y);
      out.max_abs_log_diff = std::max(out.max_abs_log_diff, std::abs(by_theorem - exact));
      if (d == 1) out.grid.push_back(y[0]);
      out.density_cov.push_back(std::exp(by_theorem));
      out.density_exact.push_back(std::exp(exact));
    }
  out.grid_points = g0 * g1;

  // n samples y = f(x), x ~ N(0, I), counted in bins (the last bin: outside the box)
  Generator gen(seed);
  std::vector<double> y = map.forward(randn({n, d}, f64, &gen)).to_vector<double>();
  const int64_t cells = d == 1 ? bins : bins * bins;
  std::vector<double> count(cells + 1, 0.0);
  for (int64_t s = 0; s < n; ++s) {
    double u = (y[s * d] - map.lo[0]) / w0, v = d == 2 ? (y[s * d + 1] - map.lo[1]) / w1 : 0.5;
    bool inside = u >= 0 && u < double(bins) && v >= 0 && v < (d == 2 ? double(bins) : 1.0);
    count[inside ? int64_t(v) * bins + int64_t(u) : cells] += 1;
  }
  // the probability of each bin: the density integrated over it (midpoint rule, 8 points per side)
  constexpr int sub = 8;
  std::vector<double> prob(cells + 1, 0.0);
  double inside_mass = 0;
  for (int64_t c = 0; c < cells; ++c) {
    int64_t i = c % bins, j = c / bins;
    double p = 0;
    for (int a = 0; a < sub; ++a)
      for (int b = 0; b < (d == 2 ? sub : 1); ++b) {
        std::vector<double> pt = {map.lo[0] + (double(i) + (a + 0.5) / sub) * w0};
        if (d == 2) pt.push_back(map.lo[1] + (double(j) + (b + 0.5) / sub) * w1);
        p += std::exp(map.exact_log_density(pt));
      }
    prob[c] = p * w0 * w1 / (d == 2 ? sub * sub : sub);
    inside_mass += prob[c];
  }
  prob[cells] = std::max(0.0, 1 - inside_mass);
  int64_t used = 0;
  for (int64_t c = 0; c <= cells; ++c) {
    double expected = double(n) * prob[c];
    if (expected < 5) continue;
    out.chi2 += (count[c] - expected) * (count[c] - expected) / expected;
    ++used;
  }
  out.dof = used - 1;
  for (int64_t c = 0; c < cells; ++c) out.hist_density.push_back(count[c] / (double(n) * w0 * w1));
  return out;
}

// ---- LOTUS ---------------------------------------------------------------------------------------

std::vector<LotusRow> lotus_examples(int64_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<LotusRow> rows;
  auto row = [&](const char* description, const Tensor& g_y, const Tensor& g_fx, double exact) {
    MeanSe a = mean_se(g_y), b = mean_se(g_fx);
    rows.push_back({description, a.mean, a.se, b.mean, b.se, exact});
  };
  {
    // x ~ N(0, I_2), y = |x|^2 ~ Exponential(rate 1/2), drawn directly as -2 log u; g(y) = sqrt(y)
    Tensor x = randn({n, 2}, f64, &gen);
    Tensor u = 1.0 - rand({n}, f64, &gen);
    row("y = |x|^2, x ~ N(0, I_2); y ~ Exp(1/2) = -2 log u; g(y) = sqrt(y)", sqrt(-2.0 * log(u)),
        sqrt(sum(x * x, {1})), std::sqrt(M_PI / 2));
  }
  {
    // x ~ N(0, 1), y = Phi(x) ~ U(0, 1) (probability integral transform); g(y) = y^2
    Tensor x = randn({n}, f64, &gen);
    Tensor y = rand({n}, f64, &gen);
    Tensor phi = 0.5 * (1.0 + erf(x / std::sqrt(2.0)));
    row("y = Phi(x), x ~ N(0, 1); y ~ U(0, 1); g(y) = y^2", square(y), square(phi), 1.0 / 3);
  }
  {
    // x ~ U(0, 1), y = -log x ~ Exp(1), drawn directly as (z1^2 + z2^2) / 2; g(y) = cos(y)
    Tensor x = 1.0 - rand({n}, f64, &gen);
    Tensor z = randn({n, 2}, f64, &gen);
    row("y = -log x, x ~ U(0, 1); y ~ Exp(1) = (z1^2 + z2^2) / 2; g(y) = cos y", cos(0.5 * sum(z * z, {1})),
        cos(-log(x)), 0.5);
  }
  return rows;
}

// ---- Dirac delta ---------------------------------------------------------------------------------

DiracDelta dirac_delta_limit(double x0, const std::vector<double>& sigmas, int64_t n, uint64_t seed) {
  Generator gen(seed);
  DiracDelta out;
  out.x0 = x0, out.f_x0 = std::sin(x0) + x0 * x0;
  auto f = [](const Tensor& x) { return sin(x) + square(x); };
  for (double s : sigmas) {
    // antithetic pairs x0 +- s eps: their odd terms in s cancel, so the Monte-Carlo noise (~ s^2 / sqrt(n)
    // instead of ~ s / sqrt(n)) does not hide the s^2 trend of the error
    Tensor eps = randn({n / 2}, f64, &gen);
    MeanSe m = mean_se(0.5 * (f(x0 + s * eps) + f(x0 - s * eps)));
    DiracRow r;
    r.sigma = s;
    r.exact = std::sin(x0) * std::exp(-s * s / 2) + x0 * x0 + s * s;  // E sin x = sin(x0) e^{-s^2/2}
    r.mc = m.mean, r.mc_se = m.se;
    r.error = std::abs(r.exact - out.f_x0);
    out.rows.push_back(r);
  }
  return out;
}

}  // namespace dgm::lecture01
