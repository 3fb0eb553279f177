// libFuzzer target: the safetensors reader (nn::load_safetensors). Any byte string must load as a
// consistent file or be refused with a dgm::Error — never a crash, an uncaught std:: exception
// (e.g. a JSON error or std::bad_alloc) or an allocation driven by a header's claimed size.
//
// load_safetensors reads a path, so each input is written to a file in /dev/shm (memory, not
// disk) first; the file is reused across runs and removed at exit.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <dgm/nn/serialize.h>
#include <dgm/tensor/errors.h>

namespace {
// A plain buffer, not a static std::string: the atexit handler runs after static destructors of
// objects constructed before it was registered, and must still find the path.
char g_path[256];

const char* input_path() {
  if (g_path[0] == '\0') {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::snprintf(g_path, sizeof g_path, "%s/dgm_fuzz_safetensors_%d.safetensors", dir, static_cast<int>(getpid()));
    std::atexit([] { std::remove(g_path); });
  }
  return g_path;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = input_path();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  try {
    const dgm::nn::SafetensorsFile file = dgm::nn::load_safetensors(path);
    size_t bytes = 0;
    for (const auto& [name, t] : file.tensors) bytes += static_cast<size_t>(t.numel()) * dgm::itemsize(t.dtype());
    if (bytes > size) __builtin_trap();  // tensors can only hold what the file holds
  } catch (const dgm::Error&) {
    // refused with a message: fine
  }
  return 0;
}
