// The generic trainer; see trainer.h.
#include <dgm/train/trainer.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include <dgm/tools/files.h>
#include <dgm/train/run_folder.h>
#include <dgm/tools/image.h>
#include <dgm/tools/plot.h>
#include <dgm/tools/progress.h>

namespace dgm::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kOptimizerPrefix = "optimizer.";
constexpr const char* kTrainerPrefix = "trainer.";
// The samples in samples.png use their own stream (derived from the seed, the same at every epoch so
// the grids show the same noise getting better), never the training streams.
constexpr uint64_t kSampleStream = 0x5A4D504C45ULL;

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

std::string format_double(double v, const char* format = "%.6f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

const std::string& meta(const nn::Metadata& m, const std::string& key, const std::string& file) {
  auto it = m.find(key);
  if (it == m.end()) throw FormatError(cat(file, ": not a dgm train checkpoint (no '", key, "' in its metadata)"));
  return it->second;
}

int64_t meta_int(const nn::Metadata& m, const std::string& key, const std::string& file) {
  const std::string& v = meta(m, key, file);
  try {
    size_t used = 0;
    long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  throw FormatError(cat(file, ": metadata '", key, "' = '", v, "' is not an integer"));
}

Dataset checked(Dataset d, const models::GenerativeModel& model, const char* which) {
  if (d.kind() != model.data_kind())
    throw ValueError(cat("train: the ", which, " data is ", models::data_kind_name(d.kind()), ", the model takes ",
                         models::data_kind_name(model.data_kind()), " data"));
  if (d.height() > 0 && (d.height() != model.height() || d.width() != model.width()))
    throw ValueError(cat("train: the ", which, " images are ", d.height(), "x", d.width(), ", the model expects ", model.height(), "x",
                         model.width()));
  if (d.dim() != model.dim())
    throw ValueError(cat("train: the ", which, " examples have ", d.dim(), " values, the model expects ", model.dim()));
  if (model.num_classes() > 0 && !d.has_labels())
    throw ValueError(cat("train: the model is conditional on ", model.num_classes(), " classes, but the ", which, " data has no labels"));
  return d;
}

// The checkpoint prefix of optimiser i of n: "optimizer." for a single one, else "optimizer.<group>.".
std::string optimizer_prefix(const std::vector<models::OptimizerGroup>& groups, size_t i) {
  return groups.size() == 1 ? std::string(kOptimizerPrefix) : cat(kOptimizerPrefix, groups[i].name, ".");
}

}  // namespace

// ---- helpers shared with eval and sample ----------------------------------------------------------

double to_report_unit(double nats_per_dim, models::DataKind kind) {
  return kind == models::DataKind::Byte ? nats_per_dim / std::log(2.0) : nats_per_dim;
}

double test_nll_nats(models::GenerativeModel& model, const DataLoader& loader, bool quiet, std::ostream* log) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  tools::ProgressOptions bar_options;
  bar_options.desc = "test";
  bar_options.unit = "batch";
  bar_options.quiet = quiet;
  bar_options.out = log;
  tools::ProgressBar bar(loader.num_batches(), bar_options);
  const bool has_likelihood = model.objective() != models::Objective::None;
  Generator gen(0);  // the noise of a stochastic loss: the same at every evaluation
  double total = 0;  // sum of -log p(x_i) in nats (or of the loss times the batch's values)
  int64_t count = 0;
  for (int64_t i = 0; i < loader.num_batches(); ++i) {
    models::Batch b = loader.batch(i);
    const int64_t B = b.size();
    if (has_likelihood) {
      Tensor lp = model.log_prob(b);
      if (lp.dim() != 1 || lp.size(0) != B)
        throw ShapeError(cat("log_prob: expected shape (", B, ",) for a batch of ", B, ", got ", shape_str(lp.shape())));
      for (double v : lp.to_vector<double>()) total -= v;
    } else {
      total += model.loss(b, gen).item() * static_cast<double>(B * loader.dim());
    }
    count += B;
    bar.update();
  }
  bar.finish();
  model.train(was_training);
  if (count == 0) throw ValueError("test NLL: the test split is empty");
  return total / (static_cast<double>(count) * static_cast<double>(loader.dim()));
}

std::string resolve_checkpoint(const std::string& dir_or_file) {
  std::error_code ec;
  std::string path = fs::is_directory(dir_or_file, ec) ? (fs::path(dir_or_file) / kCheckpointFile).string() : dir_or_file;
  if (!fs::is_regular_file(path, ec))
    throw IOError(cat("checkpoint not found: ", path, fs::is_directory(dir_or_file, ec) ? " (the folder holds no model.safetensors)" : ""));
  return path;
}

nn::NamedTensors model_tensors(const nn::SafetensorsFile& checkpoint) {
  nn::NamedTensors out;
  for (const auto& [name, t] : checkpoint.tensors)
    if (!starts_with(name, kOptimizerPrefix) && !starts_with(name, kTrainerPrefix)) out.emplace_back(name, t);
  return out;
}

void save_samples_png(const std::string& path, const Tensor& images, models::DataKind kind, int64_t rows, int64_t cols,
                      int grid_rows) {
  if (images.dim() != 2 || images.size(1) != rows * cols)
    throw ShapeError(cat("samples: expected (n, ", rows * cols, ") images, got ", shape_str(images.shape())));
  const int max_level = kind == models::DataKind::Binary ? 1 : 255;
  std::vector<uint8_t> pixels;
  pixels.reserve(static_cast<size_t>(images.numel()));
  for (double v : images.to_vector<double>()) pixels.push_back(static_cast<uint8_t>(std::clamp(v, 0.0, double(max_level))));
  tools::save_image_grid(path, pixels, images.size(0), rows, cols, grid_rows, 2, 2, max_level);
}

// ---- Trainer ----------------------------------------------------------------------------------------

Trainer::Trainer(std::shared_ptr<models::GenerativeModel> model, Dataset train, Dataset test, TrainOptions options)
    : model_(std::move(model)),
      options_(std::move(options)),
      train_loader_(checked(std::move(train), *model_, "training"),
                    {.batch_size = options_.batch_size, .shuffle = true, .drop_last = true, .seed = options_.seed}),
      test_loader_(checked(std::move(test), *model_, "test"), {.batch_size = options_.batch_size, .shuffle = false, .drop_last = false}) {
  if (options_.steps < 0 || options_.epochs < 0 || (options_.steps > 0 && options_.epochs > 0))
    throw ValueError(cat("Trainer: give steps or epochs (positive), got steps ", options_.steps, ", epochs ", options_.epochs));
  if (options_.num_samples < 1) throw ValueError(cat("Trainer: num_samples must be positive, got ", options_.num_samples));
  if (options_.out_dir.empty()) throw ValueError("Trainer: out_dir is empty");
  if (train_loader_.num_batches() == 0)
    throw ValueError(cat("train: a batch of ", options_.batch_size, " is larger than the ", train_loader_.size(), " training examples"));
  if (test_loader_.size() == 0) throw ValueError("train: the test split is empty (nothing to evaluate the model on)");
  groups_ = model_->optimizer_groups();
  if (groups_.empty()) throw ValueError(cat("train: ", model_->type_name(), ".optimizer_groups() returned no group"));
  for (size_t i = 0; i < groups_.size(); ++i) {
    if (groups_.size() > 1 && groups_[i].name.empty())
      throw ValueError(cat("train: ", model_->type_name(), " has several optimiser groups; each needs a name"));
    for (size_t j = 0; j < i; ++j)
      if (groups_[j].name == groups_[i].name) throw ValueError(cat("train: two optimiser groups are named '", groups_[i].name, "'"));
    optimizers_.push_back(std::make_unique<nn::Adam>(groups_[i].params, nn::AdamOptions{.lr = options_.lr * groups_[i].lr_scale}));
    optimizer_ptrs_.push_back(optimizers_.back().get());
  }
  const int64_t epochs = options_.epochs > 0 ? options_.epochs : 1;
  total_steps_ = options_.steps > 0 ? options_.steps : epochs * train_loader_.num_batches();
  if (!is_lr_schedule(options_.lr_schedule))
    throw ValueError(cat("train: unknown learning-rate schedule '", options_.lr_schedule, "' (known: constant, cosine)"));
  if (options_.warmup < 0) throw ValueError(cat("train: warmup must be a non-negative number of steps, got ", options_.warmup));
}

std::ostream& Trainer::log() const { return options_.log ? *options_.log : std::cerr; }
std::string Trainer::path(const char* file) const { return (fs::path(options_.out_dir) / file).string(); }

// Checkpoint layout (all in one safetensors file, written atomically):
//   <model tensor names>      the model's state_dict
//   optimizer.<Adam key>      Adam's state_dict ("optimizer.0.exp_avg", "optimizer.0.step", ...)
//   trainer.train_loss        (step,) float64, train loss per step in the report unit
//   trainer.eval_steps        (E,) int64 and trainer.test_nll (E,) float64: the test NLL history
//   metadata: format, model, config (JSON), data_kind, unit, data, step, total_steps,
//             steps_per_epoch, batch, lr, lr_schedule, warmup, seed, loader (JSON), default_generator
void Trainer::save_checkpoint(const std::string& file) const {
  nn::NamedTensors tensors = model_->state_dict();
  for (size_t i = 0; i < optimizers_.size(); ++i)
    for (const auto& [name, t] : optimizers_[i]->state_dict()) tensors.emplace_back(optimizer_prefix(groups_, i) + name, t);
  tensors.emplace_back("trainer.train_loss", from_vector(train_loss_, {static_cast<int64_t>(train_loss_.size())}));
  tensors.emplace_back("trainer.eval_steps", from_vector(eval_steps_, {static_cast<int64_t>(eval_steps_.size())}));
  tensors.emplace_back("trainer.test_nll", from_vector(test_nll_, {static_cast<int64_t>(test_nll_.size())}));
  tensors.emplace_back("trainer.seconds", from_vector(seconds_, {static_cast<int64_t>(seconds_.size())}));
  const models::DataKind kind = model_->data_kind();
  nn::Metadata m = {
      {"format", kCheckpointFormat},
      {"model", options_.model_name},
      {"config", model_->config().dump()},
      {"data_kind", models::data_kind_name(kind)},
      {"unit", models::nll_unit(kind)},
      {"data", options_.data_source},
      {"step", std::to_string(step_)},
      {"total_steps", std::to_string(total_steps_)},
      {"steps_per_epoch", std::to_string(train_loader_.num_batches())},
      {"batch", std::to_string(options_.batch_size)},
      {"lr", format_double(options_.lr, "%.17g")},
      {"lr_schedule", options_.lr_schedule},
      {"warmup", std::to_string(options_.warmup)},
      {"seed", std::to_string(options_.seed)},
      {"save_every", std::to_string(options_.save_every)},
      {"num_samples", std::to_string(options_.num_samples)},
      {"loader", train_loader_.state().dump()},
      {"default_generator", default_generator().state()},
  };
  nn::save_safetensors(file, tensors, m);
}

void Trainer::resume(const std::string& where) {
  const std::string file = resolve_checkpoint(where);
  nn::SafetensorsFile ck = nn::load_safetensors(file);
  const nn::Metadata& m = ck.metadata;
  if (meta(m, "format", file) != kCheckpointFormat) throw FormatError(cat(file, ": unknown checkpoint format '", m.at("format"), "'"));
  if (!options_.model_name.empty() && meta(m, "model", file) != options_.model_name)
    throw ValueError(cat(file, " is a checkpoint of '", m.at("model"), "', not of '", options_.model_name, "'"));
  if (meta_int(m, "batch", file) != options_.batch_size)
    throw ValueError(cat(file, " was trained with batch ", m.at("batch"), "; resuming with batch ", options_.batch_size,
                         " would not continue the same run"));
  if (meta(m, "seed", file) != std::to_string(options_.seed))
    throw ValueError(cat(file, " was trained with seed ", m.at("seed"), "; resuming with seed ", options_.seed,
                         " would not continue the same run"));

  std::vector<nn::NamedTensors> optimizer_state(optimizers_.size());
  std::map<std::string, Tensor> history;
  for (const auto& [name, t] : ck.tensors) {
    if (starts_with(name, kTrainerPrefix)) history[name] = t;
    for (size_t i = 0; i < optimizers_.size(); ++i) {
      const std::string prefix = optimizer_prefix(groups_, i);
      if (starts_with(name, prefix.c_str())) optimizer_state[i].emplace_back(name.substr(prefix.size()), t);
    }
  }
  try {
    model_->load_state_dict(model_tensors(ck));
  } catch (const Error& e) {
    throw FormatError(cat(file, ": ", e.what()));
  }
  for (size_t i = 0; i < optimizers_.size(); ++i) optimizers_[i]->load_state_dict(optimizer_state[i]);
  auto history_of = [&](const std::string& key) {
    auto it = history.find(key);
    if (it == history.end()) throw FormatError(cat(file, ": missing tensor '", key, "'"));
    return it->second;
  };
  train_loss_ = history_of("trainer.train_loss").to_vector<double>();
  eval_steps_ = history_of("trainer.eval_steps").to_vector<int64_t>();
  test_nll_ = history_of("trainer.test_nll").to_vector<double>();
  seconds_ = history.count("trainer.seconds") ? history.at("trainer.seconds").to_vector<double>() : std::vector<double>(train_loss_.size(), 0.0);
  step_ = meta_int(m, "step", file);
  if (static_cast<int64_t>(train_loss_.size()) != step_ || eval_steps_.size() != test_nll_.size() || seconds_.size() != train_loss_.size())
    throw FormatError(cat(file, ": the loss history does not match step ", step_));
  try {
    train_loader_.set_state(nlohmann::json::parse(meta(m, "loader", file)));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(cat(file, ": malformed 'loader' metadata: ", e.what()));
  }
  default_generator().set_state(meta(m, "default_generator", file));
  if (options_.steps == 0 && options_.epochs == 0) total_steps_ = meta_int(m, "total_steps", file);
  if (total_steps_ < step_)
    throw ValueError(cat(file, " has done ", step_, " steps; a run of ", total_steps_, " steps would end before it began (give --steps ", step_,
                         " or more to continue it)"));
  resumed_ = true;
  // A run that ended mid-epoch evaluated the test NLL for its final line. Continued, it is the same
  // run as one done in one go, which evaluates at epoch ends only: drop that evaluation, so the
  // history, log.csv and the next checkpoint are bit for bit those of the uninterrupted run.
  if (!eval_steps_.empty() && eval_steps_.back() == step_ && step_ % train_loader_.num_batches() != 0 && step_ < total_steps_) {
    eval_steps_.pop_back();
    test_nll_.pop_back();
  }
}

double Trainer::evaluate() {
  // No bar of its own: the epoch line that follows reports it.
  const double nll = to_report_unit(test_nll_nats(*model_, test_loader_, /*quiet=*/true), model_->data_kind());
  eval_steps_.push_back(step_);
  test_nll_.push_back(nll);
  return nll;
}

void Trainer::write_samples() const {
  const bool was_training = model_->is_training();
  model_->eval();
  NoGradGuard no_grad;
  Generator gen(options_.seed ^ kSampleStream);
  models::SampleOptions sample_options;
  if (model_->num_classes() > 0) {  // a conditional model: one row per class
    std::vector<int64_t> labels(static_cast<size_t>(options_.num_samples));
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i) * model_->num_classes() / options_.num_samples;
    sample_options.labels = from_vector(labels, {options_.num_samples});
  }
  Tensor samples = model_->sample(options_.num_samples, gen, sample_options);
  model_->train(was_training);
  if (model_->data_kind() != models::DataKind::Continuous) {
    save_samples_png(path(kSamplesFile), samples, model_->data_kind(), model_->height(), model_->width());
  } else if (samples.dim() == 2 && samples.size(1) == 2) {  // 2-D data: a scatter plot
    const Tensor xy = samples.to(DType::Float64).contiguous();
    tools::Figure fig;
    fig.axes().scatter(select(xy, 1, 0).to_vector<double>(), select(xy, 1, 1).to_vector<double>(), "samples");
    fig.axes().title(cat(options_.num_samples, " samples"));
    fig.save(path(kSamplesPlotFile));
  }
}

void Trainer::write_curves() const {
  // Thousands of points per line make a heavy SVG and an unreadable line: beyond 2000 steps, plot
  // the mean of each run of `stride` steps at the run's last step. Drawn twice: against steps
  // (curves.svg) and against seconds of training (curves-time.svg).
  const int64_t n = static_cast<int64_t>(train_loss_.size());
  const int64_t stride = std::max<int64_t>(1, (n + 1999) / 2000);
  for (const bool against_time : {false, true}) {
    auto at = [&](int64_t step) { return against_time ? (step > 0 ? seconds_[static_cast<size_t>(step - 1)] : 0.0) : double(step); };
    std::vector<double> xs, ys;
    for (int64_t start = 0; start < n; start += stride) {
      const int64_t end = std::min(n, start + stride);
      double s = 0;
      for (int64_t i = start; i < end; ++i) s += train_loss_[i];
      xs.push_back(at(end));
      ys.push_back(s / static_cast<double>(end - start));
    }
    std::vector<double> eval_x;
    for (int64_t e : eval_steps_) eval_x.push_back(at(e));
    const char* test_name = model_->objective() == models::Objective::ExactNLL  ? "test NLL"
                            : model_->objective() == models::Objective::NLLBound ? "test NLL bound"
                                                                                 : "test loss";
    tools::Figure fig;
    tools::Axes& ax = fig.axes();
    ax.plot(xs, ys, stride == 1 ? "train loss" : cat("train loss (mean of ", stride, " steps)"));
    ax.plot(eval_x, test_nll_, test_name, tools::Style::markers_only());
    ax.title(cat(options_.model_name.empty() ? "model" : options_.model_name, " on ", models::data_kind_name(model_->data_kind()),
                 " data, batch ", options_.batch_size, ", Adam lr ", format_double(options_.lr, "%g"),
                 options_.lr_schedule == "constant" ? "" : cat(" (", options_.lr_schedule, ")"),
                 options_.warmup > 0 ? cat(", warm-up ", options_.warmup) : ""))
        .xlabel(against_time ? "seconds of training" : "step")
        .ylabel(cat("loss (", models::nll_unit(model_->data_kind()), ")"));
    fig.save(path(against_time ? kTimeCurvesFile : kCurvesFile));
  }
}

namespace {
std::string log_row(int64_t step, int64_t steps_per_epoch, double train_loss, const std::string& test_nll, double seconds) {
  return cat(step, ",", (step - 1) / steps_per_epoch + 1, ",", format_double(train_loss), ",", test_nll, ",", format_double(seconds, "%.3f"), "\n");
}
}  // namespace

void Trainer::rewrite_log() const {
  std::string text = "step,epoch,train_loss,test_nll,seconds\n";
  size_t e = 0;
  for (int64_t s = 1; s <= static_cast<int64_t>(train_loss_.size()); ++s) {
    while (e < eval_steps_.size() && eval_steps_[e] < s) ++e;
    std::string nll;
    if (e < eval_steps_.size() && eval_steps_[e] == s) nll = format_double(test_nll_[e]);
    text += log_row(s, train_loader_.num_batches(), train_loss_[s - 1], nll, seconds_[s - 1]);
  }
  tools::write_file_atomic(path(kLogFile), text);
}

void Trainer::append_log_row() const {
  std::ofstream out(path(kLogFile), std::ios::app);
  if (!out) throw IOError(cat("cannot append to ", path(kLogFile)));
  const std::string nll = !eval_steps_.empty() && eval_steps_.back() == step_ ? format_double(test_nll_.back()) : "";
  out << log_row(step_, train_loader_.num_batches(), train_loss_.back(), nll, seconds_.back());
}

TrainResult Trainer::run() {
  // One writer per run folder (the lock is held until run() returns); a folder holding another run
  // is not overwritten unless asked; temporaries left by killed processes are cleared.
  RunLock lock(options_.out_dir);
  if (!resumed_ && !options_.overwrite && holds_run(options_.out_dir))
    throw IOError(cat("the run folder ", options_.out_dir, " already holds a run (", kCheckpointFile, " or ", kLogFile,
                      "); continue it with --resume, replace it with --overwrite, or choose another --out"));
  for (const std::string& name : tools::remove_stale_temporaries(options_.out_dir))
    if (!options_.quiet) log() << "removed " << name << ", left by a process that no longer runs\n";
  rewrite_log();  // the header, or the history up to the resumed step (dropping rows after it)

  const models::DataKind kind = model_->data_kind();
  const double to_unit = to_report_unit(1.0, kind);
  const int64_t per_epoch = train_loader_.num_batches();
  const int64_t num_epochs = (total_steps_ + per_epoch - 1) / per_epoch;
  const auto start_time = std::chrono::steady_clock::now();
  const int64_t first_step = step_;
  const double seconds_before = seconds_.empty() ? 0.0 : seconds_.back();  // training time of the runs this one resumes
  TrainResult result;
  result.unit = models::nll_unit(kind);
  result.label = models::objective_label(model_->objective());

  // Counting models have a closed-form maximum-likelihood fit: no gradient steps needed.
  if (step_ == 0 && model_->fit(train_loader_.all())) {
    if (!options_.quiet) log() << "fitted by counting on " << train_loader_.size() << " examples (the exact MLE); no gradient steps\n";
    total_steps_ = 0;
  }

  // The lr of step k (0-based) is the schedule's value at k: linear warm-up over `warmup` steps, then
  // lr throughout ("constant": a cosine whose floor is lr itself) or down to 0 along half a cosine
  // over the remaining steps. A warm-up longer than the run is cut to the run's steps.
  schedulers_.clear();
  if (options_.lr_schedule != "constant" || options_.warmup > 0) {
    const int64_t total = std::max<int64_t>(total_steps_, 1), warmup = std::min(options_.warmup, total - 1);
    for (size_t i = 0; i < optimizers_.size(); ++i) {
      const double lr = options_.lr * groups_[i].lr_scale;
      optimizers_[i]->set_lr(lr);  // the schedule's base
      schedulers_.push_back(std::make_unique<nn::WarmupCosineLR>(*optimizers_[i], warmup, total, options_.lr_schedule == "constant" ? lr : 0.0));
    }
  }

  model_->train();
  std::unique_ptr<tools::ProgressBar> bar;
  double epoch_loss_sum = 0;
  int64_t epoch_loss_count = 0;
  while (step_ < total_steps_) {
    if (options_.stop && options_.stop->load()) {
      result.interrupted = true;
      break;
    }
    if (!bar) {  // a bar per epoch, counting the steps this run will do in it
      const int64_t epoch = step_ / per_epoch + 1;
      const int64_t in_epoch = std::min(per_epoch - step_ % per_epoch, total_steps_ - step_);
      tools::ProgressOptions o;
      o.desc = cat("epoch ", epoch, "/", num_epochs);
      o.quiet = options_.quiet;
      o.out = options_.log;
      bar = std::make_unique<tools::ProgressBar>(in_epoch, o);
      epoch_loss_sum = 0;
      epoch_loss_count = 0;
    }

    for (auto& scheduler : schedulers_) scheduler->set_step(step_);
    models::Batch batch = train_loader_.next();  // x (B, D), labels y (B,)
    double loss = 0;
    {
      // --detect-anomaly: every op of this step's forward and backward is checked for NaN/Inf.
      std::optional<AnomalyGuard> anomaly;
      if (options_.detect_anomaly) anomaly.emplace();
      try {
        loss = model_->train_step(batch, default_generator(), optimizer_ptrs_);  // mean NLL per dim, nats
      } catch (const AnomalyError& e) {
        throw AnomalyError(cat("train step ", step_ + 1, ": ", e.what()));
      }
    }
    const double value = loss * to_unit;
    ++step_;
    seconds_.push_back(seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count());
    if (!std::isfinite(value))
      throw Error(cat("train: the loss became ", value, " at step ", step_, " (try a lower --lr)"));
    train_loss_.push_back(value);
    epoch_loss_sum += value;
    ++epoch_loss_count;
    bar->set_postfix("loss", epoch_loss_sum / static_cast<double>(epoch_loss_count));
    bar->update();

    const bool epoch_end = train_loader_.epoch_done();
    const bool last = step_ == total_steps_;
    if (epoch_end || last) {
      bar->finish();
      bar.reset();
      const double nll = evaluate();
      // The checkpoint first: if it cannot be written (a full disk), the run stops here, before the
      // samples, curves or log move ahead of the last good checkpoint.
      save_checkpoint(path(kCheckpointFile));
      write_samples();
      write_curves();
      if (!options_.quiet) {
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
        log() << "epoch " << (step_ - 1) / per_epoch + 1 << "/" << num_epochs << "  step " << step_ << "  train_loss "
              << format_double(epoch_loss_sum / static_cast<double>(epoch_loss_count), "%.4f") << "  " << result.label << " "
              << format_double(nll, "%.4f") << " " << result.unit << "  (" << format_double(seconds, "%.1f") << " s)\n";
      }
    }
    if (!(epoch_end || last) && options_.save_every > 0 && step_ % options_.save_every == 0) save_checkpoint(path(kCheckpointFile));
    append_log_row();
  }
  bar.reset();

  if (result.interrupted) {
    save_checkpoint(path(kCheckpointFile));
    if (!train_loss_.empty()) write_curves();
    result.test_nll = std::nan("");
  } else {
    // A resumed run with nothing left to do still reports, and writes its four files.
    if (eval_steps_.empty() || eval_steps_.back() != step_) {
      evaluate();
      rewrite_log();
    }
    if (step_ == first_step) {
      write_samples();
      write_curves();
      save_checkpoint(path(kCheckpointFile));
    }
    result.test_nll = test_nll_.back();
  }
  result.steps = step_;
  return result;
}

}  // namespace dgm::train
