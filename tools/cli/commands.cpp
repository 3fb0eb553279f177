// The `dgm` commands; see commands.h.
#include <dgm/tools/cli/commands.h>

#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include <dgm/data/mnist.h>
#include <dgm/models/registry.h>
#include <dgm/nn/serialize.h>
#include <dgm/tensor/kernels.h>
#include <dgm/lectures/common/lecture.h>
#include <dgm/tools/cli/bench.h>
#include <dgm/tools/image.h>
#include <dgm/train/run_folder.h>
#include <dgm/train/classify.h>
#include <dgm/train/trainer.h>

namespace dgm::cli {

namespace fs = std::filesystem;
using namespace dgm::train;

namespace {

// ---- Ctrl-C (SIGINT), kill (SIGTERM) or a closed terminal (SIGHUP): the first one stops training
// after the current step, a checkpoint is saved, and dgm exits with 128 + the signal's number; a
// second one quits at once.
std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
extern "C" void on_stop_signal(int sig) {
  if (g_stop.exchange(true)) std::_Exit(128 + sig);
  g_signal = sig;
}
constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};
struct StopSignalHandler {
  struct sigaction previous[3] {};
  StopSignalHandler() {
    g_stop = false;
    g_signal = 0;
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    for (int i = 0; i < 3; ++i) sigaction(kStopSignals[i], &action, &previous[i]);
  }
  ~StopSignalHandler() {
    for (int i = 0; i < 3; ++i) sigaction(kStopSignals[i], &previous[i], nullptr);
  }
  StopSignalHandler(const StopSignalHandler&) = delete;
  StopSignalHandler& operator=(const StopSignalHandler&) = delete;
};
const char* signal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "SIGINT (Ctrl-C)"; }

// The error message on one line, whatever the thrower put in it.
std::string one_line(std::string text) {
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

const models::ModelInfo& find_model_or_usage(const std::string& name) {
  try {
    return models::find_model(name);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

// A model built from command-line flags: its own complaints about them are usage errors.
std::shared_ptr<models::GenerativeModel> create_from_flags(const std::string& name, const nlohmann::json& config, size_t max_memory) {
  find_model_or_usage(name);
  try {
    return models::create_model(name, config, max_memory);
  } catch (const ValueError& e) {
    throw UsageError(e.what());
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(cat(name, ": bad model flag value in ", config.dump(), ": ", e.what()));
  }
}

// A model rebuilt from a checkpoint's config: a failure means a broken or foreign file.
std::shared_ptr<models::GenerativeModel> create_from_checkpoint(const std::string& name, const nn::Metadata& metadata,
                                                                const std::string& file, size_t max_memory) {
  find_model_or_usage(name);
  nlohmann::json config = nlohmann::json::object();
  try {
    if (auto it = metadata.find("config"); it != metadata.end()) config = nlohmann::json::parse(it->second);
    config = models::saved_config(name, config);
    return models::create_model(name, config, max_memory);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(cat(file, ": bad model config '", config.dump(), "': ", e.what()));
  } catch (const ValueError& e) {
    throw FormatError(cat(file, ": ", e.what()));
  }
}

std::string checkpoint_or_usage(const std::string& flag, const std::string& path) {
  try {
    return resolve_checkpoint(path);
  } catch (const IOError& e) {
    throw UsageError(cat(flag, ": ", e.what()));
  }
}

std::string metadata_or(const nn::Metadata& m, const std::string& key, const std::string& fallback) {
  auto it = m.find(key);
  return it == m.end() ? fallback : it->second;
}

// --data names a source load_mnist knows, or a folder that must exist.
void check_data_source(const std::string& src) {
  if (src.empty() || src == "mnist" || src == "fashion-mnist") return;
  std::error_code ec;
  if (!fs::is_directory(src, ec)) throw UsageError(cat("--data: no such folder '", src, "' (or use mnist, fashion-mnist)"));
}

struct LoadedModel {
  std::shared_ptr<models::GenerativeModel> model;
  nn::Metadata metadata;
  std::string file;
};

// eval / sample: the model named on the command line, with the checkpoint's config and weights.
LoadedModel load_checkpoint_model(const CliArgs& args, std::ostream& err) {
  LoadedModel loaded;
  loaded.file = checkpoint_or_usage("--checkpoint", args.checkpoint);
  find_model_or_usage(args.model);
  nn::SafetensorsFile ck = nn::load_safetensors(loaded.file);
  loaded.metadata = ck.metadata;
  const std::string saved_model = metadata_or(ck.metadata, "model", "");
  if (!saved_model.empty() && saved_model != args.model)
    throw UsageError(cat("--checkpoint ", loaded.file, " holds a '", saved_model, "' model, not '", args.model, "'"));
  if (ck.checksum == nn::Checksum::Absent)
    err << "dgm: note: " << loaded.file << " carries no checksum (written by an older dgm): loaded without an integrity check\n";
  loaded.model = create_from_checkpoint(args.model, ck.metadata, loaded.file, args.max_memory);
  try {
    loaded.model->load_state_dict(model_tensors(ck));
  } catch (const Error& e) {
    throw FormatError(cat(loaded.file, ": ", e.what()));
  }
  loaded.model->eval();
  return loaded;
}

// "test_nll 0.10592 nats/dim" (or test_nll_bound / test_loss, as the model's objective() says).
// Why a model's NLL is not finite: its first non-finite parameter, or else the first op that makes
// NaN/Inf on the first test batch (anomaly mode names it).
std::string first_nonfinite(models::GenerativeModel& model, const DataLoader& loader) {
  for (const auto& [name, p] : model.named_parameters())
    if (cpu::has_nonfinite(p.array())) return cat("parameter '", name, "' holds NaN/Inf values");
  try {
    NoGradGuard no_grad;
    AnomalyGuard anomaly;
    model.eval();
    for (int64_t i = 0; i < loader.num_batches(); ++i) model.log_prob(loader.batch(i));
  } catch (const AnomalyError& e) {
    return cat("the first non-finite activation: ", e.what());
  }
  return "every parameter is finite and no op made NaN/Inf (the sum overflowed?)";
}

void print_nll(std::ostream& out, const std::string& label, double value, const std::string& unit) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.5f", value);
  out << label << " " << buf << " " << unit << "\n" << std::flush;
}

// `dgm train MODEL --help`: the model's description and default hyper-parameters.
void describe_model(const std::string& name, std::ostream& out) {
  try {
    const models::ModelInfo& info = models::find_model(name);
    out << "\n" << info.name << ": " << info.description << "\n";
    auto model = info.create(nlohmann::json::object());
    out << "  default config " << model->config().dump() << " (" << model->num_parameters() << " parameters, "
        << models::data_kind_name(model->data_kind()) << " data)\n";
    const models::TrainDefaults& d = info.train_defaults;
    out << "  default training " << d.epochs << (d.epochs == 1 ? " epoch" : " epochs") << " at lr " << d.lr << ", " << d.lr_schedule
        << " schedule" << (d.warmup > 0 ? cat(", warm-up ", d.warmup, " steps") : "") << " (without --steps / --epochs / --lr / --lr-schedule)";
    if (d.conditional_epochs > 0) out << "; " << d.conditional_epochs << " epochs with --conditional true";
    out << "\n";
  } catch (const std::exception& e) {
    out << "  (" << one_line(e.what()) << ")\n";
  }
}

}  // namespace

void apply_thread_count(const CliArgs& args) {
  if (args.threads > 0) return cpu::set_num_threads(args.threads);
  const char* env = std::getenv("DGM_NUM_THREADS");
  if (env == nullptr || *env == '\0') return;
  const int64_t n = parse_int("DGM_NUM_THREADS", env);
  if (n < 1 || n > 4096) throw UsageError(cat("DGM_NUM_THREADS: expected an integer in 1..4096, got '", env, "'"));
  cpu::set_num_threads(static_cast<int>(n));
}

int64_t train_epochs(const CliArgs& args) {
  if (args.has("epochs")) return args.epochs;
  if (args.has("steps")) return 0;
  return find_model_or_usage(args.model).train_defaults.epochs_for(args.model_config);
}

double train_lr(const CliArgs& args) { return args.has("lr") ? args.lr : find_model_or_usage(args.model).train_defaults.lr; }

std::string default_run_dir(const std::string& model) {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &local);
  const std::string base = (fs::path("runs") / (model + "-" + stamp)).string();
  std::string dir = base;
  std::error_code ec;
  for (int i = 2; fs::exists(dir, ec); ++i) dir = cat(base, "-", i);
  return dir;
}

// ---- train ------------------------------------------------------------------------------------------
int run_train(const CliArgs& args, std::ostream& out, std::ostream& err) {
  TrainOptions options;
  options.model_name = args.model;
  options.steps = args.steps;
  options.epochs = args.epochs;
  options.save_every = args.save_every;
  options.num_samples = args.n;
  options.quiet = args.quiet;
  options.detect_anomaly = args.detect_anomaly;
  options.log = &err;
  options.lr = args.lr;
  options.batch_size = args.batch;
  options.seed = args.seed;
  options.data_source = args.data;

  std::shared_ptr<models::GenerativeModel> model;
  std::string resume_file;
  if (!args.resume.empty()) {
    // Continue a run: everything that fixes the run's trajectory comes from its checkpoint.
    resume_file = checkpoint_or_usage("--resume", args.resume);
    find_model_or_usage(args.model);
    const nn::Metadata metadata = nn::load_safetensors(resume_file).metadata;
    if (metadata_or(metadata, "format", "") != kCheckpointFormat)
      throw FormatError(cat(resume_file, ": not a checkpoint written by dgm train (it cannot be resumed)"));
    const std::string saved_model = metadata_or(metadata, "model", "");
    if (saved_model != args.model)
      throw UsageError(cat("--resume: ", resume_file, " is a checkpoint of '", saved_model, "', not of '", args.model, "'"));
    auto keep = [&](const char* flag, const std::string& given, const std::string& key) {
      const std::string saved = metadata_or(metadata, key, "");
      if (args.has(flag) && given != saved)
        throw UsageError(cat("--resume: the run used --", flag, " ", saved.empty() ? "\"\"" : saved, "; --", flag, " ", given,
                             " would not continue it (start a new run instead)"));
      return saved;
    };
    options.data_source = keep("data", args.data, "data");
    options.batch_size = parse_int("batch", keep("batch", std::to_string(args.batch), "batch"));
    options.seed = static_cast<uint64_t>(parse_int("seed", keep("seed", std::to_string(args.seed), "seed")));
    if (!args.has("lr")) options.lr = parse_double("lr", metadata_or(metadata, "lr", "0.001"));
    // Checkpoints from before schedules: a constant lr without warm-up.
    options.lr_schedule = args.has("lr-schedule") ? args.lr_schedule : metadata_or(metadata, "lr_schedule", "constant");
    if (!train::is_lr_schedule(options.lr_schedule))
      throw FormatError(cat(resume_file, ": unknown learning-rate schedule '", options.lr_schedule, "' in its metadata (known: constant, cosine)"));
    if (args.has("warmup")) {
      options.warmup = args.warmup;
    } else {
      const std::string w = metadata_or(metadata, "warmup", "0");
      int64_t v = -1;
      auto [end, ec] = std::from_chars(w.data(), w.data() + w.size(), v);
      if (ec != std::errc() || end != w.data() + w.size() || v < 0)
        throw FormatError(cat(resume_file, ": 'warmup' metadata must be a non-negative integer, got '", w, "'"));
      options.warmup = v;
    }
    // the run's own settings come back unless given again
    if (!args.has("save-every")) options.save_every = parse_int("save_every", metadata_or(metadata, "save_every", "0"));
    if (!args.has("n")) options.num_samples = parse_int("num_samples", metadata_or(metadata, "num_samples", std::to_string(args.n)));
    options.out_dir = args.has("out") ? args.out : fs::path(resume_file).parent_path().string();
    if (options.out_dir.empty()) options.out_dir = ".";
    model = create_from_checkpoint(args.model, metadata, resume_file, args.max_memory);  // the weights follow in Trainer::resume
  } else {
    check_data_source(args.data);
    options.epochs = train_epochs(args);  // neither --steps nor --epochs: the model's default budget
    options.lr = train_lr(args);
    const models::TrainDefaults& defaults = find_model_or_usage(args.model).train_defaults;
    options.lr_schedule = args.has("lr-schedule") ? args.lr_schedule : defaults.lr_schedule;
    options.warmup = args.has("warmup") ? args.warmup : defaults.warmup;
    options.out_dir = args.has("out") ? args.out : default_run_dir(args.model);
    manual_seed(args.seed);  // the initial weights
    model = create_from_flags(args.model, args.model_config, args.max_memory);
  }

  // Both splits are read and checked before the first step.
  const data::MnistData train = data::load_mnist(options.data_source, data::Split::Train);
  const data::MnistData test = data::load_mnist(options.data_source, data::Split::Test);
  data::check_splits(train, test);
  if (options.batch_size > train.n)
    throw UsageError(cat("--batch ", options.batch_size, " is larger than the ", train.n, " training images"));
  if (!args.quiet)
    err << "dgm train " << args.model << ": " << model->num_parameters() << " parameters, " << models::data_kind_name(model->data_kind())
        << " data (" << train.n << " train / " << test.n << " test images from " << train.source << "), writing to "
        << options.out_dir << "\n";
  // Said only when a setting came from the model's own defaults: the budget, the lr, or a schedule or
  // warm-up the model asks for (not the plain constant schedule every model has unless told otherwise).
  const models::TrainDefaults& model_defaults = find_model_or_usage(args.model).train_defaults;
  const bool from_defaults = (!args.has("steps") && !args.has("epochs")) || !args.has("lr") ||
                             (!args.has("lr-schedule") && model_defaults.lr_schedule != "constant") ||
                             (!args.has("warmup") && model_defaults.warmup > 0);
  if (!args.quiet && resume_file.empty() && from_defaults)
    err << "training " << (options.epochs > 0 ? cat(options.epochs, options.epochs == 1 ? " epoch" : " epochs") : cat(options.steps, " steps"))
        << " at lr " << options.lr << (options.lr_schedule == "constant" ? "" : cat(", ", options.lr_schedule, " schedule"))
        << (options.warmup > 0 ? cat(", warm-up ", options.warmup, " steps") : "")
        << " (the model's defaults where --steps/--epochs/--lr/--lr-schedule are not given)\n";

  options.stop = &g_stop;
  options.overwrite = args.overwrite;
  if (const std::string data_dir = options.data_source.empty() ? "" : data::resolve_mnist_dir(options.data_source);
      !data_dir.empty() && train::inside(options.out_dir, data_dir))  // "": the compiled-in digits
    throw UsageError(cat("--out ", options.out_dir, " is inside the data folder ", data_dir, "; a run must not write among its inputs"));
  const models::DataKind kind = model->data_kind();
  // Images are resized to the model's size when it asks for another (the homework's 32x32 MNIST).
  Trainer trainer(model, Dataset::from_mnist(train, kind, model->height(), model->width()),
                  Dataset::from_mnist(test, kind, model->height(), model->width()), options);
  if (!resume_file.empty()) {
    trainer.resume(resume_file);
    if (!args.quiet) err << "resuming at step " << trainer.step() << " of " << trainer.total_steps() << "\n";
  }
  TrainResult result;
  {
    StopSignalHandler on_stop;
    result = trainer.run();
  }
  if (result.interrupted) {
    const int sig = g_signal.load() ? g_signal.load() : SIGINT;
    err << "dgm: stopped by " << signal_name(sig) << " at step " << result.steps << "; checkpoint saved. Continue with: dgm train "
        << args.model << " --resume " << options.out_dir << "\n";
    return 128 + sig;
  }
  print_nll(out, result.label, result.test_nll, result.unit);
  return 0;
}

// ---- eval -------------------------------------------------------------------------------------------

// `dgm eval MODEL --classify`: p(y | x) = p(x | y) p(y) / p(x) for every test image, p(y) the training
// split's label frequencies (train/classify.h). Prints the conditional NLL, the accuracy, the
// confusion matrix and the marginal -log p(x), comparable with an unconditional model's test_nll.
int run_classify(models::GenerativeModel& model, const std::string& src, const Dataset& test, const CliArgs& args, std::ostream& out,
                 std::ostream& err) {
  const int64_t K = model.num_classes();
  if (K == 0) throw UsageError(cat("--classify: the checkpoint's ", args.model, " is not conditional (train it with --conditional true)"));
  if (model.objective() != models::Objective::ExactNLL)
    throw UsageError(cat("--classify: ", args.model, " has no exact likelihood p(x | y) to classify with"));
  const Dataset train = Dataset::from_mnist(data::load_mnist(src, data::Split::Train), model.data_kind(), model.height(), model.width());
  const std::vector<double> prior = label_prior(train, K);
  const ClassifierResult r = classify(model, test, prior, args.batch, 0, args.quiet, &err);
  const models::DataKind kind = model.data_kind();
  const std::string unit = models::nll_unit(kind);
  print_nll(out, "test_nll", to_report_unit(r.conditional_nll, kind), unit + " (-log p(x | y), the true label)");
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4f", r.accuracy);
  out << "accuracy " << buf << " (" << r.images << " test images, argmax_y p(y | x), p(y) = training label frequencies)\n";
  out << "confusion (rows: true label, columns: predicted)\n     ";
  for (int64_t y = 0; y < K; ++y) out << std::setw(6) << y;
  out << "\n";
  for (int64_t t = 0; t < K; ++t) {
    out << std::setw(5) << t;
    for (int64_t y = 0; y < K; ++y) out << std::setw(6) << r.confusion[static_cast<size_t>(t * K + y)];
    out << "\n";
  }
  print_nll(out, "marginal_nll", to_report_unit(r.marginal_nll, kind), unit + " (-log p(x) = -log sum_y p(x | y) p(y))");
  return 0;
}

int run_eval(const CliArgs& args, std::ostream& out, std::ostream& err) {
  if (args.has("data")) check_data_source(args.data);
  LoadedModel loaded = load_checkpoint_model(args, err);
  if (args.classify && loaded.model->num_classes() == 0)
    throw UsageError(cat("--classify: the checkpoint's ", args.model, " is not conditional (train it with --conditional true)"));
  const std::string src = args.has("data") ? args.data : metadata_or(loaded.metadata, "data", "");
  const data::MnistData test = data::load_mnist(src, data::Split::Test);
  const models::DataKind kind = loaded.model->data_kind();
  // resized to the model's size when it differs, as in training
  const Dataset test_set = Dataset::from_mnist(test, kind, loaded.model->height(), loaded.model->width());
  if (args.classify) return run_classify(*loaded.model, src, test_set, args, out, err);
  DataLoader loader(test_set, {.batch_size = args.batch, .shuffle = false, .drop_last = false});
  const double nll = to_report_unit(test_nll_nats(*loaded.model, loader, args.quiet, &err), kind);
  if (!std::isfinite(nll)) throw Error(cat(loaded.file, ": the test NLL is ", nll, "; ", first_nonfinite(*loaded.model, loader)));
  print_nll(out, models::objective_label(loaded.model->objective()), nll, models::nll_unit(kind));
  return 0;
}

// ---- sample -----------------------------------------------------------------------------------------
int run_sample(const CliArgs& args, std::ostream& out, std::ostream& err) {
  if (args.has("data")) check_data_source(args.data);
  LoadedModel loaded = load_checkpoint_model(args, err);
  models::GenerativeModel& model = *loaded.model;
  const int64_t rows = model.height(), cols = model.width(), dim = rows * cols;
  const std::string folder = fs::path(loaded.file).parent_path().string();
  const std::string png = args.has("out") ? args.out : (fs::path(folder) / (args.complete ? "complete.png" : "sample.png")).string();
  // The picture never replaces an input: the checkpoint, or anything in the data folder.
  if (train::same_path(png, loaded.file))
    throw UsageError(cat("--out ", png, " is the checkpoint itself; writing the samples there would destroy it"));
  const std::string data_src = args.has("data") ? args.data : metadata_or(loaded.metadata, "data", "");
  if (const std::string data_dir = data_src.empty() ? "" : data::resolve_mnist_dir(data_src);
      !data_dir.empty() && train::inside(png, data_dir))
    throw UsageError(cat("--out ", png, " is inside the data folder ", data_dir));
  Generator gen(args.seed);
  NoGradGuard no_grad;

  const int64_t classes = model.num_classes();
  if (args.label && classes == 0) throw UsageError(cat("--label: the checkpoint's ", args.model, " is not conditional (it takes no label)"));
  if (args.label && *args.label >= classes)
    throw UsageError(cat("--label ", *args.label, ": the model's labels are 0..", classes - 1));
  if (!args.complete) {
    if (classes > 0 && !args.label) {  // a conditional model without --label: one row per class
      const int64_t per_class = std::max<int64_t>(1, args.n / classes), n = per_class * classes;
      std::vector<int64_t> labels(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = i / per_class;
      Tensor samples = model.sample(n, gen, {.labels = from_vector(labels, {n}), .temperature = args.temperature});  // (n, D)
      save_samples_png(png, samples, model.data_kind(), rows, cols, static_cast<int>(classes));
      out << "wrote " << n << " samples (" << per_class << " per class, one row per class 0.." << classes - 1 << ") to " << png << "\n";
      return 0;
    }
    models::SampleOptions options;
    options.temperature = args.temperature;
    if (args.label) options.labels = full({args.n}, static_cast<double>(*args.label), {.dtype = DType::Int64});
    Tensor samples = model.sample(args.n, gen, options);  // (n, D)
    save_samples_png(png, samples, model.data_kind(), rows, cols);
    out << "wrote " << args.n << " samples" << (args.label ? cat(" of class ", *args.label) : std::string()) << " to " << png << "\n";
    return 0;
  }

  // Autocompletion: n test images, spread evenly over the split (it is ordered by digit, so the first
  // n would all be zeros), keep their first K pixels; the model samples the rest.
  const int64_t k = *args.complete;
  if (k > dim) throw UsageError(cat("--complete ", k, ": the images have only ", dim, " pixels"));
  const std::string src = args.has("data") ? args.data : metadata_or(loaded.metadata, "data", "");
  const data::MnistData test = data::load_mnist(src, data::Split::Test);
  if (args.n > test.n) throw UsageError(cat("--n ", args.n, ": the test split has only ", test.n, " images to complete"));
  std::vector<int64_t> picks;  // image i * test.n / n for i < n
  for (int64_t i = 0; i < args.n; ++i) picks.push_back(i * test.n / args.n);
  models::Batch given_batch = Dataset::from_mnist(test, model.data_kind(), rows, cols).gather(picks);  // x (n, D), labels
  if (args.label) given_batch.y = full({args.n}, static_cast<double>(*args.label), {.dtype = DType::Int64});  // complete as class Y
  const Tensor& x = given_batch.x;
  Tensor completed = model.complete(given_batch, k, gen);  // (n, D)
  if (completed.dim() != 2 || completed.size(0) != args.n || completed.size(1) != dim)
    throw ShapeError(cat("complete: expected (", args.n, ", ", dim, "), got ", shape_str(completed.shape())));

  // The grid: the kept pixels (the rest mid-grey) in the top half, the completions below, both on
  // 0..255 grey levels (binary data scaled by 255).
  const double scale = model.data_kind() == models::DataKind::Binary ? 255 : 1;
  const int64_t grid_cols = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(args.n))));
  const int64_t half_rows = (args.n + grid_cols - 1) / grid_cols, half = half_rows * grid_cols;
  std::vector<uint8_t> pixels(static_cast<size_t>(2 * half * dim), tools::kGridPaddingLevel);
  const std::vector<double> given = x.to_vector<double>(), filled = completed.to_vector<double>();
  for (int64_t i = 0; i < args.n; ++i)
    for (int64_t d = 0; d < dim; ++d) {
      const size_t at = static_cast<size_t>(i * dim + d);
      pixels[i * dim + d] = d < k ? static_cast<uint8_t>(std::clamp(given[at] * scale, 0.0, 255.0)) : 128;
      pixels[(half + i) * dim + d] = static_cast<uint8_t>(std::clamp(filled[at] * scale, 0.0, 255.0));
    }
  tools::save_image_grid(png, pixels, 2 * half, rows, cols, static_cast<int>(2 * half_rows), 2, 2, 255);
  out << "wrote " << args.n << " completions of the first " << k << " pixels of test images to " << png << "\n";
  return 0;
}

// ---- the command line -------------------------------------------------------------------------------
int run_cli(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  try {
    const CliArgs args = parse_args(argv);
    if (args.help) {
      out << usage(args.command);
      if (!args.model.empty() && (args.command == Command::Train || args.command == Command::Eval || args.command == Command::Sample))
        describe_model(args.model, out);
      return 0;
    }
    apply_thread_count(args);
    switch (args.command) {
      case Command::Train: return run_train(args, out, err);
      case Command::Eval: return run_eval(args, out, err);
      case Command::Sample: return run_sample(args, out, err);
      case Command::Bench: run_bench(args.names, out); return 0;
      case Command::Lecture: {
        const lectures::Lecture* lecture = lectures::find_lecture(args.lecture);
        if (lecture == nullptr) throw UsageError(cat("dgm lecture: no lecture ", args.lecture, " (", lectures::available(), ")"));
        lectures::Options opt;
        opt.out_dir = args.out.empty() ? lectures::default_out_dir(*lecture) : args.out;
        opt.seed = args.seed;
        opt.quiet = args.quiet;
        opt.data = args.data;
        opt.checkpoint = args.checkpoint;
        const std::string module = args.names.empty() ? "" : args.names[0];
        if (!module.empty() && lecture->find(module) == nullptr)
          throw UsageError(cat("dgm lecture ", args.lecture, ": unknown module '", module, "' (see dgm lecture ", args.lecture, " --help)"));
        lectures::run(*lecture, module, opt);
        return 0;
      }
      case Command::None: break;
    }
    throw UsageError("missing command (see dgm --help)");
  } catch (const UsageError& e) {
    err << "dgm: error: " << one_line(e.what()) << "\n";
    return 2;
  } catch (const std::exception& e) {  // dgm::Error and anything else (std::bad_alloc, a JSON error, ...)
    err << "dgm: error: " << one_line(e.what()) << "\n";
    return 1;
  } catch (...) {
    err << "dgm: error: unknown exception\n";
    return 1;
  }
}

}  // namespace dgm::cli
