#include <dgm/nn/flows.h>

#include <cmath>
#include <functional>

#include <dgm/nn/init.h>
#include <dgm/tensor/kernels.h>

namespace dgm::nn {

namespace F = functional;

static Generator& gen_or_default(Generator* g) { return g ? *g : default_generator(); }
static void check_positive(int64_t v, const char* layer, const char* what) {
  if (v <= 0) throw ValueError(cat(layer, ": ", what, " must be positive, got ", v));
}
// x: (B, D) with D = dim
static void check_features(const Tensor& x, int64_t dim, const char* layer) {
  if (x.dim() != 2 || x.size(1) != dim) throw ShapeError(cat(layer, ": expected input (B, ", dim, "), got ", shape_str(x.shape())));
}
static Tensor zero_log_det(const Tensor& x) { return zeros({x.size(0)}, {.dtype = x.dtype()}); }
// A per-batch log-det that does not depend on the example: (B) copies of the scalar `v`.
static Tensor per_example(const Tensor& v, const Tensor& x) { return zero_log_det(x) + v; }
static Tensor eye_like(int64_t n, const Tensor& like) { return eye(n, {.dtype = like.dtype()}); }

Tensor sum_except_batch(const Tensor& t) {
  if (t.dim() < 1) throw ShapeError("sum_except_batch: expected a batch dim, got a 0-dim tensor");
  if (t.dim() == 1) return t;
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < t.dim(); ++d) dims.push_back(d);
  return sum(t, dims);
}

FlowOutput Flow::inverse_and_log_det(const Tensor& z) {
  Tensor x = inverse(z);
  return {x, -forward_and_log_det(x).log_det};
}

// ---- FlowSequence ---------------------------------------------------------------------------------------
FlowSequence::FlowSequence(const std::vector<std::shared_ptr<Flow>>& flows) : Flow("FlowSequence") {
  for (const auto& f : flows) push_back(f);
}
void FlowSequence::push_back(std::shared_ptr<Flow> flow) {
  add_child(std::to_string(flows_.size()), flow);
  flows_.push_back(std::move(flow));
}
const std::shared_ptr<Flow>& FlowSequence::operator[](size_t i) const {
  if (i >= flows_.size()) throw IndexError(cat("FlowSequence: index ", i, " out of range for ", flows_.size(), " flows"));
  return flows_[i];
}
FlowOutput FlowSequence::forward_and_log_det(const Tensor& x) {
  Tensor z = x, log_det = zero_log_det(x);
  for (const auto& f : flows_) {
    auto [next, ld] = f->forward_and_log_det(z);  // log-det at this layer's own input
    z = next;
    log_det = log_det + ld;
  }
  return {z, log_det};
}
Tensor FlowSequence::inverse(const Tensor& z) {
  Tensor x = z;
  for (size_t i = flows_.size(); i-- > 0;) x = flows_[i]->inverse(x);
  return x;
}
FlowOutput FlowSequence::inverse_and_log_det(const Tensor& z) {
  Tensor x = z, log_det = zero_log_det(z);
  for (size_t i = flows_.size(); i-- > 0;) {
    auto [prev, ld] = flows_[i]->inverse_and_log_det(x);
    x = prev;
    log_det = log_det + ld;
  }
  return {x, log_det};
}

// ---- InverseFlow ----------------------------------------------------------------------------------------
InverseFlow::InverseFlow(std::shared_ptr<Flow> flow) : Flow("InverseFlow"), flow_(flow) { add_child("flow", std::move(flow)); }

// ---- Permutation ----------------------------------------------------------------------------------------
Permutation::Permutation(const std::vector<int64_t>& p) : Flow("Permutation") {
  const int64_t n = static_cast<int64_t>(p.size());
  check_positive(n, "Permutation", "size");
  std::vector<int64_t> inv(p.size(), -1);
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] < 0 || p[i] >= n || inv[p[i]] != -1) throw ValueError(cat("Permutation: entry ", i, " (", p[i], ") makes it not a permutation of 0..", n - 1));
    inv[p[i]] = i;
  }
  perm = register_buffer("perm", from_vector(p, {n}));
  inverse_perm = register_buffer("inverse_perm", from_vector(inv, {n}));
}
std::shared_ptr<Permutation> Permutation::reverse(int64_t n) {
  std::vector<int64_t> p(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) p[i] = n - 1 - i;
  return std::make_shared<Permutation>(p);
}
std::shared_ptr<Permutation> Permutation::random(int64_t n, Generator* gen) {
  check_positive(n, "Permutation", "size");
  Tensor p = multinomial(ones({n}), n, false, &gen_or_default(gen));
  return std::make_shared<Permutation>(p.to_vector<int64_t>());
}
// x: (B, n, ...) -> (B, n, ...)
FlowOutput Permutation::forward_and_log_det(const Tensor& x) {
  if (x.dim() < 2 || x.size(1) != perm.numel())
    throw ShapeError(cat("Permutation: expected input (B, ", perm.numel(), ", ...), got ", shape_str(x.shape())));
  return {index_select(x, 1, perm), zero_log_det(x)};
}
Tensor Permutation::inverse(const Tensor& z) {
  if (z.dim() < 2 || z.size(1) != perm.numel())
    throw ShapeError(cat("Permutation.inverse: expected input (B, ", perm.numel(), ", ...), got ", shape_str(z.shape())));
  return index_select(z, 1, inverse_perm);
}
std::string Permutation::extra_repr() const { return cat("n=", perm.numel()); }

// ---- LogitFlow ------------------------------------------------------------------------------------------
LogitFlow::LogitFlow(double a) : Flow("LogitFlow"), alpha(a) {
  if (!(a >= 0 && a < 0.5)) throw ValueError(cat("LogitFlow: alpha must be in [0, 0.5), got ", a));
}
FlowOutput LogitFlow::forward_and_log_det(const Tensor& y) {
  Tensor yt = alpha + (1 - 2 * alpha) * y;
  Tensor log_det = sum_except_batch(std::log1p(-2 * alpha) - log(yt) - log1p(-yt));
  return {logit(yt), log_det};
}
Tensor LogitFlow::inverse(const Tensor& v) { return (sigmoid(v) - alpha) / (1 - 2 * alpha); }
// log sigmoid(v) = -softplus(-v),  log(1 - sigmoid(v)) = -softplus(v)
FlowOutput LogitFlow::inverse_and_log_det(const Tensor& v) {
  return {inverse(v), sum_except_batch(-softplus(-v) - softplus(v) - std::log1p(-2 * alpha))};
}
std::string LogitFlow::extra_repr() const { return cat("alpha=", alpha); }

// ---- ActNorm --------------------------------------------------------------------------------------------
ActNorm::ActNorm(int64_t c) : Flow("ActNorm"), num_channels(c) {
  check_positive(c, "ActNorm", "num_channels");
  log_scale = register_parameter("log_scale", zeros({c}));
  bias = register_parameter("bias", zeros({c}));
  initialized = register_buffer("initialized", scalar_tensor(0));
}
bool ActNorm::is_initialized() const { return initialized.item() != 0; }
Tensor ActNorm::per_channel(const Tensor& v, int64_t ndim) const {
  Shape s(static_cast<size_t>(ndim), 1);
  s[1] = num_channels;
  return reshape(v, s);
}
// x: (B, C, ...) -> (B, C, ...)
FlowOutput ActNorm::forward_and_log_det(const Tensor& x) {
  if (x.dim() < 2 || x.size(1) != num_channels)
    throw ShapeError(cat("ActNorm: expected input (B, ", num_channels, ", ...), got ", shape_str(x.shape())));
  if (is_training() && !is_initialized()) {
    NoGradGuard no_grad;
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    Tensor xd = x.detach();
    Tensor mu = mean(xd, dims), sd = clamp_min(std(xd, dims, 0), 1e-6);
    Tensor l = -log(sd);
    log_scale.set_data(l.array().to(log_scale.dtype()));
    bias.set_data((-mu / sd).array().to(bias.dtype()));
    initialized.set_data(Array::scalar(1, initialized.dtype()));
  }
  const int64_t per_channel_elements = x.numel() / std::max<int64_t>(x.size(0) * num_channels, 1);
  Tensor z = x * exp(per_channel(log_scale, x.dim())) + per_channel(bias, x.dim());
  return {z, per_example(sum(log_scale) * static_cast<double>(per_channel_elements), x)};
}
Tensor ActNorm::inverse(const Tensor& z) {
  if (z.dim() < 2 || z.size(1) != num_channels)
    throw ShapeError(cat("ActNorm.inverse: expected input (B, ", num_channels, ", ...), got ", shape_str(z.shape())));
  return (z - per_channel(bias, z.dim())) * exp(-per_channel(log_scale, z.dim()));
}
std::string ActNorm::extra_repr() const { return cat(num_channels); }

// ---- LinearLU -------------------------------------------------------------------------------------------
// A random orthogonal matrix: a product of n Householder reflections of Gaussian vectors (float64).
static Tensor random_orthogonal(int64_t n, Generator& gen) {
  Tensor q = eye(n, {.dtype = DType::Float64});
  for (int64_t k = 0; k < n; ++k) {
    Tensor v = randn({n, 1}, {.dtype = DType::Float64}, &gen);
    q = matmul(q, eye(n, {.dtype = DType::Float64}) - 2.0 * matmul(v, transpose(v, 0, 1)) / sum(v * v));
  }
  return q;
}

LinearLU::LinearLU(int64_t d, Generator* gen) : Flow("LinearLU"), dim(d) {
  check_positive(d, "LinearLU", "dim");
  // W0 = P L U once: lu_factor gives P_r W0 = L U (row swaps P_r), so P = P_r^T.
  Tensor w0 = random_orthogonal(d, gen_or_default(gen));
  cpu::LU f = cpu::lu_factor(w0.array());
  std::vector<int64_t> rows(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i) rows[i] = i;
  const int64_t* piv = f.pivots.data<int64_t>();
  for (int64_t k = 0; k < d; ++k) std::swap(rows[k], rows[piv[k]]);  // row k of P_r W0 is row rows[k] of W0
  std::vector<float> p(static_cast<size_t>(d * d), 0.0f);
  for (int64_t k = 0; k < d; ++k) p[rows[k] * d + k] = 1.0f;  // P = P_r^T: P[rows[k], k] = 1
  Tensor lu(f.lu);
  Tensor diag = sum(lu * eye(d, {.dtype = DType::Float64}), {1});
  lower = register_parameter("lower", tril(lu, -1).to(DType::Float32));
  upper = register_parameter("upper", triu(lu, 1).to(DType::Float32));
  log_abs_s = register_parameter("log_abs_s", log(abs(diag)).to(DType::Float32));
  permutation = register_buffer("permutation", from_vector(p, {d, d}));
  sign_s = register_buffer("sign_s", sign(diag).to(DType::Float32));
}
Tensor LinearLU::unit_lower() const { return tril(lower, -1) + eye_like(dim, lower); }
Tensor LinearLU::upper_with_diagonal() const { return triu(upper, 1) + eye_like(dim, upper) * (sign_s * exp(log_abs_s)); }
Tensor LinearLU::weight() const { return matmul(matmul(permutation, unit_lower()), upper_with_diagonal()); }
// x: (B, D) -> z = x W^T: (B, D)
FlowOutput LinearLU::forward_and_log_det(const Tensor& x) {
  check_features(x, dim, "LinearLU");
  return {matmul(x, transpose(weight(), 0, 1)), per_example(sum(log_abs_s), x)};
}
// x^T = (U + diag s)^{-1} L^{-1} P^T z^T
Tensor LinearLU::inverse(const Tensor& z) {
  check_features(z, dim, "LinearLU.inverse");
  Tensor y = matmul(transpose(permutation, 0, 1), transpose(z, 0, 1));               // (D, B)
  y = linalg::solve_triangular(unit_lower(), y, /*upper=*/false, /*left=*/true, /*unitriangular=*/true);
  y = linalg::solve_triangular(upper_with_diagonal(), y, /*upper=*/true);
  return transpose(y, 0, 1);
}
std::string LinearLU::extra_repr() const { return cat("dim=", dim); }

// ---- LinearQR -------------------------------------------------------------------------------------------
LinearQR::LinearQR(int64_t d, Generator* gen) : Flow("LinearQR"), dim(d) {
  check_positive(d, "LinearQR", "dim");
  Tensor v = empty({d, d});
  init::normal_(v, 0, 1, gen_or_default(gen));
  householder = register_parameter("householder", v);
  upper = register_parameter("upper", zeros({d, d}));
  log_r = register_parameter("log_r", zeros({d}));
}
Tensor LinearQR::orthogonal() const {
  Tensor q = eye_like(dim, householder);
  for (int64_t k = 0; k < dim; ++k) {
    Tensor v = unsqueeze(select(householder, 0, k), 1);  // (D, 1)
    q = q - 2.0 * matmul(matmul(q, v), transpose(v, 0, 1)) / sum(v * v);  // q H_k
  }
  return q;
}
Tensor LinearQR::triangular() const { return triu(upper, 1) + eye_like(dim, upper) * exp(log_r); }
// x: (B, D) -> z = x W^T = x R^T Q^T
FlowOutput LinearQR::forward_and_log_det(const Tensor& x) {
  check_features(x, dim, "LinearQR");
  return {matmul(x, transpose(weight(), 0, 1)), per_example(sum(log_r), x)};
}
// x^T = R^{-1} Q^T z^T, i.e. x = (z Q) R^{-T}
Tensor LinearQR::inverse(const Tensor& z) {
  check_features(z, dim, "LinearQR.inverse");
  Tensor y = matmul(transpose(orthogonal(), 0, 1), transpose(z, 0, 1));  // (D, B)
  return transpose(linalg::solve_triangular(triangular(), y, /*upper=*/true), 0, 1);
}
std::string LinearQR::extra_repr() const { return cat("dim=", dim); }

// ---- PlanarFlow -----------------------------------------------------------------------------------------
PlanarFlow::PlanarFlow(int64_t d, Generator* gen) : Flow("PlanarFlow"), dim(d) {
  check_positive(d, "PlanarFlow", "dim");
  Generator& g = gen_or_default(gen);
  Tensor u0 = empty({d}), w0 = empty({d}), b0 = empty({1});
  init::normal_(u0, 0, 0.1, g);
  init::normal_(w0, 0, 0.1, g);
  init::normal_(b0, 0, 0.1, g);
  u = register_parameter("u", u0);
  w = register_parameter("w", w0);
  b = register_parameter("b", b0);
}
// u^ = u + [m(w^T u) - w^T u] w / |w|^2,  m(a) = softplus(a) - 1
Tensor PlanarFlow::u_hat() const {
  Tensor wu = sum(w * u);
  return u + (softplus(wu) - 1.0 - wu) * w / sum(w * w);
}
// x: (B, D) -> (B, D)
FlowOutput PlanarFlow::forward_and_log_det(const Tensor& x) {
  check_features(x, dim, "PlanarFlow");
  Tensor uh = u_hat();
  Tensor h = tanh(matmul(x, w) + b);  // (B)
  Tensor z = x + unsqueeze(h, 1) * uh;
  Tensor log_det = log(abs(1.0 + (1.0 - h * h) * sum(w * uh)));
  return {z, log_det};
}
Tensor PlanarFlow::inverse(const Tensor& z) {
  check_features(z, dim, "PlanarFlow.inverse");
  Tensor uh = u_hat();
  // Solve w^T z = a + c tanh(a + b) for a, per example: g(a) = a + c tanh(a + b) is increasing
  // (g' = 1 + c tanh' > 0 as c = w^T u^ > -1) and |a - w^T z| <= |c|, which brackets the root.
  std::vector<double> wz = matmul(z, w).to(DType::Float64).contiguous().to_vector<double>();
  const double c = sum(w * uh).item(), bb = b.item();
  std::vector<double> a(wz.size());
  for (size_t i = 0; i < wz.size(); ++i) {
    double lo = wz[i] - std::abs(c) - 1e-12, hi = wz[i] + std::abs(c) + 1e-12;
    for (int it = 0; it < 200 && hi - lo > 0; ++it) {
      double mid = 0.5 * (lo + hi);
      if (mid == lo || mid == hi) break;
      (mid + c * std::tanh(mid + bb) < wz[i] ? lo : hi) = mid;
    }
    a[i] = 0.5 * (lo + hi);
  }
  Tensor at = Tensor(Array::from_vector(a, {z.size(0)}).to(z.dtype()));
  return z - unsqueeze(tanh(at + b), 1) * uh;
}
std::string PlanarFlow::extra_repr() const { return cat("dim=", dim); }

// ---- RadialFlow -----------------------------------------------------------------------------------------
RadialFlow::RadialFlow(int64_t d, Generator* gen) : Flow("RadialFlow"), dim(d) {
  check_positive(d, "RadialFlow", "dim");
  Generator& g = gen_or_default(gen);
  Tensor c = empty({d}), a = empty({1}), be = empty({1});
  init::normal_(c, 0, 0.1, g);
  init::normal_(a, 0, 0.1, g);
  init::normal_(be, 0, 0.1, g);
  x0 = register_parameter("x0", c);
  alpha_raw = register_parameter("alpha_raw", a);
  beta_raw = register_parameter("beta_raw", be);
}
Tensor RadialFlow::alpha() const { return softplus(alpha_raw); }
Tensor RadialFlow::beta() const { return softplus(beta_raw) - alpha(); }
// x: (B, D) -> (B, D)
FlowOutput RadialFlow::forward_and_log_det(const Tensor& x) {
  check_features(x, dim, "RadialFlow");
  Tensor a = alpha(), be = beta();
  Tensor diff = x - x0;
  Tensor r = sqrt(sum(diff * diff, {1}));  // (B)
  Tensor h = 1.0 / (a + r);
  Tensor bh = be * h;
  Tensor z = x + unsqueeze(bh, 1) * diff;
  // 1 + beta h + beta h' r = 1 + beta alpha / (alpha + r)^2
  Tensor log_det = static_cast<double>(dim - 1) * log1p(bh) + log1p(be * a * h * h);
  return {z, log_det};
}
Tensor RadialFlow::inverse(const Tensor& z) {
  check_features(z, dim, "RadialFlow.inverse");
  Tensor a = alpha(), be = beta();
  Tensor diff = z - x0;
  Tensor rho = sqrt(sum(diff * diff, {1}));
  Tensor p = a + be - rho;
  Tensor r = 0.5 * (sqrt(p * p + 4.0 * a * rho) - p);  // the non-negative root
  return x0 + diff / unsqueeze(1.0 + be / (a + r), 1);
}
std::string RadialFlow::extra_repr() const { return cat("dim=", dim); }

// ---- MaskedLinear, MADE ---------------------------------------------------------------------------------
MaskedLinear::MaskedLinear(int64_t in, int64_t out, const Tensor& m, Generator* gen) : Module("MaskedLinear"), in_features(in), out_features(out) {
  check_positive(in, "MaskedLinear", "in_features");
  check_positive(out, "MaskedLinear", "out_features");
  if (m.shape() != Shape{out, in})
    throw ShapeError(cat("MaskedLinear: mask of shape ", shape_str(m.shape()), ", expected (out, in) = (", out, ", ", in, ")"));
  Tensor w = empty({out, in}), bb = empty({out});
  init::default_linear_init_(w, &bb, gen_or_default(gen));
  weight = register_parameter("weight", w);
  bias = register_parameter("bias", bb);
  mask = register_buffer("mask", m.to(DType::Float32).contiguous());
}
// x: (..., in) -> (..., out)
bool MaskedLinear::Seen::matches(const Tensor& t) const {
  const Array& a = t.array();
  return a.shares_storage(data) && a.offset() == data.offset() && a.shape() == data.shape() && a.strides() == data.strides() &&
         a.version() == version;
}
Tensor MaskedLinear::forward(const Tensor& x) {
  if (is_grad_enabled()) return F::linear(x, weight * mask, bias);
  // no graph: W * M as at the last such call unless the weight or the mask changed since. MAF's
  // sampling (784 passes): the mask product was 14% of `dgm sample maf`, now 1.5% (perf).
  if (!masked_.defined() || !weight_seen_.matches(weight) || !mask_seen_.matches(mask)) {
    masked_ = weight * mask;
    weight_seen_ = {weight.array(), weight.version()};
    mask_seen_ = {mask.array(), mask.version()};
  }
  return F::linear(x, masked_, bias);
}
std::string MaskedLinear::extra_repr() const { return cat("in_features=", in_features, ", out_features=", out_features); }

MADE::MADE(int64_t d, const std::vector<int64_t>& hidden, int64_t k, Generator* gen) : Module("MADE"), dim(d), outputs_per_dim(k) {
  check_positive(d, "MADE", "dim");
  check_positive(k, "MADE", "outputs_per_dim");
  std::vector<int64_t> prev(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i) prev[i] = i + 1;  // input degrees 1..D
  auto make_mask = [](const std::vector<int64_t>& out_deg, const std::vector<int64_t>& in_deg, bool strict) {
    const int64_t o = static_cast<int64_t>(out_deg.size()), n = static_cast<int64_t>(in_deg.size());
    std::vector<float> m(static_cast<size_t>(o * n));
    for (int64_t r = 0; r < o; ++r)
      for (int64_t c = 0; c < n; ++c) m[r * n + c] = (strict ? out_deg[r] > in_deg[c] : out_deg[r] >= in_deg[c]) ? 1.0f : 0.0f;
    return from_vector(m, {o, n});
  };
  for (size_t l = 0; l < hidden.size(); ++l) {
    check_positive(hidden[l], "MADE", "hidden size");
    std::vector<int64_t> deg(static_cast<size_t>(hidden[l]));
    for (int64_t j = 0; j < hidden[l]; ++j) deg[j] = 1 + j % std::max<int64_t>(d - 1, 1);
    layers.push_back(register_module(std::to_string(l), std::make_shared<MaskedLinear>(static_cast<int64_t>(prev.size()), hidden[l],
                                                                                        make_mask(deg, prev, false), gen)));
    prev = deg;
  }
  std::vector<int64_t> out_deg;
  for (int64_t j = 0; j < k; ++j)
    for (int64_t i = 0; i < d; ++i) out_deg.push_back(i + 1);
  // the output layer is strict: output d sees only hidden units (or, without hidden layers, inputs) of smaller degree
  layers.push_back(register_module(std::to_string(hidden.size()),
                                   std::make_shared<MaskedLinear>(static_cast<int64_t>(prev.size()), k * d, make_mask(out_deg, prev, true), gen)));
}
// x: (B, D) -> (B, outputs_per_dim * D)
Tensor MADE::forward(const Tensor& x) {
  Tensor h = x;
  for (size_t l = 0; l < layers.size(); ++l) {
    h = layers[l]->forward(h);
    if (l + 1 < layers.size()) h = relu(h);
  }
  return h;
}
std::string MADE::extra_repr() const { return cat("dim=", dim, ", outputs_per_dim=", outputs_per_dim); }

// ---- GaussianAutoregressiveFlow -------------------------------------------------------------------------
GaussianAutoregressiveFlow::GaussianAutoregressiveFlow(int64_t d, const std::vector<int64_t>& hidden, AutoregressiveDirection dir, Generator* gen)
    : Flow("GaussianAutoregressiveFlow"), dim(d), direction(dir) {
  made = register_module("made", std::make_shared<MADE>(d, hidden, 2, gen));
}
std::pair<Tensor, Tensor> GaussianAutoregressiveFlow::mu_alpha(const Tensor& v) {
  Tensor out = made->forward(v);
  Tensor alpha = narrow(out, 1, dim, dim);
  if (max_log_scale > 0) alpha = tanh(alpha * (1.0 / max_log_scale)) * max_log_scale;
  return {narrow(out, 1, 0, dim), alpha};
}
FlowOutput GaussianAutoregressiveFlow::normalize_one_pass(const Tensor& x) {
  auto [mu, alpha] = mu_alpha(x);
  return {(x - mu) * exp(-alpha), -sum(alpha, {1})};
}
// Without a graph, the D passes need not run the whole MADE: the first layer's pre-activation is
// kept and gets one rank-1 update per new coordinate (x_k times column k of W1 * M1: the units that
// do not see coordinate k have 0 there), and of the output layer only the rows of mu_k and alpha_k
// are computed. MAF's MADE (784 -> 512 -> 2 x 784) then takes ~1.5k multiply-adds per image and
// coordinate instead of 1.2M; the hidden layers after the first still run whole. The result is the
// full passes' up to rounding (sums in another order). `next(k, mu_k, alpha_k)` gives coordinate k of
// the conditioner's input, (B,).
FlowOutput GaussianAutoregressiveFlow::sequential_without_graph(const Tensor& like,
                                                                const std::function<Tensor(int64_t, const Tensor&, const Tensor&)>& next) {
  const auto& L = made->layers;
  const int64_t D = dim;
  Tensor v = zeros_like(like), log_det = zeros({like.size(0)}, {.dtype = like.dtype()});
  Tensor w1 = L.front()->weight * L.front()->mask, wo = L.back()->weight * L.back()->mask, bo = L.back()->bias;
  Tensor pre = expand(L.front()->bias, {like.size(0), L.front()->out_features}).contiguous();  // (B, H1): the input is 0 so far
  for (int64_t k = 0; k < D; ++k) {
    Tensor h = relu(pre);
    for (size_t l = 1; l + 1 < L.size(); ++l) h = relu(L[l]->forward(h));
    Tensor mu = matmul(h, wo.select(0, k)) + bo.select(0, k), a = matmul(h, wo.select(0, D + k)) + bo.select(0, D + k);  // (B,)
    if (max_log_scale > 0) a = tanh(a * (1.0 / max_log_scale)) * max_log_scale;
    Tensor vk = next(k, mu, a);
    v.select(1, k).copy_(vk);
    log_det.add_(a);
    pre.add_(unsqueeze(vk, 1) * unsqueeze(w1.select(1, k), 0));
  }
  return {v, log_det};
}

// After pass k, z_j is exact for j <= k (z_j needs only z_{<j}); D passes in all.
FlowOutput GaussianAutoregressiveFlow::normalize_sequential(const Tensor& x) {
  if (!is_grad_enabled() && made->layers.size() > 1) {
    FlowOutput r = sequential_without_graph(x, [&](int64_t k, const Tensor& mu, const Tensor& a) { return (x.select(1, k) - mu) * exp(-a); });
    return {r.out, -r.log_det};
  }
  Tensor z = zeros_like(x), alpha;
  for (int64_t k = 0; k < dim; ++k) {
    auto [mu, a] = mu_alpha(z);
    z = (x - mu) * exp(-a);
    alpha = a;
  }
  return {z, -sum(alpha, {1})};
}
FlowOutput GaussianAutoregressiveFlow::generate_one_pass(const Tensor& z) {
  auto [mu, alpha] = mu_alpha(z);
  return {z * exp(alpha) + mu, sum(alpha, {1})};
}
// After pass k, x_j is exact for j <= k; the last pass's alpha is that of the final x.
FlowOutput GaussianAutoregressiveFlow::generate_sequential(const Tensor& z) {
  if (!is_grad_enabled() && made->layers.size() > 1)
    return sequential_without_graph(z, [&](int64_t k, const Tensor& mu, const Tensor& a) { return z.select(1, k) * exp(a) + mu; });
  Tensor x = zeros_like(z), alpha;
  for (int64_t k = 0; k < dim; ++k) {
    auto [mu, a] = mu_alpha(x);
    x = z * exp(a) + mu;
    alpha = a;
  }
  return {x, sum(alpha, {1})};
}
FlowOutput GaussianAutoregressiveFlow::forward_and_log_det(const Tensor& x) {
  check_features(x, dim, "GaussianAutoregressiveFlow");
  return direction == AutoregressiveDirection::MAF ? normalize_one_pass(x) : normalize_sequential(x);
}
FlowOutput GaussianAutoregressiveFlow::inverse_and_log_det(const Tensor& z) {
  check_features(z, dim, "GaussianAutoregressiveFlow.inverse");
  return direction == AutoregressiveDirection::MAF ? generate_sequential(z) : generate_one_pass(z);
}
std::string GaussianAutoregressiveFlow::extra_repr() const {
  return cat("dim=", dim, ", direction=", direction == AutoregressiveDirection::MAF ? "MAF" : "IAF");
}

// ---- AffineCoupling -------------------------------------------------------------------------------------
AffineCoupling::AffineCoupling(const Tensor& m, std::shared_ptr<Module> cond) : Flow("AffineCoupling") {
  if (!cond) throw ValueError("AffineCoupling: the conditioner is null");
  mask = register_buffer("mask", m.to(DType::Float32).contiguous());
  scale = register_parameter("scale", zeros({1}));
  shift = register_parameter("shift", zeros({1}));
  conditioner = register_module("conditioner", std::move(cond));
}
std::pair<Tensor, Tensor> AffineCoupling::scale_and_shift(const Tensor& kept) {
  Tensor h = conditioner->forward(kept);
  if (h.dim() != kept.dim() || h.size(1) != 2 * kept.size(1))
    throw ShapeError(cat("AffineCoupling: the conditioner maps ", shape_str(kept.shape()), " to ", shape_str(h.shape()),
                         "; expected twice the channels (dim 1)"));
  auto parts = chunk(h, 2, 1);
  Tensor free = 1.0 - mask;
  return {(scale * tanh(parts[0]) + shift) * free, parts[1] * free};
}
FlowOutput AffineCoupling::forward_and_log_det(const Tensor& x) {
  auto [s, t] = scale_and_shift(x * mask);
  return {x * exp(s) + t, sum_except_batch(s)};
}
Tensor AffineCoupling::inverse(const Tensor& z) {
  auto [s, t] = scale_and_shift(z * mask);
  return (z - t) * exp(-s);
}

// ---- MixtureLogisticCoupling -----------------------------------------------------------------------------
MixtureLogisticCoupling::MixtureLogisticCoupling(const Tensor& m, int64_t k, std::shared_ptr<Module> cond)
    : Flow("MixtureLogisticCoupling"), components(k) {
  check_positive(k, "MixtureLogisticCoupling", "components");
  if (!cond) throw ValueError("MixtureLogisticCoupling: the conditioner is null");
  mask = register_buffer("mask", m.to(DType::Float32).contiguous());
  scale = register_parameter("scale", zeros({1}));
  shift = register_parameter("shift", zeros({1}));
  conditioner = register_module("conditioner", std::move(cond));
}
std::string MixtureLogisticCoupling::extra_repr() const { return cat("components=", components); }

MixtureLogisticCoupling::Params MixtureLogisticCoupling::params(const Tensor& kept) {
  Tensor h = conditioner->forward(kept);
  const int64_t C = kept.size(1), K = components;
  if (h.dim() != kept.dim() || h.size(1) != (2 + 3 * K) * C)
    throw ShapeError(cat("MixtureLogisticCoupling: the conditioner maps ", shape_str(kept.shape()), " to ", shape_str(h.shape()),
                         "; expected ", 2 + 3 * K, " times the channels (dim 1)"));
  Shape mix = kept.shape();  // (B, K, C, ...)
  mix.insert(mix.begin() + 1, K);
  auto block = [&](int64_t first, int64_t n) { return narrow(h, 1, first * C, n * C); };
  Tensor free = 1.0 - mask;
  Params p;
  p.s = (scale * tanh(block(0, 1)) + shift) * free;
  p.t = block(1, 1) * free;
  p.log_pi = log_softmax(reshape(block(2, K), mix), 1);
  p.mu = reshape(block(2 + K, K), mix);
  p.log_s = clamp_min(reshape(block(2 + 2 * K, K), mix), -7.0);
  return p;
}

std::pair<Tensor, Tensor> MixtureLogisticCoupling::logit_cdf(const Tensor& x, const Params& p, bool log_det) {
  Tensor u = (unsqueeze(x, 1) - p.mu) * exp(-p.log_s);
  Tensor log_sig = -softplus(-u), log_sig_neg = -softplus(u);  // log sigmoid(u), log sigmoid(-u)
  Tensor log_F = logsumexp(p.log_pi + log_sig, {1}), log_1mF = logsumexp(p.log_pi + log_sig_neg, {1});
  if (!log_det) return {log_F - log_1mF, Tensor()};
  Tensor log_f = logsumexp(p.log_pi + log_sig + log_sig_neg - p.log_s, {1});
  return {log_F - log_1mF, log_f - log_F - log_1mF};
}

FlowOutput MixtureLogisticCoupling::forward_and_log_det(const Tensor& x) {
  Params p = params(x * mask);
  auto [w, log_dw] = logit_cdf(x, p, true);
  Tensor kept = mask > 0.5;
  Tensor z = where(kept, x, w * exp(p.s) + p.t);
  return {z, sum_except_batch(where(kept, zeros_like(log_dw), log_dw + p.s))};
}

Tensor MixtureLogisticCoupling::inverse(const Tensor& z) {
  NoGradGuard no_grad;
  Params p = params(z * mask);
  Tensor target = (z - p.t) * exp(-p.s);
  // Bracket: logit(F(x)) is increasing, below min_k of the components' own logits and above their
  // max, so x lies between min_k (mu_k + e^{l_k} target) and max_k of the same.
  Tensor ends = p.mu + exp(p.log_s) * unsqueeze(target, 1);
  Tensor lo = amin(ends, {1}) - 1.0, hi = amax(ends, {1}) + 1.0;
  for (int it = 0; it < 100; ++it) {
    Tensor mid = (lo + hi) * 0.5;
    Tensor below = logit_cdf(mid, p, false).first < target;
    lo = where(below, mid, lo);
    hi = where(below, hi, mid);
  }
  return where(mask > 0.5, z, (lo + hi) * 0.5);
}

Tensor checkerboard_mask(int64_t height, int64_t width, bool top_left_kept) {
  check_positive(height, "checkerboard_mask", "height");
  check_positive(width, "checkerboard_mask", "width");
  std::vector<float> m(static_cast<size_t>(height * width));
  for (int64_t h = 0; h < height; ++h)
    for (int64_t w = 0; w < width; ++w) m[h * width + w] = (((h + w) % 2 == 0) == top_left_kept) ? 1.0f : 0.0f;
  return from_vector(m, {1, height, width});
}
Tensor channel_mask(int64_t channels, bool first_half_kept) {
  if (channels < 2) throw ValueError(cat("channel_mask: needs at least 2 channels, got ", channels));
  std::vector<float> m(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) m[c] = ((c < channels / 2) == first_half_kept) ? 1.0f : 0.0f;
  return from_vector(m, {channels, 1, 1});
}
Tensor half_mask(int64_t dim, bool first_half_kept) {
  if (dim < 2) throw ValueError(cat("half_mask: needs at least 2 features, got ", dim));
  std::vector<float> m(static_cast<size_t>(dim));
  for (int64_t d = 0; d < dim; ++d) m[d] = ((d < dim / 2) == first_half_kept) ? 1.0f : 0.0f;
  return from_vector(m, {dim});
}
// The layers draw their initial weights in separate statements, last layer first: as arguments of
// one call their order was unspecified (g++ built them last first, clang first first, so one seed
// gave two models). Last first is the order g++ always used, which lecture 2's figures were drawn in.
std::shared_ptr<Module> mlp_conditioner(int64_t dim, int64_t hidden, Generator* gen) {
  auto out = std::make_shared<Linear>(hidden, 2 * dim, LinearOptions{.gen = gen});
  auto mid = std::make_shared<Linear>(hidden, hidden, LinearOptions{.gen = gen});
  auto in = std::make_shared<Linear>(dim, hidden, LinearOptions{.gen = gen});
  return std::make_shared<Sequential>(in, std::make_shared<ReLU>(), mid, std::make_shared<ReLU>(), out);
}
std::shared_ptr<Module> conv_conditioner(int64_t channels, int64_t filters, Generator* gen) {
  auto out = std::make_shared<Conv2d>(filters, 2 * channels, 3, Conv2dOptions{.padding = 1, .gen = gen});
  auto in = std::make_shared<Conv2d>(channels, filters, 3, Conv2dOptions{.padding = 1, .gen = gen});
  return std::make_shared<Sequential>(in, std::make_shared<ReLU>(), out);
}

// ---- SqueezeFlow ----------------------------------------------------------------------------------------
FlowOutput SqueezeFlow::forward_and_log_det(const Tensor& x) { return {squeeze2d(x), zero_log_det(x)}; }
Tensor SqueezeFlow::inverse(const Tensor& z) { return unsqueeze2d(z); }

// ---- ElementwiseAffine -----------------------------------------------------------------------------------
ElementwiseAffine::ElementwiseAffine(const Shape& example_shape) : Flow("ElementwiseAffine") {
  if (example_shape.empty()) throw ValueError("ElementwiseAffine: the example shape is empty");
  for (int64_t d : example_shape) check_positive(d, "ElementwiseAffine", "example dim");
  log_scale = register_parameter("log_scale", zeros(example_shape));
  bias = register_parameter("bias", zeros(example_shape));
}
void ElementwiseAffine::check_input(const Tensor& x, const char* op) const {
  Shape want = log_scale.shape();
  want.insert(want.begin(), x.dim() > 0 ? x.size(0) : 1);
  if (x.shape() != want) throw ShapeError(cat("ElementwiseAffine.", op, ": expected (B, ", shape_str(log_scale.shape()).substr(1), ", got ", shape_str(x.shape())));
}
FlowOutput ElementwiseAffine::forward_and_log_det(const Tensor& x) {
  check_input(x, "forward");
  return {x * exp(log_scale) + bias, per_example(sum(log_scale), x)};
}
Tensor ElementwiseAffine::inverse(const Tensor& z) {
  check_input(z, "inverse");
  return (z - bias) * exp(-log_scale);
}
std::string ElementwiseAffine::extra_repr() const { return cat("shape=", shape_str(log_scale.shape())); }

// ---- FactorOut ------------------------------------------------------------------------------------------
FactorOut::FactorOut(int64_t k, std::shared_ptr<Flow> flow) : Flow("FactorOut"), channels(k), flow_(flow) {
  check_positive(k, "FactorOut", "channels");
  if (!flow) throw ValueError("FactorOut: the flow on the kept channels is null");
  add_child("flow", std::move(flow));
}
void FactorOut::check_input(const Tensor& x, const char* op) const {
  if (x.dim() < 2 || x.size(1) <= channels)
    throw ShapeError(cat("FactorOut.", op, ": needs (B, C, ...) with more than ", channels, " channels, got ", shape_str(x.shape())));
}
FlowOutput FactorOut::forward_and_log_det(const Tensor& x) {
  check_input(x, "forward");
  auto [z, log_det] = flow_->forward_and_log_det(narrow(x, 1, 0, channels));
  return {cat({z, narrow(x, 1, channels, x.size(1) - channels)}, 1), log_det};
}
Tensor FactorOut::inverse(const Tensor& z) {
  check_input(z, "inverse");
  return cat({flow_->inverse(narrow(z, 1, 0, channels)), narrow(z, 1, channels, z.size(1) - channels)}, 1);
}
FlowOutput FactorOut::inverse_and_log_det(const Tensor& z) {
  check_input(z, "inverse");
  auto [x, log_det] = flow_->inverse_and_log_det(narrow(z, 1, 0, channels));
  return {cat({x, narrow(z, 1, channels, z.size(1) - channels)}, 1), log_det};
}
std::string FactorOut::extra_repr() const { return cat("channels=", channels); }

}  // namespace dgm::nn
