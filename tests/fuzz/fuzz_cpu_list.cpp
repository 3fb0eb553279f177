// libFuzzer target: the L3 report's CPU-list parser (cpu::cpu_list_covers, fed sysfs's
// shared_cpu_list) must answer any byte string with true or false — never a crash, a hang or a walk
// over a range the list claims — and a list that covers a set of CPUs covers each of them alone.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include <dgm/tensor/gemm.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view list(reinterpret_cast<const char*>(data), size);
  const std::vector<int> cpus = {0, 1, 7, 63, 1023};
  if (dgm::cpu::cpu_list_covers(list, cpus))
    for (int cpu : cpus)
      if (!dgm::cpu::cpu_list_covers(list, {cpu})) __builtin_trap();
  dgm::cpu::cpu_list_covers(list, {});
  return 0;
}
