// Lecture 1, divergence minimisation: the report section and the figures (numbers from divergences.cpp).
#include <cmath>

#include <dgm/autograd/ops.h>
#include <dgm/lectures/common/figures.h>
#include <dgm/lectures/lecture01/lecture01.h>
#include <dgm/lectures/lecture01/divergences.h>
#include <dgm/nn/distributions.h>
#include <dgm/tools/plot.h>

namespace dgm::lecture01 {

namespace {

using tools::Figure;
using tools::Style;

using namespace lectures;  // the palette, colored(), density_curve()

std::vector<double> grid(double lo, double hi, int points) {
  std::vector<double> xs;
  for (int i = 0; i < points; ++i) xs.push_back(lo + (hi - lo) * i / (points - 1));
  return xs;
}

void forward_reverse(Chapter& ch, uint64_t seed) {
  ch.section("Forward KL vs reverse KL",
             "KL(\\pi \\| p) = \\int \\pi(\\mathbf{x}) \\log \\frac{\\pi(\\mathbf{x})}{p(\\mathbf{x}|\\theta)} d\\mathbf{x} \\quad\\text{vs}\\quad "
             "KL(p \\| \\pi) = \\int p(\\mathbf{x}|\\theta) \\log \\frac{p(\\mathbf{x}|\\theta)}{\\pi(\\mathbf{x})} d\\mathbf{x}",
             "KL(pi || p) vs KL(p || pi)");
  const int64_t n_data = 5000, mc = 512, steps = 1500;
  ForwardVsReverse r = forward_vs_reverse(n_data, mc, steps, seed);
  ch.text(strf("One Gaussian $q = \\mathcal{N}(\\mu, \\sigma^2)$ is fitted to the two-mode mixture "
               "$\\pi = 0.5\\,\\mathcal{N}(-2, 0.5^2) + 0.5\\,\\mathcal{N}(2, 0.5^2)$, both from $\\mathcal{N}(0.5, 1)$ with Adam on "
               "$(\\mu, \\log\\sigma)$ (%lld steps, cosine-decayed learning rate). (a) Forward KL needs only samples of $\\pi$: "
               "it is the MLE on %lld samples. (b) Reverse KL needs $\\log \\pi$ and samples of $q$: %lld reparameterised samples "
               "$x = \\mu + \\sigma\\varepsilon$ per step. Both KLs of each fit are computed by quadrature.",
               (long long)steps, (long long)n_data, (long long)mc),
          strf("one Gaussian q fitted to pi = 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2): (a) forward KL = MLE on %lld samples, "
               "(b) reverse KL with %lld reparameterised samples of q per step and the known log pi",
               (long long)n_data, (long long)mc));
  Table t{{"fit", "mu", "sigma", "KL(pi || q)", "KL(q || pi)"}, {}};
  t.rows.push_back({"(a) forward KL (MLE)", strf("%.4f", r.forward.mu), strf("%.4f", r.forward.sigma), strf("%.4f", r.forward.forward_kl),
                    strf("%.4f", r.forward.reverse_kl)});
  t.rows.push_back({"    its closed form: sample mean, std", strf("%.4f", r.sample_mean), strf("%.4f", r.sample_std), "", ""});
  t.rows.push_back({"    the exact optimum: pi's mean, std", strf("%.4f", r.moment_mu), strf("%.4f", r.moment_sigma), "", ""});
  t.rows.push_back({"(b) reverse KL (reparameterised)", strf("%.4f", r.reverse.mu), strf("%.4f", r.reverse.sigma),
                    strf("%.4f", r.reverse.forward_kl), strf("%.4f", r.reverse.reverse_kl)});
  t.rows.push_back({"    its optimum by quadrature", strf("%.4f", r.reverse_opt_mu), strf("%.4f", r.reverse_opt_sigma), "",
                    strf("%.4f", r.reverse_opt_kl)});
  ch.table(t);
  ch.text(strf("**Mode covering:** the forward KL is infinite wherever $\\pi > 0$ and $q \\to 0$, so $q$ spreads over both modes: "
               "$\\mu \\approx 0$ (between them, where $\\pi$ has almost no mass) and $\\sigma \\approx %.2f$ (moment matching). "
               "**Mode seeking:** the reverse KL is infinite where $q > 0$ and $\\pi \\to 0$, so $q$ hides in one mode: "
               "$\\mu \\approx 2$, $\\sigma \\approx 0.5$; its KL $\\approx \\log 2 = %.4f$, the price of missing half of $\\pi$. "
               "Started at $\\mu < 0$ it would pick the other mode. Each fit is best in its own divergence and poor in the other.",
               r.moment_sigma, std::log(2.0)),
          strf("forward KL covers both modes (mu ~ 0, sigma ~ %.2f); reverse KL seeks one (mu ~ 2, sigma ~ 0.5, KL ~ log 2 = %.4f)",
               r.moment_sigma, std::log(2.0)));

  Figure fig(1, 2, 1300, 440);
  {
    std::vector<double> xs = grid(-5, 5, 501);
    tools::Axes& ax = fig.axes(0, 0);
    Style fill;
    fill.color = "#dddddd";
    ax.plot(xs, density_curve(xs, [&](double x) { return r.target.log_density(x); }), "pi (two modes)", colored("black", false, 2));
    auto normal = [](double mu, double s) {
      return [=](double x) { return -0.5 * (x - mu) * (x - mu) / (s * s) - std::log(s) - 0.5 * std::log(2 * M_PI); };
    };
    ax.plot(xs, density_curve(xs, normal(r.forward.mu, r.forward.sigma)), "q by forward KL (mode covering)", colored(kBlue));
    ax.plot(xs, density_curve(xs, normal(r.reverse.mu, r.reverse.sigma)), "q by reverse KL (mode seeking)", colored(kRed));
    ax.title("one Gaussian fitted to two modes").xlabel("x").ylabel("density");
  }
  {
    tools::Axes& ax = fig.axes(0, 1);
    ax.plot_indexed(r.forward.mu_path, "mu, forward KL", colored(kBlue));
    ax.plot_indexed(r.forward.sigma_path, "sigma, forward KL", colored(kBlue, true));
    ax.plot_indexed(r.reverse.mu_path, "mu, reverse KL", colored(kRed));
    ax.plot_indexed(r.reverse.sigma_path, "sigma, reverse KL", colored(kRed, true));
    ax.title("the parameters during training").xlabel("Adam step").ylabel("value");
  }
  ch.figure(fig, "forward_vs_reverse_kl.svg", "forward KL covers the modes, reverse KL seeks one");
}

void kl_props(Chapter& ch, uint64_t seed) {
  ch.section("KL divergence: properties",
             "KL(p \\| q) \\ge 0, \\quad KL(p \\| q) = 0 \\iff p \\equiv q, \\quad KL(p \\| q) \\ne KL(q \\| p); \\quad "
             "KL(\\mathcal{N}_1 \\| \\mathcal{N}_2) = \\log\\frac{\\sigma_2}{\\sigma_1} + \\frac{\\sigma_1^2 + (\\mu_1 - \\mu_2)^2}{2\\sigma_2^2} - \\frac12",
             "KL >= 0, = 0 iff p = q, asymmetric");
  const int64_t n = 100000;
  ch.text(strf("A divergence must be non-negative and vanish only at $p = q$; KL is one, but not a distance: it is asymmetric. "
               "Closed form for Gaussians against the Monte-Carlo estimate $\\frac1n \\sum \\log \\frac{p(x_i)}{q(x_i)}$, "
               "$x_i \\sim p$, $n = %lld$:",
               (long long)n),
          strf("Gaussian pairs: closed form vs Monte Carlo (n = %lld):", (long long)n));
  Table t{{"p", "q", "KL(p || q) closed form", "Monte Carlo +- 95%"}, {}};
  for (const KlPair& k : kl_gaussian_pairs(n, seed))
    t.rows.push_back({strf("N(%g, %g^2)", k.m1, k.s1), strf("N(%g, %g^2)", k.m2, k.s2), strf("%.4f", k.closed_form),
                      strf("%.4f +- %.4f", k.mc, 1.96 * k.mc_se)});
  ch.table(t);
  const int64_t pairs = 10000, classes = 10;
  KlProperties p = kl_properties(pairs, classes, seed + 1);
  ch.text(strf("Over %lld random pairs: the smallest KL between categorical distributions on %lld classes is %.2e and between "
               "Gaussians %.2e (both $\\ge 0$); $KL(p\\|p) = %.1e$; perturbing $p$'s logits by $10^{-3}$ still gives KL $\\ge %.1e > 0$; "
               "$|KL(p\\|q) - KL(q\\|p)|$ reaches %.1f.",
               (long long)pairs, (long long)classes, p.min_kl_categorical, p.min_kl_gaussian, p.max_self_kl, p.min_kl_near_equal,
               p.max_asymmetry),
          strf("%lld random pairs: min KL categorical %.2e, Gaussian %.2e; KL(p||p) = %.1e; near-equal min %.1e > 0; "
               "max asymmetry %.1f",
               (long long)pairs, p.min_kl_categorical, p.min_kl_gaussian, p.max_self_kl, p.min_kl_near_equal, p.max_asymmetry));

  Figure fig(1, 2, 1300, 440);
  {
    std::vector<double> s = grid(0.2, 3, 200), fwd, rev;
    for (double v : s) fwd.push_back(kl_normal(0, 1, 0, v)), rev.push_back(kl_normal(0, v, 0, 1));
    tools::Axes& ax = fig.axes(0, 0);
    ax.plot(s, fwd, "KL(p || q)", colored(kBlue)).plot(s, rev, "KL(q || p)", colored(kRed));
    ax.ylim(0, 2.5).title("p = N(0, 1), q = N(0, s^2)").xlabel("s").ylabel("nats");
  }
  {
    std::vector<double> mu = grid(-3, 3, 200), fwd, rev;
    for (double v : mu) fwd.push_back(kl_normal(0, 1, v, 0.5)), rev.push_back(kl_normal(v, 0.5, 0, 1));
    tools::Axes& ax = fig.axes(0, 1);
    ax.plot(mu, fwd, "KL(p || q)", colored(kBlue)).plot(mu, rev, "KL(q || p)", colored(kRed));
    ax.title("p = N(0, 1), q = N(m, 0.5^2)").xlabel("m").ylabel("nats");
  }
  ch.figure(fig, "kl_asymmetry.svg", "KL is zero only at p = q and is not symmetric");
}

void mle_is_forward_kl(Chapter& ch, uint64_t seed) {
  ch.section("MLE = minimising the Monte-Carlo forward KL",
             "KL(\\pi \\| p) \\approx \\frac1n \\sum_{i=1}^n \\left[\\log \\pi(\\mathbf{x}_i) - \\log p(\\mathbf{x}_i|\\theta)\\right] = "
             "-\\frac1n \\sum_{i=1}^n \\log p(\\mathbf{x}_i|\\theta) + \\mathrm{const}",
             "KL(pi || p) ~ (1/n) sum [log pi(x_i) - log p(x_i | theta)] = NLL + const");
  const int64_t n = 2000, steps = 600;
  MleVsForwardKl r = mle_vs_forward_kl(n, steps, seed);
  ch.text(strf("A mixture of 2 Gaussians $p(x|\\theta)$ trained twice from the same start with the same Adam settings on %lld samples "
               "of $\\pi = 0.3\\,\\mathcal{N}(-1.5, 0.4^2) + 0.7\\,\\mathcal{N}(1, 0.8^2)$: once on the NLL, once on the Monte-Carlo forward "
               "KL (which needs $\\log \\pi$, known here). The objectives differ by the constant $\\frac1n\\sum \\log\\pi(x_i) = %.4f$ "
               "(minus the Monte-Carlo entropy of $\\pi$), so the gradients, the steps and the parameters agree: after %lld steps the "
               "largest parameter difference is %.1e and the curves differ by the constant to within %.1e.",
               (long long)n, r.constant, (long long)steps, r.max_param_diff, r.max_constant_dev),
          strf("2-Gaussian mixture trained on the NLL and on the MC forward KL (n = %lld, %lld steps): max parameter difference %.1e; "
               "KL - NLL = %.4f (constant to %.1e)",
               (long long)n, (long long)steps, r.max_param_diff, r.constant, r.max_constant_dev));
  auto describe = [](const Mixture1d& m) {
    return strf("%.3f N(%.3f, %.3f^2) + %.3f N(%.3f, %.3f^2)", m.weights[0], m.means[0], m.stds[0], m.weights[1], m.means[1], m.stds[1]);
  };
  Table t{{"", "mixture"}, {}};
  t.rows.push_back({"pi (truth)", describe(r.target)});
  t.rows.push_back({"fit by NLL (MLE)", describe(r.fit_nll)});
  t.rows.push_back({"fit by MC forward KL", describe(r.fit_kl)});
  ch.table(t);
  ch.text(strf("The true forward KL of the fit (quadrature) is %.4f nats: what is left is the sampling noise of %lld points.",
               r.final_forward_kl, (long long)n),
          strf("true KL(pi || fit) = %.4f nats (quadrature)", r.final_forward_kl));

  Figure fig(1, 2, 1300, 440);
  {
    tools::Axes& ax = fig.axes(0, 0);
    ax.plot_indexed(r.nll_curve, "NLL  -(1/n) sum log p(x_i)", colored(kBlue));
    ax.plot_indexed(r.kl_curve, "MC forward KL  (1/n) sum log pi(x_i) / p(x_i)", colored(kRed));
    ax.title(strf("the same curve shifted by %.3f", r.constant)).xlabel("Adam step").ylabel("nats");
  }
  {
    std::vector<double> xs = grid(-4, 4, 401);
    tools::Axes& ax = fig.axes(0, 1);
    ax.plot(xs, density_curve(xs, [&](double x) { return r.target.log_density(x); }), "pi", colored("black", false, 2));
    ax.plot(xs, density_curve(xs, [&](double x) { return r.fit_nll.log_density(x); }), "fit by NLL", colored(kBlue));
    ax.plot(xs, density_curve(xs, [&](double x) { return r.fit_kl.log_density(x); }), "fit by MC forward KL", colored(kRed, true));
    ax.title("the two fits coincide").xlabel("x").ylabel("density");
  }
  ch.figure(fig, "mle_vs_forward_kl.svg", "MLE and the Monte-Carlo forward KL: parallel objectives, the same fit");
}

}  // namespace

void write_divergences(Chapter& ch) {
  const uint64_t seed = ch.options().seed;
  forward_reverse(ch, seed + 2000);
  kl_props(ch, seed + 2100);
  mle_is_forward_kl(ch, seed + 2200);
}

}  // namespace dgm::lecture01
