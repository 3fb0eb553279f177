// Lecture 1, autoregressive modelling: the computations (report and figures in autoregressive_chapter.cpp).
#include <dgm/lectures/lecture01/autoregressive.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>

#include <dgm/autograd/ops.h>
#include <dgm/data/mnist.h>
#include <dgm/models/baselines.h>
#include <dgm/models/imagegpt.h>
#include <dgm/models/mlp_ar.h>
#include <dgm/models/pixelcnn.h>
#include <dgm/models/registry.h>
#include <dgm/nn/optim.h>
#include <dgm/tensor/errors.h>
#include <dgm/train/data_loader.h>
#include <dgm/train/trainer.h>

namespace dgm::lecture01 {

namespace {

using models::AutoregressiveModel;
using nlohmann::json;

const double kLn2 = std::log(2.0);

std::shared_ptr<AutoregressiveModel> make_ar(const std::string& name, const json& config, uint64_t seed, DType dtype) {
  manual_seed(seed);  // the models initialise from the global generator
  auto m = std::dynamic_pointer_cast<AutoregressiveModel>(models::create_model(name, config));
  if (!m) throw ValueError(cat("lecture01 autoregressive: ", name, " is not an AutoregressiveModel"));
  m->to(dtype);
  return m;
}

// log sum_i exp(v_i) in double
double log_sum_exp(const double* v, int64_t n) {
  double mx = -std::numeric_limits<double>::infinity(), s = 0;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, v[i]);
  for (int64_t i = 0; i < n; ++i) s += std::exp(v[i] - mx);
  return mx + std::log(s);
}

// The first n test digits (or train digits) as (n, 784) int64: grey levels, or binarized (> 128).
Tensor digits(const std::string& data, data::Split split, int64_t n, bool binary) {
  data::MnistData d = data::load_mnist(data, split);
  n = n <= 0 ? d.n : std::min(n, d.n);
  const int64_t D = d.pixels_per_image();
  std::vector<int64_t> v(static_cast<size_t>(n * D));
  for (size_t i = 0; i < v.size(); ++i) v[i] = binary ? (d.pixels[i] > 128 ? 1 : 0) : d.pixels[i];
  return from_vector(v, {n, D});
}

// Every binary image with D pixels, one per row: (2^D, D).
Tensor all_binary_images(int64_t D) {
  std::vector<int64_t> v;
  for (int64_t code = 0; code < (int64_t{1} << D); ++code)
    for (int64_t j = 0; j < D; ++j) v.push_back((code >> j) & 1);
  return from_vector(v, {int64_t{1} << D, D});
}

int64_t count_parameters(const nn::Module& m) {
  int64_t n = 0;
  for (const Tensor& p : m.parameters()) n += p.numel();
  return n;
}

// Mean NLL per dimension in nats of x under the model, in chunks without gradients.
// -sum log p(x_i) / (N D) in nats, by the training library's evaluator (batches of 100).
double nll_per_dim(models::GenerativeModel& m, const Tensor& x) {
  train::DataLoader loader(train::Dataset::from_tensor(x, Tensor(), m.data_kind(), m.height(), m.width()),
                           {.batch_size = 100, .shuffle = false, .drop_last = false});
  return train::test_nll_nats(m, loader);
}

struct Spec {
  std::string label, name;
  json config;
};

}  // namespace

// ---- 1. the likelihood is a product of conditionals ------------------------------------------------

std::vector<ConditionalsCheck> check_product_of_conditionals(uint64_t seed, int64_t images, const std::string& data) {
  const std::vector<Spec> specs = {
      {"imagegpt", "imagegpt", {{"embed_dim", 32}, {"heads", 4}, {"layers", 2}}},
      {"pixelcnn", "pixelcnn", {{"channels", 16}, {"layers", 3}, {"kernel_a", 7}, {"kernel_b", 3}}},
      {"mlp_ar categorical", "mlp_ar", {{"hidden", 64}, {"context", 2}, {"head", "categorical"}}},
      {"mlp_ar logistic_mixture", "mlp_ar", {{"hidden", 64}, {"context", 2}, {"head", "logistic_mixture"}, {"mixtures", 5}}},
  };
  const Tensor binary = digits(data, data::Split::Test, images, true), bytes = digits(data, data::Split::Test, images, false);
  std::vector<ConditionalsCheck> out;
  NoGradGuard no_grad;
  for (size_t s = 0; s < specs.size(); ++s) {
    const Spec& spec = specs[s];
    auto m = make_ar(spec.name, spec.config, seed + s, DType::Float64);
    const Tensor& x = m->data_kind() == models::DataKind::Binary ? binary : bytes;
    const int64_t B = x.size(0), D = m->num_pixels(), K = m->num_values();
    ConditionalsCheck c;
    c.model = spec.label;
    c.config = spec.config.dump();
    c.images = B;
    const std::vector<double> cond = m->conditional_log_probs(x).contiguous().to_vector<double>();  // (B, D, K)
    const std::vector<double> joint = m->log_prob(x).to_vector<double>();                          // (B)
    const std::vector<int64_t> xv = x.to_vector<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      double sum_j = 0;
      for (int64_t j = 0; j < D; ++j) {
        const double* row = cond.data() + (b * D + j) * K;
        sum_j += row[xv[static_cast<size_t>(b * D + j)]];                      // log p(x_j | x_<j)
        c.max_norm_error = std::max(c.max_norm_error, std::abs(log_sum_exp(row, K)));  // log sum_v p(v | x_<j) = 0
      }
      c.max_sum_diff = std::max(c.max_sum_diff, std::abs(joint[static_cast<size_t>(b)] - sum_j));
    }
    c.log_prob = joint[0];
    c.total_prob_3x3 = std::numeric_limits<double>::quiet_NaN();
    if (m->data_kind() == models::DataKind::Binary) {
      json small = spec.config;
      small["image_size"] = 3;
      auto tiny = make_ar(spec.name, small, seed + s, DType::Float64);
      const Tensor all = all_binary_images(9);
      const std::vector<double> lp = tiny->log_prob(all).to_vector<double>();
      c.total_prob_3x3 = std::exp(log_sum_exp(lp.data(), static_cast<int64_t>(lp.size())));
      c.enumerated = all.size(0);
    }
    out.push_back(c);
  }
  return out;
}

// ---- 2. sampling is sequential ---------------------------------------------------------------------

SamplerComparison compare_imagegpt_samplers(int64_t embed_dim, int64_t heads, int64_t layers, int64_t image_size, int64_t n,
                                            uint64_t seed) {
  manual_seed(seed);
  models::ImageGPT m({.embed_dim = embed_dim, .heads = heads, .layers = layers, .image_size = image_size});
  SamplerComparison r;
  r.config = m.config().dump();
  r.n = n;
  r.image_size = image_size;
  using clock = std::chrono::steady_clock;
  Generator g_cached(seed + 1), g_naive(seed + 1);
  auto t0 = clock::now();
  const Tensor cached = m.sample(n, g_cached);  // the key/value cache
  auto t1 = clock::now();
  const Tensor naive = m.sample_naive(n, g_naive);  // a full forward per pixel
  auto t2 = clock::now();
  r.seconds_cached = std::chrono::duration<double>(t1 - t0).count();
  r.seconds_naive = std::chrono::duration<double>(t2 - t1).count();
  r.speedup = r.seconds_naive / r.seconds_cached;
  r.samples = cached.to_vector<int64_t>();
  const std::vector<int64_t> other = naive.to_vector<int64_t>();
  for (size_t i = 0; i < other.size(); ++i) r.differing_pixels += r.samples[i] != other[i];
  r.same_draw_count = g_cached.next_u64() == g_naive.next_u64();
  return r;
}

// ---- 3. the MLP with a Markov context on 8-bit MNIST ---------------------------------------------

ByteMnist load_byte_mnist(const std::string& data) {
  return {digits(data, data::Split::Train, 0, false), digits(data, data::Split::Test, 0, false)};
}

ByteBaselines byte_baselines(const ByteMnist& data, int64_t test_images) {
  const Tensor test = test_images > 0 ? data.test.narrow(0, 0, std::min(test_images, data.test.size(0))) : data.test;
  models::IndependentPixels ind({.data = models::DataKind::Byte});
  models::MarkovChain markov({.data = models::DataKind::Byte});
  ind.fit(data.train);
  markov.fit(data.train);
  return {nll_per_dim(ind, test) / kLn2, nll_per_dim(markov, test) / kLn2};
}

MlpArRun train_mlp_ar_short(const ByteMnist& data, const std::string& head, int64_t steps, int64_t batch, double lr,
                            uint64_t seed, int64_t hidden, int64_t n_samples, int64_t test_images) {
  manual_seed(seed);
  models::MLPAR m({.hidden = hidden, .context = 2, .head = head, .mixtures = 5, .image_size = 28});
  MlpArRun r;
  r.head = head;
  r.config = m.config().dump();
  r.parameters = count_parameters(m);
  r.steps = steps, r.batch = batch, r.lr = lr;
  const Tensor test = test_images > 0 ? data.test.narrow(0, 0, std::min(test_images, data.test.size(0))) : data.test;
  r.test_bits_init = nll_per_dim(m, test) / kLn2;

  // The training library's loader and step (train/): shuffled epochs of the training digits, and
  // the model's own step (zero_grad; loss(batch).backward(); Adam).
  Generator gen(seed + 1);
  const int64_t D = data.train.size(1);
  train::DataLoader loader(train::Dataset::from_tensor(data.train, Tensor(), models::DataKind::Byte, 28, 28),
                           {.batch_size = batch, .shuffle = true, .drop_last = true, .seed = seed + 1});
  nn::Adam opt(m.parameters(), {.lr = lr});
  const std::vector<nn::Optimizer*> optimizers{&opt};
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < steps; ++step) {
    const double loss = m.train_step(loader.next(), gen, optimizers);  // -mean log p(x) / D, nats/dim
    r.train_bits.push_back(loss / kLn2);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.test_bits = nll_per_dim(m, test) / kLn2;

  NoGradGuard no_grad;
  if (n_samples > 0) r.samples = m.sample(n_samples, gen).to_vector<int64_t>();
  const Tensor first = data.test.narrow(0, 0, 1);
  const std::vector<double> cond = m.conditional_log_probs(first).contiguous().to_vector<double>();  // (1, D, 256)
  const std::vector<int64_t> xv = first.contiguous().to_vector<int64_t>();
  for (int64_t j = 0; j < D; ++j) r.pixel_bits.push_back(-cond[static_cast<size_t>(j * 256 + xv[static_cast<size_t>(j)])] / kLn2);
  return r;
}

// ---- 4. ImageGPT and PixelCNN in raster order ------------------------------------------------------

std::vector<CausalityCheck> check_causality(uint64_t seed, int64_t positions, const std::string& data) {
  const std::vector<Spec> specs = {
      {"imagegpt", "imagegpt", {{"embed_dim", 64}, {"heads", 4}, {"layers", 2}}},
      {"pixelcnn", "pixelcnn", {{"channels", 64}, {"layers", 5}, {"kernel_a", 7}, {"kernel_b", 3}}},
      {"mlp_ar (8-bit, context 2)", "mlp_ar", {{"hidden", 64}, {"context", 2}}},
  };
  const Tensor binary = digits(data, data::Split::Test, 1, true), bytes = digits(data, data::Split::Test, 1, false);
  std::vector<CausalityCheck> out;
  NoGradGuard no_grad;
  for (size_t s = 0; s < specs.size(); ++s) {
    const Spec& spec = specs[s];
    auto m = make_ar(spec.name, spec.config, seed + s, DType::Float64);
    const Tensor& x = m->data_kind() == models::DataKind::Binary ? binary : bytes;
    const int64_t D = m->num_pixels(), K = m->num_values();
    const std::vector<double> base = m->conditional_log_probs(x).contiguous().to_vector<double>();  // (1, D, K)
    CausalityCheck c;
    c.model = spec.label;
    c.config = spec.config.dump();
    c.positions = positions;
    for (int64_t p = 0; p < positions; ++p) {
      const int64_t j = (2 * p + 1) * D / (2 * positions);  // spread over the image
      Tensor changed = x.clone();
      int64_t& v = changed.data<int64_t>()[j];
      v = (v + K / 2) % K;  // another value: flip a binary pixel, move a grey level by 128
      const std::vector<double> now = m->conditional_log_probs(changed).contiguous().to_vector<double>();
      int64_t reached = 0;
      for (int64_t i = 0; i < D; ++i) {
        double diff = 0;
        for (int64_t k = 0; k < K; ++k) diff = std::max(diff, std::abs(now[i * K + k] - base[i * K + k]));
        if (i <= j) c.max_change_up_to_j = std::max(c.max_change_up_to_j, diff);
        else {
          c.max_change_after_j = std::max(c.max_change_after_j, diff);
          reached += diff > 0;
        }
      }
      c.mean_later_reached += double(reached) / double(positions);
      c.mean_later_total += double(D - 1 - j) / double(positions);
    }
    out.push_back(c);
  }
  return out;
}

ReceptiveFields pixelcnn_receptive_fields(uint64_t seed, int64_t layers, int64_t kernel_a, int64_t kernel_b, int64_t size) {
  ReceptiveFields r;
  r.size = size, r.layers = layers, r.kernel_a = kernel_a, r.kernel_b = kernel_b;
  manual_seed(seed);
  models::PixelCNN one({.channels = 8, .layers = 0, .kernel_a = kernel_a, .kernel_b = kernel_b, .image_size = size});
  one.to(DType::Float64);
  r.mask_a = models::receptive_field(one, size, size, false).to_vector<double>();
  manual_seed(seed + 1);
  models::PixelCNN stack({.channels = 16, .layers = layers, .kernel_a = kernel_a, .kernel_b = kernel_b, .image_size = size});
  stack.to(DType::Float64);
  r.binary = models::receptive_field(stack, size, size, false).to_vector<double>();
  r.weighted = models::receptive_field(stack, size, size, true).to_vector<double>();
  const int64_t c = size / 2, reach = stack.reach();
  for (int64_t row = 0; row < size; ++row)
    for (int64_t col = 0; col < size; ++col) {
      const bool seen = r.binary[static_cast<size_t>(row * size + col)] != 0;
      const bool before = row < c || (row == c && col < c);
      const bool in_reach = row >= c - reach && std::abs(col - c) <= reach;
      if (before && in_reach) {
        ++r.preceding;
        r.seen += seen;
        r.blind += !seen;
      }
      if (!before) r.seen_after += seen;
    }
  return r;
}

BinaryBaselines binary_baselines(uint64_t seed, int64_t test_images, const std::string& data) {
  const Tensor train = digits(data, data::Split::Train, 0, true), test = digits(data, data::Split::Test, 0, true);
  models::IndependentPixels ind({.data = models::DataKind::Binary});
  models::MarkovChain markov({.data = models::DataKind::Binary});
  ind.fit(train);
  markov.fit(train);
  BinaryBaselines b;
  b.independent = nll_per_dim(ind, test);
  b.markov1 = nll_per_dim(markov, test);
  const Tensor some = test_images > 0 ? test.narrow(0, 0, std::min(test_images, test.size(0))) : test;
  auto gpt = make_ar("imagegpt", json::object(), seed, DType::Float32);
  auto cnn = make_ar("pixelcnn", json::object(), seed + 1, DType::Float32);
  b.imagegpt_init = nll_per_dim(*gpt, some);
  b.pixelcnn_init = nll_per_dim(*cnn, some);
  return b;
}

}  // namespace dgm::lecture01
