// The generic trainer — behind `dgm train`, and usable from lecture programs and homework code
// (find_package(dgm), target dgm::train): any models::GenerativeModel, Adam, batches of a Dataset.
//
//   for each step:   lr of the step (TrainOptions::lr_schedule, warmup) into every optimiser;
//                    batch = next (x (B, D), labels y);  model.train_step(batch, gen, optimisers)
//                    (by default: loss = model.loss(batch, gen), the mean NLL per dim in nats;
//                    loss.backward(); an Adam step — a model with several optimisers overrides it)
//   each epoch end:  test NLL = -sum_i log p(x_i) / (N D) over the test split, in nats/dim for
//                    binary data and bits/dim (= nats/dim / ln 2) for 8-bit data; a bound when the
//                    model's objective() says so, its mean loss when it has no likelihood;
//                    samples.png, curves.svg, curves-time.svg and model.safetensors are rewritten
//   every step:      a row of log.csv: step,epoch,train_loss,test_nll,seconds (losses in the report
//                    unit, seconds of training since the run began, resumes included)
//
// A checkpoint holds everything a run needs to continue bit for bit: the model's tensors under
// their own names (so nn::load_safetensors / Python's safetensors read them as usual), the Adam
// state as "optimizer.<i>.exp_avg" ... (with several optimisers "optimizer.<group>.<i>.exp_avg"), the loss history as "trainer.*" tensors, and in the
// metadata the model name and config, the step, the data order (DataLoader::state) and the default
// generator's state (dropout draws from it). See Trainer::save_checkpoint for the keys.
//
// Reproducibility: seed the default generator (dgm::manual_seed(seed)) before building the model;
// then the same seed and options give the same parameters, bit for bit, whether the run is done in
// one go or interrupted and resumed from any checkpoint. The model's stochastic loss (dropout,
// dequantisation noise, sampled latents) draws from the default generator, which the checkpoint keeps.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <dgm/models/model.h>
#include <dgm/nn/optim.h>
#include <dgm/nn/serialize.h>
#include <dgm/train/data_loader.h>
#include <dgm/train/dataset.h>

namespace dgm::train {

struct TrainOptions {
  std::string model_name;        // as registered; recorded in the checkpoint for eval/sample/resume
  std::string data_source;       // the --data string; recorded in the checkpoint
  int64_t steps = 0;             // total steps (batches), or
  int64_t epochs = 0;            // total epochs; neither: 1 epoch (dgm train passes the model's default)
  int64_t batch_size = 32;
  double lr = 1e-3;
  // The learning rate over the run, a function of the step and the run's total only (so a resumed
  // run continues the same curve): "constant" (lr throughout) or "cosine" (lr down to 0 along half a
  // cosine, reaching it after the last step; PyTorch's CosineAnnealingLR with T_max = the run's
  // steps). Either starts with `warmup` steps of linear warm-up, lr (k + 1) / warmup at step k.
  std::string lr_schedule = "constant";
  int64_t warmup = 0;
  uint64_t seed = 0;             // data order and the samples in samples.png
  std::string out_dir;           // where the run's files go (created if missing)
  int64_t save_every = 0;        // also checkpoint every N steps (0: epoch ends and the end only)
  bool overwrite = false;        // a new run may replace the run already in out_dir (else: IOError)
  int64_t num_samples = 64;      // images in samples.png
  bool quiet = false;            // no progress bars or epoch lines
  // dgm::AnomalyGuard during run(): the first NaN/Inf produced by an op in forward or backward
  // throws dgm::AnomalyError naming the op (slower: every op's output is scanned).
  bool detect_anomaly = false;
  std::ostream* log = nullptr;   // progress bars and epoch lines; nullptr = std::cerr
  // When set (e.g. by Ctrl-C), training stops after the current step and saves a checkpoint.
  const std::atomic<bool>* stop = nullptr;
};

struct TrainResult {
  double test_nll = 0;        // in `unit`; NaN when interrupted before the final evaluation
  std::string label;          // what test_nll is: "test_nll", "test_nll_bound" or "test_loss" (models::objective_label)
  std::string unit;           // "nats/dim" or "bits/dim"
  int64_t steps = 0;          // steps done in total (including those before a resume)
  bool interrupted = false;
};

// The names of the files a run writes in its folder.
inline constexpr const char* kCheckpointFile = "model.safetensors";
inline constexpr const char* kSamplesFile = "samples.png";      // images; 2-D continuous data: samples.svg
inline constexpr const char* kSamplesPlotFile = "samples.svg";
inline constexpr const char* kCurvesFile = "curves.svg";         // losses against steps
inline constexpr const char* kTimeCurvesFile = "curves-time.svg";  // the same against seconds
inline constexpr const char* kLogFile = "log.csv";
// The "format" metadata of a checkpoint written by Trainer::save_checkpoint.
inline constexpr const char* kCheckpointFormat = "dgm-train-checkpoint/1";

// The schedules TrainOptions::lr_schedule accepts: "constant" and "cosine".
// (Inline: tools/cli/args.cpp checks --lr-schedule with it and links without the trainer.)
inline bool is_lr_schedule(const std::string& name) { return name == "constant" || name == "cosine"; }

class Trainer {
 public:
  // The data must be of the model's kind, with model.dim() values per example.
  Trainer(std::shared_ptr<models::GenerativeModel> model, Dataset train, Dataset test, TrainOptions options);

  // Continues from a checkpoint written by save_checkpoint (a file, or a run folder holding
  // model.safetensors): model, optimiser, data order, default generator and loss history. Call
  // before run(). Without --steps/--epochs in the options, the checkpoint's total is kept; a total
  // below the steps already done is a ValueError.
  void resume(const std::string& path);
  TrainResult run();

  void save_checkpoint(const std::string& path) const;
  int64_t step() const { return step_; }
  int64_t total_steps() const { return total_steps_; }
  int64_t steps_per_epoch() const { return train_loader_.num_batches(); }
  const models::GenerativeModel& model() const { return *model_; }
  // The optimisers, one per models::GenerativeModel::optimizer_groups() entry.
  const nn::Adam& optimizer(size_t i = 0) const { return *optimizers_.at(i); }
  size_t num_optimizers() const { return optimizers_.size(); }
  // The history, in the report unit (train loss per step; test figures at eval_steps).
  const std::vector<double>& train_losses() const { return train_loss_; }
  const std::vector<int64_t>& eval_steps() const { return eval_steps_; }
  const std::vector<double>& test_values() const { return test_nll_; }
  const std::vector<double>& seconds() const { return seconds_; }

 private:
  double evaluate();            // test NLL in the report unit; appends to the history
  void write_samples() const;
  void write_curves() const;
  void rewrite_log() const;     // log.csv from the history (after a resume)
  void append_log_row() const;  // the row of the step just done
  std::ostream& log() const;
  std::string path(const char* file) const;

  std::shared_ptr<models::GenerativeModel> model_;
  TrainOptions options_;
  DataLoader train_loader_, test_loader_;
  std::vector<models::OptimizerGroup> groups_;
  std::vector<std::unique_ptr<nn::Adam>> optimizers_;
  std::vector<nn::Optimizer*> optimizer_ptrs_;
  // One per optimiser when the lr changes over the run (not for "constant" without warm-up), made
  // by run() once the total is known (resume() may change it).
  std::vector<std::unique_ptr<nn::LRScheduler>> schedulers_;
  int64_t step_ = 0, total_steps_ = 0;
  bool resumed_ = false;  // resume() succeeded: out_dir's run is this one's
  // History, in the report unit: train loss of steps 1..step_, test NLL at eval_steps_.
  std::vector<double> train_loss_;
  std::vector<int64_t> eval_steps_;
  std::vector<double> test_nll_;
  std::vector<double> seconds_;  // seconds of training at the end of steps 1..step_
};

// -sum_i log p(x_i) / (N D) over every example of `loader` (in its file order), in nats/dim — a
// bound for a model whose objective() is NLLBound; for a model without a likelihood
// (Objective::None), its mean loss on the batches, with noise drawn from a generator seeded 0.
// Runs in eval mode without a graph; restores the model's training mode.
double test_nll_nats(models::GenerativeModel& model, const DataLoader& loader, bool quiet = true, std::ostream* log = nullptr);
// nats/dim for binary and continuous data; bits/dim (divided by ln 2) for 8-bit data.
double to_report_unit(double nats_per_dim, models::DataKind kind);

// A run folder -> its model.safetensors; a file -> itself. IOError if there is no such file.
std::string resolve_checkpoint(const std::string& dir_or_file);
// The model's own tensors in a checkpoint (without the "optimizer." and "trainer." entries).
nn::NamedTensors model_tensors(const nn::SafetensorsFile& checkpoint);

// Samples or images (n, D) int64 -> a PNG grid; binary data is shown with 1 as white.
void save_samples_png(const std::string& path, const Tensor& images, models::DataKind kind, int64_t rows, int64_t cols,
                      int grid_rows = 0);

}  // namespace dgm::train
