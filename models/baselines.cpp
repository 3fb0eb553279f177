#include <dgm/models/baselines.h>

#include <cmath>

#include <dgm/models/config.h>

namespace dgm::models {

BaselineConfig BaselineConfig::from_json(const std::string& model, const nlohmann::json& config) {
  ConfigReader r(model, config);
  BaselineConfig c;
  c.data = r.choice("data", "binary", {"binary", "8-bit"}) == "binary" ? DataKind::Binary : DataKind::Byte;
  c.image_size = r.integer("image_size", c.image_size, 2);
  r.finish();
  return c;
}

nlohmann::json BaselineConfig::to_json() const { return {{"data", data_kind_name(data)}, {"image_size", image_size}}; }

// log-probabilities (as double) -> a (rows, K) tensor of the parameter's dtype
static Array table_of(const std::vector<double>& log_p, int64_t rows, int64_t K, DType dtype) {
  return Array::from_vector(log_p, {rows, K}).to(dtype);
}

// The pixel before each pixel in raster order, 0 before the first: (B, D) -> (B, D).
static Tensor previous_pixels(const Tensor& x) { return pad(slice(x, 1, 0, x.size(1) - 1), {1, 0}); }

// ---- independent pixels -----------------------------------------------------------------------------

IndependentPixels::IndependentPixels(BaselineConfig config) : AutoregressiveModel("IndependentPixels"), config_(config) {
  logits = register_parameter("logits", zeros({num_pixels(), num_values()}));  // uniform until fitted
}

std::shared_ptr<GenerativeModel> IndependentPixels::create(const nlohmann::json& config) {
  return std::make_shared<IndependentPixels>(BaselineConfig::from_json("independent", config));
}

bool IndependentPixels::fit(const Batch& batch) {
  check_input(batch, "fit");
  const Tensor& train = batch.x;
  const int64_t n = train.size(0), D = num_pixels(), K = num_values();
  std::vector<double> counts(static_cast<size_t>(D * K), 1.0);  // Laplace: one pseudo-count per value
  const Array pixels = train.array().contiguous();
  const int64_t* x = pixels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < D; ++j) counts[static_cast<size_t>(j * K + x[i * D + j])] += 1;
  for (double& c : counts) c = std::log(c / static_cast<double>(n + K));  // each pixel's counts sum to n + K
  logits.set_data(table_of(counts, D, K, logits.dtype()));
  return true;
}

// x: (B, D) -> (B, D, K): the same table for every image, whatever came before
Tensor IndependentPixels::conditional_log_probs(const Batch& batch) {
  const Tensor& x = batch.x;
  return expand(unsqueeze(log_softmax(logits, -1), 0), {x.size(0), num_pixels(), num_values()});
}

// x: (B, D) -> (B, K)
Tensor IndependentPixels::next_log_probs(const Batch& batch, int64_t t) {
  const Tensor& x = batch.x;
  return expand(unsqueeze(select(log_softmax(logits, -1), 0, t), 0), {x.size(0), num_values()});
}

// x: (B, D) -> (B,). Picks log pi_j(x_j) from the flattened table (no (B, D, K) intermediate: with
// K = 256 and the whole test split that would be 200M numbers).
Tensor IndependentPixels::log_prob(const Batch& batch) {
  const Tensor& x = batch.x;
  check_input(batch, "log_prob");
  const int64_t D = num_pixels(), K = num_values();
  Tensor table = reshape(log_softmax(logits, -1), {D * K, 1});  // row j K + v = log pi_j(v)
  Tensor rows = arange(D, {.dtype = DType::Int64}) * K + x;     // (B, D)
  return sum(squeeze(embedding(table, rows), 2), {1});          // (B, D, 1) -> (B,)
}

// ---- first-order Markov chain -------------------------------------------------------------------------

MarkovChain::MarkovChain(BaselineConfig config) : AutoregressiveModel("MarkovChain"), config_(config) {
  logits = register_parameter("logits", zeros({num_values(), num_values()}));
}

std::shared_ptr<GenerativeModel> MarkovChain::create(const nlohmann::json& config) {
  return std::make_shared<MarkovChain>(BaselineConfig::from_json("markov1", config));
}

bool MarkovChain::fit(const Batch& batch) {
  check_input(batch, "fit");
  const Tensor& train = batch.x;
  const int64_t n = train.size(0), D = num_pixels(), K = num_values();
  std::vector<double> counts(static_cast<size_t>(K * K), 1.0);
  const Array pixels = train.array().contiguous();
  const int64_t* x = pixels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t prev = 0;  // before the first pixel
    for (int64_t j = 0; j < D; ++j) {
      const int64_t cur = x[i * D + j];
      counts[static_cast<size_t>(prev * K + cur)] += 1;
      prev = cur;
    }
  }
  for (int64_t v = 0; v < K; ++v) {
    double row = 0;
    for (int64_t w = 0; w < K; ++w) row += counts[static_cast<size_t>(v * K + w)];
    for (int64_t w = 0; w < K; ++w) counts[static_cast<size_t>(v * K + w)] = std::log(counts[static_cast<size_t>(v * K + w)] / row);
  }
  logits.set_data(table_of(counts, K, K, logits.dtype()));
  return true;
}

// x: (B, D) -> (B, D, K): row x_{j-1} of the transition table for pixel j
Tensor MarkovChain::conditional_log_probs(const Batch& batch) { return embedding(log_softmax(logits, -1), previous_pixels(batch.x)); }

// x: (B, D) -> (B, K)
Tensor MarkovChain::next_log_probs(const Batch& batch, int64_t t) {
  const Tensor& x = batch.x;
  Tensor prev = t > 0 ? select(x, 1, t - 1) : zeros({x.size(0)}, {.dtype = DType::Int64});  // (B,)
  return embedding(log_softmax(logits, -1), prev);
}

// x: (B, D) -> (B,), picking log pi(x_j | x_{j-1}) from the flattened table
Tensor MarkovChain::log_prob(const Batch& batch) {
  const Tensor& x = batch.x;
  check_input(batch, "log_prob");
  const int64_t K = num_values();
  Tensor table = reshape(log_softmax(logits, -1), {K * K, 1});  // row v K + w = log pi(w | v)
  Tensor rows = previous_pixels(x) * K + x;                     // (B, D)
  return sum(squeeze(embedding(table, rows), 2), {1});          // (B,)
}

}  // namespace dgm::models
