// Lecture 1, course tricks: the report section and the figures (the numbers come from tricks.cpp).
#include <cmath>

#include <dgm/lectures/common/figures.h>
#include <dgm/lectures/lecture01/lecture01.h>
#include <dgm/lectures/lecture01/tricks.h>
#include <dgm/tools/plot.h>

namespace dgm::lecture01 {

namespace {

using tools::Figure;
using tools::Style;

using namespace lectures;  // the palette, colored(), density_curve()

void log_derivative(Chapter& ch, uint64_t seed) {
  ch.section("Log-derivative trick", "\\nabla \\log f(\\mathbf{x}) = \\frac{1}{f(\\mathbf{x})} \\nabla f(\\mathbf{x})",
             "grad log f(x) = grad f(x) / f(x)");
  ch.text("Autograd differentiates $\\log f$ directly; we compare with $\\nabla f / f$ at a random "
          "$\\mathbf{x} \\in \\mathbb{R}^3$ (float64).",
          "autograd through log f against grad f / f at a random x in R^3 (float64):");
  Table t{{"f(x)", "max |grad log f - grad f / f|"}, {}};
  for (const LogDerivativeCheck& c : check_log_derivative(seed)) t.rows.push_back({c.formula, strf("%.1e", c.max_abs_diff)});
  ch.table(t);

  const double mu = 1.5, sigma = 1.0;
  const int64_t n = 100000;
  ScoreVsReparam r = score_vs_reparam(mu, sigma, n, seed + 1);
  ch.text(strf("**What it is for:** the gradient of an expectation over a distribution with parameters, "
               "$\\nabla_\\theta \\mathbb{E}_{p(x|\\theta)} f(x) = \\mathbb{E}_{p(x|\\theta)}\\left[f(x) \\nabla_\\theta \\log p(x|\\theta)\\right]$ "
               "(the score-function or REINFORCE estimator). For $x \\sim \\mathcal{N}(\\mu, \\sigma^2)$ and $f(x) = x^2$ "
               "we know $\\mathbb{E} f = \\mu^2 + \\sigma^2$, so the gradient is $(2\\mu, 2\\sigma)$. The reparameterisation "
               "$x = \\mu + \\sigma\\varepsilon$ gives a second unbiased estimator, $\\mathbb{E}_\\varepsilon \\nabla_\\theta f(\\mu + \\sigma\\varepsilon)$. "
               "$\\mu = %.1f$, $\\sigma = %.1f$, $n = %lld$ samples; the variances of the per-sample terms are also derived in closed form "
               "(moments of $\\varepsilon$: 1, 3, 15, 105).",
               mu, sigma, static_cast<long long>(n)),
          strf("What it is for: d/dtheta E_{N(mu, sigma^2)} x^2 = (2 mu, 2 sigma), mu = %.1f, sigma = %.1f, n = %lld:\n"
               "  score function  E[f(x) grad log p(x|theta)]   vs   reparameterisation  E[grad f(mu + sigma eps)]",
               mu, sigma, static_cast<long long>(n)));
  Table g{{"gradient", "estimator", "estimate", "exact", "error / s.e.", "variance (+- s.e.)", "exact variance"}, {}};
  auto row = [&](const char* what, const char* name, const GradientEstimate& e) {
    g.rows.push_back({what, name, strf("%.4f", e.estimate), strf("%.4f", e.exact),
                      strf("%+.2f", (e.estimate - e.exact) / e.std_error), strf("%.2f +- %.2f", e.variance, e.variance_se),
                      strf("%.2f", e.exact_variance)});
  };
  row("d/dmu", "score function", r.score_mu);
  row("d/dmu", "reparameterisation", r.reparam_mu);
  row("d/dsigma", "score function", r.score_sigma);
  row("d/dsigma", "reparameterisation", r.reparam_sigma);
  ch.table(g);
  ch.text(strf("Both are unbiased; the score-function terms have %.0fx (mu) and %.0fx (sigma) the variance, so they need "
               "that many times more samples for the same accuracy. The score function needs only $\\log p$, not a "
               "differentiable $f$ (it works for discrete $x$); reparameterisation needs $x$ as a differentiable function of "
               "$\\theta$ — it is what VAEs use. (The score terms for $\\sigma$, a degree-4 polynomial in $\\varepsilon$ over "
               "$\\sigma$, have such heavy tails that their sample variance converges slowly and usually falls below the exact value.)",
               r.score_mu.variance / r.reparam_mu.variance, r.score_sigma.variance / r.reparam_sigma.variance),
          strf("Both unbiased; the score-function variance is %.0fx (mu) and %.0fx (sigma) larger.",
               r.score_mu.variance / r.reparam_mu.variance, r.score_sigma.variance / r.reparam_sigma.variance));

  // running means with 95% bands
  Figure fig(1, 2, 1200, 420);
  auto panel = [&](tools::Axes& ax, const GradientEstimate& score, const GradientEstimate& reparam, const char* title) {
    for (int k = 0; k < 2; ++k) {
      const GradientEstimate& e = k == 0 ? score : reparam;
      const char* color = k == 0 ? kOrange : kBlue;
      std::vector<double> ns, m, lo, hi;
      double s = 0, s2 = 0;
      int64_t next = 10;
      for (size_t i = 1; i <= e.terms.size(); ++i) {
        s += e.terms[i - 1], s2 += e.terms[i - 1] * e.terms[i - 1];
        if (int64_t(i) == next || i == e.terms.size()) {
          double mean = s / double(i), sd = std::sqrt(std::max(s2 / double(i) - mean * mean, 0.0));
          ns.push_back(double(i)), m.push_back(mean);
          lo.push_back(mean - 1.96 * sd / std::sqrt(double(i))), hi.push_back(mean + 1.96 * sd / std::sqrt(double(i)));
          next = std::max(next + 1, int64_t(double(next) * 1.08));
        }
      }
      ax.plot(ns, m, k == 0 ? "score function" : "reparameterisation", colored(color));
      ax.plot(ns, lo, "", colored(color, true, 0.8)).plot(ns, hi, "", colored(color, true, 0.8));
    }
    ax.axhline(score.exact, "exact", colored("black", true, 1));
    ax.log_x().title(title).xlabel("samples n").ylabel("running estimate (dashed: 95% CLT band)");
    ax.ylim(score.exact - 3, score.exact + 3);
  };
  panel(fig.axes(0, 0), r.score_mu, r.reparam_mu, "d/dmu E x^2 = 2 mu");
  panel(fig.axes(0, 1), r.score_sigma, r.reparam_sigma, "d/dsigma E x^2 = 2 sigma");
  ch.figure(fig, "score_vs_reparam.svg", "running gradient estimates: score function (orange) vs reparameterisation (blue)");
}

void jensen(Chapter& ch, uint64_t seed) {
  ch.section("Jensen's inequality", "\\mathbb{E}[f(\\mathbf{x})] \\geq f(\\mathbb{E}[\\mathbf{x}]) \\quad (f \\text{ convex})",
             "E f(x) >= f(E x) for convex f");
  const int64_t n = 100000;
  Table t{{"f", "x ~", "E f(x) (MC +- 95%)", "E f(x) exact", "f(E x)", "gap"}, {}};
  for (const JensenRow& r : jensen_examples(n, seed))
    t.rows.push_back({r.f, r.distribution, strf("%.4f +- %.4f", r.mean_f, r.ci95), strf("%.4f", r.exact_mean_f),
                      strf("%.4f", r.f_of_mean), strf("%.4f", r.exact_mean_f - r.f_of_mean)});
  ch.table(t);
  ch.text(strf("$n = %lld$ samples each. Jensen also holds for the sample itself (the empirical distribution): "
               "$\\frac1n\\sum f(x_i) \\ge f(\\frac1n \\sum x_i)$ for every sample.",
               static_cast<long long>(n)),
          "(It also holds exactly for every sample: mean f(x_i) >= f(mean x_i).)");

  const std::vector<double> spreads = {0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5};
  JensenLogGap gap = jensen_log_gap(spreads, n, seed + 1);
  ch.text("**The gap for log** (concave, so the inequality flips): $\\mathbb{E} \\log x \\le \\log \\mathbb{E} x$. "
          "For $x = e^z$, $z \\sim \\mathcal{N}(0, s^2)$ the gap is exactly $-s^2/2$: it grows with the spread of $x$. "
          "Every lower bound of the course (the ELBO of VAEs) has this shape: $\\log \\mathbb{E}_q \\frac{p}{q} \\ge \\mathbb{E}_q \\log \\frac{p}{q}$, "
          "tight when the ratio does not vary.",
          "The gap for log: E log x <= log E x; for x = exp(z), z ~ N(0, s^2) it is exactly -s^2/2 (the shape of the ELBO):");
  Table tg{{"s", "E log x - log E x (MC +- 95%)", "exact -s^2/2"}, {}};
  for (size_t i = 0; i < spreads.size(); ++i)
    tg.rows.push_back({strf("%.2f", spreads[i]), strf("%.5f +- %.5f", gap.gap[i], gap.ci95[i]), strf("%.5f", gap.exact_gap[i])});
  ch.table(tg);

  Figure fig(1, 2, 1200, 420);
  {
    // the picture of Jensen for a concave f = log: points on the curve, their mean below it
    Generator gen(seed + 2);
    std::vector<double> z = randn({400}, {.dtype = DType::Float64}, &gen).to_vector<double>();  // s = 1
    std::vector<double> xs, ys;
    double mx = 0, my = 0;
    for (double v : z) xs.push_back(std::exp(v)), ys.push_back(v), mx += std::exp(v) / 400, my += v / 400;
    std::vector<double> cx, cy;
    for (int i = 1; i <= 200; ++i) cx.push_back(i * 0.05), cy.push_back(std::log(i * 0.05));
    Style pts = Style::markers_only();
    pts.color = kBlue, pts.alpha = 0.25, pts.marker_size = 2.5;
    tools::Axes& ax = fig.axes(0, 0);
    ax.scatter(xs, ys, "samples (x_i, log x_i), s = 1", pts).plot(cx, cy, "log x", colored("black"));
    Style big = Style::markers_only(tools::Marker::Square);
    big.color = kRed, big.marker_size = 5;
    ax.scatter({mx}, {my}, "(mean x, mean log x)", big);
    big.color = kGreen, big.marker = tools::Marker::Circle;
    ax.scatter({mx}, {std::log(mx)}, "(mean x, log mean x)", big);
    ax.xlim(0, 10).ylim(-3.5, 3).title("concave log: the mean of the points lies below the curve").xlabel("x").ylabel("log x");
  }
  {
    std::vector<double> fine_s, fine_gap;
    for (int i = 0; i <= 80; ++i) fine_s.push_back(i * 1.6 / 80), fine_gap.push_back(-0.5 * (i * 1.6 / 80) * (i * 1.6 / 80));
    tools::Axes& ax = fig.axes(0, 1);
    ax.plot(fine_s, fine_gap, "exact -s^2/2", colored("black"));
    Style m = Style::markers_only();
    m.color = kRed;
    ax.plot(spreads, gap.gap, "Monte Carlo (n = 1e5)", m);
    std::vector<double> lo, hi;
    for (size_t i = 0; i < spreads.size(); ++i) lo.push_back(gap.gap[i] - gap.ci95[i]), hi.push_back(gap.gap[i] + gap.ci95[i]);
    ax.plot(spreads, lo, "95% interval", colored(kRed, true, 0.8)).plot(spreads, hi, "", colored(kRed, true, 0.8));
    ax.title("E log x - log E x for x = exp(N(0, s^2))").xlabel("spread s").ylabel("gap (nats)");
  }
  ch.figure(fig, "jensen.svg", "Jensen's inequality for log: a picture, and the gap against the spread");
}

void monte_carlo(Chapter& ch, uint64_t seed) {
  ch.section("Monte-Carlo estimation",
             "\\mathbb{E}_{p(\\mathbf{x})}\\mathbf{f}(\\mathbf{x}) = \\int p(\\mathbf{x})\\mathbf{f}(\\mathbf{x})d\\mathbf{x} \\approx "
             "\\frac{1}{n} \\sum_{i=1}^n \\mathbf{f}(\\mathbf{x}_i), \\quad \\mathbf{x}_i \\sim p(\\mathbf{x})",
             "E_p f(x) ~ (1/n) sum_i f(x_i), x_i ~ p");
  const std::vector<int64_t> ns = {10, 30, 100, 300, 1000, 3000, 10000};
  const int64_t R = 1000;
  ch.text(strf("Four expectations with known values, each estimated %lld times independently for every $n$. The error of "
               "an $n$-sample mean has standard deviation $\\mathrm{sd}(f)/\\sqrt{n}$, so on a log-log plot the RMSE falls "
               "with slope $-1/2$; by the CLT the interval $\\bar f \\pm 1.96\\, s/\\sqrt{n}$ covers the truth 95%% of the time "
               "(coverage standard error $\\sqrt{0.95 \\cdot 0.05 / R} = %.4f$). The slope's standard error comes from the "
               "spread of the squared errors (delta method).",
               static_cast<long long>(R), std::sqrt(0.95 * 0.05 / double(R))),
          strf("R = %lld replications per n; RMSE ~ sd(f)/sqrt(n) (slope -1/2), CLT 95%% intervals (coverage s.e. %.4f):",
               static_cast<long long>(R), std::sqrt(0.95 * 0.05 / double(R))));
  std::vector<McTarget> targets = mc_targets();
  std::vector<McConvergence> conv;
  Table t{{"expectation", "exact", "RMSE n=10", "RMSE n=1e4", "slope (s.e.)", "coverage n=10", "n=100", "n=1e4"}, {}};
  for (size_t k = 0; k < targets.size(); ++k) {
    conv.push_back(mc_convergence(targets[k], ns, R, seed + 10 + k));
    const McConvergence& c = conv.back();
    t.rows.push_back({c.name, strf("%.4f", c.exact), strf("%.4f", c.rmse.front()), strf("%.5f", c.rmse.back()),
                      strf("%.3f (%.3f)", c.slope, c.slope_se), strf("%.3f", c.coverage[0]), strf("%.3f", c.coverage[2]),
                      strf("%.3f", c.coverage.back())});
  }
  ch.table(t);
  ch.text("At $n = 10$ the coverage of the skewed estimands ($x^2$, the indicator of a small disc) is below 0.95: the CLT is "
          "an approximation for large $n$, and $s$ is noisy for small $n$.",
          "(At n = 10 the skewed estimands undercover: the CLT is a large-n statement.)");

  RunningEstimate run = mc_running_estimate(targets[3], 100000, seed + 20);
  ch.text(strf("One growing sample for $\\pi$: after $n = 10^5$ draws the estimate is %.5f, error %+.5f, 95%% interval "
               "[%.4f, %.4f].",
               run.estimate.back(), run.estimate.back() - M_PI, run.lo.back(), run.hi.back()),
          strf("One growing sample for pi: n = 1e5 gives %.5f (error %+.5f), 95%% interval [%.4f, %.4f]", run.estimate.back(),
               run.estimate.back() - M_PI, run.lo.back(), run.hi.back()));

  Figure fig(1, 3, 1650, 440);
  const char* colors[] = {kBlue, kOrange, kGreen, kRed};
  std::vector<double> nd(ns.begin(), ns.end());
  {
    tools::Axes& ax = fig.axes(0, 0);
    for (size_t k = 0; k < conv.size(); ++k) {
      Style m = Style::markers_only();
      m.color = colors[k];
      ax.plot(nd, conv[k].rmse, strf("%s: slope %.3f", conv[k].name.c_str(), conv[k].slope), m);
      std::vector<double> fit;
      for (double v : nd) fit.push_back(std::pow(10.0, conv[k].intercept + conv[k].slope * std::log10(v)));
      ax.plot(nd, fit, "", colored(colors[k], false, 1));
    }
    ax.loglog().legend(tools::LegendLoc::LowerLeft);
    ax.title(strf("RMSE of the n-sample mean (R = %lld); lines: fitted", static_cast<long long>(R))).xlabel("n").ylabel("RMSE");
  }
  {
    tools::Axes& ax = fig.axes(0, 1);
    for (size_t k = 0; k < conv.size(); ++k) {
      Style m;
      m.color = colors[k], m.marker = tools::Marker::Circle;
      ax.plot(nd, conv[k].coverage, conv[k].name, m);
    }
    double se = conv[0].coverage_se;
    ax.axhline(0.95, "0.95", colored("black", false, 1));
    ax.axhline(0.95 - 2 * se, "+- 2 s.e.", colored("gray", true, 1)).axhline(0.95 + 2 * se, "", colored("gray", true, 1));
    ax.log_x().ylim(0.8, 0.98).title("coverage of the CLT 95% interval").xlabel("n").ylabel("fraction covering the truth");
  }
  {
    tools::Axes& ax = fig.axes(0, 2);
    ax.plot(run.n, run.estimate, "running estimate", colored(kBlue));
    ax.plot(run.n, run.lo, "95% interval", colored(kBlue, true, 0.8)).plot(run.n, run.hi, "", colored(kBlue, true, 0.8));
    ax.axhline(M_PI, "pi", colored("black", true, 1));
    ax.log_x().ylim(2.0, 4.2).title("pi = 4 P(u1^2 + u2^2 < 1)").xlabel("n").ylabel("estimate");
  }
  ch.figure(fig, "monte_carlo.svg", "Monte-Carlo error against n (slope -1/2), CLT coverage, and a running estimate of pi");
}

void change_of_variables(Chapter& ch, uint64_t seed) {
  ch.section("Change of variables",
             "p(\\mathbf{y}) = p(\\mathbf{f}^{-1}(\\mathbf{y})) \\left| \\det \\left( \\frac{\\partial \\mathbf{f}^{-1}(\\mathbf{y})}{\\partial "
             "\\mathbf{y}} \\right) \\right|",
             "p(y) = p(f^-1(y)) |det d f^-1(y) / dy|");
  ch.text("$\\mathbf{x} \\sim \\mathcal{N}(0, I)$ is pushed through invertible maps. The density of $\\mathbf{y}$ by the theorem "
          "takes the Jacobian of $\\mathbf{f}^{-1}$ from autograd (`dgm::jacobian`) and its log-determinant from "
          "`linalg::slogdet`. We compare it with the density known independently (a named distribution; for the coupling "
          "map, $y_1 \\sim \\mathcal{N}(0,1)$ times $y_2 | y_1 \\sim \\mathcal{N}(t(y_1), e^{2 s(y_1)})$) on a grid, and with a "
          "histogram of transformed samples (Pearson $\\chi^2$ over the bins with at least 5 expected samples, plus one bin "
          "for everything outside the box; if the density is right, $\\chi^2 \\approx \\mathrm{dof} \\pm \\sqrt{2\\,\\mathrm{dof}}$).",
          "x ~ N(0, I) through invertible maps; the theorem's density (Jacobian by autograd, slogdet) against the\n"
          "analytic density on a grid and a histogram of transformed samples (chi2 ~ dof +- sqrt(2 dof) if right):");
  std::vector<InvertibleMap> maps1 = cov_maps_1d(), maps2 = cov_maps_2d(seed);
  std::vector<CovCheck> c1, c2;
  Table t{{"map", "d", "max |log p_theorem - log p_exact|", "samples", "chi2 / dof"}, {}};
  for (size_t k = 0; k < maps1.size(); ++k) c1.push_back(check_change_of_variables(maps1[k], 200000, 60, seed + 1 + k));
  for (size_t k = 0; k < maps2.size(); ++k) c2.push_back(check_change_of_variables(maps2[k], 200000, 40, seed + 10 + k));
  for (size_t k = 0; k < maps1.size(); ++k)
    t.rows.push_back({maps1[k].formula, "1", strf("%.1e (%lld points)", c1[k].max_abs_log_diff, (long long)c1[k].grid_points),
                      strf("%lld", (long long)c1[k].n), strf("%.1f / %lld", c1[k].chi2, (long long)c1[k].dof)});
  for (size_t k = 0; k < maps2.size(); ++k)
    t.rows.push_back({maps2[k].formula, "2", strf("%.1e (%lld points)", c2[k].max_abs_log_diff, (long long)c2[k].grid_points),
                      strf("%lld", (long long)c2[k].n), strf("%.1f / %lld", c2[k].chi2, (long long)c2[k].dof)});
  ch.table(t);

  Figure fig1(1, 3, 1650, 420);
  for (size_t k = 0; k < maps1.size(); ++k) {
    const CovCheck& c = c1[k];
    const InvertibleMap& m = maps1[k];
    std::vector<double> centers;
    double w = (m.hi[0] - m.lo[0]) / double(c.bins);
    for (int64_t b = 0; b < c.bins; ++b) centers.push_back(m.lo[0] + (double(b) + 0.5) * w);
    Style bars;
    bars.color = "#9ecae1";
    tools::Axes& ax = fig1.axes(0, int(k));
    ax.bar(centers, c.hist_density, "histogram of y = f(x)", bars, w);
    ax.plot(c.grid, c.density_cov, "theorem (autograd Jacobian)", colored(kBlue, false, 2));
    ax.plot(c.grid, c.density_exact, "analytic", colored(kRed, true, 1.5));
    ax.title(m.formula).xlabel("y").ylabel("density");
  }
  ch.figure(fig1, "change_of_variables_1d.svg", "1-D maps of x ~ N(0, 1): histogram of samples, the theorem's density, the analytic one");

  Figure fig2(3, 2, 1100, 1350);
  for (size_t k = 0; k < maps2.size(); ++k) {
    const CovCheck& c = c2[k];
    const InvertibleMap& m = maps2[k];
    for (int col = 0; col < 2; ++col) {
      tools::Heatmap h;
      h.values = col == 0 ? c.density_cov : c.hist_density;
      h.nx = h.ny = c.bins;
      h.x_min = m.lo[0], h.x_max = m.hi[0], h.y_min = m.lo[1], h.y_max = m.hi[1];
      h.v_min = 0;
      double vmax = 0;
      for (double v : c.density_cov) vmax = std::max(vmax, v);
      h.v_max = vmax;
      h.colorbar_label = "density";
      fig2.axes(int(k), col)
          .heatmap(h)
          .title(col == 0 ? m.name + ": the theorem's density" : m.name + ": histogram of 200k samples")
          .xlabel("y1")
          .ylabel("y2");
    }
  }
  ch.figure(fig2, "change_of_variables_2d.svg", "2-D maps of x ~ N(0, I): the theorem's density (left) and a histogram of samples (right)");
}

void lotus(Chapter& ch, uint64_t seed) {
  ch.section("Law of the unconscious statistician (LOTUS)",
             "\\mathbb{E}_{p(\\mathbf{y})}\\mathbf{g}(\\mathbf{y}) = \\int p(\\mathbf{y})\\mathbf{g}(\\mathbf{y})d\\mathbf{y} = "
             "\\int p(\\mathbf{x})\\mathbf{g}(\\mathbf{f}(\\mathbf{x}))d\\mathbf{x} = \\mathbb{E}_{p(\\mathbf{x})}\\mathbf{g}(\\mathbf{f}(\\mathbf{x}))",
             "E_p(y) g(y) = E_p(x) g(f(x))");
  const int64_t n = 200000;
  ch.text(strf("We never need the density of $y = f(x)$ to average over it: averaging $g(f(x_i))$ over samples of $x$ gives the "
               "same number as averaging $g(y_i)$ over samples drawn from $p(y)$ by a different route. $n = %lld$.",
               static_cast<long long>(n)),
          strf("averaging g(f(x_i)) over x ~ p(x) = averaging g(y_i) over y ~ p(y) drawn another way (n = %lld):",
               static_cast<long long>(n)));
  Table t{{"setting", "E g(y), y ~ p(y)", "E g(f(x)), x ~ p(x)", "exact"}, {}};
  for (const LotusRow& r : lotus_examples(n, seed))
    t.rows.push_back({r.description, strf("%.4f +- %.4f", r.via_y, 1.96 * r.via_y_se), strf("%.4f +- %.4f", r.via_x, 1.96 * r.via_x_se),
                      strf("%.4f", r.exact)});
  ch.table(t);
}

void dirac(Chapter& ch, uint64_t seed) {
  ch.section("Dirac delta",
             "\\mathbb{E}_{\\delta(\\mathbf{x} - \\mathbf{x}_0)}\\mathbf{f}(\\mathbf{x}) = \\int \\delta(\\mathbf{x} - \\mathbf{x}_0)"
             "\\mathbf{f}(\\mathbf{x})d\\mathbf{x} = \\mathbf{f}(\\mathbf{x}_0)",
             "E_{delta(x - x0)} f(x) = f(x0)");
  const double x0 = 1.0;
  const std::vector<double> sigmas = {1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.001};
  DiracDelta d = dirac_delta_limit(x0, sigmas, 100000, seed);
  ch.text(strf("A deterministic $x_0$ is the limit of $\\mathcal{N}(x_0, \\sigma^2)$ as $\\sigma \\to 0$. For $f(x) = \\sin x + x^2$, "
               "$\\mathbb{E} f(x) = \\sin(x_0) e^{-\\sigma^2/2} + x_0^2 + \\sigma^2 \\to f(x_0) = %.6f$ ($x_0 = %.0f$); the error "
               "shrinks like $\\sigma^2$. (The Monte-Carlo column uses antithetic pairs $x_0 \\pm \\sigma\\varepsilon$, whose odd terms "
               "cancel, so its noise shrinks with $\\sigma^2$ too.)",
               d.f_x0, x0),
          strf("x ~ N(x0, s^2), f(x) = sin x + x^2, x0 = %.0f: E f(x) -> f(x0) = %.6f as s -> 0, error ~ s^2", x0, d.f_x0));
  Table t{{"sigma", "E f(x) exact", "Monte Carlo (1e5 samples)", "|E f(x) - f(x0)|"}, {}};
  for (const DiracRow& r : d.rows)
    t.rows.push_back({strf("%g", r.sigma), strf("%.6f", r.exact), strf("%.6f +- %.6f", r.mc, 1.96 * r.mc_se), strf("%.2e", r.error)});
  ch.table(t);

  Figure fig(1, 2, 1200, 420);
  {
    tools::Axes& ax = fig.axes(0, 0);
    const char* colors[] = {kBlue, kOrange, kGreen, kRed};
    const double shown[] = {1, 0.5, 0.2, 0.1};
    for (int k = 0; k < 4; ++k) {
      std::vector<double> xs, ps;
      for (int i = 0; i <= 600; ++i) {
        double x = -2 + 6.0 * i / 600, z = (x - x0) / shown[k];
        xs.push_back(x), ps.push_back(std::exp(-0.5 * z * z) / (shown[k] * std::sqrt(2 * M_PI)));
      }
      ax.plot(xs, ps, strf("N(x0, %g^2)", shown[k]), colored(colors[k]));
    }
    ax.title("densities concentrating at x0 = 1").xlabel("x").ylabel("density");
  }
  {
    tools::Axes& ax = fig.axes(0, 1);
    std::vector<double> s, err, mc_err;
    for (const DiracRow& r : d.rows) s.push_back(r.sigma), err.push_back(r.error), mc_err.push_back(std::abs(r.mc - d.f_x0));
    ax.plot(s, err, "|E f(x) - f(x0)|, closed form", colored(kBlue));
    Style m = Style::markers_only();
    m.color = kRed;
    ax.plot(s, mc_err, "Monte Carlo (1e5 samples in antithetic pairs)", m);
    ax.loglog().title("E f(x) -> f(x0): error ~ sigma^2").xlabel("sigma").ylabel("error");
  }
  ch.figure(fig, "dirac.svg", "Gaussians with sigma -> 0 act as a Dirac delta");
}

}  // namespace

void write_tricks(Chapter& ch) {
  const uint64_t seed = ch.options().seed;
  log_derivative(ch, seed);
  jensen(ch, seed + 100);
  monte_carlo(ch, seed + 200);
  change_of_variables(ch, seed + 300);
  lotus(ch, seed + 400);
  dirac(ch, seed + 500);
}

}  // namespace dgm::lecture01
