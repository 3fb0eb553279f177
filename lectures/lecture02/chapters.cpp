// Lecture 2: the report sections and figures (the numbers come from jacobians.cpp and flow_models.cpp).
#include <algorithm>
#include <cmath>

#include <dgm/lectures/common/figures.h>
#include <dgm/lectures/lecture02/common.h>
#include <dgm/lectures/lecture02/lecture02.h>
#include <dgm/tools/plot.h>

namespace dgm::lecture02 {

namespace {

using tools::Axes;
using tools::Figure;
using tools::Style;
using namespace lectures;  // the palette, colored()

Style dots(const char* color, double alpha = 0.4, double size = 1.5) {
  Style s = Style::markers_only();
  s.color = color, s.alpha = alpha, s.marker_size = size;
  return s;
}

tools::Heatmap heat(const std::vector<double>& v, int64_t n, double lo, double hi, const std::string& label = "density") {
  tools::Heatmap h;
  h.values = v, h.nx = h.ny = n, h.x_min = h.y_min = lo, h.x_max = h.y_max = hi;
  h.v_min = 0, h.colorbar_label = label;
  return h;
}

tools::Heatmap pattern(const std::vector<double>& v, int64_t dim) {
  tools::Heatmap h;  // row i of J at the top: flip to the heat map's bottom-up rows
  for (int64_t r = dim; r-- > 0;)
    for (int64_t c = 0; c < dim; ++c) h.values.push_back(v[r * dim + c]);
  h.nx = h.ny = dim, h.x_min = h.y_min = 0, h.x_max = h.y_max = double(dim);
  h.v_min = 0, h.colorbar_label = "|J_ij|";
  return h;
}

std::string e(double v) { return strf("%.1e", v); }

}  // namespace

// ---- change of variables ------------------------------------------------------------------------------

void write_change_of_variables(Chapter& ch) {
  const uint64_t seed = ch.options().seed;
  ch.section("A density pushed through a map",
             "p(\\mathbf{x}) = p(\\mathbf{f}(\\mathbf{x}))\\,|\\det \\mathbf{J}_\\mathbf{f}(\\mathbf{x})|, \\qquad "
             "p(\\mathbf{z}) = p(\\mathbf{f}^{-1}(\\mathbf{z}))\\,|\\det \\mathbf{J}_{\\mathbf{f}^{-1}}(\\mathbf{z})|",
             "p(x) = p(f(x)) |det J_f(x)|,  p(z) = p(f^-1(z)) |det J_f^-1(z)|");
  const int64_t n = 200000;
  std::vector<PushForward1d> r = push_forward_1d(n, seed + 1);
  ch.text(strf("$x \\sim \\mathcal{N}(0, 1)$ pushed through three maps $z = f(x)$. The change-of-variables density "
               "$p(f^{-1}(z))/|f'(f^{-1}(z))|$ (the derivative from autograd) against the textbook density of $z$; its trapezoid "
               "integral over the grid; and a histogram of %lld pushed samples against it by a $\\chi^2$ statistic "
               "(bins with at least 20 expected counts).",
               (long long)n),
          strf("x ~ N(0, 1) through three maps: CoV density vs closed form, its integral, chi^2 of %lld samples", (long long)n));
  Table t{{"map", "closed form", "max |CoV - closed|", "integral", "chi^2 / dof"}, {}};
  const char* closed[] = {"N(1, 2^2)", "log-normal", "U(0, 1)"};
  for (size_t k = 0; k < r.size(); ++k)
    t.rows.push_back({r[k].name, closed[k], e(r[k].max_abs_diff), strf("%.6f", r[k].integral), strf("%.1f / %lld", r[k].chi2, (long long)r[k].dof)});
  ch.table(t);
  Figure fig(1, 3, 1500, 420);
  for (size_t k = 0; k < r.size(); ++k) {
    Axes& ax = fig.axes(0, int(k));
    double lo = k == 0 ? -7 : 0, hi = k == 0 ? 9 : k == 1 ? 6 : 1;
    std::vector<double> zs, cov, cl;
    for (size_t i = 0; i < r[k].z.size(); ++i)
      if (r[k].z[i] >= lo && r[k].z[i] <= hi) zs.push_back(r[k].z[i]), cov.push_back(r[k].cov[i]), cl.push_back(r[k].closed[i]);
    Style bars;
    bars.color = "#cccccc";
    ax.hist(r[k].samples, 60, "samples f(x)", bars, true, lo, hi);
    ax.plot(zs, cov, "change of variables", colored(kBlue)).plot(zs, cl, "closed form", colored(kRed, true));
    ax.title(r[k].name).xlabel("z").ylabel("density");
  }
  ch.figure(fig, "pushforward_1d.svg", "x ~ N(0, 1) pushed through three maps: samples, the change-of-variables density, the closed form");

  ch.section("The seminar's planar and radial maps, in 2-D",
             "\\mathbf{g}(\\mathbf{z}) = \\mathbf{z} + \\mathbf{u}\\,h(\\mathbf{w}^\\top\\mathbf{z} + b), \\qquad "
             "\\mathbf{g}(\\mathbf{z}) = \\mathbf{z} + \\frac{\\beta}{\\alpha + r}(\\mathbf{z} - \\mathbf{z}_0)",
             "planar g(z) = z + u h(w^T z + b);  radial g(z) = z + beta / (alpha + r) (z - z0)");
  const int64_t grid = 200, ns = 200000;
  std::vector<PushForward2d> r2 = push_forward_2d(grid, ns, seed + 2);
  ch.text("$\\mathcal{N}(0, I)$ pushed through the seminar's planar map ($w = (5, 0)$, $u = (1, 1)$, $b = 0$; dgm applies the "
          "invertibility projection $\\hat u$ always, which moves $u$ to $(0.80, 1)$) and radial map ($z_0 = 0$, $\\alpha = 1$, $\\beta = 5$). "
          "The density from the inverse and its log-det integrates over the square to the fraction of samples that land in it.",
          "N(0, I) through the seminar's planar and radial maps: the CoV density integrates to the samples' mass in the square");
  Table t2{{"map", "grid integral", "samples inside"}, {}};
  for (const PushForward2d& p : r2) t2.rows.push_back({p.name, strf("%.4f", p.integral), strf("%.4f", p.mass_in_square)});
  ch.table(t2);
  Figure fig2(2, 2, 1100, 1000);
  for (size_t k = 0; k < r2.size(); ++k) {
    fig2.axes(int(k), 0).heatmap(heat(r2[k].density, grid, r2[k].lo, r2[k].hi)).title(r2[k].name + ": density").xlabel("z1").ylabel("z2");
    fig2.axes(int(k), 1).scatter(r2[k].sx, r2[k].sy, "", dots(kBlue)).xlim(r2[k].lo, r2[k].hi).ylim(r2[k].lo, r2[k].hi).title("3000 samples").xlabel("z1").ylabel("z2");
  }
  ch.figure(fig2, "planar_radial_maps.svg", "the seminar's planar (top) and radial (bottom) maps of N(0, I): density and samples");
}

// ---- inverse function theorem -----------------------------------------------------------------------------

void write_inverse(Chapter& ch) {
  ch.section("The inverse function theorem",
             "\\mathbf{J}_{\\mathbf{f}^{-1}}(\\mathbf{f}(\\mathbf{x})) = \\mathbf{J}_\\mathbf{f}(\\mathbf{x})^{-1}, \\qquad "
             "|\\det \\mathbf{J}_{\\mathbf{f}^{-1}}| = \\frac{1}{|\\det \\mathbf{J}_\\mathbf{f}|}",
             "J_f^-1(f(x)) = J_f(x)^-1,  |det J_f^-1| = 1 / |det J_f|");
  std::vector<SquareMap> sq = jacobian_demo();
  ch.text("The lecture's JacobianDemo: the unit square mapped by $J = \\begin{pmatrix} a & b \\\\ 0 & 1\\end{pmatrix}$. "
          "$|\\det J| = |a|$ is the ratio of areas (the shoelace formula on the mapped corners), so a density is divided by it: "
          "$p(z) = p(x)/|\\det J|$.",
          "the unit square mapped by J = [[a, b], [0, 1]]: area of the image = |det J| = |a|");
  Table t{{"map", "a", "b", "area of the image", "|det J|"}, {}};
  for (const SquareMap& m : sq) t.rows.push_back({m.name, strf("%g", m.a), strf("%g", m.b), strf("%.4f", m.area), strf("%.4f", std::abs(m.det))});
  ch.table(t);
  const int64_t points = 32;
  std::vector<InverseCheck> c = inverse_function_checks(points, ch.options().seed + 10);
  ch.text(strf("For invertible flow layers at %lld random points (float64), the Jacobians of $f$ and $f^{-1}$ (both by autograd) "
               "multiply to the identity, their log-dets add to zero, and the layer's own log-det matches slogdet:",
               (long long)points),
          "flow layers at random points: J_f J_f^-1 = I, log-dets add to 0, layer log-det = slogdet");
  Table t2{{"layer", "max |J_f J_f^-1 - I|", "max |logdet + logdet^-1|", "max |f^-1(f(x)) - x|", "max |layer - slogdet|"}, {}};
  for (const InverseCheck& k : c)
    t2.rows.push_back({k.name, e(k.max_identity_error), e(k.max_logdet_sum), e(k.max_roundtrip), e(k.max_layer_vs_slogdet)});
  ch.table(t2);
  Figure fig(1, 1, 620, 480);
  Axes& ax = fig.axes(0, 0);
  const char* colors[] = {"black", kBlue, kOrange, kRed};
  for (size_t k = 0; k < sq.size(); ++k) {
    Style s = colored(colors[k], k == 0, 2);
    ax.plot(sq[k].cx, sq[k].cy, strf("%s: area %.2f", sq[k].name.c_str(), sq[k].area), s);
  }
  ax.xlim(-0.2, 3.8).ylim(-0.2, 1.3).title("the unit square under J = [[a, b], [0, 1]]").xlabel("z1").ylabel("z2");
  ch.figure(fig, "jacobian_demo.svg", "|det J| is the ratio of areas");
}

// ---- composition --------------------------------------------------------------------------------------------

void write_composition(Chapter& ch) {
  ch.section("Composing flows",
             "\\log p(\\mathbf{x}) = \\log p(\\mathbf{f}_K \\circ \\dots \\circ \\mathbf{f}_1(\\mathbf{x})) + "
             "\\sum_{k=1}^K \\log|\\det \\mathbf{J}_{\\mathbf{f}_k}(\\mathbf{x}_{k-1})|",
             "log p(x) = log p(f_K o ... o f_1(x)) + sum_k log|det J_f_k(x_{k-1})|");
  const int64_t grid = 200;
  CompositionCheck c = composition_check(grid, 20000, ch.options().seed + 20);
  std::string names;
  for (const std::string& l : c.layers) names += (names.empty() ? "" : ", ") + l;
  ch.text(strf("A 2-D flow of %zu layers (%s) with random parameters, float64. The sum of the layers' log-dets (each at its own input) "
               "equals the sequence's log-det to %s and slogdet of the composed autograd Jacobian to %s; the inverse round-trips to %s; "
               "the density $\\mathcal{N}(f(x); 0, I)\\,|\\det J_f(x)|$ integrates to %.4f on $[%g, %g]^2$ (%lld x %lld midpoints), the fraction of 20000 generated samples in that square being %.4f.",
               c.layers.size(), names.c_str(), e(c.max_sum_vs_sequence).c_str(), e(c.max_sum_vs_slogdet).c_str(), e(c.max_roundtrip).c_str(),
               c.integral, c.lo, c.hi, (long long)grid, (long long)grid, c.mass_in_square),
          strf("%zu layers: sum of log-dets vs sequence %s, vs slogdet %s; round trip %s; integral %.4f (samples in the square: %.4f)", c.layers.size(),
               e(c.max_sum_vs_sequence).c_str(), e(c.max_sum_vs_slogdet).c_str(), e(c.max_roundtrip).c_str(), c.integral, c.mass_in_square));
  const size_t stages = c.stage_x.size();
  Figure fig(3, 3, 1500, 1350);
  for (size_t k = 0; k < stages && k < 8; ++k) {
    size_t layer = c.layers.size() - k;  // stage k of the generative pass is x_{K-k}
    Axes& ax = fig.axes(int(k / 3), int(k % 3));
    std::vector<double> sx(c.stage_x[k].begin(), c.stage_x[k].begin() + 2000), sy(c.stage_y[k].begin(), c.stage_y[k].begin() + 2000);
    ax.scatter(sx, sy, "", dots(kBlue, 0.35)).xlim(-6, 6).ylim(-6, 6);
    ax.title(k == 0 ? std::string("z ~ N(0, I)") : strf("after the inverse of %s", c.layers[layer].c_str()));
  }
  fig.axes(2, 2).heatmap(heat(c.density, grid, c.lo, c.hi)).title("p(x) of the whole flow");
  ch.figure(fig, "composition.svg", "the generative pass layer by layer (N(0, I) samples), and the flow's density");
}

// ---- Jacobian structures ------------------------------------------------------------------------------------

void write_structures(Chapter& ch) {
  ch.section("Jacobian structures",
             "\\text{permutation: } |\\det \\mathbf{J}| = 1; \\quad \\text{elementwise: } \\log|\\det \\mathbf{J}| = \\sum_j \\log|f_j'(x_j)|; "
             "\\quad \\text{triangular: } \\log|\\det \\mathbf{J}| = \\sum_j \\log|J_{jj}|",
             "permutation |det| = 1; elementwise sum log|f'|; triangular sum log|J_jj|");
  const int64_t dim = 8;
  std::vector<StructureCheck> s = structure_checks(dim, ch.options().seed + 30);
  ch.text("Each structure's formula against slogdet of the dense Jacobian by autograd, at a random point:", "formula vs dense slogdet:");
  Table t{{"Jacobian", "formula", "slogdet", "difference"}, {}};
  for (const StructureCheck& k : s) t.rows.push_back({k.name, strf("%.10f", k.analytic), strf("%.10f", k.slogdet), e(std::abs(k.analytic - k.slogdet))});
  ch.table(t);
  DetTiming d = det_timing({64, 128, 256, 512}, ch.options().seed + 31);
  ch.text("Why the structure matters: a dense log-det is an LU factorisation, $O(m^3)$; a triangular one is a sum over the diagonal, $O(m)$:",
          "dense slogdet O(m^3) vs triangular diagonal sum O(m):");
  Table t2{{"m", "dense slogdet (ms)", "triangular sum (ms)", "ratio", "|difference|"}, {}};
  for (size_t i = 0; i < d.dims.size(); ++i)
    t2.rows.push_back({strf("%lld", (long long)d.dims[i]), strf("%.3f", d.dense_ms[i]), strf("%.5f", d.triangular_ms[i]),
                       strf("%.0f", d.dense_ms[i] / std::max(d.triangular_ms[i], 1e-9)), e(d.max_diff[i])});
  ch.table(t2);
  Figure fig(1, 5, 2300, 440);
  for (size_t k = 0; k < s.size(); ++k) fig.axes(0, int(k)).heatmap(pattern(s[k].pattern, dim)).title(s[k].name).xlabel("j (input)").ylabel("i (output, top = 1)");
  std::vector<double> m(d.dims.begin(), d.dims.end());
  fig.axes(0, 4).plot(m, d.dense_ms, "dense slogdet", colored(kRed)).plot(m, d.triangular_ms, "triangular", colored(kBlue)).loglog().title("log-det cost").xlabel("m").ylabel("ms");
  ch.figure(fig, "structures.svg", "|J| of a permutation, an elementwise map, a MAF layer and a coupling layer; and the cost of a log-det");
}

// ---- linear flows ----------------------------------------------------------------------------------------------

void write_linear(Chapter& ch) {
  ch.section("Linear flows",
             "\\mathbf{z} = \\mathbf{W}\\mathbf{x}, \\quad \\mathbf{W} = \\mathbf{P}\\mathbf{L}(\\mathbf{U} + \\mathrm{diag}\\,\\mathbf{s}) "
             "\\Rightarrow \\log|\\det \\mathbf{W}| = \\sum_i \\log|s_i|; \\quad \\mathbf{W} = \\mathbf{Q}\\mathbf{R} \\Rightarrow "
             "\\log|\\det \\mathbf{W}| = \\sum_i \\log R_{ii}",
             "W = P L (U + diag s): log|det W| = sum log|s_i|;  W = Q R: sum log R_ii");
  const int64_t dim = 4, steps = 400;
  std::vector<LinearFlowCheck> c = linear_flow_checks(dim, steps, ch.options().seed + 40);
  ch.text(strf("The factors are the parameters: the log-det is a sum over a diagonal and the inverse two (LU) or one (QR) triangular solves. "
               "Each flow is then fitted by MLE (Adam, %lld steps) to 4000 samples of a correlated %lld-D Gaussian; the best possible NLL is "
               "its entropy.",
               (long long)steps, (long long)dim),
          "factor log-det vs dense slogdet, inverse round trip, and an MLE fit to a correlated Gaussian");
  Table t{{"flow", "factor log-det", "slogdet(W)", "round trip", "NLL before", "NLL after", "entropy (best)", "sign det W during training"}, {}};
  for (const LinearFlowCheck& k : c) {
    double lo = *std::min_element(k.det_during_training.begin(), k.det_during_training.end());
    double hi = *std::max_element(k.det_during_training.begin(), k.det_during_training.end());
    t.rows.push_back({k.name, strf("%.10f", k.logdet_formula), strf("%.10f", k.logdet_dense), e(k.max_roundtrip), strf("%.4f", k.initial_nll),
                      strf("%.4f", k.final_nll), strf("%.4f", k.exact_nll), (lo > 0 || hi < 0) ? (lo > 0 ? "always +" : "always -") : "changed"});
  }
  ch.table(t);
  SignPath p = sign_path(dim, 201, ch.options().seed + 41);
  ch.text(strf("**The sign of $\\det W$ cannot change continuously.** On the straight path $W(t) = (1 - t)W_0 + tW_1$ from $\\det W_0 > 0$ to "
               "$W_1$ = $W_0$ with its first row negated ($\\det W_1 = -\\det W_0$), $\\det W(t) = (1 - 2t)\\det W_0$ crosses zero at $t = %.4f$: "
               "there $W$ is not invertible. Any continuous path does the same (the determinant is continuous), so a continuous "
               "parameterisation of invertible matrices covers one sign only: LinearLU fixes $\\mathrm{sign}(s)$ as a buffer, QR has "
               "$\\det Q = \\pm 1$ fixed by its number of reflections.",
               p.crossing),
          strf("det W(t) on a path from det > 0 to det < 0 crosses 0 at t = %.4f", p.crossing));
  Figure fig(1, 2, 1200, 420);
  fig.axes(0, 0).plot(p.t, p.det, "det W(t)", colored(kBlue)).axhline(0, "", colored("black", true, 1)).title("det on a path from W0 to W1 (a reflection)").xlabel("t").ylabel("det W(t)");
  for (size_t k = 0; k < c.size(); ++k) fig.axes(0, 1).plot_indexed(c[k].det_during_training, "det W, " + c[k].name, colored(k == 0 ? kBlue : kOrange));
  fig.axes(0, 1).title("det W while fitting a Gaussian").xlabel("Adam step").ylabel("det W");
  ch.figure(fig, "linear_flows.svg", "det W crosses 0 between the two signs; during training it never changes sign");
}

// ---- autoregressive flows -------------------------------------------------------------------------------------

void write_autoregressive(Chapter& ch) {
  ch.section("Gaussian autoregressive flows",
             "x_j = \\sigma_j(\\mathbf{x}_{1:j-1}) z_j + \\mu_j(\\mathbf{x}_{1:j-1}), \\quad z_j = \\frac{x_j - \\mu_j(\\mathbf{x}_{1:j-1})}{\\sigma_j(\\mathbf{x}_{1:j-1})}, "
             "\\quad \\log\\left|\\det \\frac{\\partial \\mathbf{z}}{\\partial \\mathbf{x}}\\right| = -\\sum_j \\log \\sigma_j",
             "x_j = sigma_j(x_<j) z_j + mu_j(x_<j);  z_j = (x_j - mu_j) / sigma_j;  log|det| = -sum log sigma_j");
  ToyArFlow toy = toy_autoregressive();
  ch.text("The lecture's AutoregressiveFlowDemo, $\\mu_j = \\sum_{i<j} x_i$, $\\sigma_j = 1$: sampling fills one coordinate per step; "
          "the density needs one parallel step, since every $\\mu_j$ depends on the known $\\mathbf{x}$.",
          "toy flow mu_j = sum_{i<j} x_i, sigma = 1: sampling is sequential, density one pass");
  Table t{{"step", "x1", "x2", "x3", "x4"}, {}};
  for (size_t s = 0; s < toy.steps.size(); ++s) {
    std::vector<std::string> row{strf("%zu", s + 1)};
    for (double v : toy.steps[s]) row.push_back(std::isnan(v) ? "?" : strf("%g", v));
    t.rows.push_back(row);
  }
  std::vector<std::string> back{"one pass back: z"};
  for (double v : toy.z_back) back.push_back(strf("%g", v));
  t.rows.push_back(back);
  ch.table(t);
  const int64_t dim = 8;
  std::vector<ArFlowCheck> c = ar_flow_checks(dim, ch.options().seed + 50);
  ch.text("With MADE conditioners (random weights, float64) the Jacobian is lower-triangular to the last bit, its diagonal gives the log-det, "
          "and the sequential direction inverts the one-pass one:",
          "MADE-based MAF and IAF: exact zeros above the diagonal, log-det = sum log diag, inverse exact");
  Table t2{{"layer", "max |J_ij|, j > i", "|log-det - sum log|J_jj||", "round trip"}, {}};
  for (const ArFlowCheck& k : c) t2.rows.push_back({k.name, e(k.max_above_diagonal), e(k.max_logdet_vs_diag), e(k.max_roundtrip)});
  ch.table(t2);
  ArTiming tm = ar_timing({8, 32, 128}, 64, ch.options().seed + 51);
  ch.text(strf("Timed on a batch of %lld: MAF evaluates the density in one pass and samples in $m$; IAF is the reverse.", (long long)tm.batch),
          "timings: MAF density 1 pass, sampling m passes; IAF the reverse");
  Table t3{{"m", "MAF density (ms)", "MAF sampling (ms)", "IAF sampling (ms)", "IAF density (ms)"}, {}};
  for (size_t i = 0; i < tm.dims.size(); ++i)
    t3.rows.push_back({strf("%lld", (long long)tm.dims[i]), strf("%.2f", tm.maf_density_ms[i]), strf("%.2f", tm.maf_sample_ms[i]),
                       strf("%.2f", tm.iaf_sample_ms[i]), strf("%.2f", tm.iaf_density_ms[i])});
  ch.table(t3);
  Figure fig(1, 3, 1600, 440);
  fig.axes(0, 0).heatmap(pattern(c[0].pattern, dim)).title("|dz/dx| of a MAF layer");
  fig.axes(0, 1).heatmap(pattern(c[1].pattern, dim)).title("|dz/dx| of an IAF layer");
  std::vector<double> m(tm.dims.begin(), tm.dims.end());
  fig.axes(0, 2)
      .plot(m, tm.maf_density_ms, "MAF density", colored(kBlue))
      .plot(m, tm.maf_sample_ms, "MAF sampling", colored(kBlue, true))
      .plot(m, tm.iaf_sample_ms, "IAF sampling", colored(kRed))
      .plot(m, tm.iaf_density_ms, "IAF density", colored(kRed, true))
      .loglog()
      .title("one pass vs m passes")
      .xlabel("m")
      .ylabel("ms");
  ch.figure(fig, "autoregressive.svg", "triangular Jacobians of MAF and IAF, and the cost of each direction");
}

// ---- coupling layers ------------------------------------------------------------------------------------------

void write_coupling(Chapter& ch) {
  ch.section("Coupling layers (RealNVP)",
             "\\mathbf{x}_1 = \\mathbf{z}_1, \\; \\mathbf{x}_2 = \\mathbf{z}_2 \\odot \\boldsymbol{\\sigma}_\\theta(\\mathbf{z}_1) + \\boldsymbol{\\mu}_\\theta(\\mathbf{z}_1); "
             "\\quad \\det \\frac{\\partial \\mathbf{z}}{\\partial \\mathbf{x}} = \\prod_{j=1}^{m-d} \\sigma_{j,\\theta}(\\mathbf{x}_1)^{-1}",
             "x1 = z1, x2 = z2 * sigma(z1) + mu(z1);  det dz/dx = prod 1 / sigma_j(x1)");
  CouplingDemo d = coupling_demo(1.0), d0 = coupling_demo(0.0);
  ch.text(strf("The lecture's CouplingDemo: 180 points of $\\mathcal{N}(0, 0.65^2 I)$ from the LCG with seed 2026; layer 1 moves $x_2$ given $x_1$, "
               "layer 2 moves $x_1$ given $x_2$, $\\sigma(t) = e^{0.4\\lambda\\tanh t}$, $\\mu(t) = 0.8\\lambda\\tanh t$. At $\\lambda = 1$ the layers' "
               "log-dets $0.4\\lambda\\tanh(\\text{cond})$ match slogdet to %s, the inverse (one pass) round-trips to %s; at $\\lambda = 0$ the layers "
               "are the identity (%s).",
               e(d.max_logdet_vs_slogdet).c_str(), e(d.max_roundtrip).c_str(), e(d0.max_identity_at_zero).c_str()),
          strf("CouplingDemo: log-det vs slogdet %s, round trip %s, identity at lambda = 0: %s", e(d.max_logdet_vs_slogdet).c_str(),
               e(d.max_roundtrip).c_str(), e(d0.max_identity_at_zero).c_str()));
  std::vector<ImageCouplingCheck> c = image_coupling_checks(ch.options().seed + 60);
  ch.text("On images the split is a mask: checkerboard (pixels) or channel-wise. `nn::AffineCoupling` with a convolutional conditioner:",
          "image couplings (checkerboard and channel masks):");
  Table t{{"coupling", "|log-det - slogdet|", "round trip", "kept coordinates changed by"}, {}};
  for (const ImageCouplingCheck& k : c) t.rows.push_back({k.name, e(k.max_logdet_vs_slogdet), e(k.max_roundtrip), e(k.max_kept_change)});
  ch.table(t);
  Figure fig(1, 3, 1500, 460);
  const char* titles[] = {"base: N(0, 0.65^2 I)", "after layer 1 (x2 | x1)", "after layer 2 (x1 | x2)"};
  for (int k = 0; k < 3; ++k) fig.axes(0, k).scatter(d.stage_x[k], d.stage_y[k], "", dots(kBlue, 0.8, 2.5)).xlim(-3, 3).ylim(-3, 3).title(titles[k]);
  ch.figure(fig, "coupling_demo.svg", "two coupling layers move one half of the coordinates given the other");
}

// ---- seminar ------------------------------------------------------------------------------------------------

void write_seminar(Chapter& ch) {
  const uint64_t seed = ch.options().seed;
  ch.section("Seminar 2: planar and radial flows fitted by reverse KL",
             "\\min_\\theta \\; \\mathbb{E}_{p(\\mathbf{z})}\\left[\\log p(\\mathbf{z}) - \\log|\\det \\mathbf{J}_\\mathbf{g}(\\mathbf{z})| + U(\\mathbf{g}(\\mathbf{z}))\\right] "
             "= KL(p_\\theta \\| \\pi) - \\log Z, \\quad \\pi = e^{-U}/Z",
             "min E_p(z)[log p(z) - log|det J_g(z)| + U(g(z))] = KL(p || pi) - log Z");
  const std::vector<std::string> targets = {"U1", "U2", "U3", "U4"};
  FitOptions o;
  o.layers = 32, o.steps = 800, o.batch = 256, o.lr = 5e-3, o.grid = 100;
  FitOptions m = o;  // the second section's two fits
  m.layers = 16, m.steps = 800, m.seed = seed + 80;
  // the ten fits side by side (2-D batches of 256 keep one core busy at most): fits[2k], fits[2k + 1]
  // are target k's planar and radial flows, fits[8] and fits[9] the second section's
  std::vector<FlowFit> fits(2 * targets.size() + 2);
  run_side_by_side(int64_t(fits.size()), [&](int64_t i) {
    const size_t k = size_t(i / 2);
    if (k == targets.size()) {
      fits[size_t(i)] = i % 2 == 0 ? fit_forward_kl("two modes", m) : fit_reverse_kl("two modes", m);
      return;
    }
    FitOptions ok = o;
    ok.flow = i % 2 == 0 ? "planar" : "radial", ok.seed = seed + 70 + k;
    fits[size_t(i)] = fit_reverse_kl(targets[k], ok);
  });
  const FlowFit fwd = fits[8], rev = fits[9];
  fits.resize(8);
  ch.text(strf("The seminar's unnormalised targets $e^{-U_k}$; $g$ maps $\\mathcal{N}(0, I)$ samples through %lld planar or radial layers "
               "and is trained on fresh base samples (batch %lld, Adam lr %g, %lld steps) with the reverse KL, which needs $U$ but no samples "
               "of $\\pi$. The KLs are computed on a %lld x %lld grid of the target's square (the model's density from the inverse pass); "
               "$\\log Z$ from the same grid turns the final loss into a Monte-Carlo reverse KL. The ten fits of this module run side by side, "
               "one per thread (`seconds`: a fit's own wall time).",
               (long long)o.layers, (long long)o.batch, o.lr, (long long)o.steps, (long long)o.grid, (long long)o.grid),
          strf("%lld-layer planar / radial flows fitted to U1..U4 by reverse KL (%lld steps)", (long long)o.layers, (long long)o.steps));
  Table t{{"target", "flow", "KL(p || pi) Monte Carlo", "KL(p || pi) grid", "KL(pi || p) grid", "seconds"}, {}};
  for (const FlowFit& f : fits)
    t.rows.push_back({f.target, f.flow, strf("%.3f", f.kl_reverse_mc), strf("%.3f", f.kl_reverse), strf("%.3f", f.kl_forward), strf("%.1f", f.seconds)});
  ch.table(t);
  Figure fig(3, 5, 2400, 1400);
  for (size_t k = 0; k < targets.size() + 1; ++k) {
    std::string name = k < targets.size() ? targets[k] : "ring";
    TargetGrid g = target_grid(name, 150);
    fig.axes(0, int(k)).heatmap(heat(g.density, g.n, g.lo, g.hi)).title("target " + name);
  }
  for (size_t k = 0; k < targets.size(); ++k)
    for (int r = 0; r < 2; ++r) {
      const FlowFit& f = fits[2 * k + r];
      double b = target_box(f.target);
      fig.axes(1 + r, int(k)).scatter(f.sx, f.sy, "", dots(r == 0 ? kBlue : kOrange, 0.35)).xlim(-b, b).ylim(-b, b).title(f.flow + " samples, " + f.target);
    }
  fig.axes(1, 4).plot_indexed(fits[6].loss, "planar, U4", colored(kBlue)).plot_indexed(fits[7].loss, "radial, U4", colored(kOrange)).title("reverse-KL loss on U4").xlabel("step");
  fig.axes(2, 4).heatmap(heat(fits[6].model.density, fits[6].model.n, fits[6].model.lo, fits[6].model.hi)).title("planar fit of U4: density");
  ch.figure(fig, "seminar_reverse_kl.svg", "the targets (top), samples of the planar (middle) and radial (bottom) fits");

  ch.section("Forward vs reverse KL: mode covering and mode seeking",
             "\\text{forward: } \\min_\\theta -\\mathbb{E}_\\pi\\left[\\log p(\\mathbf{f}(\\mathbf{x})) + \\log|\\det \\mathbf{J}_\\mathbf{f}(\\mathbf{x})|\\right] "
             "\\quad \\text{vs} \\quad \\text{reverse: } \\min_\\theta KL(p_\\theta \\| \\pi)",
             "forward KL = MLE on samples of pi, vs reverse KL with U");
  ch.text(strf("The target: two Gaussians at $(\\pm 2.5, 0)$ with std 0.6, each half the mass. Two %lld-layer planar flows from the same start: "
               "one as $f: x \\to z$ fitted by MLE to %lld samples of $\\pi$ (forward KL; the seminar's density direction), one as $g: z \\to x$ "
               "fitted with $U$ (reverse KL; the sampling direction). Forward KL pays for every point of $\\pi$ the model misses, so it spreads "
               "mass between the modes (**mode covering**); reverse KL pays for model mass where $\\pi$ is small, so it keeps out of the gap "
               "(**mode seeking**): started from $\\mathcal{N}(0, I)$ it falls into one mode and stays there, with $KL(p\\|\\pi) \\approx \\log 2$, "
               "the price of the missing half, although a two-mode flow of the same family does better in its own divergence "
               "(the forward fit's $KL(p\\|\\pi)$ below): the reverse KL's gradients never see the other mode.",
               (long long)m.layers, (long long)m.n_data),
          "two modes at (+-2.5, 0): forward KL (MLE on samples) covers, reverse KL (with U) seeks");
  Table t2{{"fit", "KL(pi || p)", "KL(p || pi)", "mass in the gap |x1| < 1.25", "mass at x1 > 0", "seconds"}, {}};
  for (const FlowFit* f : {&fwd, &rev})
    t2.rows.push_back({f->objective, strf("%.3f", f->kl_forward), strf("%.3f", f->kl_reverse), strf("%.4f", f->mass_gap), strf("%.3f", f->mass_right), strf("%.1f", f->seconds)});
  TargetGrid pi = target_grid("two modes", m.grid);
  double gap = 0;
  const double cell = (pi.hi - pi.lo) / double(pi.n) * (pi.hi - pi.lo) / double(pi.n);
  std::vector<double> gx = grid_points(pi.lo, pi.hi, pi.n);
  for (int64_t i = 0; i < pi.n * pi.n; ++i)
    if (std::abs(gx[i % pi.n]) < 1.25) gap += pi.density[i] * cell;
  t2.rows.push_back({"the target pi", "0", "0", strf("%.4f", gap), "0.500", ""});
  t2.rows.push_back({"one mode of pi exactly", "inf", strf("%.4f", std::log(2.0)), "", "0 or 1", ""});
  ch.table(t2);
  Figure fig2(2, 3, 1700, 1000);
  fig2.axes(0, 0).heatmap(heat(pi.density, pi.n, pi.lo, pi.hi)).title("target: two modes");
  fig2.axes(0, 1).heatmap(heat(fwd.model.density, fwd.model.n, fwd.model.lo, fwd.model.hi)).title("forward KL fit: density (covering)");
  fig2.axes(0, 2).heatmap(heat(rev.model.density, rev.model.n, rev.model.lo, rev.model.hi)).title("reverse KL fit: density (seeking)");
  fig2.axes(1, 1).scatter(fwd.sx, fwd.sy, "", dots(kBlue, 0.35)).xlim(-5, 5).ylim(-5, 5).title("forward KL fit: samples");
  fig2.axes(1, 2).scatter(rev.sx, rev.sy, "", dots(kRed, 0.35)).xlim(-5, 5).ylim(-5, 5).title("reverse KL fit: samples");
  fig2.axes(1, 0).plot_indexed(fwd.loss, "forward KL: NLL", colored(kBlue)).plot_indexed(rev.loss, "reverse KL - log Z", colored(kRed)).title("losses").xlabel("step");
  ch.figure(fig2, "mode_covering_vs_seeking.svg", "forward KL covers both modes (and some of the gap); reverse KL falls into one mode");
}

}  // namespace dgm::lecture02
