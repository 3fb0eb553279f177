// What several test files share: a temporary folder per test, and the dgm command run in-process.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <dgm/tools/cli/commands.h>

namespace dgm::testing {

// A fresh, empty folder under the system temp dir (named after the process and `name`), removed
// when the test ends.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name) {
    path = std::filesystem::temp_directory_path() / ("dgm_test_" + std::to_string(getpid()) + "_" + name);
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& file) const { return (path / file).string(); }
};

// `dgm ARGS...` in this process: its exit code and what it wrote to stdout and stderr.
struct CliRun {
  int code;
  std::string out, err;
};
inline CliRun run(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = cli::run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

}  // namespace dgm::testing
