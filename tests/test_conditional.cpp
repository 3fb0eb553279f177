// Class-conditional ImageGPT and PixelCNN (issue 17): p(x | y) with a class embedding / class bias,
// the generative classifier p(y | x) = p(x | y) p(y) / p(x) (train/classify.h), and the command
// line (`dgm sample --label`, `dgm eval --classify`). Tiny models on tiny synthetic images, so the
// suite takes seconds.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <regex>
#include <sstream>

#include <dgm/models/imagegpt.h>
#include <dgm/models/pixelcnn.h>
#include <dgm/models/registry.h>
#include <dgm/nn/init.h>
#include <dgm/nn/optim.h>
#include <dgm/nn/serialize.h>
#include <dgm/tools/cli/args.h>
#include <dgm/tools/cli/commands.h>
#include <dgm/tools/image.h>
#include <dgm/train/classify.h>
#include <dgm/train/trainer.h>

using namespace dgm;
using namespace dgm::models;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("dgm_test_conditional_" + std::to_string(getpid()) + "_" + name);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& file) const { return (path / file).string(); }
};

struct CliRun {
  int code;
  std::string out, err;
};
CliRun run(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  int code = cli::run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

int64_t count_lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

Tensor random_pixels(int64_t n, int64_t d, Generator& gen) {
  std::vector<int64_t> v(static_cast<size_t>(n * d));
  for (int64_t& p : v) p = gen.uniform() < 0.5 ? 1 : 0;
  return from_vector(v, {n, d});
}

// The conditional model gets every tensor of the unconditional one, and its class embedding zeroed.
void copy_into_conditional(const nn::Module& unconditional, nn::Module& conditional) {
  nn::NamedTensors state = unconditional.state_dict();
  for (const auto& [name, t] : conditional.state_dict())
    if (name.rfind("label", 0) == 0) state.emplace_back(name, zeros_like(t));
  conditional.load_state_dict(state);
}

// ---- the synthetic 3-class task: 4x4 images, class 0 = top half on, 1 = bottom half, 2 = left half,
// each pixel flipped with probability 0.05.
constexpr int64_t kSide = 4, kD = kSide * kSide, kTaskClasses = 3;

int64_t template_pixel(int64_t y, int64_t j) {
  const int64_t r = j / kSide, c = j % kSide;
  return y == 0 ? r < 2 : y == 1 ? r >= 2 : c < 2;
}

train::Dataset task_data(int64_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<int64_t> x, y;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = i % kTaskClasses;
    y.push_back(label);
    for (int64_t j = 0; j < kD; ++j) x.push_back(gen.uniform() < 0.05 ? 1 - template_pixel(label, j) : template_pixel(label, j));
  }
  return train::Dataset::from_tensor(from_vector(x, {n, kD}), from_vector(y, {n}), DataKind::Binary, kSide, kSide);
}

// The class whose clean template is nearest in Hamming distance: an independent judge of samples.
int64_t nearest_template(const std::vector<int64_t>& x, int64_t offset) {
  int64_t best = 0, best_distance = kD + 1;
  for (int64_t y = 0; y < kTaskClasses; ++y) {
    int64_t d = 0;
    for (int64_t j = 0; j < kD; ++j) d += x[static_cast<size_t>(offset + j)] != template_pixel(y, j);
    if (d < best_distance) best_distance = d, best = y;
  }
  return best;
}

void train_briefly(GenerativeModel& model, const train::Dataset& data, int64_t steps, double lr) {
  train::DataLoader loader(data, {.batch_size = 32, .shuffle = true, .seed = 1});
  nn::Adam adam(model.parameters(), {.lr = lr});
  Generator gen(0);
  for (int64_t s = 0; s < steps; ++s) model.train_step(loader.next(), gen, {&adam});
}

}  // namespace

// ---- the flag and the contract ----------------------------------------------------------------------

TEST(Conditional, FlagSelectsTenClassesAndLabelsAreRequired) {
  for (const std::string name : {"imagegpt", "pixelcnn"}) {
    SCOPED_TRACE(name);
    nlohmann::json small = name == "imagegpt" ? nlohmann::json{{"embed_dim", 8}, {"heads", 2}, {"layers", 1}, {"image_size", 4}}
                                              : nlohmann::json{{"channels", 4}, {"layers", 1}, {"kernel_a", 3}, {"image_size", 4}};
    auto plain = create_model(name, small);
    EXPECT_EQ(plain->num_classes(), 0);
    EXPECT_FALSE(plain->config().contains("conditional"));  // unconditional configs are unchanged
    nlohmann::json c = small;
    c["conditional"] = true;
    auto cond = create_model(name, c);
    EXPECT_EQ(cond->num_classes(), 10);
    EXPECT_EQ(cond->config()["conditional"], true);
    EXPECT_EQ(create_model(name, cond->config())->num_classes(), 10);  // the config rebuilds it
    EXPECT_GT(cond->num_parameters(), plain->num_parameters());
    Generator gen(0);
    Tensor x = random_pixels(2, 16, gen);
    EXPECT_THROW(cond->log_prob(x), ValueError);                                   // no labels
    EXPECT_THROW(cond->log_prob(Batch(x, from_vector(std::vector<int64_t>{1, 10}, {2}))), ValueError);  // label 10
    EXPECT_THROW(cond->log_prob(Batch(x, from_vector(std::vector<int64_t>{1}, {1}))), ShapeError);
    EXPECT_NO_THROW(cond->log_prob(Batch(x, from_vector(std::vector<int64_t>{0, 9}, {2}))));
    c["conditional"] = 1;  // not a boolean
    EXPECT_THROW(create_model(name, c), ValueError);
  }
}

// With the class embedding (ImageGPT) / class biases (PixelCNN) zeroed, the conditional model is the
// unconditional one with the same weights: the same log p(x) for every label, the same samples.
TEST(Conditional, ZeroedLabelEmbeddingRecoversTheUnconditionalImageGPT) {
  manual_seed(5);
  ImageGPT plain({.embed_dim = 8, .heads = 2, .layers = 2, .image_size = 4});
  ImageGPT cond({.embed_dim = 8, .heads = 2, .layers = 2, .image_size = 4, .conditional = true});
  plain.to(DType::Float64);
  cond.to(DType::Float64);
  copy_into_conditional(plain, cond);
  Generator gen(1);
  Tensor x = random_pixels(5, 16, gen);
  const std::vector<double> want = plain.log_prob(x).to_vector<double>();
  for (int64_t y : {0, 3, 9}) {
    const std::vector<double> got = cond.log_prob(Batch(x, full({5}, double(y), {.dtype = DType::Int64}))).to_vector<double>();
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << "label " << y;
  }
  // the KV-cache sampler with labels draws the same images as the unconditional one
  Generator g1(7), g2(7);
  EXPECT_EQ(cond.sample(6, g1, {.labels = full({6}, 4.0, {.dtype = DType::Int64})}).to_vector<int64_t>(),
            plain.sample(6, g2).to_vector<int64_t>());
  // and a non-zero embedding makes the label matter
  nn::init::normal_(cond.label->weight);
  const double l0 = cond.log_prob(Batch(x, full({5}, 0.0, {.dtype = DType::Int64}))).sum().item();
  const double l1 = cond.log_prob(Batch(x, full({5}, 1.0, {.dtype = DType::Int64}))).sum().item();
  EXPECT_GT(std::abs(l0 - l1), 1e-3);
}

TEST(Conditional, ZeroedClassBiasRecoversTheUnconditionalPixelCNN) {
  manual_seed(6);
  PixelCNN plain({.channels = 6, .layers = 2, .kernel_a = 3, .kernel_b = 3, .image_size = 5});
  PixelCNN cond({.channels = 6, .layers = 2, .kernel_a = 3, .kernel_b = 3, .image_size = 5, .conditional = true});
  plain.to(DType::Float64);
  cond.to(DType::Float64);
  ASSERT_EQ(cond.label_bias.size(), 3u);  // one after conv_a, one after each conv_b
  copy_into_conditional(plain, cond);
  Generator gen(2);
  Tensor x = random_pixels(4, 25, gen);
  const std::vector<double> want = plain.log_prob(x).to_vector<double>();
  const std::vector<double> got = cond.log_prob(Batch(x, from_vector(std::vector<int64_t>{0, 2, 5, 9}, {4}))).to_vector<double>();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12);
  Generator g1(3), g2(3);
  EXPECT_EQ(cond.sample(3, g1, {.labels = full({3}, 7.0, {.dtype = DType::Int64})}).to_vector<int64_t>(),
            plain.sample(3, g2).to_vector<int64_t>());
  nn::init::normal_(cond.label_bias[1]->weight);
  const double l0 = cond.log_prob(Batch(x, full({4}, 0.0, {.dtype = DType::Int64}))).sum().item();
  const double l1 = cond.log_prob(Batch(x, full({4}, 1.0, {.dtype = DType::Int64}))).sum().item();
  EXPECT_GT(std::abs(l0 - l1), 1e-3);
}

// The class bias is the same at every pixel, so it keeps PixelCNN causal; the windowed sampler
// (next_log_probs) must see the labels too: it agrees with the full forward's column.
TEST(Conditional, PixelCNNWindowedConditionalsSeeTheLabels) {
  manual_seed(7);
  PixelCNN m({.channels = 4, .layers = 2, .kernel_a = 3, .kernel_b = 3, .image_size = 9, .conditional = true});
  m.to(DType::Float64);
  for (const auto& b : m.label_bias) nn::init::normal_(b->weight);
  Generator gen(3);
  Batch batch(random_pixels(3, 81, gen), from_vector(std::vector<int64_t>{1, 4, 8}, {3}));
  Tensor all = m.conditional_log_probs(batch);  // (3, 81, 2)
  for (int64_t t : {0, 10, 40, 80}) {
    const std::vector<double> a = select(all, 1, t).contiguous().to_vector<double>(), b = m.next_log_probs(batch, t).to_vector<double>();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-10) << "pixel " << t;
  }
}

TEST(Conditional, ImageGPTKVCacheSamplingWithLabelsEqualsNaiveSampling) {
  manual_seed(8);
  ImageGPT m({.embed_dim = 8, .heads = 2, .layers = 2, .image_size = 4, .conditional = true});
  m.to(DType::Float64);
  nn::init::normal_(m.label->weight);
  Tensor labels = from_vector(std::vector<int64_t>{0, 1, 2, 3, 9}, {5});
  Generator g1(4), g2(4);
  EXPECT_EQ(m.sample(5, g1, {.labels = labels}).to_vector<int64_t>(), m.sample_naive(5, g2, labels).to_vector<int64_t>());
  Generator g3(4);
  EXPECT_THROW(m.sample(5, g3), ValueError);  // a conditional model needs the labels
}

// ---- the generative classifier ---------------------------------------------------------------------------

TEST(Conditional, PosteriorSumsToOneAndMatchesBayesRule) {
  manual_seed(9);
  ImageGPT m({.embed_dim = 8, .heads = 2, .layers = 1, .image_size = 4, .conditional = true});
  nn::init::normal_(m.label->weight);
  train::Dataset test = task_data(7, 3);
  std::vector<double> prior = {0.05, 0.15, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
  train::ClassifierResult r = train::classify(m, test, prior, /*batch_size=*/3);
  ASSERT_EQ(r.images, 7);
  ASSERT_EQ(r.posterior.size(), 70u);
  int64_t confusion_total = 0;
  for (int64_t c : r.confusion) confusion_total += c;
  EXPECT_EQ(confusion_total, 7);
  double mean_conditional = 0, mean_marginal = 0;
  for (int64_t i = 0; i < 7; ++i) {
    double s = 0;
    for (int64_t y = 0; y < 10; ++y) s += r.posterior[static_cast<size_t>(i * 10 + y)];
    EXPECT_NEAR(s, 1.0, 1e-12);
    // against log p(x | y) computed one label at a time, outside the batched repeat
    Batch one = test.gather({i});
    double px = 0;
    for (int64_t y = 0; y < 10; ++y) {
      one.y = full({1}, double(y), {.dtype = DType::Int64});
      const double ll = m.log_prob(one).item();
      EXPECT_NEAR(r.log_likelihood[static_cast<size_t>(i * 10 + y)], ll, 1e-4);
      px += std::exp(ll) * prior[static_cast<size_t>(y)];
    }
    EXPECT_NEAR(r.log_marginal[static_cast<size_t>(i)], std::log(px), 1e-4);
    for (int64_t y = 0; y < 10; ++y)
      EXPECT_NEAR(r.posterior[static_cast<size_t>(i * 10 + y)],
                  std::exp(r.log_likelihood[static_cast<size_t>(i * 10 + y)]) * prior[static_cast<size_t>(y)] / px, 1e-5);
    mean_conditional -= r.log_likelihood[static_cast<size_t>(i * 10 + r.labels[static_cast<size_t>(i)])] / (7.0 * 16);
    mean_marginal -= r.log_marginal[static_cast<size_t>(i)] / (7.0 * 16);
  }
  EXPECT_NEAR(r.conditional_nll, mean_conditional, 1e-9);
  EXPECT_NEAR(r.marginal_nll, mean_marginal, 1e-9);
  EXPECT_EQ(train::label_prior(task_data(9, 0)), (std::vector<double>{1.0 / 3, 1.0 / 3, 1.0 / 3, 0, 0, 0, 0, 0, 0, 0}));
  // an unconditional model is no classifier; the prior must be positive and of the right size
  ImageGPT plain({.embed_dim = 8, .heads = 2, .layers = 1, .image_size = 4});
  EXPECT_THROW(train::classify(plain, test, prior), ValueError);
  EXPECT_THROW(train::classify(m, test, std::vector<double>(9, 0.1)), ValueError);
  EXPECT_THROW(train::classify(m, test, train::label_prior(task_data(9, 0))), ValueError);
}

// Briefly trained on the 3-class task, both models classify the test images and their --label
// samples look like the asked-for class to an independent judge (the nearest clean template).
TEST(Conditional, BrieflyTrainedModelsClassifyAndSampleTheAskedClass) {
  train::Dataset train_set = task_data(300, 1), test_set = task_data(60, 2);
  std::vector<double> prior(10, 0.01);
  for (int64_t y = 0; y < kTaskClasses; ++y) prior[static_cast<size_t>(y)] = 0.97 / 3;
  for (const std::string name : {"imagegpt", "pixelcnn"}) {
    SCOPED_TRACE(name);
    manual_seed(10);
    auto model = name == "imagegpt" ? create_model(name, {{"embed_dim", 16}, {"heads", 2}, {"layers", 1}, {"image_size", 4}, {"conditional", true}})
                                    : create_model(name, {{"channels", 16}, {"layers", 1}, {"kernel_a", 3}, {"image_size", 4}, {"conditional", true}});
    train_briefly(*model, train_set, 150, 1e-2);
    train::ClassifierResult r = train::classify(*model, test_set, prior, 16);
    EXPECT_GE(r.accuracy, 0.9);
    EXPECT_LT(r.conditional_nll, 0.35);  // nats/dim; the flips alone cost H(0.05) = 0.199
    model->eval();
    Generator gen(5);
    const int64_t per_class = 20;
    std::vector<int64_t> labels;
    for (int64_t y = 0; y < kTaskClasses; ++y) labels.insert(labels.end(), per_class, y);
    const std::vector<int64_t> samples =
        model->sample(kTaskClasses * per_class, gen, {.labels = from_vector(labels, {kTaskClasses * per_class})}).to_vector<int64_t>();
    int64_t agree = 0;
    for (size_t i = 0; i < labels.size(); ++i) agree += nearest_template(samples, static_cast<int64_t>(i) * kD) == labels[i];
    EXPECT_GE(agree, static_cast<int64_t>(0.8 * labels.size())) << agree << " of " << labels.size();
  }
}

// ---- the command line ------------------------------------------------------------------------------------

TEST(ConditionalCli, ParsesLabelAndClassify) {
  cli::CliArgs s = cli::parse_args({"sample", "imagegpt", "--checkpoint", "x", "--label", "3"});
  ASSERT_TRUE(s.label.has_value());
  EXPECT_EQ(*s.label, 3);
  cli::CliArgs e = cli::parse_args({"eval", "pixelcnn", "--checkpoint", "x", "--classify"});
  EXPECT_TRUE(e.classify);
  cli::CliArgs t = cli::parse_args({"train", "imagegpt", "--conditional", "true"});
  EXPECT_EQ(t.model_config["conditional"], true);
  for (const std::vector<std::string>& line : std::vector<std::vector<std::string>>{
           {"sample", "imagegpt", "--checkpoint", "x", "--label", "three"},
           {"sample", "imagegpt", "--checkpoint", "x", "--label", "-1"},
           {"sample", "imagegpt", "--checkpoint", "x", "--label"},
           {"eval", "imagegpt", "--checkpoint", "x", "--label", "3"},
           {"sample", "imagegpt", "--checkpoint", "x", "--classify"},
           {"eval", "imagegpt", "--checkpoint", "x", "--classify=yes"},
           {"train", "imagegpt", "--conditional", "yes", "--steps", "1"},
       }) {
    SCOPED_TRACE(line[0] + " " + line.back());
    CliRun r = run(line);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("dgm: error: ", 0), 0u) << r.err;
  }
}

TEST(ConditionalCli, SampleWithLabelAndTheGridOfClasses) {
  TempDir dir("sample");
  manual_seed(11);
  auto cond = create_model("pixelcnn", {{"channels", 4}, {"layers", 1}, {"kernel_a", 3}, {"image_size", 4}, {"conditional", true}});
  auto plain = create_model("pixelcnn", {{"channels", 4}, {"layers", 1}, {"kernel_a", 3}, {"image_size", 4}});
  nn::save_safetensors(dir / "cond.safetensors", cond->state_dict(), {{"model", "pixelcnn"}, {"config", cond->config().dump()}});
  nn::save_safetensors(dir / "plain.safetensors", plain->state_dict(), {{"model", "pixelcnn"}, {"config", plain->config().dump()}});

  CliRun r = run({"sample", "pixelcnn", "--checkpoint", dir / "cond.safetensors", "--label", "3", "--n", "5", "--out", dir / "three.png", "--quiet"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("5 samples of class 3"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir / "three.png"));
  // no label: one row per class (20 samples -> 2 per class, a 10-row grid)
  r = run({"sample", "pixelcnn", "--checkpoint", dir / "cond.safetensors", "--n", "20", "--out", dir / "grid.png"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("2 per class"), std::string::npos) << r.out;
  const tools::GrayImage grid = tools::read_png_gray(dir / "grid.png");
  EXPECT_GT(grid.height, 4 * grid.width);  // 10 rows of 2 images

  for (const std::vector<std::string>& line : std::vector<std::vector<std::string>>{
           {"sample", "pixelcnn", "--checkpoint", dir / "cond.safetensors", "--label", "10"},   // out of range
           {"sample", "pixelcnn", "--checkpoint", dir / "plain.safetensors", "--label", "3"},   // not conditional
           {"eval", "pixelcnn", "--checkpoint", dir / "plain.safetensors", "--classify"},       // not conditional
       }) {
    SCOPED_TRACE(line[3] + " " + line.back());
    CliRun bad = run(line);
    EXPECT_EQ(bad.code, 2);
    EXPECT_EQ(count_lines(bad.err), 1) << bad.err;
  }
}

// `dgm eval --classify` on the embedded test split (997 digits, 28x28) with an untrained tiny
// conditional PixelCNN: the output's shape and its numbers' consistency, not the model's skill.
TEST(ConditionalCli, EvalClassifyPrintsAccuracyConfusionAndMarginal) {
  TempDir dir("classify");
  manual_seed(12);
  auto model = create_model("pixelcnn", {{"channels", 2}, {"layers", 0}, {"kernel_a", 3}, {"conditional", true}});
  nn::save_safetensors(dir / "m.safetensors", model->state_dict(), {{"model", "pixelcnn"}, {"config", model->config().dump()}});
  CliRun r = run({"eval", "pixelcnn", "--checkpoint", dir / "m.safetensors", "--classify", "--batch", "100", "--quiet"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("test_nll ([0-9.]+) nats/dim")));
  const double conditional = std::stod(m[1]);
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("accuracy ([0-9.]+) \\(([0-9]+) test images")));
  const double accuracy = std::stod(m[1]);
  const int64_t images = std::stoll(m[2]);
  EXPECT_GT(images, 900);  // the embedded split: 997
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("marginal_nll ([0-9.]+) nats/dim")));
  const double marginal = std::stod(m[1]);
  EXPECT_GT(conditional, 0.05);  // untrained: of the order of log 2 = 0.693 per pixel
  EXPECT_LT(conditional, 5.0);
  EXPECT_GE(accuracy, 0.0);
  EXPECT_LE(accuracy, 1.0);
  // p(x) = sum_y p(x|y) p(y) >= p(x|y_true) p(y_true): the marginal NLL is at most the conditional one + log(1/p(y))/D
  EXPECT_LT(marginal, conditional + std::log(20.0) / 784);
  // the confusion matrix: 10 rows of 10 counts summing to the images; its diagonal over them is the accuracy
  std::istringstream lines(r.out.substr(r.out.find("confusion")));
  std::string line;
  std::getline(lines, line);  // the title
  std::getline(lines, line);  // the column labels
  int64_t total = 0, diagonal = 0;
  for (int64_t t = 0; t < 10; ++t) {
    ASSERT_TRUE(std::getline(lines, line));
    std::istringstream row(line);
    int64_t label = -1;
    row >> label;
    EXPECT_EQ(label, t);
    for (int64_t y = 0; y < 10; ++y) {
      int64_t c = -1;
      row >> c;
      ASSERT_GE(c, 0);
      total += c;
      if (y == t) diagonal += c;
    }
  }
  EXPECT_EQ(total, images);
  EXPECT_NEAR(accuracy, double(diagonal) / double(images), 1e-4);
}

// A freshly built conditional model starts as the unconditional one: every label parameter (the
// ImageGPT embedding, each of PixelCNN's per-layer class biases) is zero, so training adds the class
// to a working model instead of undoing a random perturbation of every layer.
TEST(Conditional, FreshModelsStartWithEveryLabelParameterZero) {
  PixelCNN pixelcnn({.channels = 6, .layers = 3, .kernel_a = 3, .kernel_b = 3, .image_size = 5, .conditional = true});
  ImageGPT imagegpt({.embed_dim = 8, .heads = 2, .layers = 2, .image_size = 4, .conditional = true});
  for (nn::Module* m : {static_cast<nn::Module*>(&pixelcnn), static_cast<nn::Module*>(&imagegpt)}) {
    int64_t label_tensors = 0;
    for (const auto& [name, t] : m->state_dict()) {
      if (name.rfind("label", 0) != 0) continue;
      ++label_tensors;
      EXPECT_EQ(amax(abs(t)).item(), 0.0) << name;
    }
    EXPECT_EQ(label_tensors, m == &pixelcnn ? 4 : 1);
  }
}
