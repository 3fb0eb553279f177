// Lecture 2, the Jacobian claims: numbers only (the chapter is jacobians_chapter.cpp).
#include <dgm/lectures/lecture02/jacobians.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>

#include <dgm/autograd/functional.h>
#include <dgm/autograd/ops.h>
#include <dgm/lectures/lecture02/common.h>
#include <dgm/nn/flows.h>
#include <dgm/nn/optim.h>

namespace dgm::lecture02 {

using linalg::SignLogAbsDet;
using linalg::slogdet;

// ---- helpers shared by the lecture ------------------------------------------------------------------

std::vector<double> values(const Tensor& t) { return t.detach().to(DType::Float64).contiguous().to_vector<double>(); }

Tensor from_doubles(const std::vector<double>& v, const Shape& shape) { return from_vector(v, shape); }

void set_values(Tensor& p, const std::vector<double>& v) { p.set_data(Array::from_vector(v, p.shape()).to(p.dtype())); }

void perturb_parameters(nn::Module& m, double scale, Generator& gen) {
  for (Tensor p : m.parameters()) {
    Tensor noise = randn(p.shape(), {.dtype = p.dtype()}, &gen) * scale;
    p.set_data((p.detach() + noise).array());
  }
}

double log_normal_2d(double x, double y) { return -0.5 * (x * x + y * y) - std::log(2 * M_PI); }

std::vector<double> grid_points(double lo, double hi, int64_t n) {
  std::vector<double> g(n);
  const double h = (hi - lo) / double(n);
  for (int64_t i = 0; i < n; ++i) g[i] = lo + (double(i) + 0.5) * h;  // cell midpoints
  return g;
}

Tensor grid_tensor(double lo, double hi, int64_t n) {
  std::vector<double> g = grid_points(lo, hi, n), xy;
  xy.reserve(2 * n * n);
  for (int64_t iy = 0; iy < n; ++iy)
    for (int64_t ix = 0; ix < n; ++ix) xy.push_back(g[ix]), xy.push_back(g[iy]);
  return from_doubles(xy, {n * n, 2});
}

double elapsed_ms(const std::function<void()>& f, int repeats) {
  f();  // warm-up
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < repeats; ++r) f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / repeats;
}

namespace {

constexpr TensorOptions kF64{.dtype = DType::Float64};

double normal_pdf(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI); }

// ---- change of variables, 1-D -----------------------------------------------------------------------

struct Map1d {
  std::string name;
  autograd::TensorFunction f;               // elementwise, differentiable
  std::function<double(double)> inverse;    // x = f^{-1}(z)
  std::function<double(double)> closed;     // the textbook density of z
  double lo, hi;                            // grid for the density and the histogram
};

std::vector<Map1d> maps_1d() {
  return {
      {"z = 2x + 1", [](const Tensor& x) { return x * 2.0 + 1.0; }, [](double z) { return (z - 1) / 2; },
       [](double z) { return normal_pdf((z - 1) / 2) / 2; }, -9, 11},
      {"z = exp(x)", [](const Tensor& x) { return exp(x); }, [](double z) { return std::log(z); },
       [](double z) { return normal_pdf(std::log(z)) / z; }, 1e-4, 60},
      {"z = Phi(x) (the normal CDF)", [](const Tensor& x) { return (erf(x / std::sqrt(2.0)) + 1.0) * 0.5; },
       [](double z) {  // bisection: Phi is increasing
         double a = -40, b = 40;
         for (int i = 0; i < 200; ++i) {
           double m = 0.5 * (a + b);
           (0.5 * std::erfc(-m / std::sqrt(2.0)) < z ? a : b) = m;
         }
         return 0.5 * (a + b);
       },
       [](double z) { return (z > 0 && z < 1) ? 1.0 : 0.0; }, 1e-6, 1 - 1e-6},
  };
}

}  // namespace

std::vector<PushForward1d> push_forward_1d(int64_t n_samples, uint64_t seed) {
  std::vector<PushForward1d> out;
  Generator gen(seed);
  for (const Map1d& m : maps_1d()) {
    PushForward1d r;
    r.name = m.name;
    const int64_t points = 4001;
    std::vector<double> xs;
    for (int64_t i = 0; i < points; ++i) {
      r.z.push_back(m.lo + (m.hi - m.lo) * double(i) / double(points - 1));
      xs.push_back(m.inverse(r.z.back()));
    }
    // f'(x) by autograd: f is elementwise, so the vector-Jacobian product with ones is the derivative.
    Tensor x = from_doubles(xs, {points});
    std::vector<double> fprime = values(autograd::vjp(m.f, x, ones({points}, kF64)).product);
    for (int64_t i = 0; i < points; ++i) {
      r.cov.push_back(normal_pdf(xs[i]) / std::abs(fprime[i]));  // p(x) |dx/dz| = p(x) / |f'(x)|
      r.closed.push_back(m.closed(r.z[i]));
      r.max_abs_diff = std::max(r.max_abs_diff, std::abs(r.cov.back() - r.closed.back()));
    }
    for (int64_t i = 1; i < points; ++i) r.integral += 0.5 * (r.cov[i] + r.cov[i - 1]) * (r.z[i] - r.z[i - 1]);
    // samples and a chi-square against the closed form, over bins with >= 20 expected counts
    Tensor xs_samples = randn({n_samples}, kF64, &gen);
    r.samples = values(m.f(xs_samples));
    const int bins = 40;
    double lo = m.lo, hi = m.name == "z = exp(x)" ? 8.0 : m.hi;
    std::vector<double> observed(bins, 0.0);
    for (double s : r.samples) {
      int b = int(std::floor((s - lo) / (hi - lo) * bins));
      if (b >= 0 && b < bins) observed[b] += 1;
    }
    int used = 0;
    for (int b = 0; b < bins; ++b) {
      double a = lo + (hi - lo) * b / bins, c = lo + (hi - lo) * (b + 1) / bins, mass = 0;
      const int sub = 64;  // midpoint rule inside the bin
      for (int k = 0; k < sub; ++k) mass += m.closed(a + (c - a) * (k + 0.5) / sub) * (c - a) / sub;
      double expected = mass * double(n_samples);
      if (expected < 20) continue;
      r.chi2 += (observed[b] - expected) * (observed[b] - expected) / expected;
      ++used;
    }
    r.dof = used - 1;
    out.push_back(std::move(r));
  }
  return out;
}

// ---- change of variables, 2-D -------------------------------------------------------------------------

std::shared_ptr<nn::PlanarFlow> seminar_planar() {
  auto f = std::make_shared<nn::PlanarFlow>(2);
  f->to(DType::Float64);
  set_values(f->w, {5, 0});
  set_values(f->u, {1, 1});
  set_values(f->b, {0});
  return f;
}
std::shared_ptr<nn::RadialFlow> seminar_radial() {
  auto f = std::make_shared<nn::RadialFlow>(2);
  f->to(DType::Float64);
  set_values(f->x0, {0, 0});
  set_values(f->alpha_raw, {std::log(std::exp(1.0) - 1)});  // alpha = softplus(raw) = 1
  set_values(f->beta_raw, {std::log(std::exp(6.0) - 1)});   // beta = -alpha + softplus(raw) = 5
  return f;
}

std::vector<PushForward2d> push_forward_2d(int64_t grid, int64_t n_samples, uint64_t seed) {
  Generator gen(seed);
  std::vector<std::pair<std::string, std::shared_ptr<nn::Flow>>> flows = {
      {"planar: w = (5, 0), u = (1, 1), b = 0", seminar_planar()},
      {"radial: z0 = 0, alpha = 1, beta = 5", seminar_radial()},
  };
  std::vector<double> box = {4.0, 9.0};
  std::vector<PushForward2d> out;
  NoGradGuard no_grad;
  for (size_t k = 0; k < flows.size(); ++k) {
    PushForward2d r;
    r.name = flows[k].first;
    r.n = grid;
    r.lo = -box[k], r.hi = box[k];
    nn::Flow& f = *flows[k].second;
    // p(z) = N(f^{-1}(z); 0, I) |det J_{f^-1}(z)|
    nn::FlowOutput inv = f.inverse_and_log_det(grid_tensor(r.lo, r.hi, grid));
    std::vector<double> x = values(inv.out), ld = values(inv.log_det);
    const double cell = (r.hi - r.lo) / double(grid) * (r.hi - r.lo) / double(grid);
    for (int64_t i = 0; i < grid * grid; ++i) {
      r.density.push_back(std::exp(log_normal_2d(x[2 * i], x[2 * i + 1]) + ld[i]));
      r.integral += r.density.back() * cell;
    }
    std::vector<double> z = values(f.forward(randn({n_samples, 2}, kF64, &gen)));
    int64_t inside = 0;
    for (int64_t i = 0; i < n_samples; ++i) {
      double a = z[2 * i], b = z[2 * i + 1];
      if (i < 3000) r.sx.push_back(a), r.sy.push_back(b);
      if (a >= r.lo && a <= r.hi && b >= r.lo && b <= r.hi) ++inside;
    }
    r.mass_in_square = double(inside) / double(n_samples);
    out.push_back(std::move(r));
  }
  return out;
}

// ---- the inverse function theorem ---------------------------------------------------------------------

std::vector<SquareMap> jacobian_demo() {
  std::vector<SquareMap> out;
  for (auto [name, a, b] : std::vector<std::tuple<std::string, double, double>>{
           {"identity", 1, 0}, {"shear (b = 1)", 1, 1}, {"stretch (a = 2)", 2, 0}, {"stretch and shear", 2, 1.5}}) {
    SquareMap m{name, a, b, {}, {}, 0, a};
    const double corners[5][2] = {{0, 0}, {1, 0}, {1, 1}, {0, 1}, {0, 0}};
    for (auto& c : corners) m.cx.push_back(a * c[0] + b * c[1]), m.cy.push_back(c[1]);
    for (int i = 0; i < 4; ++i) m.area += 0.5 * (m.cx[i] * m.cy[i + 1] - m.cx[i + 1] * m.cy[i]);  // shoelace
    m.area = std::abs(m.area);
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<InverseCheck> inverse_function_checks(int64_t points, uint64_t seed) {
  Generator gen(seed);
  std::vector<std::pair<std::string, std::shared_ptr<nn::Flow>>> flows = {
      {"radial", std::make_shared<nn::RadialFlow>(2, &gen)},
      {"affine coupling (MLP conditioner)", std::make_shared<nn::AffineCoupling>(nn::half_mask(2, true), nn::mlp_conditioner(2, 16, &gen))},
      {"linear, LU", std::make_shared<nn::LinearLU>(2, &gen)},
      {"linear, QR", std::make_shared<nn::LinearQR>(2, &gen)},
  };
  std::vector<InverseCheck> out;
  for (auto& [name, f] : flows) {
    f->to(DType::Float64);
    perturb_parameters(*f, 0.7, gen);
    Tensor x = randn({points, 2}, kF64, &gen);
    // (the lambdas capture a plain reference: clang 16 rejects a captured structured binding under -fopenmp)
    auto forward = [&flow = f](const Tensor& v) { return flow->forward(v); };
    auto inverse = [&flow = f](const Tensor& v) { return flow->inverse(v); };
    Tensor jf = autograd::batch_jacobian(forward, x);         // (P, 2, 2)
    nn::FlowOutput fw = f->forward_and_log_det(x);
    Tensor z = fw.out.detach();
    Tensor jinv = autograd::batch_jacobian(inverse, z);       // (P, 2, 2)
    InverseCheck c;
    c.name = name;
    std::vector<double> prod = values(matmul(jf, jinv));
    for (int64_t p = 0; p < points; ++p)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) c.max_identity_error = std::max(c.max_identity_error, std::abs(prod[p * 4 + i * 2 + j] - (i == j)));
    std::vector<double> ldf = values(slogdet(jf).logabsdet), ldi = values(slogdet(jinv).logabsdet), layer = values(fw.log_det);
    std::vector<double> back = values(f->inverse(z)), xv = values(x);
    for (int64_t p = 0; p < points; ++p) {
      c.max_logdet_sum = std::max(c.max_logdet_sum, std::abs(ldf[p] + ldi[p]));
      c.max_layer_vs_slogdet = std::max(c.max_layer_vs_slogdet, std::abs(layer[p] - ldf[p]));
    }
    for (size_t i = 0; i < xv.size(); ++i) c.max_roundtrip = std::max(c.max_roundtrip, std::abs(back[i] - xv[i]));
    out.push_back(c);
  }
  return out;
}

// ---- composition ------------------------------------------------------------------------------------------

CompositionCheck composition_check(int64_t grid, int64_t n_samples, uint64_t seed) {
  Generator gen(seed);
  CompositionCheck c;
  auto seq = std::make_shared<nn::FlowSequence>();
  auto add = [&](const std::string& name, std::shared_ptr<nn::Flow> f) {
    c.layers.push_back(name);
    seq->push_back(std::move(f));
  };
  add("LinearLU", std::make_shared<nn::LinearLU>(2, &gen));
  add("planar", std::make_shared<nn::PlanarFlow>(2, &gen));
  add("affine coupling (x2 | x1)", std::make_shared<nn::AffineCoupling>(nn::half_mask(2, true), nn::mlp_conditioner(2, 16, &gen)));
  add("radial", std::make_shared<nn::RadialFlow>(2, &gen));
  add("affine coupling (x1 | x2)", std::make_shared<nn::AffineCoupling>(nn::half_mask(2, false), nn::mlp_conditioner(2, 16, &gen)));
  add("ActNorm", std::make_shared<nn::ActNorm>(2));
  add("planar", std::make_shared<nn::PlanarFlow>(2, &gen));
  seq->to(DType::Float64);
  seq->eval();  // ActNorm keeps the values set below instead of initialising from data
  perturb_parameters(*seq, 0.3, gen);

  // log-dets: per layer, of the sequence, of the composed Jacobian
  Tensor x = randn({64, 2}, kF64, &gen);
  std::vector<double> layer_sum(64, 0.0);
  Tensor h = x;
  for (size_t k = 0; k < seq->size(); ++k) {
    nn::FlowOutput o = (*seq)[k]->forward_and_log_det(h);
    std::vector<double> ld = values(o.log_det);
    for (int i = 0; i < 64; ++i) layer_sum[i] += ld[i];
    h = o.out;
  }
  nn::FlowOutput all = seq->forward_and_log_det(x);
  std::vector<double> seq_ld = values(all.log_det);
  std::vector<double> dense = values(slogdet(autograd::batch_jacobian([&](const Tensor& v) { return seq->forward(v); }, x)).logabsdet);
  std::vector<double> back = values(seq->inverse(all.out.detach())), xv = values(x);
  for (int i = 0; i < 64; ++i) {
    c.max_sum_vs_sequence = std::max(c.max_sum_vs_sequence, std::abs(layer_sum[i] - seq_ld[i]));
    c.max_sum_vs_slogdet = std::max(c.max_sum_vs_slogdet, std::abs(layer_sum[i] - dense[i]));
  }
  for (size_t i = 0; i < xv.size(); ++i) c.max_roundtrip = std::max(c.max_roundtrip, std::abs(back[i] - xv[i]));

  // the density p(x) = N(f(x)) |det J_f(x)| on a grid
  NoGradGuard no_grad;
  c.grid = grid, c.lo = -8, c.hi = 8;
  nn::FlowOutput g = seq->forward_and_log_det(grid_tensor(c.lo, c.hi, grid));
  std::vector<double> z = values(g.out), ld = values(g.log_det);
  const double cell = (c.hi - c.lo) / double(grid) * (c.hi - c.lo) / double(grid);
  for (int64_t i = 0; i < grid * grid; ++i) {
    c.density.push_back(std::exp(log_normal_2d(z[2 * i], z[2 * i + 1]) + ld[i]));
    c.integral += c.density.back() * cell;
  }
  // the generative pass, stage by stage: x_K = z ~ N(0, I), x_{k-1} = f_k^{-1}(x_k)
  Tensor s = randn({n_samples, 2}, kF64, &gen);
  auto record = [&](const Tensor& t) {
    std::vector<double> v = values(t), xs, ys;
    for (int64_t i = 0; i < n_samples; ++i) xs.push_back(v[2 * i]), ys.push_back(v[2 * i + 1]);
    c.stage_x.push_back(xs), c.stage_y.push_back(ys);
  };
  record(s);
  for (size_t k = seq->size(); k-- > 0;) {
    s = (*seq)[k]->inverse(s);
    record(s);
  }
  int64_t inside = 0;
  for (int64_t i = 0; i < n_samples; ++i)
    if (std::abs(c.stage_x.back()[i]) <= c.hi && std::abs(c.stage_y.back()[i]) <= c.hi) ++inside;
  c.mass_in_square = double(inside) / double(n_samples);
  return c;
}

// ---- Jacobian structures ------------------------------------------------------------------------------------

std::vector<StructureCheck> structure_checks(int64_t dim, uint64_t seed) {
  Generator gen(seed);
  Tensor x = randn({1, dim}, kF64, &gen);
  std::vector<StructureCheck> out;
  auto dense = [&](const std::string& name, const autograd::TensorFunction& f, double analytic) {
    StructureCheck s;
    s.name = name, s.dim = dim, s.analytic = analytic;
    Tensor j = autograd::batch_jacobian(f, x).select(0, 0);  // (D, D)
    s.slogdet = slogdet(j).logabsdet.item();
    s.pattern = values(abs(j));
    out.push_back(s);
  };
  auto perm = nn::Permutation::random(dim, &gen);
  dense("permutation", [&](const Tensor& v) { return perm->forward(v); }, 0.0);
  // elementwise z_j = sinh(x_j): log|det| = sum_j log cosh(x_j)
  double elementwise = 0;
  for (double v : values(x)) elementwise += std::log(std::cosh(v));
  dense("elementwise: z = sinh(x)", [](const Tensor& v) { return (exp(v) - exp(-v)) * 0.5; }, elementwise);
  // triangular: a MAF layer, z_j = (x_j - mu_j(x_<j)) exp(-alpha_j(x_<j))
  auto maf = std::make_shared<nn::GaussianAutoregressiveFlow>(dim, std::vector<int64_t>{4 * dim}, nn::AutoregressiveDirection::MAF, &gen);
  maf->to(DType::Float64);
  perturb_parameters(*maf, 0.3, gen);
  dense("triangular: a MAF layer", [&](const Tensor& v) { return maf->forward(v); }, maf->forward_and_log_det(x).log_det.item());
  // block triangular: an affine coupling (half the coordinates kept)
  auto coupling = std::make_shared<nn::AffineCoupling>(nn::half_mask(dim, true), nn::mlp_conditioner(dim, 4 * dim, &gen));
  coupling->to(DType::Float64);
  perturb_parameters(*coupling, 0.3, gen);
  dense("block triangular: a coupling layer", [&](const Tensor& v) { return coupling->forward(v); },
        coupling->forward_and_log_det(x).log_det.item());
  return out;
}

DetTiming det_timing(const std::vector<int64_t>& dims, uint64_t seed) {
  Generator gen(seed);
  DetTiming t;
  t.dims = dims;
  NoGradGuard no_grad;
  for (int64_t m : dims) {
    // lower-triangular L with diagonal e^{N(0, 0.1^2)}
    Tensor l = tril(randn({m, m}, kF64, &gen) * 0.1, -1) + eye(m, kF64) * exp(randn({m}, kF64, &gen) * 0.1).unsqueeze(1);
    double dense = 0, tri = 0;
    const int reps = m <= 128 ? 20 : 3;
    t.dense_ms.push_back(elapsed_ms([&] { dense = slogdet(l).logabsdet.item(); }, reps));
    const double* p = l.data<double>();
    t.triangular_ms.push_back(elapsed_ms(
        [&] {
          tri = 0;
          for (int64_t i = 0; i < m; ++i) tri += std::log(std::abs(p[i * m + i]));
        },
        200));
    t.max_diff.push_back(std::abs(dense - tri));
  }
  return t;
}

// ---- linear flows -----------------------------------------------------------------------------------------------

std::vector<LinearFlowCheck> linear_flow_checks(int64_t dim, int64_t steps, uint64_t seed) {
  Generator gen(seed);
  // target: N(0, Sigma), Sigma = A A^T with A = I + 0.6 N(0, 1) (a correlated Gaussian)
  Tensor a = eye(dim, kF64) + randn({dim, dim}, kF64, &gen) * 0.6;
  const int64_t n = 4000;
  Tensor data = matmul(randn({n, dim}, kF64, &gen), a.t());  // x = A e
  const double exact = 0.5 * double(dim) * (1 + std::log(2 * M_PI)) + slogdet(a).logabsdet.item();  // entropy of N(0, A A^T)
  std::vector<LinearFlowCheck> out;
  for (std::string name : {"LU", "QR"}) {
    std::shared_ptr<nn::Flow> f;
    std::function<Tensor()> weight;
    if (name == "LU") {
      auto lu = std::make_shared<nn::LinearLU>(dim, &gen);
      f = lu, weight = [lu] { return lu->weight(); };
    } else {
      auto qr = std::make_shared<nn::LinearQR>(dim, &gen);
      f = qr, weight = [qr] { return qr->weight(); };
    }
    f->to(DType::Float64);
    perturb_parameters(*f, 0.2, gen);
    LinearFlowCheck c;
    c.name = name, c.dim = dim, c.exact_nll = exact;
    {
      NoGradGuard no_grad;
      Tensor x = randn({8, dim}, kF64, &gen);
      nn::FlowOutput o = f->forward_and_log_det(x);
      c.logdet_formula = values(o.log_det)[0];
      c.logdet_dense = slogdet(weight()).logabsdet.item();
      std::vector<double> back = values(f->inverse(o.out)), xv = values(x);
      for (size_t i = 0; i < xv.size(); ++i) c.max_roundtrip = std::max(c.max_roundtrip, std::abs(back[i] - xv[i]));
    }
    nn::Adam opt(f->parameters(), {.lr = 0.03});
    auto nll = [&]() {  // -mean log N(W x; 0, I) - log|det W|
      nn::FlowOutput o = f->forward_and_log_det(data);
      return mean(sum(square(o.out), {1}) * 0.5 - o.log_det) + 0.5 * double(dim) * std::log(2 * M_PI);
    };
    for (int64_t s = 0; s < steps; ++s) {
      opt.zero_grad();
      Tensor loss = nll();
      if (s == 0) c.initial_nll = loss.item();
      loss.backward();
      opt.step();
      NoGradGuard no_grad;
      SignLogAbsDet d = slogdet(weight());
      c.det_during_training.push_back(d.sign.item() * std::exp(d.logabsdet.item()));
    }
    NoGradGuard no_grad;
    c.final_nll = nll().item();
    out.push_back(std::move(c));
  }
  return out;
}

SignPath sign_path(int64_t dim, int64_t points, uint64_t seed) {
  Generator gen(seed);
  Tensor w0 = eye(dim, kF64) + randn({dim, dim}, kF64, &gen) * 0.3;
  if (slogdet(w0).sign.item() < 0) w0 = cat({w0.narrow(0, 0, 1) * -1.0, w0.narrow(0, 1, dim - 1)}, 0);  // det W0 > 0
  // W1: W0 with its first row negated (a reflection), det W1 = -det W0
  Tensor w1 = cat({w0.narrow(0, 0, 1) * -1.0, w0.narrow(0, 1, dim - 1)}, 0);
  SignPath p;
  p.min_abs_det = INFINITY;
  for (int64_t i = 0; i < points; ++i) {
    double t = double(i) / double(points - 1);
    SignLogAbsDet d = slogdet(w0 * (1 - t) + w1 * t);
    double det = d.sign.item() * std::exp(d.logabsdet.item());
    if (i > 0 && (det > 0) != (p.det.back() > 0)) p.crossing = p.t.back() + (t - p.t.back()) * p.det.back() / (p.det.back() - det);
    p.t.push_back(t), p.det.push_back(det);
    p.min_abs_det = std::min(p.min_abs_det, std::abs(det));
  }
  return p;
}

}  // namespace dgm::lecture02
