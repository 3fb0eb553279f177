// libFuzzer target: the `dgm` command-line parser. The input bytes are split into argv words on
// NUL, newline and space; parse_args must return a CliArgs or throw a dgm::Error (UsageError) —
// never crash, hang or throw anything else. The usage text of the parsed command is built too.
//
// Only tools/cli/args.cpp is linked: the model registry and the lecture registry (used by the
// usage text and its messages alone) are replaced by the empty stand-ins below, so the target builds
// in seconds.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <dgm/lectures/common/lecture.h>
#include <dgm/models/registry.h>
#include <dgm/tensor/errors.h>
#include <dgm/tools/cli/args.h>

namespace dgm::models {
const std::vector<ModelInfo>& registry() {
  static const std::vector<ModelInfo> none;
  return none;
}
}  // namespace dgm::models
namespace dgm::lectures {
const std::vector<Lecture>& all() {
  static const std::vector<Lecture> none;
  return none;
}
std::string available() { return "no lectures are registered"; }
}  // namespace dgm::lectures

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> words(1);
  for (size_t i = 0; i < size; ++i) {
    const char c = static_cast<char>(data[i]);
    if (c == '\0' || c == '\n' || c == ' ') {
      if (!words.back().empty()) words.emplace_back();
    } else {
      words.back().push_back(c);
    }
  }
  if (words.back().empty()) words.pop_back();
  try {
    const dgm::cli::CliArgs a = dgm::cli::parse_args(words);
    // What the commands rely on after a successful parse (with --help nothing else is checked or used).
    if (!a.help) {
      if (a.command == dgm::cli::Command::None) __builtin_trap();
      if (a.batch < 1 || a.n < 1 || !(a.lr > 0) || a.steps < 0 || a.epochs < 0 || a.save_every < 0) __builtin_trap();
    }
    (void)dgm::cli::usage(a.command);
  } catch (const dgm::Error&) {
    // refused with a message: fine
  }
  return 0;
}
