// The architecture's promises, checked: the layering holds by include (no file includes from a
// layer above its own); the model contract carries a model with two optimisers and a custom step,
// continuous data with a stochastic loss, and class labels, through the library trainer; a
// lecture registered by a test runs through `dgm lecture N`; `dgm lecture 1` is `dgm lecture01`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <dgm/tests/testing.h>
#include <dgm/lectures/common/chapter.h>
#include <dgm/lectures/common/lecture.h>
#include <dgm/models/model.h>
#include <dgm/nn/attention.h>
#include <dgm/nn/layers.h>
#include <dgm/nn/serialize.h>
#include <dgm/tools/cli/commands.h>
#include <dgm/train/trainer.h>

using namespace dgm;
namespace fs = std::filesystem;

namespace {

using dgm::testing::TempDir;

// ---- layering by include -------------------------------------------------------------------------

// The layer a repository file belongs to, by its folder ("" for files outside the layers).
std::string layer_of(const std::string& rel) {
  if (rel.rfind("tools/cli/", 0) == 0 || rel == "tools/dgm_main.cpp") return "cli";
  for (const char* l : {"tensor", "autograd", "nn", "models", "train", "lectures", "tools", "data"})
    if (rel.rfind(std::string(l) + "/", 0) == 0) return l;
  return "";
}

// What each layer may include (itself included): dependencies point one way,
// tensor <- autograd <- nn <- models <- train <- lectures <- cli, with tools (tensor) and data
// (tools) beside them, first used by train.
const std::map<std::string, std::set<std::string>>& allowed() {
  static const std::map<std::string, std::set<std::string>> m = {
      {"tensor", {"tensor"}},
      {"autograd", {"tensor", "autograd"}},
      {"nn", {"tensor", "autograd", "nn"}},
      {"tools", {"tensor", "tools"}},
      {"data", {"tensor", "tools", "data"}},
      {"models", {"tensor", "autograd", "nn", "models"}},
      {"train", {"tensor", "autograd", "nn", "models", "tools", "data", "train"}},
      {"lectures", {"tensor", "autograd", "nn", "models", "tools", "data", "train", "lectures"}},
      {"cli", {"tensor", "autograd", "nn", "models", "tools", "data", "train", "lectures", "cli"}},
  };
  return m;
}

TEST(Architecture, NoFileIncludesFromALayerAboveItsOwn) {
  const fs::path root = DGM_SOURCE_DIR;
  const std::regex include_line(R"(^\s*#\s*include\s*<dgm/([^>]+)>)");
  // dgm's own headers only under the prefix: "nn/layers.h" could be a homework's nn/ folder.
  const std::regex unprefixed(R"(^\s*#\s*include\s*["<](tensor|autograd|nn|models|train|lectures|tools|data|tests|bench)/)");
  int64_t files = 0, includes = 0;
  std::vector<std::string> violations;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    const std::string ext = entry.path().extension().string();
    if (ext != ".h" && ext != ".cpp") continue;
    const std::string rel = fs::relative(entry.path(), root).generic_string();
    const std::string layer = layer_of(rel);
    if (layer.empty()) continue;  // tests, bench, build folders
    ++files;
    std::ifstream in(entry.path());
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (std::regex_search(line, m, unprefixed)) violations.push_back(rel + " includes " + line + " without the <dgm/...> prefix");
      if (!std::regex_search(line, m, include_line)) continue;
      const std::string target = layer_of(m[1].str());
      if (target.empty()) continue;  // a header beside the file, or a system one
      ++includes;
      if (!allowed().at(layer).count(target)) violations.push_back(rel + " (" + layer + ") includes " + m[1].str() + " (" + target + ")");
    }
  }
  EXPECT_GT(files, 100);
  EXPECT_GT(includes, 200);
  for (const std::string& v : violations) ADD_FAILURE() << v;
}

// No machine-specific absolute path in the sources or docs (a student's clone lives anywhere): the
// peers are named relative to the repository (../shared/peers/), data relative to the package.
TEST(Architecture, NoAbsoluteMachinePathsInTheRepository) {
  const fs::path root = DGM_SOURCE_DIR;
  // spelled in pieces, so that this file does not match itself
  const std::vector<std::string> prefixes = {std::string("/") + "work/", std::string("/") + "home/", std::string("/") + "Users/",
                                             std::string("/") + "root/", std::string("/") + "tmp/bash_jobs"};
  const std::set<std::string> text = {".h", ".cpp", ".md", ".txt", ".cmake", ".sh", ".py", ".json", ".in"};
  int64_t files = 0;
  std::vector<std::string> found;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const std::string name = it->path().filename().string();
    if (it->is_directory()) {
      if (name.rfind("build", 0) == 0 || name == "runs" || (!name.empty() && name[0] == '.' && name != ".ci")) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file() || (!text.count(it->path().extension().string()) && name != "CMakeLists.txt" && name != "run")) continue;
    ++files;
    std::ifstream in(it->path());
    int64_t line_no = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_no;
      for (const std::string& p : prefixes)
        if (line.find(p) != std::string::npos)
          found.push_back(fs::relative(it->path(), root).generic_string() + ":" + std::to_string(line_no) + ": " + line);
    }
  }
  EXPECT_GT(files, 150);
  for (const std::string& f : found) ADD_FAILURE() << f;
}

// The check itself catches what it must: a layer including from above is flagged.
TEST(Architecture, TheLayerTableRefusesUpwardIncludes) {
  EXPECT_EQ(layer_of("nn/layers.h"), "nn");
  EXPECT_EQ(layer_of("tools/cli/args.cpp"), "cli");
  EXPECT_EQ(layer_of("tools/plot.h"), "tools");
  EXPECT_FALSE(allowed().at("nn").count("models"));
  EXPECT_FALSE(allowed().at("models").count("train"));
  EXPECT_FALSE(allowed().at("tensor").count("autograd"));
  EXPECT_FALSE(allowed().at("train").count("lectures"));
  EXPECT_FALSE(allowed().at("lectures").count("cli"));
  EXPECT_FALSE(allowed().at("tools").count("data"));
}

// ---- the model contract through the library trainer ----------------------------------------------

// A GAN-shaped model on 2-D continuous data: a "generator" g(z) = a z + b and a "critic"
// c(x) = w . x, trained with two optimisers in a custom step (critic first, then generator), no
// likelihood (Objective::None: the evaluator reports its loss). Small enough to check by hand.
class TwoPlayer : public models::GenerativeModel {
 public:
  TwoPlayer() : GenerativeModel("TwoPlayer") {
    a = register_parameter("a", ones({2}));
    b = register_parameter("b", zeros({2}));
    w = register_parameter("w", full({2}, 0.1));
  }
  // The critic's loss: -(mean c(x_real) - mean c(g(z))), with z ~ N(0, I) from gen.
  Tensor loss(const models::Batch& batch, Generator& gen) override {
    Tensor z = randn({batch.size(), 2}, {}, &gen);
    Tensor fake = z * a + b;
    return -(mean(matmul(batch.x, w)) - mean(matmul(fake, w)));
  }
  models::Objective objective() const override { return models::Objective::None; }
  std::vector<models::OptimizerGroup> optimizer_groups() override { return {{"critic", {w}, 1.0}, {"generator", {a, b}, 0.5}}; }
  double train_step(const models::Batch& batch, Generator& gen, const std::vector<nn::Optimizer*>& optimizers) override {
    ++steps;
    // critic: maximise the gap
    optimizers[0]->zero_grad();
    Tensor critic_loss = loss(batch, gen);
    critic_loss.backward();
    optimizers[0]->step();
    // generator: minimise -mean c(g(z))
    optimizers[1]->zero_grad();
    Tensor z = randn({batch.size(), 2}, {}, &gen);
    Tensor gen_loss = -mean(matmul(z * a + b, w));
    gen_loss.backward();
    optimizers[1]->step();
    return critic_loss.item();
  }
  Tensor sample(int64_t n, Generator& gen, const models::SampleOptions& = {}) override {
    return (randn({n, 2}, {}, &gen) * a + b).detach();
  }
  models::DataKind data_kind() const override { return models::DataKind::Continuous; }
  int64_t height() const override { return 1; }
  int64_t width() const override { return 2; }
  nlohmann::json config() const override { return nlohmann::json::object(); }

  Tensor a, b, w;
  int64_t steps = 0;
};

TEST(Architecture, ACustomStepModelWithTwoOptimisersTrainsInTheLibraryTrainer) {
  TempDir dir("two_player");
  manual_seed(3);
  Tensor real = randn({64, 2}) * 0.5 + 2.0;  // the data: N((2, 2), 0.25 I)
  auto model = std::make_shared<TwoPlayer>();
  const Tensor a0 = model->a.detach().clone(), w0 = model->w.detach().clone();
  train::TrainOptions o;
  o.model_name = "two_player";
  o.steps = 6;
  o.batch_size = 16;
  o.lr = 0.05;
  o.out_dir = dir.path.string();
  o.num_samples = 50;
  o.quiet = true;
  train::Trainer trainer(model, train::Dataset::from_tensor(real), train::Dataset::from_tensor(real.narrow(0, 0, 16)), o);
  ASSERT_EQ(trainer.num_optimizers(), 2u);
  EXPECT_DOUBLE_EQ(trainer.optimizer(1).options.lr, 0.025);  // the run's lr times the group's scale
  train::TrainResult r = trainer.run();
  EXPECT_EQ(model->steps, 6);
  EXPECT_EQ(r.label, "test_loss");
  EXPECT_EQ(r.unit, "nats/dim");
  EXPECT_TRUE(std::isfinite(r.test_nll));
  // both players moved
  EXPECT_GT(amax(abs(model->w.detach() - w0)).item(), 0.0);
  EXPECT_GT(amax(abs(model->a.detach() - a0)).item(), 0.0);
  // the checkpoint keeps each optimiser's state under its group's name, and a 2-D run plots samples
  nn::SafetensorsFile ck = nn::load_safetensors(dir / train::kCheckpointFile);
  std::set<std::string> names;
  for (const auto& [name, t] : ck.tensors) names.insert(name);
  EXPECT_TRUE(names.count("optimizer.critic.0.exp_avg"));
  EXPECT_TRUE(names.count("optimizer.generator.1.exp_avg"));
  EXPECT_TRUE(fs::exists(dir / train::kSamplesPlotFile));
  EXPECT_TRUE(fs::exists(dir / train::kTimeCurvesFile));

  // resume to 10 steps from the checkpoint = 10 steps in one go, bit for bit
  TempDir full_dir("two_player_full");
  manual_seed(3);
  Tensor real2 = randn({64, 2}) * 0.5 + 2.0;
  auto full = std::make_shared<TwoPlayer>();
  train::TrainOptions of = o;
  of.steps = 10;
  of.out_dir = full_dir.path.string();
  train::Trainer(full, train::Dataset::from_tensor(real2), train::Dataset::from_tensor(real2.narrow(0, 0, 16)), of).run();
  auto resumed = std::make_shared<TwoPlayer>();
  train::TrainOptions orr = o;
  orr.steps = 10;
  train::Trainer again(resumed, train::Dataset::from_tensor(real), train::Dataset::from_tensor(real.narrow(0, 0, 16)), orr);
  again.resume(dir.path.string());
  again.run();
  EXPECT_EQ(resumed->a.to_vector<float>(), full->a.to_vector<float>());
  EXPECT_EQ(resumed->w.to_vector<float>(), full->w.to_vector<float>());
}

// Continuous data with a stochastic loss (a flow-like model: dequantisation-style noise drawn from
// the generator the trainer passes), and class labels reaching a conditional model.
class NoisyGaussian : public models::GenerativeModel {
 public:
  explicit NoisyGaussian(int64_t classes) : GenerativeModel("NoisyGaussian"), classes_(classes) {
    mu = register_parameter("mu", zeros({std::max<int64_t>(classes, 1), 2}));
  }
  // log N(x | mu_y, I) per example
  Tensor log_prob(const models::Batch& batch) override {
    models::check_labels(*this, batch, "log_prob");
    Tensor m = classes_ > 0 ? index_select(mu, 0, batch.y) : expand(mu, {batch.size(), 2});
    Tensor d = batch.x - m;
    return -0.5 * sum(d * d, {1}) - std::log(2 * M_PI);
  }
  // the NLL of x + u, u ~ U(0, 0.01) drawn from gen
  Tensor loss(const models::Batch& batch, Generator& gen) override {
    ++losses;
    labels_seen += batch.has_labels();
    Tensor noisy = batch.x + rand(batch.x.shape(), {}, &gen) * 0.01;
    return -mean(log_prob(models::Batch(noisy, batch.y))) / 2.0;
  }
  Tensor sample(int64_t n, Generator& gen, const models::SampleOptions& options = {}) override {
    Tensor m = options.labels.defined() ? index_select(mu, 0, options.labels) : expand(select(mu, 0, 0).unsqueeze(0), {n, 2});
    return (m + randn({n, 2}, {}, &gen) * options.temperature).detach();
  }
  models::DataKind data_kind() const override { return models::DataKind::Continuous; }
  int64_t height() const override { return 1; }
  int64_t width() const override { return 2; }
  int64_t num_classes() const override { return classes_; }
  nlohmann::json config() const override { return {{"classes", classes_}}; }
  Tensor mu;
  int64_t losses = 0, labels_seen = 0;

 private:
  int64_t classes_;
};

TEST(Architecture, ContinuousLabelledDataAndStochasticLossesThroughTheTrainer) {
  TempDir dir("noisy");
  manual_seed(4);
  // two classes at (3, 0) and (-3, 0)
  std::vector<int64_t> labels(80);
  for (int64_t i = 0; i < 80; ++i) labels[static_cast<size_t>(i)] = i % 2;
  Tensor y = from_vector(labels, {80});
  Tensor centres = tensor({{3.0f, 0.0f}, {-3.0f, 0.0f}});
  Tensor x = index_select(centres, 0, y) + randn({80, 2}) * 0.3;
  auto model = std::make_shared<NoisyGaussian>(2);
  train::TrainOptions o;
  o.steps = 60;
  o.batch_size = 16;
  o.lr = 0.1;
  o.out_dir = dir.path.string();
  o.num_samples = 10;
  o.quiet = true;
  train::TrainResult r = train::Trainer(model, train::Dataset::from_tensor(x, y), train::Dataset::from_tensor(x, y), o).run();
  EXPECT_EQ(model->losses, 60);
  EXPECT_EQ(model->labels_seen, 60);
  EXPECT_EQ(r.label, "test_nll");
  // each class mean found its centre
  const std::vector<float> mu = model->mu.to_vector<float>();
  EXPECT_NEAR(mu[0], 3.0, 0.4);
  EXPECT_NEAR(mu[2], -3.0, 0.4);
  // a conditional model without labels in its data is refused before training
  EXPECT_THROW(train::Trainer(model, train::Dataset::from_tensor(x), train::Dataset::from_tensor(x), o), ValueError);
  // data of another kind is refused
  EXPECT_THROW(train::Trainer(model, train::Dataset::from_tensor(x.to(DType::Int64).abs(), y, models::DataKind::Byte),
                              train::Dataset::from_tensor(x, y), o),
               ValueError);
}

// ---- lectures are a registry ---------------------------------------------------------------------

// Runs the dgm command in-process, capturing what the lecture prints on std::cout.
struct Captured {
  int code;
  std::string out, err;
};
Captured run_capturing(const std::vector<std::string>& args) {
  std::ostringstream out, err, console;
  std::streambuf* old = std::cout.rdbuf(console.rdbuf());
  int code = 0;
  try {
    code = cli::run_cli(args, out, err);
  } catch (...) {
    std::cout.rdbuf(old);
    throw;
  }
  std::cout.rdbuf(old);
  return {code, console.str() + out.str(), err.str()};
}

TEST(Architecture, ALectureRegisteredByATestRunsThroughDgmLecture) {
  int calls = 0;
  lectures::register_lecture({42,
                              "A lecture of the test's own",
                              {{{"first", "The first module"},
                                [&](lectures::Chapter& ch) {
                                  ++calls;
                                  ch.section("A claim", "1 + 1 = 2", "1 + 1 = 2");
                                  ch.table({{"what", "value"}, {{"1 + 1", "2"}}});
                                }},
                               {{"second", "The second module"}, [&](lectures::Chapter&) { ++calls; }}}});
  ASSERT_NE(lectures::find_lecture(42), nullptr);
  ASSERT_NE(lectures::find_lecture(1), nullptr);  // the lecture folders are registered too
  TempDir dir("lecture42");
  Captured one = run_capturing({"lecture", "42", "first", "--out", dir.path.string()});
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_EQ(calls, 1);
  EXPECT_NE(one.out.find("=== The first module (first) ==="), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("1 + 1"), std::string::npos);
  std::ifstream in(dir / "report.md");
  std::stringstream report;
  report << in.rdbuf();
  EXPECT_NE(report.str().find("# Lecture 42"), std::string::npos);
  EXPECT_NE(report.str().find("`dgm lecture 42 first`"), std::string::npos);
  Captured both = run_capturing({"lecture", "42", "--out", dir.path.string(), "--quiet"});
  ASSERT_EQ(both.code, 0) << both.err;
  EXPECT_EQ(calls, 3);
  // a wrong module or lecture is a usage error naming what exists
  Captured bad = run_capturing({"lecture", "42", "third"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("unknown module 'third'"), std::string::npos) << bad.err;
  Captured none = run_capturing({"lecture", "77"});
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("no lecture 77"), std::string::npos) << none.err;
  Captured word = run_capturing({"lecture", "two"});
  EXPECT_EQ(word.code, 2);
  // a lecture without modules, or with two of one name, is refused
  EXPECT_THROW(lectures::register_lecture({43, "empty", {}}), ValueError);
  EXPECT_THROW(lectures::register_lecture({44, "twice", {{{"m", "M"}, [](lectures::Chapter&) {}}, {{"m", "M"}, [](lectures::Chapter&) {}}}}),
               ValueError);
}

// Everything but the timings ("(divergences took 1.2 s)", "Wrote ... (3.4 s in all)").
std::string without_timings(const std::string& text) {
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.find(" took ") == std::string::npos && line.find(" in all)") == std::string::npos) out += line + "\n";
  return out;
}

TEST(Architecture, DgmLecture1PrintsWhatDgmLecture01Printed) {
  TempDir dir("lecture1_alias");
  Captured old_name = run_capturing({"lecture01", "divergences", "--out", dir.path.string()});
  ASSERT_EQ(old_name.code, 0) << old_name.err;
  Captured new_name = run_capturing({"lecture", "1", "divergences", "--out", dir.path.string()});
  ASSERT_EQ(new_name.code, 0) << new_name.err;
  EXPECT_GT(old_name.out.size(), 500u);
  EXPECT_EQ(without_timings(new_name.out), without_timings(old_name.out));
}

// ---- layers own their fusion ---------------------------------------------------------------------

TEST(Architecture, LinearOwnsItsActivationAndTheModuleTreeIsWhatRuns) {
  manual_seed(5);
  nn::Linear fused(4, 3, {.activation = nn::LinearActivation::ReLU});
  Tensor x = randn({6, 4});
  Tensor expected = relu(matmul(x, fused.weight.t()) + fused.bias);
  EXPECT_LT(amax(abs(fused.forward(x) - expected)).item(), 1e-6);
  EXPECT_NE(fused.extra_repr().find("activation=relu"), std::string::npos);
  // The transformer block's MLP is its module tree: running mlp->forward is what the block runs.
  nn::TransformerBlock block(8, 2);
  Tensor h = randn({2, 5, 8});
  Tensor by_tree = h + block.attn->forward(block.ln1->forward(h));
  by_tree = by_tree + block.mlp->forward(block.ln2->forward(by_tree));
  EXPECT_LT(amax(abs(block.forward(h) - by_tree)).item(), 1e-6);
  std::vector<std::string> names;
  for (const auto& [name, t] : block.named_parameters()) names.push_back(name);
  EXPECT_NE(std::find(names.begin(), names.end(), "mlp.0.weight"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "mlp.2.weight"), names.end());
}

}  // namespace
