// libFuzzer target: the whole checkpoint path (tests/fuzz/checkpoint_harness.h): safetensors bytes
// -> metadata -> model construction (bounded: models::create_model refuses a config that would
// allocate more than 16 MiB here) -> load_state_dict -> one log_prob on a tiny batch. Any byte
// string must run or be refused with a dgm::Error — never a crash, a hang, an uncaught std::
// exception or an allocation driven by a size in the file.
//
// The input is written to a file in /dev/shm (memory, not disk), reused across runs and removed
// at exit, since load_safetensors reads a path.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include <dgm/tests/fuzz/checkpoint_harness.h>

namespace {
char g_path[256];  // a plain buffer: the atexit handler may run after static destructors

const char* input_path() {
  if (g_path[0] == '\0') {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::snprintf(g_path, sizeof g_path, "%s/dgm_fuzz_checkpoint_%d.safetensors", dir, static_cast<int>(getpid()));
    std::atexit([] { std::remove(g_path); });
  }
  return g_path;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* path = input_path();
  FILE* f = std::fopen(path, "wb");
  if (!f) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  try {
    dgm::fuzz::run_checkpoint(path);
  } catch (const dgm::Error&) {
    // refused with a message: fine
  }
  return 0;
}
