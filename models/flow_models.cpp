#include <dgm/models/flow_models.h>

#include <algorithm>
#include <cmath>

#include <dgm/models/config.h>
#include <dgm/tensor/errors.h>

namespace dgm::models {

namespace {

void check_pixels(const Tensor& x, int64_t d, int64_t levels, const char* op) {
  if (x.dim() != 2 || x.size(1) != d || x.dtype() != DType::Int64)
    throw ShapeError(cat(op, ": x must be (B, ", d, ") int64 pixels in 0..", levels - 1, ", got ", shape_str(x.shape()), " ",
                         dtype_name(x.dtype())));
}

template <class Config>
double resolved_alpha(const Config& c) {
  return c.logit_alpha > 0 ? c.logit_alpha : 1e-6;
}

// "" (the default) is conditional for 8-bit pixels, uniform for binary ones (the homework's recipe).
template <class Config>
std::string resolved_dequantization(const Config& c) {
  return !c.dequantization.empty() ? c.dequantization : c.binary ? "uniform" : "conditional";
}

// The keys both flows share: binary (K = 2), logit_alpha (1e-6 by default, as the homework and MAF),
// max_grad_norm.
template <class Config>
void read_shared_keys(ConfigReader& r, Config& c) {
  c.binary = r.boolean("binary", c.binary);
  c.logit_alpha = r.number("logit_alpha", resolved_alpha(c), 1e-12, 0.49);
  c.max_grad_norm = r.number("max_grad_norm", c.max_grad_norm, 0, 1e6);
  c.dequantization = r.choice("dequantization", resolved_dequantization(c), {"uniform", "variational", "conditional"});
}

}  // namespace

// ---- DequantizedFlow --------------------------------------------------------------------------------------

// x (B, D), u (B, D) -> (B,):  log N(f(y); 0, I) + log|det J_f(y)| - D log K,  y = (x + u) / K
Tensor DequantizedFlow::log_prob_with_noise(const Tensor& x, const Tensor& u) {
  const int64_t B = x.size(0), D = dim();
  Tensor dtype_ref = flow->parameters().empty() ? Tensor() : flow->parameters().front();
  DType dt = dtype_ref.defined() ? dtype_ref.dtype() : DType::Float32;
  Tensor y = reshape((x.to(dt) + u.to(dt)) / double(levels_), flow_shape(B));
  nn::FlowOutput out = flow->forward_and_log_det(y);
  Tensor z = reshape(out.out, {B, D});
  Tensor log_base = sum(square(z), {1}) * -0.5 - 0.5 * double(D) * std::log(2 * M_PI);  // (B,)
  return log_base + out.log_det - double(D) * std::log(double(levels_));
}

void DequantizedFlow::start_flow(int64_t image_size, bool binary, double logit_alpha, double max_grad_norm,
                                 const std::string& dequantization) {
  image_size_ = image_size;
  levels_ = binary ? 2 : 256;
  max_grad_norm_ = max_grad_norm;
  flow = register_module("flow", std::make_shared<nn::FlowSequence>());
  flow->push_back(std::make_shared<nn::LogitFlow>(logit_alpha));
  if (dequantization != "uniform") {  // q(u | x) starts as logit-normal(0, 1) for every level
    dequant_mean = register_parameter("dequant_mean", zeros({levels_}));
    dequant_log_scale = register_parameter("dequant_log_scale", zeros({levels_}));
  }
  if (dequantization == "conditional") {  // + a CNN of the image, its last layer at zero
    const int64_t F = 16;
    auto last = std::make_shared<nn::Conv2d>(F, 2, 3, nn::Conv2dOptions{.padding = 1});
    last->weight.set_data(Array::zeros(last->weight.shape(), last->weight.dtype()));
    last->bias.set_data(Array::zeros(last->bias.shape(), last->bias.dtype()));
    dequant_net = register_module("dequant_net", std::make_shared<nn::Sequential>(
        std::make_shared<nn::Conv2d>(1, F, 3, nn::Conv2dOptions{.padding = 1}), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::Conv2d>(F, F, 3, nn::Conv2dOptions{.padding = 1}), std::make_shared<nn::ReLU>(), last));
  }
}

std::pair<Tensor, Tensor> DequantizedFlow::dequantize(const Tensor& x, const Tensor& eps) {
  if (!variational()) return {eps, Tensor()};
  const int64_t B = x.size(0), D = x.size(1);
  Tensor idx = reshape(x.contiguous(), {B * D});
  Tensor e = eps.to(dequant_mean.dtype());
  Tensor m = reshape(index_select(dequant_mean, 0, idx), {B, D}), l = reshape(index_select(dequant_log_scale, 0, idx), {B, D});
  if (dequant_net) {  // the image's context: x scaled to [-1/2, 1/2]
    Tensor img = reshape(x.to(e.dtype()), {B, 1, image_size_, image_size_}) / double(levels_ - 1) - 0.5;
    Tensor h = reshape(dequant_net->forward(img), {B, 2, D});
    m = m + select(h, 1, 0);
    l = l + select(h, 1, 1);
  }
  Tensor a = m + exp(l) * e;
  // log u = -softplus(-a), log(1 - u) = -softplus(a): finite even where sigmoid(a) rounds to 0 or 1
  Tensor log_q = sum(square(e) * -0.5 - l + softplus(-a) + softplus(a), {1}) - 0.5 * double(D) * std::log(2 * M_PI);
  return {sigmoid(a), log_q};
}

Tensor DequantizedFlow::hashed_noise(const Tensor& x, bool normal) {
  Tensor xc = x.contiguous();
  const int64_t B = xc.size(0), D = xc.size(1);
  const int64_t* p = xc.data<int64_t>();
  std::vector<float> u(static_cast<size_t>(B * D));
  for (int64_t b = 0; b < B; ++b) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the image's pixels
    for (int64_t j = 0; j < D; ++j) h = (h ^ static_cast<uint64_t>(p[b * D + j] & 0xff)) * 1099511628211ull;
    Generator g(h);
    for (int64_t j = 0; j < D; ++j) u[b * D + j] = static_cast<float>(normal ? g.normal() : g.uniform());
  }
  return from_vector(u, {B, D});
}

Tensor DequantizedFlow::log_prob(const Batch& batch) {
  check_pixels(batch.x, dim(), levels_, "DequantizedFlow.log_prob");
  auto [u, log_q] = dequantize(batch.x, hashed_noise(batch.x, variational()));
  Tensor lp = log_prob_with_noise(batch.x, u);
  return log_q.defined() ? lp - log_q : lp;
}

Tensor DequantizedFlow::loss(const Batch& batch, Generator& gen) {
  check_pixels(batch.x, dim(), levels_, "DequantizedFlow.loss");
  auto [u, log_q] = dequantize(batch.x, variational() ? randn(batch.x.shape(), {}, &gen) : rand(batch.x.shape(), {}, &gen));
  Tensor lp = log_prob_with_noise(batch.x, u);
  return -mean(log_q.defined() ? lp - log_q : lp) / double(dim());
}

// -> (n, D) int64
Tensor DequantizedFlow::sample(int64_t n, Generator& gen, const SampleOptions& options) {
  if (!(options.temperature > 0)) throw ValueError(cat(type_name(), ".sample: the temperature must be positive, got ", options.temperature));
  NoGradGuard no_grad;
  DType dt = flow->parameters().empty() ? DType::Float32 : flow->parameters().front().dtype();
  Shape s = flow_shape(n);
  Tensor z = randn(s, {.dtype = dt}, &gen) * options.temperature;
  std::vector<double> y = reshape(flow->inverse(z), {n, dim()}).to(DType::Float64).contiguous().to_vector<double>();
  std::vector<int64_t> x(y.size());
  for (size_t i = 0; i < y.size(); ++i) {
    const double K = double(levels_), v = std::isfinite(y[i]) ? std::floor(K * y[i]) : 0.0;  // y in [0, 1) -> its bin
    x[i] = static_cast<int64_t>(std::min(K - 1, std::max(0.0, v)));
  }
  return from_vector(x, {n, dim()});
}

// ---- the residual conditioner -------------------------------------------------------------------------------

ResidualConditioner::ResidualConditioner(int64_t in_channels, int64_t out_channels, int64_t filters, int64_t blocks, Generator* gen)
    : nn::Module("ResidualConditioner") {
  in_conv_ = register_module("in", std::make_shared<nn::Conv2d>(in_channels, filters, 3, nn::Conv2dOptions{.padding = 1, .gen = gen}));
  for (int64_t k = 0; k < blocks; ++k) {
    conv3_.push_back(register_module(cat("block", k, "_conv3"), std::make_shared<nn::Conv2d>(filters, filters, 3, nn::Conv2dOptions{.padding = 1, .gen = gen})));
    conv1_.push_back(register_module(cat("block", k, "_conv1"), std::make_shared<nn::Conv2d>(filters, 2 * filters, 1, nn::Conv2dOptions{.gen = gen})));
  }
  out_conv_ = register_module("out", std::make_shared<nn::Conv2d>(filters, out_channels, 3, nn::Conv2dOptions{.padding = 1, .gen = gen}));
  // Zero every output but the raw log-scales (the first in_channels: the coupling's s_raw, one per
  // channel it transforms); see the header for why not those.
  const int64_t half = in_channels;
  for (Tensor* p : {&out_conv_->weight, &out_conv_->bias}) {
    Tensor kept = narrow(p->detach(), 0, 0, half);
    Shape zeroed = p->shape();
    zeroed[0] = out_channels - half;
    p->set_data(cat({kept, zeros(zeroed, {.dtype = p->dtype()})}, 0).array());
  }
}

Tensor ResidualConditioner::forward(const Tensor& x) {
  Tensor h = elu(in_conv_->forward(x));  // (B, F, H, W)
  for (size_t k = 0; k < conv3_.size(); ++k) {
    Tensor a = elu(conv3_[k]->forward(h));
    h = fused::gated_residual(h, elu(conv1_[k]->forward(a)));  // elu(h + v sigmoid(g)), (v, g) its halves, in one pass
  }
  return out_conv_->forward(h);  // (B, out, H, W)
}

// ---- RealNVP -------------------------------------------------------------------------------------------------

RealNVP::RealNVP(RealNVPConfig c, Generator* gen) : DequantizedFlow("RealNVP"), config_(c) {
  if (c.scales < 1) throw ValueError(cat("realnvp: scales must be at least 1, got ", c.scales));
  if (c.scales > 16 || c.image_size % (int64_t{1} << c.scales) != 0)
    throw ValueError(cat("realnvp: image_size (", c.image_size, ") must be divisible by 2^scales (scales ", c.scales,
                         "): each scale squeezes it by 2"));
  c.logit_alpha = config_.logit_alpha = resolved_alpha(c);
  c.dequantization = config_.dequantization = resolved_dequantization(c);
  start_flow(c.image_size, c.binary, c.logit_alpha, c.max_grad_norm, c.dequantization);
  if (c.input_affine) flow->push_back(std::make_shared<nn::ElementwiseAffine>(Shape{1, c.image_size, c.image_size}));
  bool parity = true;
  add_scale(*flow, 1, c.image_size, 0, parity, gen);
  if (c.learned_prior) flow->push_back(std::make_shared<nn::ElementwiseAffine>(Shape{1, c.image_size, c.image_size}));
}

// An affine coupling, or with mixtures = K > 0 a mixture-of-logistics one, on C channels.
std::shared_ptr<nn::Flow> RealNVP::coupling(const Tensor& mask, int64_t C, Generator* gen) const {
  const int64_t K = config_.mixtures;
  auto conditioner = std::make_shared<ResidualConditioner>(C, (K > 0 ? 2 + 3 * K : 2) * C, config_.filters, config_.blocks, gen);
  if (K > 0) return std::make_shared<nn::MixtureLogisticCoupling>(mask, K, conditioner);
  return std::make_shared<nn::AffineCoupling>(mask, conditioner);
}

// One scale on (B, C, s, s), into seq: checkerboard couplings -> squeeze -> channel couplings ->
// [the next scale on half the channels, the other half factored out] -> unsqueeze -> checkerboard
// couplings. With scales = 1 this is the homework's architecture, layer for layer.
void RealNVP::add_scale(nn::FlowSequence& seq, int64_t C, int64_t s, int64_t level, bool& parity, Generator* gen) {
  const RealNVPConfig& c = config_;
  auto checkerboard = [&](int64_t n) {
    for (int64_t k = 0; k < n; ++k, parity = !parity) {
      seq.push_back(coupling(nn::checkerboard_mask(s, s, parity), C, gen));
      seq.push_back(std::make_shared<nn::ActNorm>(C));
    }
  };
  checkerboard(c.checkerboard);
  seq.push_back(std::make_shared<nn::SqueezeFlow>());  // (B, C, s, s) -> (B, 4C, s/2, s/2)
  for (int64_t k = 0; k < c.channel; ++k, parity = !parity) {
    seq.push_back(coupling(nn::channel_mask(4 * C, parity), 4 * C, gen));
    seq.push_back(std::make_shared<nn::ActNorm>(4 * C));
  }
  if (level + 1 < c.scales) {
    auto inner = std::make_shared<nn::FlowSequence>();
    add_scale(*inner, 2 * C, s / 2, level + 1, parity, gen);
    seq.push_back(std::make_shared<nn::FactorOut>(2 * C, inner));
  }
  seq.push_back(std::make_shared<nn::InverseFlow>(std::make_shared<nn::SqueezeFlow>()));  // back to (B, C, s, s)
  checkerboard(c.checkerboard);
}

std::shared_ptr<GenerativeModel> RealNVP::create(const nlohmann::json& config) {
  ConfigReader r("realnvp", config);
  RealNVPConfig c;
  c.filters = r.integer("filters", c.filters);
  c.blocks = r.integer("blocks", c.blocks, 0);
  c.checkerboard = r.integer("checkerboard", c.checkerboard, 0);
  c.channel = r.integer("channel", c.channel, 0);
  c.scales = r.integer("scales", c.scales, 1, 8);
  c.mixtures = r.integer("mixtures", c.mixtures, 0, 64);
  c.learned_prior = r.boolean("learned_prior", c.learned_prior);
  c.input_affine = r.boolean("input_affine", c.input_affine);
  c.image_size = r.integer("image_size", c.image_size, 2);
  read_shared_keys(r, c);
  r.finish();
  return std::make_shared<RealNVP>(c);
}

nlohmann::json RealNVP::config() const {
  return {{"filters", config_.filters}, {"blocks", config_.blocks}, {"checkerboard", config_.checkerboard},
          {"channel", config_.channel}, {"scales", config_.scales}, {"mixtures", config_.mixtures}, {"learned_prior", config_.learned_prior}, {"input_affine", config_.input_affine}, {"image_size", config_.image_size}, {"binary", config_.binary},
          {"logit_alpha", config_.logit_alpha}, {"max_grad_norm", config_.max_grad_norm},
          {"dequantization", config_.dequantization}};
}

// ---- MAF ---------------------------------------------------------------------------------------------------------

MAF::MAF(MAFConfig c, Generator* gen) : DequantizedFlow("MAF"), config_(c) {
  c.logit_alpha = config_.logit_alpha = resolved_alpha(c);
  c.dequantization = config_.dequantization = resolved_dequantization(c);
  start_flow(c.image_size, c.binary, c.logit_alpha, c.max_grad_norm, c.dequantization);
  const int64_t d = c.image_size * c.image_size;
  for (int64_t k = 0; k < c.layers; ++k) {
    auto layer = std::make_shared<nn::GaussianAutoregressiveFlow>(d, std::vector<int64_t>{c.hidden}, nn::AutoregressiveDirection::MAF, gen);
    // Each layer starts as the identity (mu = alpha = 0): MADE's output layer at zero. From a random
    // start, five layers of e^{-alpha} with alpha ~ +-1 multiply into overflow within a few steps.
    const auto& out = layer->made->layers.back();
    out->weight.set_data(Array::zeros(out->weight.shape(), out->weight.dtype()));
    out->bias.set_data(Array::zeros(out->bias.shape(), out->bias.dtype()));
    layer->max_log_scale = c.max_log_scale;
    flow->push_back(layer);
    if (k + 1 < c.layers) flow->push_back(nn::Permutation::reverse(d));
  }
}

std::shared_ptr<GenerativeModel> MAF::create(const nlohmann::json& config) {
  ConfigReader r("maf", config);
  MAFConfig c;
  c.layers = r.integer("layers", c.layers);
  c.hidden = r.integer("hidden", c.hidden);
  c.image_size = r.integer("image_size", c.image_size, 2);
  c.max_log_scale = r.number("max_log_scale", c.max_log_scale, 0, 50);
  read_shared_keys(r, c);
  r.finish();
  return std::make_shared<MAF>(c);
}

nlohmann::json MAF::config() const {
  return {{"layers", config_.layers}, {"hidden", config_.hidden}, {"image_size", config_.image_size}, {"max_log_scale", config_.max_log_scale},
          {"binary", config_.binary}, {"logit_alpha", config_.logit_alpha}, {"max_grad_norm", config_.max_grad_norm},
          {"dequantization", config_.dequantization}};
}

}  // namespace dgm::models
