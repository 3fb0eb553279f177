#include <dgm/models/mlp_ar.h>

#include <dgm/models/config.h>
#include <dgm/nn/distributions.h>

namespace dgm::models {

namespace F = nn::functional;

MLPARConfig MLPARConfig::from_json(const nlohmann::json& config) {
  ConfigReader r("mlp_ar", config);
  MLPARConfig c;
  c.hidden = r.integer("hidden", c.hidden);
  c.context = r.integer("context", c.context);
  c.head = r.choice("head", c.head, {"categorical", "logistic_mixture"});
  c.mixtures = r.integer("mixtures", c.mixtures);
  c.image_size = r.integer("image_size", c.image_size, 2);
  r.finish();
  return c;
}

nlohmann::json MLPARConfig::to_json() const {
  return {{"hidden", hidden}, {"context", context}, {"head", head}, {"mixtures", mixtures}, {"image_size", image_size}};
}

MLPAR::MLPAR(MLPARConfig config) : AutoregressiveModel("MLPAR"), config_(config) {
  const int64_t H = config.hidden;
  auto emb_list = register_module("emb", std::make_shared<nn::Module>("ModuleList"));
  for (int64_t k = 0; k < config.context; ++k)
    emb.push_back(emb_list->register_module(std::to_string(k), std::make_shared<nn::Embedding>(256, H)));
  b = register_parameter("b", zeros({H}));
  l2 = register_module("l2", std::make_shared<nn::Linear>(H, H, nn::LinearOptions{.activation = nn::LinearActivation::ReLU}));
  l3 = register_module("l3", std::make_shared<nn::Linear>(H, mixture() ? 3 * config.mixtures : 256));
}

std::shared_ptr<GenerativeModel> MLPAR::create(const nlohmann::json& config) { return std::make_shared<MLPAR>(MLPARConfig::from_json(config)); }

// context: (..., d) int64, context[..., k] = x_{j-k-1} -> (..., P)
// The first layer is linear in the one-hot encoding of the d context pixels: W1 onehot(x_{j-1}) + ...
// + W1' onehot(x_{j-d}) + b. Multiplying a one-hot vector picks a column, so the layer is a sum of d
// looked-up rows, emb[k][x_{j-k-1}], of the tables stacked into one (d * 256, hidden) matrix: that is
// F::embedding_bag, with the bias and the ReLU in the same kernel. l2 is a Linear layer with its
// ReLU fused (one kernel too).
Tensor MLPAR::mlp(const Tensor& context) {
  const int64_t d = config_.context;
  std::vector<Tensor> tables;
  for (const auto& e : emb) tables.push_back(e->weight);
  // row of value v for context position k in the stacked table: k * 256 + v
  Tensor rows = context + arange(d, {.dtype = DType::Int64}) * 256;
  Tensor h1 = F::embedding_bag(rows, cat(tables, int64_t{0}), b, F::LinearActivation::ReLU);  // (..., hidden)
  return l3->forward(l2->forward(h1));
}

// x: (B, D) -> (B, D, P)
Tensor MLPAR::head_params(const Tensor& x) {
  const int64_t D = x.size(1), d = config_.context;
  Tensor padded = pad(x, {d, 0});  // (B, d + D): d zeros before the first pixel
  std::vector<Tensor> previous;    // previous[k] = x_{j-k-1} for every j: (B, D)
  for (int64_t k = 0; k < d; ++k) previous.push_back(slice(padded, 1, d - k - 1, d - k - 1 + D));
  return mlp(stack(previous, -1));  // (B, D, d) -> (B, D, P)
}

// params: (..., P) -> (..., 256)
Tensor MLPAR::all_log_probs(const Tensor& params) {
  if (!mixture()) return log_softmax(params, -1);
  // the mixture evaluated at every bin centre v / 127.5 - 1: params (..., 1, K) against values (256)
  std::vector<Tensor> p = chunk(unsqueeze(params, -2), 3, -1);  // 3 x (..., 1, K)
  nn::DiscretizedLogisticMixture dist(p[0], p[1], p[2]);
  Tensor values = arange(256, {.dtype = params.dtype()}) / 127.5 - 1.0;  // (256)
  return dist.log_prob(values);                                          // (..., 256)
}

// x: (B, D) -> (B, D, 256)
Tensor MLPAR::conditional_log_probs(const Batch& batch) {
  const Tensor& x = batch.x;
  check_input(batch, "conditional_log_probs");
  return all_log_probs(head_params(x));
}

// x: (B, D) -> (B, 256): only pixel t's context goes through the MLP
Tensor MLPAR::next_log_probs(const Batch& batch, int64_t t) {
  const Tensor& x = batch.x;
  const int64_t B = x.size(0);
  std::vector<Tensor> previous;  // x_{t-k-1}, or 0 before the first pixel: (B,)
  for (int64_t k = 0; k < config_.context; ++k) {
    const int64_t j = t - k - 1;
    previous.push_back(j >= 0 ? select(x, 1, j) : zeros({B}, {.dtype = DType::Int64}));
  }
  return all_log_probs(mlp(stack(previous, -1)));  // (B, d) -> (B, 256)
}

// x: (B, D) -> (B,)
Tensor MLPAR::log_prob(const Batch& batch) {
  const Tensor& x = batch.x;
  check_input(batch, "log_prob");
  Tensor params = head_params(x);  // (B, D, P)
  Tensor per_pixel;                // log p(x_j | x_{j-d:j-1}): (B, D)
  if (mixture()) {
    std::vector<Tensor> p = chunk(params, 3, -1);  // 3 x (B, D, K)
    per_pixel = nn::DiscretizedLogisticMixture(p[0], p[1], p[2]).log_prob(x.to(params.dtype()) / 127.5 - 1.0);
  } else {
    // log softmax(params)[x_j] = -cross_entropy: the fused kernel never builds the (B, D, 256) log-softmax
    const int64_t B = x.size(0), D = x.size(1);
    per_pixel = -reshape(F::cross_entropy(reshape(params, {B * D, 256}), reshape(x, {B * D}), "none"), {B, D});
  }
  return sum(per_pixel, {1});
}

}  // namespace dgm::models
