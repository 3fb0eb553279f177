// Tests of the generative models (models/): the properties that make an autoregressive model a
// model of p(x) — causal conditionals, a normalised joint, samplers that agree — plus the lecture's
// baselines against the PyTorch peer's numbers, a training sanity check and the registry.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <dgm/data/mnist.h>
#include <dgm/models/autoregressive.h>
#include <dgm/models/baselines.h>
#include <dgm/models/imagegpt.h>
#include <dgm/models/mlp_ar.h>
#include <dgm/models/pixelcnn.h>
#include <dgm/models/registry.h>
#include <dgm/nn/optim.h>
#include <dgm/tensor/allocator.h>

using namespace dgm;
using namespace dgm::models;
using nlohmann::json;

namespace {

// Tiny configurations of every autoregressive model, for fast exact checks.
struct Tiny {
  std::string name;
  json config;
};
std::vector<Tiny> tiny_models(int64_t image_size) {
  return {
      {"independent", {{"image_size", image_size}}},
      {"independent", {{"image_size", image_size}, {"data", "8-bit"}}},
      {"markov1", {{"image_size", image_size}}},
      {"markov1", {{"image_size", image_size}, {"data", "8-bit"}}},
      {"mlp_ar", {{"image_size", image_size}, {"hidden", 16}, {"context", 2}}},
      {"mlp_ar", {{"image_size", image_size}, {"hidden", 16}, {"context", 3}, {"head", "logistic_mixture"}, {"mixtures", 3}}},
      {"imagegpt", {{"image_size", image_size}, {"embed_dim", 8}, {"heads", 2}, {"layers", 2}}},
      {"pixelcnn", {{"image_size", image_size}, {"channels", 4}, {"layers", 2}, {"kernel_a", 5}, {"kernel_b", 3}}},
  };
}

std::shared_ptr<AutoregressiveModel> make_ar(const Tiny& t, DType dtype = DType::Float64) {
  manual_seed(1);
  auto m = std::dynamic_pointer_cast<AutoregressiveModel>(create_model(t.name, t.config));
  if (!m) throw std::runtime_error(t.name + " is not an AutoregressiveModel");
  m->to(dtype);
  if (t.name == "independent" || t.name == "markov1") {  // start from a table that is not uniform
    NoGradGuard no_grad;
    Tensor logits = m->parameters()[0];
    logits.copy_(randn(logits.shape(), {.dtype = dtype}));
  }
  return m;
}

std::string label(const Tiny& t) { return t.name + " " + t.config.dump(); }

// (B, D) int64 with values in [0, K)
Tensor random_pixels(int64_t B, int64_t D, int64_t K, Generator& gen) { return randint(0, K, {B, D}, &gen); }

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// log sum_i exp(v_i), in double
double log_sum_exp(const std::vector<double>& v) {
  double mx = -INFINITY, s = 0;
  for (double x : v) mx = std::max(mx, x);
  for (double x : v) s += std::exp(x - mx);
  return mx + std::log(s);
}

// Every binary image with D pixels, one per row: (2^D, D).
Tensor all_binary_images(int64_t D) {
  std::vector<int64_t> v;
  for (int64_t code = 0; code < (int64_t{1} << D); ++code)
    for (int64_t j = 0; j < D; ++j) v.push_back((code >> j) & 1);
  return from_vector(v, {int64_t{1} << D, D});
}

// MNIST as (n, 784) int64: grey levels, or binarized (> 128) as the course does.
Tensor mnist_tensor(data::Split split, bool binary) {
  static const data::MnistData train = data::load_mnist("", data::Split::Train), test = data::load_mnist("", data::Split::Test);
  const data::MnistData& d = split == data::Split::Train ? train : test;
  std::vector<int64_t> v(d.pixels.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = binary ? (d.pixels[i] > 128 ? 1 : 0) : d.pixels[i];
  return from_vector(v, {d.n, d.pixels_per_image()});
}

}  // namespace

// ---- causality: p(x_j | x_<j) must not look at x_j or anything after it --------------------------------

TEST(ModelsCausality, ChangingPixelJNeverChangesConditionalsUpToJ) {
  Generator gen(3);
  for (const Tiny& t : tiny_models(4)) {
    SCOPED_TRACE(label(t));
    auto m = make_ar(t);
    const int64_t D = m->num_pixels(), K = m->num_values(), B = 2;
    Tensor x = random_pixels(B, D, K, gen);
    const std::vector<double> base = m->conditional_log_probs(x).to_vector<double>();  // (B, D, K)
    bool reaches_later = false;
    for (int64_t j = 0; j < D; ++j) {
      Tensor changed = x.clone();
      for (int64_t b = 0; b < B; ++b) {
        int64_t& v = changed.data<int64_t>()[b * D + j];
        v = (v + 1 + gen.randint(0, K - 1)) % K;  // any other value
      }
      const std::vector<double> now = m->conditional_log_probs(changed).to_vector<double>();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < D; ++i) {
          double diff = 0;
          for (int64_t k = 0; k < K; ++k) {
            size_t at = static_cast<size_t>((b * D + i) * K + k);
            diff = std::max(diff, std::abs(now[at] - base[at]));
          }
          if (i <= j) {
            ASSERT_LE(diff, 1e-12) << "pixel " << j << " changed the conditional of pixel " << i;
          }
          if (i > j && diff > 1e-9) reaches_later = true;
        }
    }
    // the independent-pixels model is the one whose conditionals ignore the past altogether
    if (t.name != "independent") {
      EXPECT_TRUE(reaches_later) << "no pixel influences any later one";
    }
  }
}

TEST(ModelsCausality, NextLogProbsEqualTheFullForwardsColumn) {
  Generator gen(4);
  std::vector<Tiny> models = tiny_models(5);
  // a window smaller than the image: reach = 1 + 1 = 2 rows / columns
  models.push_back({"pixelcnn", {{"image_size", 8}, {"channels", 4}, {"layers", 1}, {"kernel_a", 3}, {"kernel_b", 3}}});
  // the window shrinks after every masked convolution (forward_pixel): several layers, and kernels
  // of reach 1 and 2
  models.push_back({"pixelcnn", {{"image_size", 12}, {"channels", 4}, {"layers", 3}, {"kernel_a", 5}, {"kernel_b", 3}}});
  models.push_back({"pixelcnn", {{"image_size", 12}, {"channels", 4}, {"layers", 2}, {"kernel_a", 3}, {"kernel_b", 5}}});
  for (const Tiny& t : models) {
    SCOPED_TRACE(label(t));
    auto m = make_ar(t);
    const int64_t D = m->num_pixels(), K = m->num_values();
    Tensor x = random_pixels(3, D, K, gen);
    Tensor all = m->conditional_log_probs(x);  // (3, D, K)
    for (int64_t t_pix = 0; t_pix < D; ++t_pix)
      ASSERT_LE(max_abs_diff(m->next_log_probs(x, t_pix).to_vector<double>(), select(all, 1, t_pix).to_vector<double>()), 1e-12)
          << "pixel " << t_pix;
  }
}

// ---- the joint is normalised --------------------------------------------------------------------------

TEST(ModelsNormalisation, SumOfExpLogProbOverAll512BinaryImagesIsOne) {
  Tensor images = all_binary_images(9);  // every 3x3 binary image
  Generator gen(5);
  for (const Tiny& t : tiny_models(3)) {
    auto m = make_ar(t);
    if (m->data_kind() != DataKind::Binary) continue;
    SCOPED_TRACE(label(t));
    if (auto ind = std::dynamic_pointer_cast<IndependentPixels>(m)) ind->fit(random_pixels(20, 9, 2, gen));  // fitted, and by counting
    if (auto mk = std::dynamic_pointer_cast<MarkovChain>(m)) mk->fit(random_pixels(20, 9, 2, gen));
    EXPECT_NEAR(std::exp(log_sum_exp(m->log_prob(images).to_vector<double>())), 1.0, 1e-9);
  }
  auto tmpl = create_model("template", {{"image_size", 3}});
  tmpl->to(DType::Float64);
  NoGradGuard no_grad;
  tmpl->parameters()[0].copy_(randn({9}, {.dtype = DType::Float64}, &gen));
  EXPECT_NEAR(std::exp(log_sum_exp(tmpl->log_prob(images).to_vector<double>())), 1.0, 1e-9);
}

TEST(ModelsNormalisation, EveryConditionalSumsToOneAndLogProbIsTheirSum) {
  // 256 levels: too many images to enumerate, so each of the 256-way conditionals is summed instead
  Generator gen(6);
  for (const Tiny& t : tiny_models(3)) {
    SCOPED_TRACE(label(t));
    auto m = make_ar(t);
    const int64_t D = m->num_pixels(), K = m->num_values(), B = 4;
    Tensor x = random_pixels(B, D, K, gen);
    const std::vector<double> lp = m->conditional_log_probs(x).to_vector<double>();  // (B, D, K)
    for (int64_t row = 0; row < B * D; ++row) {
      std::vector<double> cond(lp.begin() + row * K, lp.begin() + (row + 1) * K);
      ASSERT_NEAR(log_sum_exp(cond), 0.0, 1e-9) << "conditional " << row;
    }
    // log_prob (each model's own, often a cheaper path) = sum_j log p(x_j | x_<j) from the conditionals
    const std::vector<int64_t> xv = x.to_vector<int64_t>();
    const std::vector<double> joint = m->log_prob(x).to_vector<double>();
    for (int64_t b = 0; b < B; ++b) {
      double s = 0;
      for (int64_t j = 0; j < D; ++j) s += lp[static_cast<size_t>((b * D + j) * K + xv[static_cast<size_t>(b * D + j)])];
      EXPECT_NEAR(joint[static_cast<size_t>(b)], s, 1e-9);
    }
  }
}

// ---- sampling ------------------------------------------------------------------------------------------

TEST(ModelsImageGPT, KVCacheSamplingEqualsNaiveSampling) {
  manual_seed(2);
  ImageGPT m({.embed_dim = 8, .heads = 2, .layers = 2, .image_size = 5});
  m.to(DType::Float64);
  Generator g1(11), g2(11);
  Tensor cached = m.sample(6, g1), naive = m.sample_naive(6, g2);
  EXPECT_EQ(cached.to_vector<int64_t>(), naive.to_vector<int64_t>());
  EXPECT_EQ(g1.next_u64(), g2.next_u64());  // the same number of draws
  // autocompletion too, with the given pixels fed through the cache
  Generator g3(12), g4(12), g5(0);
  Tensor x = random_pixels(4, 25, 2, g5);
  Tensor a = m.complete(x, 12, g3), b = m.complete_naive(x, 12, g4);
  EXPECT_EQ(a.to_vector<int64_t>(), b.to_vector<int64_t>());
  // both samplers draw something: not all images equal
  std::vector<int64_t> v = cached.to_vector<int64_t>();
  EXPECT_NE(std::vector<int64_t>(v.begin(), v.begin() + 25), std::vector<int64_t>(v.begin() + 25, v.begin() + 50));
}

TEST(ModelsSampling, SampleAndCompleteKeepShapesValuesAndTheGivenPixels) {
  Generator gen(8);
  for (const Tiny& t : tiny_models(4)) {
    SCOPED_TRACE(label(t));
    auto m = make_ar(t, DType::Float32);
    const int64_t D = m->num_pixels(), K = m->num_values(), k = D / 2;
    Tensor s = m->sample(3, gen);
    ASSERT_EQ(s.shape(), (Shape{3, D}));
    ASSERT_EQ(s.dtype(), DType::Int64);
    for (int64_t v : s.to_vector<int64_t>()) ASSERT_TRUE(v >= 0 && v < K);
    Tensor x = random_pixels(3, D, K, gen);
    const std::vector<int64_t> xv = x.to_vector<int64_t>(), cv = m->complete(x, k, gen).to_vector<int64_t>();
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t j = 0; j < k; ++j) ASSERT_EQ(cv[static_cast<size_t>(b * D + j)], xv[static_cast<size_t>(b * D + j)]);
    EXPECT_THROW(m->complete(x, D + 1, gen), ValueError);
  }
  // a model that is not autoregressive says so
  auto tmpl = create_model("template", {{"image_size", 4}});
  EXPECT_THROW(tmpl->complete(zeros({1, 16}, {.dtype = DType::Int64}), 8, gen), ValueError);
}

TEST(ModelsSampling, ImageGPTCompletesTheLowerHalfOf28x28Images) {
  manual_seed(3);
  ImageGPT m({.embed_dim = 8, .heads = 2, .layers = 1, .image_size = 28});
  Tensor x = slice(mnist_tensor(data::Split::Test, true), 0, 0, 2);  // (2, 784)
  Generator gen(9);
  Tensor c = m.complete(x, 392, gen);
  EXPECT_EQ(slice(c, 1, 0, 392).to_vector<int64_t>(), slice(x, 1, 0, 392).to_vector<int64_t>());
}

// ---- PixelCNN's receptive field ------------------------------------------------------------------------

// The set of offsets reachable by a stack of masks: the Minkowski sum of their non-zero offsets,
// as an (h, w) 0/1 map around the centre (h/2, w/2).
static std::vector<double> reachable(const std::vector<std::vector<double>>& masks, const std::vector<int64_t>& sizes, int64_t h, int64_t w) {
  std::vector<double> map(static_cast<size_t>(h * w), 0.0);
  map[static_cast<size_t>((h / 2) * w + w / 2)] = 1;  // start from the output pixel, walk back through each layer
  for (size_t l = masks.size(); l-- > 0;) {
    std::vector<double> next(map.size(), 0.0);
    const int64_t k = sizes[l], c = k / 2;
    for (int64_t r = 0; r < h; ++r)
      for (int64_t q = 0; q < w; ++q) {
        if (map[static_cast<size_t>(r * w + q)] == 0) continue;
        for (int64_t i = 0; i < k; ++i)
          for (int64_t j = 0; j < k; ++j) {
            const int64_t rr = r + i - c, qq = q + j - c;
            if (masks[l][static_cast<size_t>(i * k + j)] != 0 && rr >= 0 && rr < h && qq >= 0 && qq < w) next[static_cast<size_t>(rr * w + qq)] = 1;
          }
      }
    map = next;
  }
  return map;
}

TEST(ModelsPixelCNN, OneLayerReceptiveFieldIsExactlyMaskA) {
  manual_seed(4);
  PixelCNN m({.channels = 8, .layers = 0, .kernel_a = 7, .kernel_b = 3, .image_size = 7});
  m.to(DType::Float64);
  Tensor field = receptive_field(m, 7, 7, /*weighted=*/false);  // (7, 7) around the centre (3, 3)
  ASSERT_EQ(field.shape(), (Shape{7, 7}));
  EXPECT_EQ(field.to_vector<double>(), m.conv_a->mask.to_vector<double>());
  // the weighted map is |gradient|: positive exactly where the binary map is 1
  const std::vector<double> weighted = receptive_field(m, 7, 7, true).to_vector<double>(), binary = field.to_vector<double>();
  for (size_t i = 0; i < weighted.size(); ++i) EXPECT_EQ(weighted[i] > 0, binary[i] == 1);
}

// forward_pixel (sampling's shrinking window) refuses a window that does not hold what the pixel sees.
TEST(ModelsPixelCNN, ForwardPixelRefusesAWindowTooSmall) {
  manual_seed(6);
  PixelCNN m({.channels = 4, .layers = 2, .kernel_a = 3, .kernel_b = 3, .image_size = 10});  // reach 3
  Tensor ok = zeros({2, 1, 4, 7});  // rows 2..5, columns 1..7 for pixel (5, 4)
  EXPECT_EQ(m.forward_pixel(ok, Tensor(), 2, 1, 5, 4).shape(), (Shape{2, 2}));
  EXPECT_THROW(m.forward_pixel(zeros({2, 1, 3, 7}), Tensor(), 3, 1, 5, 4), ShapeError);  // rows start at 3, not 2
  EXPECT_THROW(m.forward_pixel(zeros({2, 1, 4, 6}), Tensor(), 2, 1, 5, 4), ShapeError);  // columns end at 6, not 7
  EXPECT_THROW(m.forward_pixel(zeros({2, 1, 4, 7}), Tensor(), 2, 2, 5, 4), ShapeError);  // columns start at 2, not 1
  EXPECT_THROW(m.forward_pixel(zeros({2, 4, 7}), Tensor(), 2, 1, 5, 4), ShapeError);     // not (B, 1, h, w)
}

TEST(ModelsPixelCNN, DeeperStacksHaveABlindSpotAboveRight) {
  manual_seed(5);
  PixelCNN m({.channels = 8, .layers = 3, .kernel_a = 7, .kernel_b = 3, .image_size = 11});
  m.to(DType::Float64);
  const int64_t h = 13, w = 13, cr = 6, cc = 6;
  const std::vector<double> field = receptive_field(m, h, w, false).to_vector<double>();
  std::vector<std::vector<double>> masks = {m.conv_a->mask.to_vector<double>()};
  std::vector<int64_t> sizes = {7};
  for (const auto& conv : m.conv_b) masks.push_back(conv->mask.to_vector<double>()), sizes.push_back(3);
  EXPECT_EQ(field, reachable(masks, sizes, h, w));  // exactly the pixels some path of kernel offsets reaches
  int64_t blind = 0;
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c) {
      const bool before = r < cr || (r == cr && c < cc), seen = field[static_cast<size_t>(r * w + c)] == 1;
      EXPECT_FALSE(seen && !before) << "pixel (" << r << ", " << c << ") is not before the centre but reaches it";
      if (before && !seen && r < cr && c > cc) ++blind;
    }
  EXPECT_GT(blind, 0);
  EXPECT_EQ(field[static_cast<size_t>((cr - 1) * w + cc + 4)], 0.0);  // one row up, four right: blind
  EXPECT_EQ(field[static_cast<size_t>((cr - 2) * w + cc + 4)], 1.0);  // two rows up, four right: seen
}

// ---- the lecture's baselines against the PyTorch peer ----------------------------------------------------

TEST(ModelsBaselines, TestNLLMatchesThePyTorchPeer) {
  // Peer numbers (nats/dim on the 997 test images) from
  //   /usr/bin/python3 ../shared/peers/pytorch_train.py baselines 0 data/mnist10k
  // which prints binary: independent 0.2620, markov1-shared 0.2154; 8bit: independent 1.1942, markov1-shared 0.9916;
  // the digits below are the same computation printed with %.10f.
  struct Case {
    const char* model;
    bool binary;
    double peer;
  };
  const Case cases[] = {
      {"independent", true, 0.2619590283},
      {"markov1", true, 0.2154366098},
      {"independent", false, 1.1941975286},
      {"markov1", false, 0.9916166516},
  };
  for (bool binary : {true, false}) {
    Tensor train = mnist_tensor(data::Split::Train, binary), test = mnist_tensor(data::Split::Test, binary);
    for (const Case& c : cases) {
      if (c.binary != binary) continue;
      SCOPED_TRACE(std::string(c.model) + (binary ? " binary" : " 8-bit"));
      auto m = create_model(c.model, {{"data", binary ? "binary" : "8-bit"}});
      m->to(DType::Float64);
      if (auto ind = std::dynamic_pointer_cast<IndependentPixels>(m)) ind->fit(train);
      if (auto mk = std::dynamic_pointer_cast<MarkovChain>(m)) mk->fit(train);
      NoGradGuard no_grad;
      const double nll = m->loss(test, default_generator()).item();  // -mean log p(x) / 784, nats/dim
      EXPECT_NEAR(nll, c.peer, 1e-4);
      EXPECT_NEAR(nll, c.peer, 1e-8);  // in fact: the same sums in double
    }
  }
}

// ---- training sanity --------------------------------------------------------------------------------------

// A batch with some structure to learn: pixel j is 1 (binary) or bright (8-bit) with a probability
// that depends on j.
static Tensor structured_batch(int64_t B, int64_t D, int64_t K, Generator& gen) {
  std::vector<int64_t> v(static_cast<size_t>(B * D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < D; ++j) {
      const bool on = gen.uniform() < (j % 3 == 0 ? 0.9 : 0.1);
      v[static_cast<size_t>(b * D + j)] = K == 2 ? on : (on ? 200 + gen.randint(0, 56) : gen.randint(0, 10));
    }
  return from_vector(v, {B, D});
}

TEST(ModelsTraining, AdamStepsReduceTheLossWhichIsMinusMeanLogProbPerDim) {
  std::vector<Tiny> models = tiny_models(4);
  models.push_back({"template", {{"image_size", 4}}});
  for (const Tiny& t : models) {
    SCOPED_TRACE(label(t));
    manual_seed(6);
    auto m = create_model(t.name, t.config);
    const int64_t D = m->height() * m->width(), K = m->data_kind() == DataKind::Binary ? 2 : 256;
    Generator gen(10);
    Tensor x = structured_batch(16, D, K, gen);
    {
      NoGradGuard no_grad;
      const double loss = m->loss(x, default_generator()).item(), from_log_prob = -mean(m->log_prob(x)).item() / static_cast<double>(D);
      EXPECT_NEAR(loss, from_log_prob, 1e-5 * std::abs(from_log_prob));
    }
    nn::Adam opt(m->parameters(), {.lr = 1e-2});
    double first = 0, last = 0;
    for (int step = 0; step < 6; ++step) {
      opt.zero_grad();
      Tensor loss = m->loss(x, default_generator());
      loss.backward();
      opt.step();
      (step == 0 ? first : last) = loss.item();
    }
    EXPECT_LT(last, first);
  }
}

TEST(ModelsTemplate, TrainsOneStepAndItsLossDrops) {
  auto m = create_model("template", {{"image_size", 4}});
  Generator gen(12);
  Tensor x = structured_batch(8, 16, 2, gen);
  nn::Adam opt(m->parameters(), {.lr = 0.1});
  Tensor before = m->loss(x, default_generator());
  before.backward();
  opt.step();
  NoGradGuard no_grad;
  EXPECT_LT(m->loss(x, default_generator()).item(), before.item());
  EXPECT_EQ(m->sample(2, gen).shape(), (Shape{2, 16}));
}

// As Allocator.SteadyStateStepDoesNotCallTheSystemAllocator (tests/test_fused.cpp) for the lecture's
// training steps (small shapes): model, loss, backward, Adam.
TEST(Allocator, ModelTrainingStepsDoNotCallTheSystemAllocator) {
  if (!caching_enabled()) GTEST_SKIP() << "caching disabled (sanitizer build or DGM_CACHING_ALLOCATOR=0)";
  manual_seed(11);
  struct Case {
    const char* name;
    nlohmann::json config;
    Tensor x;
  };
  for (const Case& c : {Case{"imagegpt", {{"embed_dim", 16}, {"heads", 2}, {"layers", 1}, {"image_size", 10}},
                             (rand({4, 100}) > 0.7).to(DType::Int64)},
                        Case{"mlp_ar", {{"hidden", 32}, {"image_size", 10}}, randint(0, 256, {4, 100})}}) {
    auto model = models::create_model(c.name, c.config);
    nn::Adam optimizer(model->parameters(), {.lr = 1e-3});
    auto step = [&] {
      optimizer.zero_grad();
      model->loss(c.x, default_generator()).backward();
      optimizer.step();
    };
    step();
    step();
    const uint64_t before = allocator_stats().system_allocs;
    for (int i = 0; i < 3; ++i) step();
    EXPECT_EQ(allocator_stats().system_allocs, before) << c.name;
  }
}

// ---- the registry ------------------------------------------------------------------------------------------

TEST(ModelsRegistry, CreatesEveryModelByNameAndRebuildsItFromItsConfig) {
  std::vector<std::string> names;
  for (const ModelInfo& info : registry()) names.push_back(info.name);
  EXPECT_EQ(names, (std::vector<std::string>{"independent", "markov1", "mlp_ar", "imagegpt", "pixelcnn", "realnvp", "maf", "template"}));
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    auto m = create_model(name);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->height(), 28);
    EXPECT_EQ(create_model(name, m->config())->config(), m->config());
    EXPECT_FALSE(find_model(name).description.empty());
  }
  // the reference models' sizes (pytorch_ref.py: ImageGPT(784, 64, 4, 2) and MLPAR())
  EXPECT_EQ(create_model("imagegpt")->num_parameters(), 117504);
  EXPECT_EQ(create_model("mlp_ar")->num_parameters(), 262912);
  EXPECT_EQ(create_model("mlp_ar")->data_kind(), DataKind::Byte);
  EXPECT_EQ(create_model("markov1", {{"data", "8-bit"}})->data_kind(), DataKind::Byte);
}

TEST(ModelsRegistry, UnknownNamesAndKeysAreValueErrorsNamingThem) {
  auto message = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const ValueError& e) {
      return e.what();
    }
    return "no ValueError";
  };
  std::string e = message([] { create_model("pixelrnn"); });
  EXPECT_NE(e.find("'pixelrnn'"), std::string::npos) << e;
  EXPECT_NE(e.find("imagegpt"), std::string::npos) << e;  // lists the known names
  e = message([] { create_model("imagegpt", {{"layer", 3}}); });
  EXPECT_NE(e.find("'layer'"), std::string::npos) << e;
  EXPECT_NE(e.find("layers"), std::string::npos) << e;  // lists the known keys
  e = message([] { create_model("mlp_ar", {{"head", "gaussian"}}); });
  EXPECT_NE(e.find("logistic_mixture"), std::string::npos) << e;
  e = message([] { create_model("pixelcnn", {{"channels", "many"}}); });
  EXPECT_NE(e.find("'channels'"), std::string::npos) << e;
  EXPECT_THROW(create_model("template", {{"image_size", 28}, {"seed", 1}}), ValueError);
}
