// A run is never lost and never overwritten without being asked: each row of the reliability
// issue's table that concerns runs, as a test with the exact outcome (exit code, message, file
// unchanged). The rows about sizes, configs, gzip bombs and checksums are in test_reliability_sizes.cpp.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <dgm/tests/testing.h>
#include <dgm/models/registry.h>
#include <dgm/nn/serialize.h>
#include <dgm/tools/cli/commands.h>
#include <dgm/train/run_folder.h>
#include <dgm/train/trainer.h>

using namespace dgm;
namespace fs = std::filesystem;

namespace {

using dgm::testing::TempDir;

using dgm::testing::CliRun;
using dgm::testing::run;

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int64_t lines_in(const std::string& path) {
  std::ifstream in(path);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

// A short template run (its checkpoint and log) in `dir`.
void make_run(const std::string& dir, const std::string& steps = "3") {
  CliRun r = run({"train", "template", "--steps", steps, "--batch", "16", "--n", "4", "--out", dir, "--quiet"});
  ASSERT_EQ(r.code, 0) << r.err;
}

// Exactly one line on stderr, naming `what`.
void expect_one_line_naming(const CliRun& r, const std::string& what) {
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(ReliabilityRuns, SampleRefusesToWriteOverItsCheckpoint) {
  TempDir dir("sample_out");
  make_run(dir.path.string());
  const std::string ck = dir / "model.safetensors", before = bytes_of(ck);
  CliRun r = run({"sample", "template", "--checkpoint", ck, "--out", ck, "--n", "4"});
  EXPECT_EQ(r.code, 2);
  expect_one_line_naming(r, "is the checkpoint itself");
  EXPECT_EQ(bytes_of(ck), before);
  // the same file spelled another way
  CliRun r2 = run({"sample", "template", "--checkpoint", dir.path.string(), "--out", (dir.path / "." / "model.safetensors").string()});
  EXPECT_EQ(r2.code, 2);
  EXPECT_EQ(bytes_of(ck), before);
}

TEST(ReliabilityRuns, TrainRefusesAFolderHoldingAnotherRunUnlessAsked) {
  TempDir dir("train_out");
  make_run(dir.path.string());
  const std::string ck = bytes_of(dir / "model.safetensors"), log = bytes_of(dir / "log.csv");
  CliRun r = run({"train", "template", "--steps", "2", "--batch", "16", "--out", dir.path.string(), "--quiet"});
  EXPECT_EQ(r.code, 1);
  expect_one_line_naming(r, "already holds a run");
  EXPECT_EQ(bytes_of(dir / "model.safetensors"), ck);
  EXPECT_EQ(bytes_of(dir / "log.csv"), log);
  // --overwrite is the explicit request
  CliRun o = run({"train", "template", "--steps", "2", "--batch", "16", "--n", "4", "--out", dir.path.string(), "--overwrite", "--quiet"});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(lines_in(dir / "log.csv"), 3);  // header + 2 steps: the new run
  // --resume continues it
  CliRun c = run({"train", "template", "--resume", dir.path.string(), "--steps", "4", "--quiet"});
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(lines_in(dir / "log.csv"), 5);
}

TEST(ReliabilityRuns, ASecondWriterIsRefusedNamingTheHolder) {
  TempDir dir("lock");
  train::RunLock held(dir.path.string());  // this process writes the folder
  CliRun r = run({"train", "template", "--steps", "2", "--batch", "16", "--out", dir.path.string(), "--quiet"});
  EXPECT_EQ(r.code, 1);
  expect_one_line_naming(r, "is being written by process " + std::to_string(getpid()));
  EXPECT_FALSE(fs::exists(dir / "log.csv"));
  EXPECT_THROW(train::RunLock(dir.path.string()), IOError);
}

TEST(ReliabilityRuns, TheLockDiesWithItsProcess) {
  TempDir dir("lock_dies");
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    train::RunLock lock(dir.path.string());
    _exit(0);  // no destructor runs: only the kernel releases the lock
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NO_THROW(train::RunLock(dir.path.string()));
}

// A child process trains; the parent sends `sig` once the log has a few rows. The child checkpoints
// and exits with 128 + sig; the checkpoint and the log agree on the step, and the run resumes.
void expect_signal_saves_the_run(int sig) {
  TempDir dir(cat("signal_", sig));
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::ostringstream out, err;
    const int code = cli::run_cli({"train", "template", "--steps", "1000000", "--batch", "16", "--threads", "1", "--out",
                                   dir.path.string(), "--quiet"},
                                  out, err);
    _exit(code);
  }
  const auto start = std::chrono::steady_clock::now();
  while (lines_in(dir / "log.csv") < 5 && std::chrono::steady_clock::now() - start < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GE(lines_in(dir / "log.csv"), 5) << "the child did not start training";
  kill(child, sig);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed instead of stopping";
  EXPECT_EQ(WEXITSTATUS(status), 128 + sig);
  const nn::SafetensorsFile ck = nn::load_safetensors(dir / "model.safetensors");
  const int64_t step = std::stoll(ck.metadata.at("step"));
  EXPECT_GE(step, 4);
  EXPECT_EQ(lines_in(dir / "log.csv"), step + 1);  // nothing is ahead of the checkpoint
  CliRun again = run({"train", "template", "--resume", dir.path.string(), "--steps", std::to_string(step + 2), "--quiet"});
  EXPECT_EQ(again.code, 0) << again.err;
}

TEST(ReliabilityRuns, SigtermSavesTheRunAndExits143) { expect_signal_saves_the_run(SIGTERM); }
TEST(ReliabilityRuns, SighupSavesTheRunAndExits129) { expect_signal_saves_the_run(SIGHUP); }
TEST(ReliabilityRuns, SigintSavesTheRunAndExits130) { expect_signal_saves_the_run(SIGINT); }

TEST(ReliabilityRuns, EvalOfNanWeightsFailsNamingTheParameter) {
  TempDir dir("nan");
  make_run(dir.path.string());
  nn::SafetensorsFile ck = nn::load_safetensors(dir / "model.safetensors");
  for (auto& [name, t] : ck.tensors)
    if (name == "logits") t = t * std::nan("");
  nn::save_safetensors(dir / "model.safetensors", ck.tensors, ck.metadata);
  CliRun r = run({"eval", "template", "--checkpoint", dir.path.string(), "--quiet"});
  EXPECT_EQ(r.code, 1);
  expect_one_line_naming(r, "parameter 'logits' holds NaN/Inf");
  EXPECT_EQ(r.out, "");
}

TEST(ReliabilityRuns, ResumeKeepsTheRunsSettingsAndRefusesAShorterBudget) {
  TempDir dir("settings");
  CliRun first = run({"train", "template", "--steps", "4", "--save-every", "2", "--batch", "16", "--n", "4", "--out", dir.path.string(), "--quiet"});
  ASSERT_EQ(first.code, 0) << first.err;
  // fewer steps than done: refused, nothing touched
  const std::string before = bytes_of(dir / "model.safetensors");
  CliRun shorter = run({"train", "template", "--resume", dir.path.string(), "--steps", "2", "--quiet"});
  EXPECT_EQ(shorter.code, 1);
  expect_one_line_naming(shorter, "has done 4 steps");
  EXPECT_EQ(bytes_of(dir / "model.safetensors"), before);
  // a different model: refused
  CliRun other = run({"train", "imagegpt", "--resume", dir.path.string(), "--quiet"});
  EXPECT_EQ(other.code, 2);
  // --save-every comes back from the run
  CliRun more = run({"train", "template", "--resume", dir.path.string(), "--steps", "8", "--quiet"});
  ASSERT_EQ(more.code, 0) << more.err;
  EXPECT_EQ(nn::load_safetensors(dir / "model.safetensors").metadata.at("save_every"), "2");
}

// The schedule comes back from the checkpoint on --resume; a schedule or warm-up in the metadata
// that no run writes is refused in one line naming the file, and the checkpoint is left alone.
TEST(ReliabilityRuns, ResumeRefusesAHostileScheduleInTheMetadata) {
  TempDir dir("hostile_schedule");
  CliRun first = run({"train", "template", "--steps", "4", "--batch", "16", "--n", "2", "--lr-schedule", "cosine", "--warmup", "2",
                      "--out", dir.path.string(), "--quiet"});
  ASSERT_EQ(first.code, 0) << first.err;
  const nn::SafetensorsFile ck = nn::load_safetensors(dir / "model.safetensors");
  EXPECT_EQ(ck.metadata.at("lr_schedule"), "cosine");
  EXPECT_EQ(ck.metadata.at("warmup"), "2");
  CliRun more = run({"train", "template", "--resume", dir.path.string(), "--steps", "6", "--quiet"});
  ASSERT_EQ(more.code, 0) << more.err;
  EXPECT_EQ(nn::load_safetensors(dir / "model.safetensors").metadata.at("lr_schedule"), "cosine");  // from the checkpoint
  const nn::SafetensorsFile good = nn::load_safetensors(dir / "model.safetensors");
  for (const auto& [key, value, says] : {std::tuple<std::string, std::string, std::string>{"lr_schedule", "linear", "unknown learning-rate schedule 'linear'"},
                                         {"warmup", "-5", "'warmup' metadata must be a non-negative integer, got '-5'"},
                                         {"warmup", "99999999999999999999", "'warmup' metadata must be a non-negative integer"}}) {
    SCOPED_TRACE(key + "=" + value);
    nn::SafetensorsFile bad = good;
    bad.metadata[key] = value;
    nn::save_safetensors(dir / "model.safetensors", bad.tensors, bad.metadata);
    const std::string before = bytes_of(dir / "model.safetensors");
    CliRun r = run({"train", "template", "--resume", dir.path.string(), "--steps", "8", "--quiet"});
    EXPECT_EQ(r.code, 1);
    expect_one_line_naming(r, says);
    EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
    EXPECT_EQ(bytes_of(dir / "model.safetensors"), before);
  }
}

TEST(ReliabilityRuns, StaleTemporariesOfDeadProcessesAreRemoved) {
  TempDir dir("stale");
  make_run(dir.path.string());
  const pid_t child = fork();  // a process that is gone by the time the run resumes
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  const std::string stale = dir / cat("model.safetensors.tmp.", child), live = dir / cat("log.csv.tmp.", getppid());  // the parent: alive
  std::ofstream(stale) << "half a checkpoint";
  std::ofstream(live) << "being written by a live process";
  CliRun r = run({"train", "template", "--resume", dir.path.string(), "--steps", "4", "--quiet"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
}

// When a checkpoint cannot be written (here: a folder stands where model.safetensors goes, so the
// rename of the finished temporary fails, as on a full disk or a read-only mount), the run stops
// there with one line naming the file: log.csv has no row for the step whose save failed, no
// samples or curves are written, and no temporary is left behind.
TEST(ReliabilityRuns, AFailedCheckpointWriteStopsTheRunBeforeAnythingMovesAhead) {
  TempDir dir("failed_write");
  fs::create_directories(dir / "model.safetensors");
  std::ofstream(dir.path / "model.safetensors" / "keep") << "not a checkpoint";
  CliRun r = run({"train", "template", "--steps", "6", "--save-every", "2", "--batch", "16", "--n", "4", "--out", dir.path.string(),
                  "--overwrite", "--quiet"});
  EXPECT_EQ(r.code, 1);
  expect_one_line_naming(r, "model.safetensors");
  EXPECT_EQ(lines_in(dir / "log.csv"), 2);  // the header and step 1: step 2's row waits for its checkpoint
  EXPECT_FALSE(fs::exists(dir / "samples.png"));
  EXPECT_FALSE(fs::exists(dir / "curves.svg"));
  for (const auto& entry : fs::directory_iterator(dir.path))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  EXPECT_TRUE(fs::exists(dir.path / "model.safetensors" / "keep"));  // what stood there is untouched
}

TEST(ReliabilityRuns, AnEmptyTestSplitIsRefusedBeforeTraining) {
  TempDir dir("empty_test");
  auto model = models::create_model("template", {{"image_size", 4}});
  Tensor images = zeros({8, 16}, {.dtype = DType::Int64});
  train::TrainOptions o;
  o.out_dir = dir.path.string();
  o.batch_size = 4;
  o.quiet = true;
  EXPECT_THROW(train::Trainer(model, train::Dataset::from_tensor(images, Tensor(), models::DataKind::Binary, 4, 4),
                              train::Dataset::from_tensor(images.narrow(0, 0, 0), Tensor(), models::DataKind::Binary, 4, 4), o),
               ValueError);
  EXPECT_FALSE(fs::exists(dir / "log.csv"));
}

TEST(ReliabilityRuns, PathHelpers) {
  TempDir dir("paths");
  EXPECT_TRUE(train::same_path(dir / "a", (dir.path / "x" / ".." / "a").string()));
  EXPECT_FALSE(train::same_path(dir / "a", dir / "b"));
  EXPECT_TRUE(train::inside(dir / "sub/file.png", dir.path.string()));
  EXPECT_FALSE(train::inside((dir.path.parent_path() / "other").string(), dir.path.string()));
}

}  // namespace

namespace {

// A config whose keys are each in range but whose product is a huge model is refused at once, from
// the sizes alone, before anything is allocated; --max-memory moves the limit.
TEST(ReliabilityRuns, AHugeModelIsRefusedBeforeAnythingIsAllocated) {
  const auto start = std::chrono::steady_clock::now();
  CliRun r = run({"train", "mlp_ar", "--hidden", "65536", "--context", "784", "--quiet"});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.code, 2);
  expect_one_line_naming(r, "asks for more than 8 GiB");
  EXPECT_NE(r.err.find("'context' = 784"), std::string::npos) << r.err;
  EXPECT_LT(seconds, 5.0);
  CliRun small = run({"train", "imagegpt", "--max-memory", "100K", "--quiet"});
  EXPECT_EQ(small.code, 2);
  expect_one_line_naming(small, "more than 100 KiB");
  CliRun bad = run({"train", "imagegpt", "--max-memory", "lots"});
  EXPECT_EQ(bad.code, 2);
  expect_one_line_naming(bad, "--max-memory: expected a size");
}

}  // namespace

namespace {

// A checkpoint whose metadata config asks for a huge model (valid JSON, valid tensors): eval,
// sample and train --resume refuse it with one line, without building anything.
TEST(ReliabilityRuns, AHostileConfigInACheckpointIsRefusedByEveryCommand) {
  TempDir dir("hostile_config");
  CliRun first = run({"train", "mlp_ar", "--steps", "1", "--batch", "16", "--hidden", "8", "--n", "2", "--out", dir.path.string(), "--quiet"});
  ASSERT_EQ(first.code, 0) << first.err;
  nn::SafetensorsFile ck = nn::load_safetensors(dir / "model.safetensors");
  nlohmann::json config = nlohmann::json::parse(ck.metadata.at("config"));
  config["hidden"] = int64_t{4611686018427387904};
  ck.metadata["config"] = config.dump();
  nn::save_safetensors(dir / "model.safetensors", ck.tensors, ck.metadata);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"eval", "mlp_ar", "--checkpoint", dir.path.string(), "--quiet"},
        std::vector<std::string>{"sample", "mlp_ar", "--checkpoint", dir.path.string(), "--n", "2", "--out", dir / "s.png"},
        std::vector<std::string>{"train", "mlp_ar", "--resume", dir.path.string(), "--steps", "2", "--quiet"}}) {
    SCOPED_TRACE(args[0]);
    CliRun r = run(args);
    EXPECT_EQ(r.code, 1);
    expect_one_line_naming(r, "'hidden' must be in 1..65536");
  }
}

}  // namespace
