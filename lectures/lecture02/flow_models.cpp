// Lecture 2, flow families and fitting them: numbers only (the chapter is flow_models_chapter.cpp).
#include <dgm/lectures/lecture02/flow_models.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include <dgm/autograd/functional.h>
#include <dgm/autograd/ops.h>
#include <dgm/lectures/lecture02/common.h>
#include <dgm/nn/flows.h>
#include <dgm/nn/optim.h>
#include <dgm/tensor/errors.h>

namespace dgm::lecture02 {

using linalg::SignLogAbsDet;
using linalg::slogdet;

namespace {
constexpr TensorOptions kF64{.dtype = DType::Float64};
}  // namespace

// ---- Gaussian autoregressive flows ---------------------------------------------------------------------

ToyArFlow toy_autoregressive() {
  ToyArFlow t;
  t.z = {-1, 0.5, 1, -0.5};
  const size_t m = t.z.size();
  std::vector<double> x(m, NAN);
  for (size_t j = 0; j < m; ++j) {  // x_j = sigma_j z_j + mu_j(x_<j), sigma = 1, mu_j = sum_{i<j} x_i
    double mu = 0;
    for (size_t i = 0; i < j; ++i) mu += x[i];
    x[j] = t.z[j] + mu;
    t.steps.push_back(x);
  }
  t.x = x;
  // one parallel pass back: z = x - mu(x), every mu_j from the known x
  Tensor xt = from_doubles(x, {int64_t(m)});
  t.z_back = values(xt - (cumsum(xt, 0) - xt));
  t.log_det = 0;  // -sum log sigma_j, sigma = 1
  return t;
}

std::vector<ArFlowCheck> ar_flow_checks(int64_t dim, uint64_t seed) {
  Generator gen(seed);
  std::vector<ArFlowCheck> out;
  for (auto direction : {nn::AutoregressiveDirection::MAF, nn::AutoregressiveDirection::IAF}) {
    auto f = std::make_shared<nn::GaussianAutoregressiveFlow>(dim, std::vector<int64_t>{4 * dim}, direction, &gen);
    f->to(DType::Float64);
    perturb_parameters(*f, 0.3, gen);
    ArFlowCheck c;
    c.name = direction == nn::AutoregressiveDirection::MAF ? "MAF" : "IAF";
    c.dim = dim;
    Tensor x = randn({8, dim}, kF64, &gen);
    std::vector<double> j = values(autograd::batch_jacobian([&](const Tensor& v) { return f->forward(v); }, x));  // (8, D, D)
    std::vector<double> ld = values(f->forward_and_log_det(x).log_det);
    for (int64_t b = 0; b < 8; ++b) {
      double diag = 0;
      for (int64_t r = 0; r < dim; ++r) {
        for (int64_t col = r + 1; col < dim; ++col) c.max_above_diagonal = std::max(c.max_above_diagonal, std::abs(j[(b * dim + r) * dim + col]));
        diag += std::log(std::abs(j[(b * dim + r) * dim + r]));
      }
      c.max_logdet_vs_diag = std::max(c.max_logdet_vs_diag, std::abs(diag - ld[b]));
    }
    for (int64_t k = 0; k < dim * dim; ++k) c.pattern.push_back(std::abs(j[k]));
    NoGradGuard no_grad;
    Tensor z = randn({8, dim}, kF64, &gen);
    std::vector<double> zz = values(f->forward(f->inverse(z))), zv = values(z);
    for (size_t i = 0; i < zv.size(); ++i) c.max_roundtrip = std::max(c.max_roundtrip, std::abs(zz[i] - zv[i]));
    out.push_back(c);
  }
  return out;
}

ArTiming ar_timing(const std::vector<int64_t>& dims, int64_t batch, uint64_t seed) {
  Generator gen(seed);
  ArTiming t;
  t.dims = dims, t.batch = batch;
  NoGradGuard no_grad;
  for (int64_t d : dims) {
    nn::GaussianAutoregressiveFlow maf(d, {2 * d}, nn::AutoregressiveDirection::MAF, &gen);
    nn::GaussianAutoregressiveFlow iaf(d, {2 * d}, nn::AutoregressiveDirection::IAF, &gen);
    Tensor x = randn({batch, d}, {}, &gen);
    const int reps = d <= 32 ? 5 : 1;
    t.maf_density_ms.push_back(elapsed_ms([&] { maf.forward_and_log_det(x); }, reps));
    t.maf_sample_ms.push_back(elapsed_ms([&] { maf.inverse(x); }, reps));
    t.iaf_sample_ms.push_back(elapsed_ms([&] { iaf.inverse(x); }, reps));
    t.iaf_density_ms.push_back(elapsed_ms([&] { iaf.forward_and_log_det(x); }, reps));
  }
  return t;
}

// ---- coupling layers ------------------------------------------------------------------------------------

std::vector<double> lcg_gaussian_cloud(int64_t points, uint64_t seed, double std) {
  uint64_t s = seed;
  auto uniform = [&] {
    s = (1664525ull * s + 1013904223ull) % 4294967296ull;
    return (double(s) + 0.5) / 4294967296.0;
  };
  std::vector<double> xy;
  for (int64_t i = 0; i < points; ++i) {
    double u1 = uniform(), u2 = uniform();
    double r = std::sqrt(-2 * std::log(u1)), th = 2 * M_PI * u2;
    xy.push_back(std * r * std::cos(th)), xy.push_back(std * r * std::sin(th));
  }
  return xy;
}

namespace {
// One CouplingDemo layer, generative direction: moves coordinate `moved` given the other one.
//   x_moved <- x_moved e^{0.4 lambda tanh(c)} + 0.8 lambda tanh(c),  c = x_other;  log-det 0.4 lambda tanh(c)
Tensor demo_layer(const Tensor& x, int moved, double lambda) {
  Tensor c = x.select(1, 1 - moved), v = x.select(1, moved);
  Tensor out = v * exp(tanh(c) * (0.4 * lambda)) + tanh(c) * (0.8 * lambda);
  return moved == 1 ? stack({c, out}, 1) : stack({out, c}, 1);
}
Tensor demo_layer_inverse(const Tensor& x, int moved, double lambda) {
  Tensor c = x.select(1, 1 - moved), v = x.select(1, moved);
  Tensor out = (v - tanh(c) * (0.8 * lambda)) * exp(tanh(c) * (-0.4 * lambda));
  return moved == 1 ? stack({c, out}, 1) : stack({out, c}, 1);
}
}  // namespace

CouplingDemo coupling_demo(double lambda) {
  CouplingDemo d;
  d.lambda = lambda;
  const int64_t n = 180;
  Tensor x = from_doubles(lcg_gaussian_cloud(n), {n, 2});
  auto record = [&](const Tensor& t) {
    std::vector<double> v = values(t), xs, ys;
    for (int64_t i = 0; i < n; ++i) xs.push_back(v[2 * i]), ys.push_back(v[2 * i + 1]);
    d.stage_x.push_back(xs), d.stage_y.push_back(ys);
  };
  record(x);
  Tensor h = x;
  for (int moved : {1, 0}) {
    auto layer = [&](const Tensor& v) { return demo_layer(v, moved, lambda); };
    std::vector<double> dense = values(slogdet(autograd::batch_jacobian(layer, h)).logabsdet);
    std::vector<double> cond = values(h.select(1, 1 - moved));
    for (int64_t i = 0; i < n; ++i) d.max_logdet_vs_slogdet = std::max(d.max_logdet_vs_slogdet, std::abs(dense[i] - 0.4 * lambda * std::tanh(cond[i])));
    Tensor next = layer(h);
    std::vector<double> back = values(demo_layer_inverse(next, moved, lambda)), hv = values(h);
    for (size_t i = 0; i < hv.size(); ++i) d.max_roundtrip = std::max(d.max_roundtrip, std::abs(back[i] - hv[i]));
    std::vector<double> id = values(demo_layer(h, moved, 0.0));
    for (size_t i = 0; i < hv.size(); ++i) d.max_identity_at_zero = std::max(d.max_identity_at_zero, std::abs(id[i] - hv[i]));
    h = next;
    record(h);
  }
  return d;
}

std::vector<ImageCouplingCheck> image_coupling_checks(uint64_t seed) {
  Generator gen(seed);
  std::vector<ImageCouplingCheck> out;
  struct Case {
    std::string name;
    Tensor mask;
    int64_t c, h, w;
  };
  for (const Case& k : {Case{"checkerboard mask, 1 x 4 x 4", nn::checkerboard_mask(4, 4, true), 1, 4, 4},
                        Case{"channel mask, 4 x 2 x 2", nn::channel_mask(4, true), 4, 2, 2}}) {
    auto f = std::make_shared<nn::AffineCoupling>(k.mask, nn::conv_conditioner(k.c, 8, &gen));
    f->to(DType::Float64);
    perturb_parameters(*f, 0.3, gen);
    ImageCouplingCheck c;
    c.name = k.name;
    Tensor x = randn({4, k.c, k.h, k.w}, kF64, &gen);
    const int64_t d = k.c * k.h * k.w;
    Tensor j = autograd::batch_jacobian([&](const Tensor& v) { return f->forward(v); }, x).reshape({4, d, d});
    std::vector<double> dense = values(slogdet(j).logabsdet);
    nn::FlowOutput o = f->forward_and_log_det(x);
    std::vector<double> ld = values(o.log_det);
    for (int i = 0; i < 4; ++i) c.max_logdet_vs_slogdet = std::max(c.max_logdet_vs_slogdet, std::abs(dense[i] - ld[i]));
    std::vector<double> back = values(f->inverse(o.out)), xv = values(x), zv = values(o.out);
    std::vector<double> kept = values(expand(k.mask.to(DType::Float64), x.shape()));
    for (size_t i = 0; i < xv.size(); ++i) {
      c.max_roundtrip = std::max(c.max_roundtrip, std::abs(back[i] - xv[i]));
      if (kept[i] > 0.5) c.max_kept_change = std::max(c.max_kept_change, std::abs(zv[i] - xv[i]));
    }
    out.push_back(c);
  }
  return out;
}

// ---- seminar 2 ------------------------------------------------------------------------------------------

namespace {

// U(z) of the seminar's targets, on (B, 2) tensors (logsumexp keeps far-away samples finite).
Tensor potential_tensor(const std::string& target, const Tensor& z) {
  Tensor z1 = z.select(1, 0), z2 = z.select(1, 1);
  auto lse = [](std::vector<Tensor> terms) { return logsumexp(stack(terms, 1), {1}); };
  auto g = [](const Tensor& v, double s) { return square(v / s) * -0.5; };  // log of e^{-(v/s)^2 / 2}
  Tensor w1 = sin(z1 * (2 * M_PI / 4));
  Tensor norm = sqrt(square(z1) + square(z2) + 1e-12);
  Tensor eps = scalar_like(z1, std::log(1e-6)) + zeros_like(z1);
  if (target == "U1") return square((norm - 2.0) / 0.4) * 0.5 - lse({g(z1 - 2.0, 0.6), g(z1 + 2.0, 0.6)});
  if (target == "U2") return square((z2 - w1) / 0.4) * 0.5;
  if (target == "U3") {
    Tensor w2 = exp(square((z1 - 1.0) / 0.6) * -0.5) * 3.0;
    return -lse({g(z2 - w1, 0.35), g(z2 - w1 + w2, 0.35), eps});
  }
  if (target == "U4") {
    Tensor w3 = sigmoid((z1 - 1.0) / 0.3) * 3.0;
    return -lse({g(z2 - w1, 0.4), g(z2 - w1 + w3, 0.35), eps});
  }
  if (target == "ring") return square((norm - 4.0) / 0.4) * 0.5 - lse({g(z1 - 2.0, 0.8), g(z1 + 2.0, 0.8), eps});
  if (target == "two modes")  // -log of 0.5 N((-2.5, 0), 0.6^2) + 0.5 N((2.5, 0), 0.6^2), up to a constant
    return -lse({g(z1 + 2.5, 0.6), g(z1 - 2.5, 0.6)}) - g(z2, 0.6);
  throw ValueError("lecture02: unknown target '" + target + "' (U1, U2, U3, U4, ring, two modes)");
}

std::shared_ptr<nn::FlowSequence> make_flow(const FitOptions& o, Generator& gen) {
  auto seq = std::make_shared<nn::FlowSequence>();
  for (int64_t k = 0; k < o.layers; ++k) {
    if (o.flow == "planar")
      seq->push_back(std::make_shared<nn::PlanarFlow>(2, &gen));
    else if (o.flow == "radial")
      seq->push_back(std::make_shared<nn::RadialFlow>(2, &gen));
    else
      throw ValueError("lecture02: flow must be planar or radial, got '" + o.flow + "'");
  }
  seq->to(DType::Float64);
  if (o.flow == "radial") {  // centres spread over the plane, so the layers act in different places
    for (size_t k = 0; k < seq->size(); ++k) {
      auto* r = dynamic_cast<nn::RadialFlow*>((*seq)[k].get());
      set_values(r->x0, {2 * gen.normal(), 2 * gen.normal()});
    }
  }
  return seq;
}

// KLs on the grid; model.density is filled.
void finish_fit(FlowFit& fit, const TargetGrid& pi) {
  const double cell = (pi.hi - pi.lo) / double(pi.n) * (pi.hi - pi.lo) / double(pi.n);
  std::vector<double> gx = grid_points(pi.lo, pi.hi, pi.n);
  for (int64_t i = 0; i < pi.n * pi.n; ++i) {
    double p = std::max(fit.model.density[i], 1e-300), q = std::max(pi.density[i], 1e-300);
    fit.kl_forward += pi.density[i] * std::log(q / p) * cell;
    fit.kl_reverse += fit.model.density[i] * std::log(p / q) * cell;
    fit.model_mass += fit.model.density[i] * cell;
    double x1 = gx[i % pi.n];
    if (std::abs(x1) < 1.25) fit.mass_gap += fit.model.density[i] * cell;
    if (x1 > 0) fit.mass_right += fit.model.density[i] * cell;
  }
}

TargetGrid empty_like(const TargetGrid& t) {
  TargetGrid m = t;
  m.density.assign(t.density.size(), 0.0);
  m.log_z = 0;
  return m;
}

}  // namespace

double potential(const std::string& target, double z1, double z2) {
  NoGradGuard no_grad;
  return potential_tensor(target, from_doubles({z1, z2}, {1, 2})).item();
}

double target_box(const std::string& target) { return target == "ring" ? 7.0 : target == "two modes" ? 5.0 : 5.0; }

TargetGrid target_grid(const std::string& target, int64_t n) {
  NoGradGuard no_grad;
  TargetGrid t;
  t.name = target, t.n = n, t.lo = -target_box(target), t.hi = target_box(target);
  std::vector<double> u = values(potential_tensor(target, grid_tensor(t.lo, t.hi, n)));
  const double cell = (t.hi - t.lo) / double(n) * (t.hi - t.lo) / double(n);
  double top = -INFINITY;
  for (double v : u) top = std::max(top, -v);
  double z = 0;
  for (double v : u) z += std::exp(-v - top) * cell;
  t.log_z = top + std::log(z);
  for (double v : u) t.density.push_back(std::exp(-v - t.log_z));
  return t;
}

FlowFit fit_reverse_kl(const std::string& target, const FitOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  Generator gen(o.seed);
  FlowFit fit;
  fit.target = target, fit.flow = o.flow, fit.objective = "reverse KL";
  TargetGrid pi = target_grid(target, o.grid);
  auto g = make_flow(o, gen);  // g: z -> x
  nn::Adam opt(g->parameters(), {.lr = o.lr});
  // loss = E_z [log N(z) - log|det J_g(z)| + U(g(z))] = KL(p_x || pi) - log Z
  auto loss_on = [&](const Tensor& z) {
    nn::FlowOutput out = g->forward_and_log_det(z);
    Tensor log_base = sum(square(z), {1}) * -0.5 - std::log(2 * M_PI);
    return mean(log_base - out.log_det + potential_tensor(target, out.out));
  };
  for (int64_t s = 0; s < o.steps; ++s) {
    opt.zero_grad();
    Tensor loss = loss_on(randn({o.batch, 2}, kF64, &gen));
    fit.loss.push_back(loss.item());
    loss.backward();
    opt.step();
  }
  NoGradGuard no_grad;
  fit.kl_reverse_mc = loss_on(randn({4096, 2}, kF64, &gen)).item() + pi.log_z;
  std::vector<double> xs = values(g->forward(randn({2000, 2}, kF64, &gen)));
  for (int64_t i = 0; i < 2000; ++i) fit.sx.push_back(xs[2 * i]), fit.sy.push_back(xs[2 * i + 1]);
  // the model's density on the grid: p(x) = N(g^{-1}(x)) |det J_{g^-1}(x)|
  fit.model = empty_like(pi);
  nn::FlowOutput inv = g->inverse_and_log_det(grid_tensor(pi.lo, pi.hi, pi.n));
  std::vector<double> z = values(inv.out), ld = values(inv.log_det);
  for (int64_t i = 0; i < pi.n * pi.n; ++i) fit.model.density[i] = std::exp(log_normal_2d(z[2 * i], z[2 * i + 1]) + ld[i]);
  finish_fit(fit, pi);
  fit.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return fit;
}

FlowFit fit_forward_kl(const std::string& target, const FitOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  Generator gen(o.seed);
  FlowFit fit;
  fit.target = target, fit.flow = o.flow, fit.objective = "forward KL";
  TargetGrid pi = target_grid(target, o.grid);
  // samples of pi: a grid cell by its mass on a fine grid, then uniform inside the cell
  TargetGrid fine = target_grid(target, 400);
  std::vector<double> cdf(fine.density.size());
  double acc = 0;
  for (size_t i = 0; i < cdf.size(); ++i) cdf[i] = (acc += fine.density[i]);
  const double h = (fine.hi - fine.lo) / double(fine.n);
  std::vector<double> data;
  for (int64_t i = 0; i < o.n_data; ++i) {
    size_t c = std::lower_bound(cdf.begin(), cdf.end(), gen.uniform() * acc) - cdf.begin();
    c = std::min(c, cdf.size() - 1);
    data.push_back(fine.lo + (double(c % fine.n) + gen.uniform()) * h);
    data.push_back(fine.lo + (double(c / fine.n) + gen.uniform()) * h);
  }
  Tensor x = from_doubles(data, {o.n_data, 2});
  auto f = make_flow(o, gen);  // f: x -> z
  nn::Adam opt(f->parameters(), {.lr = o.lr});
  for (int64_t s = 0; s < o.steps; ++s) {
    Tensor idx = randint(0, o.n_data, {o.batch}, &gen);
    Tensor xb = index_select(x, 0, idx);
    opt.zero_grad();
    nn::FlowOutput out = f->forward_and_log_det(xb);
    Tensor loss = -mean(sum(square(out.out), {1}) * -0.5 - std::log(2 * M_PI) + out.log_det);  // -mean log p(x)
    fit.loss.push_back(loss.item());
    loss.backward();
    opt.step();
  }
  NoGradGuard no_grad;
  fit.model = empty_like(pi);
  nn::FlowOutput fw = f->forward_and_log_det(grid_tensor(pi.lo, pi.hi, pi.n));
  std::vector<double> z = values(fw.out), ld = values(fw.log_det);
  for (int64_t i = 0; i < pi.n * pi.n; ++i) fit.model.density[i] = std::exp(log_normal_2d(z[2 * i], z[2 * i + 1]) + ld[i]);
  std::vector<double> xs = values(f->inverse(randn({2000, 2}, kF64, &gen)));
  for (int64_t i = 0; i < 2000; ++i) fit.sx.push_back(xs[2 * i]), fit.sy.push_back(xs[2 * i + 1]);
  finish_fit(fit, pi);
  fit.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return fit;
}

}  // namespace dgm::lecture02
