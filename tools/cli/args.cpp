// The `dgm` command-line grammar; see args.h.
#include <dgm/tools/cli/args.h>

#include <dgm/lectures/common/lecture.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>

#include <dgm/models/registry.h>
#include <dgm/train/trainer.h>

namespace dgm::cli {

namespace {

// Which commands accept a flag. Model flags (below) belong to `train` only.
struct FlagSpec {
  const char* name;
  bool takes_value;
  std::vector<Command> commands;
};

const std::vector<FlagSpec>& flag_specs() {
  using C = Command;
  static const std::vector<FlagSpec> specs = {
      {"data", true, {C::Train, C::Eval, C::Sample, C::Lecture}},
      {"steps", true, {C::Train}},
      {"epochs", true, {C::Train}},
      {"batch", true, {C::Train, C::Eval}},
      {"lr", true, {C::Train}},
      {"lr-schedule", true, {C::Train}},
      {"warmup", true, {C::Train}},
      {"seed", true, {C::Train, C::Sample, C::Lecture}},
      {"threads", true, {C::Train, C::Eval, C::Sample, C::Bench, C::Lecture}},
      {"out", true, {C::Train, C::Sample, C::Lecture}},
      {"resume", true, {C::Train}},
      {"save-every", true, {C::Train}},
      {"quiet", false, {C::Train, C::Eval, C::Sample, C::Bench, C::Lecture}},
      {"detect-anomaly", false, {C::Train}},
      {"overwrite", false, {C::Train}},
      {"max-memory", true, {C::Train, C::Eval, C::Sample}},
      {"checkpoint", true, {C::Eval, C::Sample, C::Lecture}},
      {"n", true, {C::Train, C::Sample}},
      {"complete", true, {C::Sample}},
      {"label", true, {C::Sample}},
      {"classify", false, {C::Eval}},
      {"temperature", true, {C::Sample}},
  };
  return specs;
}

// The model flags every course model understands; each is a positive integer.
const std::vector<std::string>& known_model_flags() {
  static const std::vector<std::string> flags = {"embed-dim", "heads", "layers", "hidden", "context", "filters", "blocks"};
  return flags;
}

const FlagSpec* find_flag(const std::string& name) {
  for (const FlagSpec& s : flag_specs())
    if (name == s.name) return &s;
  return nullptr;
}

bool accepts(const FlagSpec& spec, Command c) {
  return std::find(spec.commands.begin(), spec.commands.end(), c) != spec.commands.end();
}

// "lecture01" -> 1: the old spelling of `dgm lecture 1`, kept as an alias; 0 for anything else.
int lecture_alias(const std::string& word) {
  if (word.size() != 9 || word.rfind("lecture", 0) != 0 || !std::isdigit(static_cast<unsigned char>(word[7])) ||
      !std::isdigit(static_cast<unsigned char>(word[8])))
    return 0;
  return (word[7] - '0') * 10 + (word[8] - '0');
}

Command parse_command(const std::string& word) {
  static const std::map<std::string, Command> commands = {{"train", Command::Train},   {"eval", Command::Eval},
                                                          {"sample", Command::Sample}, {"bench", Command::Bench},
                                                          {"lecture", Command::Lecture}};
  auto it = commands.find(word);
  if (it != commands.end()) return it->second;
  if (lecture_alias(word) > 0) return Command::Lecture;
  throw UsageError(cat("unknown command '", word, "' (expected train, eval, sample, bench or lecture; see dgm --help)"));
}

// A model flag's value as JSON: an integer, a number, true/false, or else a string.
nlohmann::json config_value(const std::string& value) {
  int64_t i = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), i);
  if (ec == std::errc() && end == value.data() + value.size()) return i;
  if (!value.empty()) {
    char* stop = nullptr;
    errno = 0;
    double d = std::strtod(value.c_str(), &stop);
    if (errno == 0 && *stop == '\0' && std::isfinite(d)) return d;
  }
  if (value == "true") return true;
  if (value == "false") return false;
  return value;
}

size_t parse_bytes(const std::string& flag, const std::string& value);

void set_flag(CliArgs& a, const std::string& name, const std::string& value) {
  if (name == "data") a.data = value;
  else if (name == "steps") a.steps = parse_int("--steps", value);
  else if (name == "epochs") a.epochs = parse_int("--epochs", value);
  else if (name == "batch") a.batch = parse_int("--batch", value);
  else if (name == "lr") a.lr = parse_double("--lr", value);
  else if (name == "lr-schedule") {
    if (!train::is_lr_schedule(value)) throw UsageError(cat("--lr-schedule: expected constant or cosine, got '", value, "'"));
    a.lr_schedule = value;
  } else if (name == "warmup") {
    a.warmup = parse_int("--warmup", value);
    if (a.warmup < 0) throw UsageError(cat("--warmup: expected a non-negative number of steps, got '", value, "'"));
  }
  else if (name == "seed") {
    int64_t s = parse_int("--seed", value);
    if (s < 0) throw UsageError(cat("--seed: expected a non-negative integer, got '", value, "'"));
    a.seed = static_cast<uint64_t>(s);
  } else if (name == "threads") {
    int64_t t = parse_int("--threads", value);
    if (t < 1 || t > 4096) throw UsageError(cat("--threads: expected an integer in 1..4096, got '", value, "'"));
    a.threads = static_cast<int>(t);
  } else if (name == "out") a.out = value;
  else if (name == "resume") a.resume = value;
  else if (name == "save-every") a.save_every = parse_int("--save-every", value);
  else if (name == "checkpoint") a.checkpoint = value;
  else if (name == "n") a.n = parse_int("--n", value);
  else if (name == "complete") a.complete = parse_int("--complete", value);
  else if (name == "temperature") a.temperature = parse_double("--temperature", value);
  else if (name == "label") a.label = parse_int("--label", value);
  else if (name == "max-memory") a.max_memory = parse_bytes("--max-memory", value);
}

// "512M", "16G", "1T" or a plain number of bytes -> bytes; UsageError otherwise.
size_t parse_bytes(const std::string& flag, const std::string& value) {
  std::string digits = value;
  double scale = 1;
  if (!digits.empty() && std::isalpha(static_cast<unsigned char>(digits.back()))) {
    const char unit = static_cast<char>(std::toupper(static_cast<unsigned char>(digits.back())));
    scale = unit == 'K' ? 1024.0 : unit == 'M' ? 1024.0 * 1024 : unit == 'G' ? 1024.0 * 1024 * 1024 : unit == 'T' ? 1024.0 * 1024 * 1024 * 1024 : 0;
    digits.pop_back();
  }
  int64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (scale == 0 || digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || n < 1 || n * scale > 1e15)
    throw UsageError(cat(flag, ": expected a size such as 512M, 16G or 1T (at most 1e15 bytes), got '", value, "'"));
  return static_cast<size_t>(n * scale);
}

void require_positive(const std::string& flag, int64_t v) {
  if (v < 1) throw UsageError(cat(flag, ": expected a positive integer, got ", v));
}

// Checks that do not depend on the order of the flags.
void validate(const CliArgs& a) {
  if (a.has("steps")) require_positive("--steps", a.steps);
  if (a.has("epochs")) require_positive("--epochs", a.epochs);
  if (a.has("steps") && a.has("epochs")) throw UsageError("--steps and --epochs exclude each other: give one of them");
  require_positive("--batch", a.batch);
  if (!(a.lr > 0)) throw UsageError(cat("--lr: expected a positive number, got ", a.lr));
  if (a.save_every < 0) throw UsageError(cat("--save-every: expected a non-negative integer, got ", a.save_every));
  require_positive("--n", a.n);
  if (!(a.temperature > 0) || !std::isfinite(a.temperature))
    throw UsageError(cat("--temperature: expected a positive number, got ", a.temperature));
  if (a.n > 10000) throw UsageError(cat("--n: at most 10000 images fit in a grid, got ", a.n));
  if (a.complete && *a.complete < 0) throw UsageError(cat("--complete: expected a non-negative integer, got ", *a.complete));
  if (a.label && *a.label < 0) throw UsageError(cat("--label: expected a class label >= 0, got ", *a.label));
  const std::pair<const char*, const std::string*> paths[] = {{"out", &a.out}, {"resume", &a.resume}, {"checkpoint", &a.checkpoint}};
  for (const auto& [flag, value] : paths)
    if (a.has(flag) && value->empty()) throw UsageError(cat("--", flag, ": expected a path, got an empty string"));
  const bool needs_model = a.command == Command::Train || a.command == Command::Eval || a.command == Command::Sample;
  if (needs_model && a.model.empty())
    throw UsageError(cat("dgm ", command_name(a.command), ": missing MODEL (see dgm ", command_name(a.command), " --help)"));
  if ((a.command == Command::Eval || a.command == Command::Sample) && a.checkpoint.empty())
    throw UsageError(cat("dgm ", command_name(a.command), ": missing --checkpoint FILE"));
  if (a.command == Command::Lecture && a.lecture == 0) throw UsageError(cat("dgm lecture: missing the lecture number N (", lectures::available(), ")"));
  if (a.command == Command::Lecture && a.names.size() > 1)
    throw UsageError(cat("dgm lecture ", a.lecture, ": expected at most one MODULE, got ", a.names.size()));
  if (a.command == Command::Train && !a.resume.empty() && !a.model_config.empty())
    throw UsageError(cat("dgm train --resume: the model's hyper-parameters come from the checkpoint; drop --",
                         a.model_config.begin().key()));
}

}  // namespace

const char* command_name(Command c) {
  switch (c) {
    case Command::Train: return "train";
    case Command::Eval: return "eval";
    case Command::Sample: return "sample";
    case Command::Bench: return "bench";
    case Command::Lecture: return "lecture";
    case Command::None: break;
  }
  return "";
}

std::string flag_to_config_key(const std::string& flag) {
  std::string key = flag;
  while (!key.empty() && key.front() == '-') key.erase(key.begin());
  std::replace(key.begin(), key.end(), '-', '_');
  return key;
}

int64_t parse_int(const std::string& flag, const std::string& value) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size())
    throw UsageError(cat(flag, ": expected an integer, got '", value, "'"));
  return v;
}

double parse_double(const std::string& flag, const std::string& value) {
  char* stop = nullptr;
  errno = 0;
  double v = value.empty() ? 0 : std::strtod(value.c_str(), &stop);
  if (value.empty() || errno != 0 || *stop != '\0' || !std::isfinite(v))
    throw UsageError(cat(flag, ": expected a number, got '", value, "'"));
  return v;
}

namespace {

// What --help needs from a line that does not parse: the command and the model, if recognisable.
CliArgs help_request(const std::vector<std::string>& args) {
  CliArgs a;
  a.help = true;
  std::vector<std::string> words;
  for (const std::string& w : args)
    if (!w.empty() && w[0] != '-') words.push_back(w);
  if (words.empty()) return a;
  try {
    a.command = parse_command(words[0]);
    a.lecture = lecture_alias(words[0]);
  } catch (const UsageError&) {
    return a;  // the overview
  }
  if (a.command == Command::Lecture && a.lecture == 0 && words.size() > 1) {
    int number = 0;
    auto [end, ec] = std::from_chars(words[1].data(), words[1].data() + words[1].size(), number);
    if (ec == std::errc() && end == words[1].data() + words[1].size()) a.lecture = number;
  }
  if (words.size() > 1 && (a.command == Command::Train || a.command == Command::Eval || a.command == Command::Sample))
    a.model = words[1];
  return a;
}

CliArgs parse_strict(const std::vector<std::string>& args) {
  CliArgs a;
  std::vector<std::string> positional;
  bool only_positional = false;  // after "--"
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word == "--help" || word == "-h") {
      a.help = true;
      continue;
    }
    if (only_positional || word.size() < 2 || word[0] != '-' || (word[1] != '-' && !std::isalpha(static_cast<unsigned char>(word[1])))) {
      // A positional word: the command, then its arguments. ("-1" is a word, not a flag.)
      if (a.command == Command::None) {
        a.command = parse_command(word);
        a.lecture = lecture_alias(word);
      } else {
        positional.push_back(word);
      }
      continue;
    }
    if (word == "--") {
      only_positional = true;
      continue;
    }
    if (word[1] != '-') throw UsageError(cat("unknown flag '", word, "' (flags are spelled --name; see dgm --help)"));
    // --name VALUE or --name=VALUE
    std::string name = word.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    if (name.empty()) throw UsageError(cat("unknown flag '", word, "'"));
    if (a.command == Command::None)
      throw UsageError(cat("flag --", name, " given before the command (write: dgm COMMAND [flags]; see dgm --help)"));
    auto take_value = [&]() -> std::string {
      if (inline_value) return value;
      if (i + 1 >= args.size()) throw UsageError(cat("--", name, ": missing value"));
      return args[++i];
    };
    if (const FlagSpec* spec = find_flag(name)) {
      if (!accepts(*spec, a.command))
        throw UsageError(cat("dgm ", command_name(a.command), " does not take --", name, " (see dgm ", command_name(a.command), " --help)"));
      if (a.given.count(name)) throw UsageError(cat("--", name, " given twice"));
      a.given.insert(name);
      if (!spec->takes_value) {
        if (inline_value) throw UsageError(cat("--", name, " takes no value, got '", value, "'"));
        if (name == "quiet") a.quiet = true;
        if (name == "detect-anomaly") a.detect_anomaly = true;
        if (name == "overwrite") a.overwrite = true;
        if (name == "classify") a.classify = true;
        continue;
      }
      set_flag(a, name, take_value());
      continue;
    }
    // Anything else is a model hyper-parameter, which only `train` takes.
    if (a.command != Command::Train) throw UsageError(cat("unknown flag --", name, " for dgm ", command_name(a.command), " (see dgm ", command_name(a.command), " --help)"));
    const std::string key = flag_to_config_key(name);
    if (a.model_config.contains(key)) throw UsageError(cat("--", name, " given twice"));
    const std::string v = take_value();
    const auto& known = known_model_flags();
    if (std::find(known.begin(), known.end(), name) != known.end()) {
      int64_t n = parse_int("--" + name, v);
      require_positive("--" + name, n);
      a.model_config[key] = n;
    } else {
      a.model_config[key] = config_value(v);
    }
    a.given.insert(name);
  }
  const bool takes_model = a.command == Command::Train || a.command == Command::Eval || a.command == Command::Sample;
  if (takes_model && !positional.empty()) a.model = positional[0];
  if (!takes_model) a.names = positional;
  if (a.command == Command::Lecture && a.lecture == 0 && !a.names.empty()) {  // dgm lecture N [MODULE]
    const std::string n = a.names.front();
    int64_t number = 0;
    auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), number);
    if (ec != std::errc() || end != n.data() + n.size() || number < 1 || number > 99)
      throw UsageError(cat("dgm lecture: expected a lecture number N, got '", n, "' (", lectures::available(), ")"));
    a.lecture = static_cast<int>(number);
    a.names.erase(a.names.begin());
  }
  if (a.help) return a;  // --help wins over everything else on the line

  if (a.command == Command::None) throw UsageError("missing command (train, eval, sample, bench or lecture; see dgm --help)");
  if (takes_model && positional.size() > 1)
    throw UsageError(cat("dgm ", command_name(a.command), ": unexpected argument '", positional[1], "' (one MODEL only)"));
  validate(a);
  return a;
}

}  // namespace

CliArgs parse_args(const std::vector<std::string>& args) {
  // `dgm help [COMMAND]` is `dgm [COMMAND] --help`.
  if (!args.empty() && args[0] == "help") return help_request(std::vector<std::string>(args.begin() + 1, args.end()));
  try {
    return parse_strict(args);
  } catch (const UsageError&) {
    // --help anywhere on the line wins over a mistake elsewhere on it.
    if (std::find(args.begin(), args.end(), "--help") != args.end() || std::find(args.begin(), args.end(), "-h") != args.end())
      return help_request(args);
    throw;
  }
}

// ---- usage text ---------------------------------------------------------------------------------

namespace {

std::string model_list() {
  std::ostringstream os;
  os << "Models:\n";
  try {
    const auto& models = models::registry();
    if (models.empty()) os << "  (none registered yet)\n";
    size_t width = 0;
    for (const auto& m : models) width = std::max(width, m.name.size());
    for (const auto& m : models) os << "  " << m.name << std::string(width - m.name.size() + 2, ' ') << m.description << "\n";
  } catch (const std::exception& e) {
    os << "  (the model registry failed: " << e.what() << ")\n";
  }
  return os.str();
}

// "1 epoch at lr 0.001; imagegpt 6 epochs at lr 0.003": the training defaults of the registered models.
std::string default_budgets() {
  auto budget = [](const models::TrainDefaults& d) {
    return cat(d.epochs, d.epochs == 1 ? " epoch" : " epochs", " at lr ", d.lr, d.lr_schedule == "constant" ? "" : cat(" (", d.lr_schedule, ")"),
               d.warmup > 0 ? cat(", warm-up ", d.warmup) : "");
  };
  const models::TrainDefaults usual;
  std::ostringstream os;
  os << budget(usual);
  try {
    for (const auto& m : models::registry())
      if (m.train_defaults.epochs != usual.epochs || m.train_defaults.lr != usual.lr || m.train_defaults.conditional_epochs > 0 ||
          m.train_defaults.lr_schedule != usual.lr_schedule || m.train_defaults.warmup != usual.warmup) {
        os << "; " << m.name << " " << budget(m.train_defaults);
        if (m.train_defaults.conditional_epochs > 0) os << " (" << m.train_defaults.conditional_epochs << " with --conditional true)";
      }
  } catch (const std::exception&) {
  }
  return os.str();
}

const char* kCommonFlags =
    "  --threads T         OpenMP threads (default: env DGM_NUM_THREADS, else all cores)\n"
    "  --quiet             no progress bar or progress messages on stderr\n"
    "  -h, --help          this text\n";

}  // namespace

std::string usage(Command command) {
  std::ostringstream os;
  switch (command) {
    case Command::None:
      os << "dgm: deep generative models from scratch, on the command line.\n\n"
            "Usage: dgm COMMAND [ARGS] [FLAGS]\n\n"
            "Commands:\n"
            "  train MODEL             train a model on MNIST; writes a checkpoint, samples, curves and a log\n"
            "  eval MODEL --checkpoint F [--classify]\n"
            "                          test NLL of a checkpoint (nats/dim for binary data, bits/dim for 8-bit);\n"
            "                          --classify: a conditional model as a classifier, p(y | x) by Bayes' rule\n"
            "  sample MODEL --checkpoint F [--n N] [--complete K] [--label Y] [--temperature T]\n"
            "                          draw samples (or complete test images) into a PNG grid\n"
            "  bench [NAME...]         speed figures, NAME VALUE UNIT per line (comparable with PyTorch's)\n"
            "  lecture N [MODULE]      the demonstrations of lecture N (lecture01 = lecture 1)\n\n"
            "`dgm COMMAND --help` describes a command's flags.\n\n"
         << model_list()
         << "\nExit codes: 0 success, 1 error while running, 2 bad command line.\n";
      break;
    case Command::Train:
      os << "Usage: dgm train MODEL [FLAGS] [--MODEL-KEY VALUE...]\n\n"
            "Trains MODEL with Adam on the training split, evaluates the test NLL at the end of every epoch\n"
            "(and at the end of the run) and writes into --out:\n"
            "  model.safetensors   weights + optimiser and data-order state (every epoch, every --save-every steps)\n"
            "  samples.png         a grid of --n samples     curves.svg   train loss per step, test NLL per epoch\n"
            "  curves-time.svg     the same curves against seconds of training\n"
            "  log.csv             step,epoch,train_loss,test_nll,seconds (losses in the unit of the final line)\n"
            "and ends with the line `test_nll VALUE nats/dim` (binary data) or `... bits/dim` (8-bit data).\n\n"
            "Flags:\n"
            "  --data SRC          \"\" or mnist (embedded 10k digits, default), fashion-mnist, or an MNIST folder\n"
            "  --steps N           train N steps (batches), or\n"
            "  --epochs N          train N passes over the training split (default: the model's, see below)\n"
            "  --batch B           batch size (default 32)\n"
            "  --lr X              Adam learning rate (default: the model's, see below)\n"
            "  --lr-schedule S     constant, or cosine: the lr falls to 0 along half a cosine over the run\n"
            "                      (default: the model's, see below)\n"
            "  --warmup N          first N steps: the lr rises linearly to --lr (default: the model's, mostly 0)\n"
            "  --seed S            seed of the initial weights, the data order and the samples (default 0)\n"
            "  --out DIR           run folder (default runs/MODEL-YYYYmmdd-HHMMSS)\n"
            "  --resume PATH       continue a run exactly where it stopped: its folder or its checkpoint\n"
            "                      (the model, data, batch and seed come from the checkpoint; --steps/--epochs\n"
            "                      set a new total, --lr a new learning rate, --lr-schedule / --warmup a new\n"
            "                      schedule; --out defaults to the run folder)\n"
            "  --save-every N      also save the checkpoint every N steps (default: at epoch ends only)\n"
            "  --overwrite         replace the run already in --out (without it, dgm train refuses to)\n"
            "  --max-memory SIZE   memory a model may take while built, e.g. 16G (default 8G, or DGM_MAX_MEMORY)\n"
            "  --n N               samples in samples.png (default 64)\n"
            "  --detect-anomaly    stop at the first NaN/Inf in forward or backward, naming the op (slower)\n"
         << kCommonFlags
         << "\nDefaults without --steps/--epochs, --lr and --lr-schedule/--warmup: " << default_budgets() << "\n"
         << "\nModel flags (the model's config keys; any other --some-key VALUE sets the key some_key):\n"
            "  --embed-dim D  --heads H  --layers L  --hidden H  --context C  --filters F  --blocks B\n\n"
         << model_list();
      break;
    case Command::Eval:
      os << "Usage: dgm eval MODEL --checkpoint FILE [FLAGS]\n\n"
            "Prints `test_nll VALUE nats/dim` (binary data) or `test_nll VALUE bits/dim` (8-bit data): the\n"
            "mean negative log-likelihood per pixel on the test split, rebuilt from the checkpoint's config.\n\n"
            "Flags:\n"
            "  --checkpoint FILE   a model.safetensors written by dgm train (or its run folder)\n"
            "  --data SRC          test data (default: the data the checkpoint was trained on)\n"
            "  --batch B           evaluation batch size (default 32; with --classify, images per batch, each\n"
            "                      scored under every label)\n"
            "  --classify          for a conditional model (--conditional true): p(y | x) = p(x | y) p(y) / p(x)\n"
            "                      for every test image, with p(y) the training split's label frequencies;\n"
            "                      prints the accuracy, the confusion matrix and the marginal -log p(x)\n"
         << kCommonFlags << "\n"
         << model_list();
      break;
    case Command::Sample:
      os << "Usage: dgm sample MODEL --checkpoint FILE [--n N] [--complete K] [--label Y] [--temperature T] [FLAGS]\n\n"
            "Draws N samples into a PNG grid. With --complete K, takes the first N test images, keeps their\n"
            "first K pixels (raster order) and samples the rest: the grid shows the kept pixels (the rest\n"
            "grey) above the completions.\n\n"
            "Flags:\n"
            "  --checkpoint FILE   a model.safetensors written by dgm train (or its run folder)\n"
            "  --n N               number of samples (default 64)\n"
            "  --temperature T     sampling temperature (default 1): a flow scales its base noise by T, an\n"
            "                      autoregressive model divides its logits by T\n"
            "  --complete K        autocompletion from the first K pixels of test images\n"
            "  --label Y           a conditional model's class (a digit 0..9): samples of p(x | y = Y); without\n"
            "                      it a conditional model draws a grid of one row per class\n"
            "  --seed S            sampling seed (default 0)\n"
            "  --out FILE          the PNG (default: sample.png or complete.png next to the checkpoint)\n"
            "  --data SRC          where the test images for --complete come from (default: the checkpoint's)\n"
         << kCommonFlags << "\n"
         << model_list();
      break;
    case Command::Bench:
      os << "Usage: dgm bench [NAME...]\n\n"
            "Prints NAME VALUE UNIT per workload: the median of at least 5 runs after warm-up, the same\n"
            "methodology and names as the PyTorch peer scripts (bench/README.md). Without NAMEs, runs them all:\n"
            "  peak_f32_fma                         GFLOP/s of float32 FMAs from registers (the machine's limit; read before\n"
            "                                       each GEMM and model step, which report their share of the best reading so\n"
            "                                       far; printed last, the best of the run, with the threads, the GEMM kernel\n"
            "                                       and the cache sizes its blocking follows)\n"
            "  gemm_256 gemm_512 gemm_1024          GFLOP/s of an n x n x n float32 product\n"
            "  mlp_ar_step_B16                      ms per Adam step of mlp_ar, batch 16, random 8-bit data\n"
            "  imagegpt_step_B32_d64_h4_l2          ms per Adam step of imagegpt (d 64, 4 heads, 2 layers), batch 32\n"
            "  pixelcnn_step_B32_c64_l5             ms per Adam step of pixelcnn (64 channels, 5 mask-B layers), batch 32 of\n"
            "                                       random binary images\n"
            "  imagegpt_sample16                    s to draw 16 samples from that imagegpt\n"
            "  realnvp_step_B32                     ms per Adam step of realnvp (bench/realnvp_ref.py's architecture), batch 32\n"
            "Workloads whose model is not registered are skipped with a `# ...` note line.\n\n"
            "Flags:\n"
         << kCommonFlags;
      break;
    case Command::Lecture:
      os << "Usage: dgm lecture N [MODULE] [--out DIR] [--seed S] [--data SRC] [--checkpoint A,B] [--quiet]\n\n"
            "Runs the demonstrations of lecture N (all of them, or one MODULE) and writes report.md and\n"
            "figures under --out (default runs/lectureNN). `dgm lecture01` is `dgm lecture 1`. --checkpoint\n"
            "gives trained models (run folders of dgm train, comma-separated) to modules that can use them\n"
            "instead of their own short runs (lecture 1 conditional: a conditional imagegpt / pixelcnn).\n";
      for (const lectures::Lecture& l : lectures::all()) {
        os << "\nLecture " << l.number << ", " << l.title << ". Modules:\n";
        for (const auto& m : l.modules) os << "  " << m.info.name << std::string(m.info.name.size() < 14 ? 14 - m.info.name.size() : 1, ' ') << m.info.title << "\n";
      }
      os << "\nFlags:\n" << kCommonFlags;
      break;
  }
  return os.str();
}

}  // namespace dgm::cli
