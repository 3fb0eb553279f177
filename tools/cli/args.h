// The `dgm` command line, parsed into a plain struct. A small hand-written parser rather than a
// library: the whole grammar fits on one screen, and it lets every model take its own flags
// (`--embed-dim 64` becomes the model config key "embed_dim": 64).
//
//   dgm train MODEL [flags]                 dgm eval MODEL --checkpoint F
//   dgm sample MODEL --checkpoint F --n N [--complete K] [--label Y]
//   dgm eval MODEL --checkpoint F --classify   (a conditional model as a classifier)
//   dgm bench [NAME...]                     dgm lecture N [MODULE]   (dgm lecture01 = dgm lecture 1)
//
// Flags take a value as `--flag VALUE` or `--flag=VALUE`. A mistake on the command line (an unknown
// flag, a non-numeric or out-of-range value, a missing argument) is a UsageError: `dgm` prints it as
// one line `dgm: error: ...` on stderr and exits with code 2.
#pragma once
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <dgm/tensor/errors.h>

namespace dgm::cli {

// A mistake on the command line (exit code 2), as opposed to a failure while running (exit code 1).
struct UsageError : Error {
  using Error::Error;
};

enum class Command { None, Train, Eval, Sample, Bench, Lecture };
const char* command_name(Command c);  // "train", ...; "" for None

struct CliArgs {
  Command command = Command::None;
  bool help = false;                  // --help / -h anywhere, or `dgm help [COMMAND]`
  std::string model;                  // train / eval / sample
  std::vector<std::string> names;     // bench workloads, or the lecture module
  int lecture = 0;                    // dgm lecture N: N (0 = not given)

  // common flags (defaults as in the usage text)
  std::string data;                   // --data: "" = the embedded 10k digits
  int64_t steps = 0, epochs = 0;      // at most one of them > 0; neither = the model's default (train_epochs)
  int64_t batch = 32;
  double lr = 1e-3;                   // without --lr, dgm train uses the model's default (train_lr)
  std::string lr_schedule = "constant";  // --lr-schedule constant|cosine; without it, the model's default
  int64_t warmup = 0;                 // --warmup N: steps of linear lr warm-up; without it, the model's default
  uint64_t seed = 0;
  int threads = 0;                    // 0 = env DGM_NUM_THREADS, else all cores
  std::string out;                    // train: run folder; sample: PNG file
  std::string resume;                 // train: a run folder or a checkpoint file
  int64_t save_every = 0;             // 0 = only at epoch ends and at the end
  bool quiet = false;
  bool detect_anomaly = false;        // train: stop at the first NaN/Inf in forward or backward
  bool overwrite = false;             // train: replace the run already in --out
  size_t max_memory = 0;              // --max-memory: bytes a model may take while built (0: DGM_MAX_MEMORY, else 8 GiB)
  std::string checkpoint;             // eval / sample
  int64_t n = 64;                     // sample: images drawn; train: images in samples.png
  std::optional<int64_t> complete;    // sample: keep the first K pixels of test images
  std::optional<int64_t> label;       // sample: the class y of a conditional model's samples (checked against the model)
  bool classify = false;              // eval: the conditional model as a classifier by Bayes' rule
  double temperature = 1.0;           // sample: base-noise scale of a flow, logit divisor of an AR model

  // Model hyper-parameters: --embed-dim, --heads, --layers, --hidden, --context and any other
  // unrecognised `--some-key VALUE` of `dgm train`, as {"some_key": VALUE}. VALUE becomes a JSON
  // integer, number, true/false or string, whichever it spells.
  nlohmann::json model_config = nlohmann::json::object();

  // Flags present on the command line, by name without dashes ("batch", "lr", ...), so a command
  // can tell a default from an explicit choice (e.g. --resume refuses a different --batch).
  std::set<std::string> given;
  bool has(const std::string& flag) const { return given.count(flag) > 0; }
};

// args: the command line without the program name. Throws UsageError.
CliArgs parse_args(const std::vector<std::string>& args);

// The usage text for one command (Command::None: the overview). Lists the registered models with
// their descriptions where a MODEL argument is taken.
std::string usage(Command command);

// "--embed-dim" -> "embed_dim": how a model flag names its config key.
std::string flag_to_config_key(const std::string& flag);

// Strict number parsing for flag values; UsageError naming the flag otherwise.
int64_t parse_int(const std::string& flag, const std::string& value);
double parse_double(const std::string& flag, const std::string& value);

}  // namespace dgm::cli
