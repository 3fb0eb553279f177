// The `dgm` command: argument parsing, the DataLoader, the generic trainer (files, test NLL, exact
// resume), eval/sample end to end, and bench. Everything runs in-process on tiny models and tiny
// synthetic images, so the suite takes seconds.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <dgm/tests/testing.h>
#include <dgm/data/idx.h>
#include <dgm/data/mnist.h>
#include <dgm/models/registry.h>
#include <dgm/nn/functional.h>
#include <dgm/nn/serialize.h>
#include <dgm/tools/cli/args.h>
#include <dgm/tools/cli/bench.h>
#include <dgm/tools/cli/commands.h>
#include <dgm/tools/image.h>
#include <dgm/train/data_loader.h>
#include <dgm/train/trainer.h>

using namespace dgm;
using namespace dgm::cli;
using namespace dgm::train;
namespace fs = std::filesystem;

namespace {

using dgm::testing::TempDir;

using dgm::testing::CliRun;
using dgm::testing::run;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream is(text);
  for (std::string line; std::getline(is, line);) lines.push_back(line);
  return lines;
}

bool has_model(const std::string& name) {
  for (const auto& m : models::registry())
    if (m.name == name) return true;
  return false;
}

// n synthetic grey images of rows x cols, deterministic: a bright blob whose place depends on i,
// on a background of assorted levels (so binarization at 128 matters).
data::MnistData synthetic_images(int64_t n, int64_t rows, int64_t cols, uint64_t seed) {
  data::MnistData d;
  d.source = "synthetic";
  d.n = n, d.rows = rows, d.cols = cols;
  Generator gen(seed);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = 0; p < rows * cols; ++p) {
      const bool blob = (p + i) % 3 == 0;
      d.pixels.push_back(static_cast<uint8_t>(blob ? 160 + gen.randint(0, 96) : gen.randint(0, 140)));
    }
    d.labels.push_back(static_cast<uint8_t>(i % 10));
  }
  return d;
}

// The smallest trainable models, defined here so the trainer is tested whatever models/ holds.
// Binary: independent Bernoulli pixels with logits theta (D); while training, dropout on the
// logits draws from the default generator, so an exact resume must restore that generator too.
class TinyBernoulli : public models::GenerativeModel {
 public:
  explicit TinyBernoulli(int64_t side) : GenerativeModel("TinyBernoulli"), side_(side) {
    logits = register_parameter("logits", randn({side * side}) * 0.1);
  }
  Tensor log_prob(const models::Batch& batch) override {  // x: (B, D) in {0, 1} -> (B,)
    const Tensor& x = batch.x;
    Tensor theta = nn::functional::dropout(logits, 0.1, is_training());
    Tensor xf = x.to(DType::Float32);
    return sum(xf * theta - softplus(theta), {1});
  }
  Tensor loss(const models::Batch& batch, Generator& gen) override {
    if (on_loss) on_loss();
    return GenerativeModel::loss(batch, gen);
  }
  Tensor sample(int64_t n, Generator& gen, const models::SampleOptions& = {}) override {
    Tensor p = sigmoid(logits.detach()).unsqueeze(0).expand({n, side_ * side_}).contiguous();
    return bernoulli(p, &gen).to(DType::Int64);
  }
  models::DataKind data_kind() const override { return models::DataKind::Binary; }
  int64_t height() const override { return side_; }
  int64_t width() const override { return side_; }
  nlohmann::json config() const override { return {{"side", side_}}; }

  Tensor logits;
  std::function<void()> on_loss;  // called at every training step (the interruption test uses it)

 private:
  int64_t side_;
};

// 8-bit: an independent 256-way categorical per pixel, logits (D, 256).
class TinyCategorical : public models::GenerativeModel {
 public:
  explicit TinyCategorical(int64_t side) : GenerativeModel("TinyCategorical"), side_(side) {
    logits = register_parameter("logits", zeros({side * side, 256}));
  }
  Tensor log_prob(const models::Batch& batch) override {  // x: (B, D) in 0..255 -> (B,)
    const Tensor& x = batch.x;
    const int64_t B = x.size(0), D = x.size(1);
    Tensor logp = log_softmax(logits, 1).unsqueeze(0).expand({B, D, 256});
    return sum(gather(logp, 2, x.unsqueeze(2)).squeeze(2), {1});
  }
  Tensor sample(int64_t n, Generator& gen, const models::SampleOptions& = {}) override {
    Tensor probs = softmax(logits.detach(), 1);  // (D, 256)
    Tensor s = multinomial(probs, n, true, &gen);  // (D, n)
    return s.t().contiguous();
  }
  models::DataKind data_kind() const override { return models::DataKind::Byte; }
  int64_t height() const override { return side_; }
  int64_t width() const override { return side_; }
  nlohmann::json config() const override { return {{"side", side_}}; }
  Tensor logits;

 private:
  int64_t side_;
};

// Bitwise equality of two float tensors (not ==: that would let -0 equal 0 and fail on NaN).
bool bit_identical(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.array().raw_data(), cb.array().raw_data(), static_cast<size_t>(ca.numel()) * itemsize(ca.dtype())) == 0;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A trainer on MNIST-style images, converted to the model's kind of data.
Trainer make_trainer(std::shared_ptr<models::GenerativeModel> model, const data::MnistData& train, const data::MnistData& test,
                     TrainOptions options) {
  const models::DataKind kind = model->data_kind();
  return Trainer(std::move(model), Dataset::from_mnist(train, kind), Dataset::from_mnist(test, kind), std::move(options));
}

// log.csv without its seconds column (wall-clock time differs between runs; the rest must not).
std::string without_seconds(const std::string& log) {
  std::string out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) out += line.substr(0, line.rfind(',')) + "\n";
  return out;
}

TrainOptions tiny_options(const std::string& out_dir) {
  TrainOptions o;
  o.model_name = "tiny";
  o.batch_size = 8;
  o.lr = 0.05;
  o.seed = 7;
  o.out_dir = out_dir;
  o.num_samples = 6;
  o.quiet = true;
  return o;
}

}  // namespace

// ---- argument parsing ---------------------------------------------------------------------------------

TEST(CliArgs, ParsesATrainLine) {
  CliArgs a = parse_args({"train", "imagegpt", "--steps", "10", "--batch=16", "--lr", "3e-4", "--seed", "5", "--embed-dim", "32",
                          "--heads=2", "--dropout", "0.1", "--head", "logistic_mixture", "--quiet", "--out", "runs/x",
                          "--save-every", "4", "--threads", "1"});
  EXPECT_EQ(a.command, Command::Train);
  EXPECT_EQ(a.model, "imagegpt");
  EXPECT_EQ(a.steps, 10);
  EXPECT_EQ(a.epochs, 0);
  EXPECT_EQ(a.batch, 16);
  EXPECT_DOUBLE_EQ(a.lr, 3e-4);
  EXPECT_EQ(a.seed, 5u);
  EXPECT_EQ(a.save_every, 4);
  EXPECT_EQ(a.threads, 1);
  EXPECT_TRUE(a.quiet);
  EXPECT_EQ(a.out, "runs/x");
  EXPECT_EQ(a.model_config, (nlohmann::json{{"embed_dim", 32}, {"heads", 2}, {"dropout", 0.1}, {"head", "logistic_mixture"}}));
  EXPECT_TRUE(a.has("batch"));
  EXPECT_FALSE(a.has("epochs"));
}

TEST(CliArgs, DefaultsAndOtherCommands) {
  CliArgs t = parse_args({"train", "template"});
  EXPECT_EQ(t.steps, 0);
  EXPECT_EQ(t.epochs, 0);
  EXPECT_EQ(t.batch, 32);
  EXPECT_DOUBLE_EQ(t.lr, 1e-3);
  EXPECT_TRUE(t.model_config.empty());
  CliArgs c = parse_args({"train", "template", "--lr-schedule", "cosine", "--warmup", "50"});
  EXPECT_EQ(c.lr_schedule, "cosine");
  EXPECT_EQ(c.warmup, 50);
  EXPECT_TRUE(c.model_config.empty());  // flags of the trainer, not model keys

  CliArgs s = parse_args({"sample", "imagegpt", "--checkpoint", "run", "--n", "16", "--complete", "392"});
  EXPECT_EQ(s.command, Command::Sample);
  EXPECT_EQ(s.n, 16);
  ASSERT_TRUE(s.complete.has_value());
  EXPECT_EQ(*s.complete, 392);

  CliArgs b = parse_args({"bench", "gemm_256", "gemm_512"});
  EXPECT_EQ(b.names, (std::vector<std::string>{"gemm_256", "gemm_512"}));

  EXPECT_TRUE(parse_args({"--help"}).help);
  CliArgs h = parse_args({"train", "imagegpt", "--help", "--steps", "oops"});  // --help wins
  EXPECT_TRUE(h.help);
  EXPECT_EQ(h.model, "imagegpt");
  EXPECT_EQ(parse_args({"help", "eval"}).command, Command::Eval);
  EXPECT_EQ(flag_to_config_key("--embed-dim"), "embed_dim");
}

TEST(CliArgs, BadLinesExitWithCode2AndOneLine) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate"},
      {"train"},
      {"train", "template", "--steps", "abc"},
      {"train", "template", "--steps", "-3"},
      {"train", "template", "--steps", "0"},
      {"train", "template", "--epochs", "1.5"},
      {"train", "template", "--steps", "5", "--epochs", "2"},
      {"train", "template", "--batch", "0"},
      {"train", "template", "--lr", "fast"},
      {"train", "template", "--lr", "-0.1"},
      {"train", "template", "--seed", "-1"},
      {"train", "template", "--threads", "0"},
      {"train", "template", "--steps"},
      {"train", "template", "--quiet=yes"},
      {"train", "template", "--steps", "3", "--steps", "4"},
      {"train", "template", "extra"},
      {"train", "template", "--heads", "two"},
      {"train", "template", "--save-every", "-1"},
      {"train", "template", "--lr-schedule", "linear"},
      {"train", "template", "--lr-schedule", ""},
      {"train", "template", "--warmup", "-1"},
      {"train", "template", "--warmup", "ten"},
      {"eval", "template", "--checkpoint", "x", "--lr-schedule", "cosine"},
      {"train", "template", "--out", ""},
      {"train", "template", "--complete", "3"},
      {"train", "template", "-s"},
      {"--steps", "3", "train", "template"},
      {"eval", "template"},
      {"eval", "template", "--checkpoint", "/nonexistent/dgm/model.safetensors"},
      {"eval", "template", "--checkpoint", "x", "--embed-dim", "8"},
      {"sample", "template", "--checkpoint", "x", "--n", "0"},
      {"sample", "template", "--checkpoint", "x", "--complete", "-1"},
      {"bench", "--lr", "1"},
      {"bench", "no_such_workload"},
      {"lecture01", "no_such_module"},
      {"lecture01", "a", "b"},
      {"lecture01", "--steps", "3"},
      {"train", "no_such_model", "--steps", "1"},
      {"train", "template", "--data", "/nonexistent/dgm/mnist"},
      {"train", "template", "--no-such-key", "3"},  // the model's own ValueError
  };
  for (const auto& args : bad) {
    std::string line;
    for (const auto& w : args) line += w + " ";
    SCOPED_TRACE("dgm " + line);
    if (args.size() > 2 && args[2] == "--no-such-key" && !has_model("template")) continue;
    CliRun r = run(args);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.out, "");
    const auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_EQ(lines[0].rfind("dgm: error: ", 0), 0u) << lines[0];
  }
}

TEST(CliArgs, RuntimeErrorsExitWithCode1) {
  TempDir dir("runtime_error");
  std::ofstream(dir / "model.safetensors") << "this is not a safetensors file";
  if (!has_model("template")) GTEST_SKIP() << "no 'template' model registered";
  CliRun r = run({"eval", "template", "--checkpoint", dir.path.string()});
  EXPECT_EQ(r.code, 1);
  ASSERT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_EQ(r.err.rfind("dgm: error: ", 0), 0u);
}

TEST(CliArgs, TrainingDefaults) {
  // Without --steps/--epochs and --lr, `dgm train` takes the model's defaults from the registry
  // (imagegpt trains several epochs at a higher lr; the others one epoch at 1e-3); a flag always wins.
  EXPECT_EQ(models::find_model("template").train_defaults.epochs, 1);
  EXPECT_DOUBLE_EQ(models::find_model("template").train_defaults.lr, 1e-3);
  for (const auto& m : models::registry()) {
    SCOPED_TRACE(m.name);
    EXPECT_GE(m.train_defaults.epochs, 1);
    EXPECT_GT(m.train_defaults.lr, 0);
    EXPECT_EQ(train_epochs(parse_args({"train", m.name})), m.train_defaults.epochs);
    EXPECT_EQ(train_epochs(parse_args({"train", m.name, "--epochs", "2"})), 2);
    EXPECT_EQ(train_epochs(parse_args({"train", m.name, "--steps", "300"})), 0);
    // a class-conditional run takes its own budget where the model names one; --epochs still wins
    const int64_t conditional = m.train_defaults.conditional_epochs > 0 ? m.train_defaults.conditional_epochs : m.train_defaults.epochs;
    EXPECT_EQ(train_epochs(parse_args({"train", m.name, "--conditional", "true"})), conditional);
    EXPECT_EQ(train_epochs(parse_args({"train", m.name, "--conditional", "false"})), m.train_defaults.epochs);
    EXPECT_EQ(train_epochs(parse_args({"train", m.name, "--conditional", "true", "--epochs", "2"})), 2);
    EXPECT_DOUBLE_EQ(train_lr(parse_args({"train", m.name})), m.train_defaults.lr);
    EXPECT_DOUBLE_EQ(train_lr(parse_args({"train", m.name, "--lr", "1e-3"})), 1e-3);  // the quality-bar command
  }
  if (has_model("imagegpt")) {
    const models::TrainDefaults d = models::find_model("imagegpt").train_defaults;
    EXPECT_GT(d.epochs, 1);
    CliRun r = run({"train", "imagegpt", "--help"});
    EXPECT_EQ(r.code, 0);
    const std::string budget = cat(d.epochs, " epochs at lr ", d.lr);  // imagegpt: constant lr, no warm-up
    EXPECT_NE(r.out.find("default training " + budget), std::string::npos) << r.out;  // the model's description
    EXPECT_NE(r.out.find("imagegpt " + budget), std::string::npos) << r.out;           // the defaults line of the usage
  }
  EXPECT_THROW(train_epochs(parse_args({"train", "no_such_model"})), UsageError);
}

TEST(CliArgs, HelpListsTheRegisteredModels) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--help"}, {"train", "--help"}, {"help", "sample"}}) {
    CliRun r = run(args);
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.err, "");
    for (const auto& m : models::registry()) {
      EXPECT_NE(r.out.find(m.name), std::string::npos) << m.name;
      EXPECT_NE(r.out.find(m.description), std::string::npos) << m.name;
    }
  }
  for (Command c : {Command::Bench, Command::Lecture, Command::Eval}) EXPECT_FALSE(usage(c).empty());
}

// ---- DataLoader -----------------------------------------------------------------------------------------

TEST(CliDataLoader, BinarizesAbove128AndKeepsBytes) {
  data::MnistData d;
  d.n = 2, d.rows = 1, d.cols = 4;
  d.pixels = {0, 128, 129, 255, 7, 200, 127, 128};
  DataLoader binary(Dataset::from_mnist(d, models::DataKind::Binary), {.batch_size = 2, .shuffle = false, .drop_last = false});
  Tensor x = binary.next().x;
  EXPECT_EQ(x.dtype(), DType::Int64);
  EXPECT_EQ(x.shape(), (Shape{2, 4}));
  EXPECT_EQ(x.to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 1, 1, 0, 1, 0, 0}));
  DataLoader bytes(Dataset::from_mnist(d, models::DataKind::Byte), {.batch_size = 2, .shuffle = false, .drop_last = false});
  EXPECT_EQ(bytes.next().x.to_vector<int64_t>(), (std::vector<int64_t>{0, 128, 129, 255, 7, 200, 127, 128}));
  EXPECT_EQ(bytes.all().x.shape(), (Shape{2, 4}));
}

TEST(CliDataLoader, DropLastAndShapes) {
  data::MnistData d = synthetic_images(10, 2, 3, 1);
  DataLoader dropped(Dataset::from_mnist(d, models::DataKind::Byte), {.batch_size = 3, .shuffle = true, .drop_last = true, .seed = 1});
  EXPECT_EQ(dropped.num_batches(), 3);
  DataLoader kept(Dataset::from_mnist(d, models::DataKind::Byte), {.batch_size = 3, .shuffle = false, .drop_last = false});
  EXPECT_EQ(kept.num_batches(), 4);
  std::vector<int64_t> seen;
  for (int64_t i = 0; i < kept.num_batches(); ++i) {
    Tensor x = kept.next().x;
    EXPECT_EQ(x.size(0), i < 3 ? 3 : 1);
    EXPECT_EQ(x.size(1), 6);
    for (int64_t v : x.to_vector<int64_t>()) seen.push_back(v);
  }
  // Without shuffle: every image once, in file order.
  std::vector<int64_t> expected(d.pixels.begin(), d.pixels.end());
  EXPECT_EQ(seen, expected);
  EXPECT_TRUE(kept.epoch_done());

  // With drop_last, an epoch is 3 full batches: 9 distinct images out of 10.
  std::set<int64_t> used;
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(dropped.next().size(), 3);
    for (int64_t j = 0; j < 3; ++j) used.insert(dropped.order()[i * 3 + j]);
  }
  EXPECT_EQ(used.size(), 9u);
  EXPECT_TRUE(dropped.epoch_done());
  dropped.next();
  EXPECT_EQ(dropped.epoch(), 1);

  data::MnistData tiny = synthetic_images(2, 2, 2, 1);
  DataLoader none(Dataset::from_mnist(tiny, models::DataKind::Binary), {.batch_size = 3, .shuffle = true, .drop_last = true});
  EXPECT_EQ(none.num_batches(), 0);
  EXPECT_THROW(none.next(), ValueError);
  EXPECT_THROW(DataLoader(Dataset::from_mnist(tiny, models::DataKind::Binary), {.batch_size = 0}), ValueError);
}

TEST(CliDataLoader, SeededShuffleIsReproducibleAndPerEpoch) {
  data::MnistData d = synthetic_images(50, 2, 2, 3);
  auto orders = [&](uint64_t seed) {
    DataLoader loader(Dataset::from_mnist(d, models::DataKind::Byte), {.batch_size = 5, .shuffle = true, .drop_last = true, .seed = seed});
    std::vector<std::vector<int64_t>> epochs;
    for (int e = 0; e < 3; ++e) {
      for (int64_t i = 0; i < loader.num_batches(); ++i) loader.next();
      epochs.push_back(loader.order());
    }
    return epochs;
  };
  const auto a = orders(11), b = orders(11), c = orders(12);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a[0], a[1]);  // a fresh order each epoch
  for (const auto& order : a) {
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(sorted[i], i);  // a permutation
  }
}

TEST(CliDataLoader, StateRestoresThePositionMidEpoch) {
  data::MnistData d = synthetic_images(40, 2, 2, 5);
  DataLoaderOptions o{.batch_size = 6, .shuffle = true, .drop_last = true, .seed = 9};
  DataLoader a(Dataset::from_mnist(d, models::DataKind::Byte), o);
  for (int i = 0; i < 9; ++i) a.next();  // epoch 1 (6 batches per epoch), position 3
  DataLoader b(Dataset::from_mnist(d, models::DataKind::Byte), {.batch_size = 6, .shuffle = true, .drop_last = true, .seed = 1234});
  b.set_state(nlohmann::json::parse(a.state().dump()));
  EXPECT_EQ(b.epoch(), 1);
  EXPECT_EQ(b.position(), 3);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next().x.to_vector<int64_t>(), b.next().x.to_vector<int64_t>()) << "batch " << i;
  EXPECT_THROW(b.set_state({{"epoch", 0}}), FormatError);
}

// ---- Trainer ------------------------------------------------------------------------------------------------

// The lr of step k (0-based) with a warm-up of w steps out of N: lr (k + 1) / w while k < w, then
// lr (1 + cos(pi (k - w) / (N - w))) / 2 for "cosine" and lr for "constant"; without a warm-up and
// constant, lr at every step. Read by the model at each of its loss calls.
TEST(CliTrainer, LearningRateSchedulesFollowTheirFormulas) {
  const data::MnistData train = synthetic_images(40, 4, 4, 1), test = synthetic_images(12, 4, 4, 2);
  for (const auto& [schedule, warmup] : {std::pair<std::string, int64_t>{"cosine", 3}, {"constant", 3}, {"cosine", 0}, {"constant", 0}}) {
    SCOPED_TRACE(cat(schedule, ", warm-up ", warmup));
    TempDir dir("trainer_schedule");
    manual_seed(7);
    auto model = std::make_shared<TinyBernoulli>(4);
    TrainOptions o = tiny_options(dir.path.string());
    o.steps = 10;
    o.lr_schedule = schedule;
    o.warmup = warmup;
    Trainer trainer = make_trainer(model, train, test, o);
    std::vector<double> lrs;
    model->on_loss = [&] { lrs.push_back(trainer.optimizer().lr()); };
    trainer.run();
    ASSERT_EQ(lrs.size(), 10u);
    for (int64_t k = 0; k < 10; ++k) {
      const double expected = k < warmup              ? 0.05 * double(k + 1) / double(warmup)
                              : schedule == "cosine" ? 0.05 * (1 + std::cos(M_PI * double(k - warmup) / double(10 - warmup))) / 2
                                                     : 0.05;
      EXPECT_NEAR(lrs[static_cast<size_t>(k)], expected, 1e-15) << "step " << k;
    }
  }
  TrainOptions bad = tiny_options("unused");
  bad.lr_schedule = "linear";
  EXPECT_THROW(make_trainer(std::make_shared<TinyBernoulli>(4), train, test, bad), ValueError);
  bad.lr_schedule = "cosine";
  bad.warmup = -1;
  EXPECT_THROW(make_trainer(std::make_shared<TinyBernoulli>(4), train, test, bad), ValueError);
}

TEST(CliTrainer, WritesTheFourFilesAndATestNll) {
  TempDir dir("trainer_files");
  const data::MnistData train = synthetic_images(40, 4, 4, 1), test = synthetic_images(12, 4, 4, 2);
  manual_seed(7);
  auto model = std::make_shared<TinyBernoulli>(4);
  TrainOptions o = tiny_options(dir.path.string());
  o.epochs = 2;  // 5 steps per epoch
  Trainer trainer = make_trainer(model, train, test, o);
  EXPECT_EQ(trainer.steps_per_epoch(), 5);
  EXPECT_EQ(trainer.total_steps(), 10);
  TrainResult r = trainer.run();
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps, 10);
  EXPECT_EQ(r.unit, "nats/dim");
  EXPECT_TRUE(std::isfinite(r.test_nll));
  EXPECT_GT(r.test_nll, 0);
  // The reported NLL is the model's test NLL at the end (the evaluation runs without dropout).
  DataLoader test_loader(Dataset::from_mnist(test, models::DataKind::Binary), {.batch_size = 5, .shuffle = false, .drop_last = false});
  EXPECT_NEAR(r.test_nll, test_nll_nats(*model, test_loader), 1e-9);

  for (const char* f : {kCheckpointFile, kSamplesFile, kCurvesFile, kLogFile}) EXPECT_TRUE(fs::exists(dir / f)) << f;
  tools::GrayImage png = tools::read_png_gray(dir / kSamplesFile);
  EXPECT_GT(png.width, 0);
  EXPECT_NE(read_text(dir / kCurvesFile).find("<svg"), std::string::npos);
  const auto log = lines_of(read_text(dir / kLogFile));
  ASSERT_EQ(log.size(), 11u);
  EXPECT_EQ(log[0], "step,epoch,train_loss,test_nll,seconds");
  EXPECT_EQ(log[1].rfind("1,1,", 0), 0u);
  auto field = [](const std::string& row, int k) {  // the k-th comma-separated field
    std::vector<std::string> f;
    std::string cell;
    std::istringstream in(row);
    while (std::getline(in, cell, ',')) f.push_back(cell);
    return k < static_cast<int>(f.size()) ? f[static_cast<size_t>(k)] : std::string();
  };
  EXPECT_NE(field(log[5], 3), "");  // step 5 ends epoch 1: it has a test NLL
  EXPECT_EQ(field(log[4], 3), "");  // step 4 has none
  // seconds of training: positive and non-decreasing
  double previous = 0;
  for (size_t i = 1; i < log.size(); ++i) {
    const double t = std::stod(field(log[i], 4));
    EXPECT_GE(t, previous) << log[i];
    previous = t;
  }
  EXPECT_GT(previous, 0.0);
  EXPECT_TRUE(fs::exists(dir / kTimeCurvesFile));
  EXPECT_NE(read_text(dir / kTimeCurvesFile).find("seconds of training"), std::string::npos);
  EXPECT_EQ(log[10].rfind("10,2,", 0), 0u);

  // The checkpoint: the model's tensors under their own names, plus the optimiser and trainer state.
  nn::SafetensorsFile ck = nn::load_safetensors(dir / kCheckpointFile);
  EXPECT_EQ(ck.metadata.at("model"), "tiny");
  EXPECT_EQ(ck.metadata.at("step"), "10");
  EXPECT_EQ(ck.metadata.at("unit"), "nats/dim");
  EXPECT_EQ(nlohmann::json::parse(ck.metadata.at("config")), model->config());
  nn::NamedTensors own = model_tensors(ck);
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(own[0].first, "logits");
  EXPECT_TRUE(bit_identical(own[0].second, model->logits));
}

TEST(CliTrainer, EightBitDataIsReportedInBitsPerDim) {
  TempDir dir("trainer_bits");
  const data::MnistData train = synthetic_images(16, 3, 3, 1), test = synthetic_images(8, 3, 3, 2);
  auto model = std::make_shared<TinyCategorical>(3);
  TrainOptions o = tiny_options(dir.path.string());
  o.steps = 3;
  o.lr = 0.1;
  TrainResult r = make_trainer(model, train, test, o).run();
  EXPECT_EQ(r.unit, "bits/dim");
  DataLoader test_loader(Dataset::from_mnist(test, models::DataKind::Byte), {.batch_size = 8, .shuffle = false, .drop_last = false});
  const double nats = test_nll_nats(*model, test_loader);
  EXPECT_NEAR(r.test_nll, nats / std::log(2.0), 1e-9);
  EXPECT_LT(r.test_nll, 8.0);  // better than uniform over 256 levels after 3 steps at lr 0.1
  EXPECT_DOUBLE_EQ(to_report_unit(std::log(2.0), models::DataKind::Byte), 1.0);
  EXPECT_DOUBLE_EQ(to_report_unit(0.25, models::DataKind::Binary), 0.25);
}

// Training 2N steps in one go equals N steps, a checkpoint, a new process-like restart and N more:
// the same parameters and Adam state, bit for bit, and the same train losses. With a constant lr and
// with a cosine schedule after a warm-up (the lr of a step depends on the step and the total only).
TEST(CliTrainer, ResumeEqualsAnUninterruptedRun) {
  const data::MnistData train = synthetic_images(40, 4, 4, 1), test = synthetic_images(12, 4, 4, 2);
  const int64_t total = 13;  // 5 steps per epoch: the runs cross two epoch boundaries
  for (const auto& [schedule, warmup] : {std::pair<std::string, int64_t>{"constant", 0}, {"cosine", 4}}) {
    auto options = [&, schedule = schedule, warmup = warmup](const std::string& out) {
      TrainOptions o = tiny_options(out);
      o.lr_schedule = schedule;
      o.warmup = warmup;
      return o;
    };
    TempDir full_dir("resume_full");
    manual_seed(7);
    auto full = std::make_shared<TinyBernoulli>(4);
    TrainOptions o = options(full_dir.path.string());
    o.steps = total;
    Trainer full_trainer = make_trainer(full, train, test, o);
    full_trainer.run();

    for (int64_t stop_at : {int64_t{3}, int64_t{5}, int64_t{7}}) {
      SCOPED_TRACE(cat(schedule, ", stopped at step ", stop_at));
      TempDir dir(cat("resume_part_", stop_at));
      // The first part: a run that is told to stop (as by Ctrl-C) after `stop_at` steps.
      std::atomic<bool> stop{false};
      manual_seed(7);
      auto first = std::make_shared<TinyBernoulli>(4);
      int64_t calls = 0;
      first->on_loss = [&] {
        if (++calls == stop_at) stop = true;
      };
      TrainOptions o1 = options(dir.path.string());
      o1.steps = total;
      o1.stop = &stop;
      TrainResult part = make_trainer(first, train, test, o1).run();
      EXPECT_TRUE(part.interrupted);
      EXPECT_EQ(part.steps, stop_at);

      // The second part: a new model with other initial values and a scrambled default generator.
      manual_seed(999);
      auto second = std::make_shared<TinyBernoulli>(4);
      randn({17});
      TrainOptions o2 = options(dir.path.string());  // no steps: the checkpoint's total
      Trainer resumed = make_trainer(second, train, test, o2);
      resumed.resume(dir.path.string());
      EXPECT_EQ(resumed.step(), stop_at);
      EXPECT_EQ(resumed.total_steps(), total);
      TrainResult r = resumed.run();
      EXPECT_EQ(r.steps, total);

      EXPECT_TRUE(bit_identical(second->logits, full->logits));
      const nn::NamedTensors sa = resumed.optimizer().state_dict(), sb = full_trainer.optimizer().state_dict();
      ASSERT_EQ(sa.size(), sb.size());
      for (size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(bit_identical(sa[i].second, sb[i].second)) << sa[i].first;
      // The log matches row for row (the interrupted part evaluated nothing extra).
      EXPECT_EQ(without_seconds(read_text(dir / kLogFile)), without_seconds(read_text(full_dir / kLogFile)));
    }
  }
}

TEST(CliTrainer, ResumeFromAShorterFinishedRunAndFromSaveEvery) {
  const data::MnistData train = synthetic_images(40, 4, 4, 1), test = synthetic_images(12, 4, 4, 2);
  TempDir full_dir("resume2_full"), dir("resume2_part");
  manual_seed(7);
  auto full = std::make_shared<TinyBernoulli>(4);
  TrainOptions o = tiny_options(full_dir.path.string());
  o.steps = 12;
  make_trainer(full, train, test, o).run();

  manual_seed(7);
  auto first = std::make_shared<TinyBernoulli>(4);
  TrainOptions o1 = tiny_options(dir.path.string());
  o1.steps = 6;
  make_trainer(first, train, test, o1).run();  // a finished 6-step run (it evaluated at step 6)

  auto second = std::make_shared<TinyBernoulli>(4);
  TrainOptions o2 = tiny_options(dir.path.string());
  o2.steps = 12;  // a new total
  Trainer resumed = make_trainer(second, train, test, o2);
  resumed.resume(dir / kCheckpointFile);
  resumed.run();
  EXPECT_TRUE(bit_identical(second->logits, full->logits));

  // --save-every 3: while step 5 runs (before the epoch-end checkpoint), the file on disk is step 3's.
  TempDir every_dir("resume2_every");
  auto saving = std::make_shared<TinyBernoulli>(4);
  std::string step_on_disk;
  int64_t calls = 0;
  saving->on_loss = [&] {
    if (++calls == 5) step_on_disk = nn::load_safetensors(every_dir / kCheckpointFile).metadata.at("step");
  };
  TrainOptions o3 = tiny_options(every_dir.path.string());
  o3.steps = 6;
  o3.save_every = 3;
  make_trainer(saving, train, test, o3).run();
  EXPECT_EQ(step_on_disk, "3");
  EXPECT_EQ(nn::load_safetensors(every_dir / kCheckpointFile).metadata.at("step"), "6");

  // A checkpoint of other settings is refused.
  TrainOptions other = tiny_options(dir.path.string());
  other.batch_size = 4;
  Trainer mismatched = make_trainer(std::make_shared<TinyBernoulli>(4), train, test, other);
  EXPECT_THROW(mismatched.resume(dir.path.string()), ValueError);
  EXPECT_THROW(mismatched.resume(dir / "missing.safetensors"), IOError);
}

TEST(CliTrainer, RejectsImagesOfTheWrongSizeAndOversizedBatches) {
  TempDir dir("trainer_bad");
  const data::MnistData train = synthetic_images(10, 4, 4, 1), test = synthetic_images(4, 4, 4, 2);
  TrainOptions o = tiny_options(dir.path.string());
  EXPECT_THROW(make_trainer(std::make_shared<TinyBernoulli>(3), train, test, o), ValueError);
  o.batch_size = 11;
  EXPECT_THROW(make_trainer(std::make_shared<TinyBernoulli>(4), train, test, o), ValueError);
}

// ---- the commands end to end (registered model, embedded data) --------------------------------------------

TEST(CliCommand, TrainEvalSampleAndResume) {
  if (!has_model("template")) GTEST_SKIP() << "no 'template' model registered";
  TempDir dir("command");
  const std::string run_dir = dir / "run";
  CliRun train = run({"train", "template", "--steps", "3", "--batch", "16", "--lr", "0.05", "--n", "4", "--out", run_dir, "--quiet"});
  ASSERT_EQ(train.code, 0) << train.err;
  EXPECT_EQ(train.err, "");
  const std::regex nll_line(R"(test_nll [0-9]+\.[0-9]+ nats/dim)");
  const auto out_lines = lines_of(train.out);
  ASSERT_EQ(out_lines.size(), 1u) << train.out;
  EXPECT_TRUE(std::regex_match(out_lines[0], nll_line)) << out_lines[0];
  for (const char* f : {kCheckpointFile, kSamplesFile, kCurvesFile, kLogFile}) EXPECT_TRUE(fs::exists(fs::path(run_dir) / f)) << f;

  CliRun eval = run({"eval", "template", "--checkpoint", run_dir, "--quiet"});
  ASSERT_EQ(eval.code, 0) << eval.err;
  EXPECT_EQ(eval.out, train.out);  // the same number: the same model on the same test split

  const std::string png = dir / "s.png";
  CliRun sample = run({"sample", "template", "--checkpoint", run_dir + "/model.safetensors", "--n", "5", "--out", png});
  ASSERT_EQ(sample.code, 0) << sample.err;
  EXPECT_TRUE(fs::exists(png));

  CliRun resume = run({"train", "template", "--resume", run_dir, "--steps", "5", "--quiet"});
  ASSERT_EQ(resume.code, 0) << resume.err;
  EXPECT_TRUE(std::regex_match(lines_of(resume.out).at(0), nll_line));
  EXPECT_EQ(lines_of(read_text(fs::path(run_dir) / kLogFile)).size(), 6u);  // header + 5 steps

  // A checkpoint used with the wrong model, or resumed with another batch size: usage errors.
  EXPECT_EQ(run({"train", "template", "--resume", run_dir, "--batch", "8"}).code, 2);
  if (has_model("imagegpt")) {
    EXPECT_EQ(run({"eval", "imagegpt", "--checkpoint", run_dir}).code, 2);
  }
  // A model without autocompletion fails at run time, on one line.
  CliRun complete = run({"sample", "template", "--checkpoint", run_dir, "--n", "2", "--complete", "10", "--out", png});
  if (complete.code != 0) {
    EXPECT_EQ(complete.code, 1);
    EXPECT_EQ(lines_of(complete.err).size(), 1u) << complete.err;
  }
}

// The homework's RealNVP: MNIST resized to 32x32 (as PIL's bilinear Resize) and binarized; the
// run, its evaluation and its samples all see 32x32 images.
TEST(CliCommand, BinarizedThirtyTwoPixelRealNVP) {
  if (!has_model("realnvp")) GTEST_SKIP() << "no 'realnvp' model registered";
  TempDir dir("command_binary32");
  // 64 train and 16 test digits of the embedded set as an MNIST folder: the path is the same as with
  // all 10,000, and evaluating 997 test images twice made this the suite's slowest test.
  const std::string data_dir = dir / "data";
  std::filesystem::create_directories(data_dir);
  for (auto [split, count] : {std::pair{data::Split::Train, int64_t{64}}, std::pair{data::Split::Test, int64_t{16}}}) {
    const data::MnistData d = data::load_mnist("", split);
    const std::string name = data_dir + "/" + data::split_name(split);
    data::write_idx_images(name + "-images-idx3-ubyte", {count, d.rows, d.cols, {d.pixels.begin(), d.pixels.begin() + count * d.rows * d.cols}});
    data::write_idx_labels(name + "-labels-idx1-ubyte", {d.labels.begin(), d.labels.begin() + count});
  }
  const std::string run_dir = dir / "run";
  CliRun train = run({"train", "realnvp", "--data", data_dir, "--binary", "true", "--image-size", "32", "--filters", "4", "--checkerboard", "1",
                      "--channel", "1", "--steps", "2", "--n", "4", "--out", run_dir, "--quiet"});
  ASSERT_EQ(train.code, 0) << train.err;
  ASSERT_EQ(lines_of(train.out).size(), 1u) << train.out;
  EXPECT_TRUE(std::regex_match(lines_of(train.out)[0], std::regex(R"(test_nll [0-9]+\.[0-9]+ nats/dim)"))) << train.out;
  CliRun eval = run({"eval", "realnvp", "--checkpoint", run_dir, "--quiet"});
  ASSERT_EQ(eval.code, 0) << eval.err;
  EXPECT_EQ(eval.out, train.out);
  const std::string png = dir / "s.png";
  CliRun sample = run({"sample", "realnvp", "--checkpoint", run_dir, "--n", "4", "--out", png});
  ASSERT_EQ(sample.code, 0) << sample.err;
  const tools::GrayImage grid = tools::read_png_gray(png), expected = tools::make_image_grid(std::vector<uint8_t>(4 * 1024), 4, 32, 32, 0, 2, 2, 1);
  EXPECT_EQ(grid.width, expected.width);  // four 32x32 cells
  EXPECT_EQ(grid.height, expected.height);
  std::set<int> levels(grid.pixels.begin(), grid.pixels.end());
  std::set<int> border(expected.pixels.begin(), expected.pixels.end());  // all-zero cells: black and the border
  for (int v : {0, 255}) border.insert(v);
  EXPECT_LE(levels.size(), border.size());  // binary pixels: black, white and the border's grey only
  for (int v : levels) EXPECT_TRUE(border.count(v)) << v;
}

// ---- bench ----------------------------------------------------------------------------------------------------

TEST(CliBench, PrintsNameValueUnitAndRejectsUnknownNames) {
  std::ostringstream out;
  run_bench({"gemm_256", "gemm_512"}, out);
  std::smatch m;
  const std::string text = out.str();
  ASSERT_TRUE(std::regex_match(text, m, std::regex(R"(gemm_256 ([0-9]+\.[0-9]) GFLOP/s # ([0-9]+)% of peak\n)"
                                                   R"(gemm_512 ([0-9]+\.[0-9]) GFLOP/s # ([0-9]+)% of peak\n)"
                                                   R"(peak_f32_fma ([0-9]+\.[0-9]) GFLOP/s # [0-9]+ threads, (AVX-512|AVX2\+FMA|portable) GEMM kernel; )"
                                                   R"(L1d [0-9]+ [KM]iB, L2 [0-9]+ [KM]iB, L3 [0-9]+ [KM]iB \(one for all CPUs: (yes|not reported)\)\n)")))
      << text;
  // Each share is against the best peak read before it, never above the run's best printed last:
  // share >= 100 * GFLOP/s / final peak (to the printed rounding).
  const double final_peak = std::stod(m[5]);
  for (int i : {1, 3}) EXPECT_GE(std::stod(m[i + 1]) + 0.5, 100 * std::stod(m[i]) / final_peak - 0.06) << text;
  EXPECT_THROW(run_bench({"gemm_256", "gemm_7"}, out), UsageError);
  CliRun r = run({"bench", "gemm_7"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("gemm_1024"), std::string::npos);  // the message lists the known names
  EXPECT_EQ(bench_names().size(), 9u);  // ... and realnvp_step_B32 (lecture 2)

  int calls = 0;
  EXPECT_GE(median_seconds([&] { ++calls; }, 2, 5), 0.0);
  EXPECT_EQ(calls, 7);
}
