// The `dgm` commands, callable in-process (tests run them without spawning the binary):
//
//   int code = dgm::cli::run_cli({"train", "imagegpt", "--steps", "100"}, std::cout, std::cerr);
//
// Results go to `out` (the `test_nll VALUE UNIT` line, bench figures, the path of a sample grid);
// progress bars and messages to `err`. Exit codes: 0 success, 1 an error while running (a dgm::Error
// or any other exception, printed as one line `dgm: error: ...`), 2 a bad command line (UsageError),
// 128 + N stopped by signal N — 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP — after saving a checkpoint.
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include <dgm/tools/cli/args.h>

namespace dgm::cli {

// args: the command line without the program name.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The commands, given parsed arguments. They throw; run_cli turns exceptions into exit codes.
int run_train(const CliArgs& args, std::ostream& out, std::ostream& err);
int run_eval(const CliArgs& args, std::ostream& out, std::ostream& err);
int run_sample(const CliArgs& args, std::ostream& out, std::ostream& err);

// The epochs a new `dgm train` run trains: --epochs N; 0 when --steps is given (the steps decide);
// otherwise the model's default budget, models::ModelInfo::train_defaults. UsageError for an
// unknown model.
int64_t train_epochs(const CliArgs& args);
// Adam's learning rate of a new `dgm train` run: --lr X, else the model's default.
double train_lr(const CliArgs& args);

// "runs/<model>-<YYYYmmdd-HHMMSS>" in local time, with "-2", "-3", ... if that folder exists.
std::string default_run_dir(const std::string& model);

// Applies --threads, else the environment variable DGM_NUM_THREADS (UsageError if malformed), else
// leaves OpenMP's default (all cores).
void apply_thread_count(const CliArgs& args);

}  // namespace dgm::cli
