// `dgm bench`; see bench.h.
#include "tools/cli/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "models/registry.h"
#include "nn/optim.h"
#include "tensor/gemm.h"
#include "tools/cli/args.h"

namespace dgm::cli {

namespace {

std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// GFLOP/s of an n x n x n float32 product, row-major operands filled with U(-1, 1).
double gemm_gflops(int64_t n) {
  Generator gen(1);
  std::vector<float> a(static_cast<size_t>(n * n)), b(a.size()), c(a.size());
  for (float& v : a) v = static_cast<float>(2 * gen.uniform() - 1);
  for (float& v : b) v = static_cast<float>(2 * gen.uniform() - 1);
  auto product = [&] { cpu::gemm(n, n, n, 1.0f, a.data(), n, 1, b.data(), n, 1, 0.0f, c.data(), n, 1); };
  const double flops = 2.0 * double(n) * double(n) * double(n);
  const int reps = std::max(5, static_cast<int>(2e9 / flops));  // about 2 GFLOP of timed work in total
  return flops / median_seconds(product, 3, reps) / 1e9;
}

// The registered model `name` built from `config`, or nullptr after printing why it is skipped.
std::shared_ptr<models::GenerativeModel> bench_model(const std::string& workload, const std::string& name,
                                                     const nlohmann::json& config, std::ostream& out) {
  const auto& all = models::registry();
  if (std::none_of(all.begin(), all.end(), [&](const models::ModelInfo& m) { return m.name == name; })) {
    out << "# " << workload << " skipped: no model '" << name << "' in the registry yet\n" << std::flush;
    return nullptr;
  }
  try {
    manual_seed(0);
    return models::create_model(name, config);
  } catch (const std::exception& e) {
    out << "# " << workload << " skipped: " << name << " " << config.dump() << " failed: " << e.what() << "\n" << std::flush;
    return nullptr;
  }
}

// Milliseconds per Adam step (lr 1e-3) on the fixed batch x, as pytorch_ref.py's step().
double adam_step_ms(models::GenerativeModel& model, const Tensor& x) {
  model.train();
  nn::Adam optimizer(model.parameters(), {.lr = 1e-3});
  auto step = [&] {
    optimizer.zero_grad();
    model.loss(x, default_generator()).backward();
    optimizer.step();
  };
  return median_seconds(step, 2, 5) * 1e3;
}

// realnvp (lecture 2): ms per Adam step, batch 32 of random 8-bit images, the default config;
// bench/realnvp_ref.py step 32 times the same model in PyTorch.
void run_realnvp_step(const std::string& name, std::ostream& out) {
  auto model = bench_model(name, "realnvp", nlohmann::json::object(), out);
  if (!model) return;
  Generator gen(0);
  Tensor x = randint(0, 256, {32, 784}, &gen);
  out << name << " " << format("%.1f", adam_step_ms(*model, x)) << " ms\n" << std::flush;
}

void run_one(const std::string& name, std::ostream& out) {
  if (name.rfind("gemm_", 0) == 0) {
    const int64_t n = std::stoll(name.substr(5));
    out << name << " " << format("%.1f", gemm_gflops(n)) << " GFLOP/s\n" << std::flush;
  } else if (name == "mlp_ar_step_B16") {
    auto model = bench_model(name, "mlp_ar", {{"context", 2}, {"hidden", 256}}, out);
    if (!model) return;
    Generator gen(0);
    Tensor x = randint(0, 256, {16, 784}, &gen);  // random 8-bit images
    out << name << " " << format("%.1f", adam_step_ms(*model, x)) << " ms\n" << std::flush;
  } else if (name == "imagegpt_step_B32_d64_h4_l2" || name == "imagegpt_sample16") {
    auto model = bench_model(name, "imagegpt", {{"embed_dim", 64}, {"heads", 4}, {"layers", 2}}, out);
    if (!model) return;
    if (name == "imagegpt_sample16") {
      model->eval();
      NoGradGuard no_grad;
      Generator gen(0);
      const double s = median_seconds([&] { model->sample(16, gen); }, 1, 5);
      out << name << " " << format("%.2f", s) << " s\n" << std::flush;
    } else {
      Generator gen(0);
      Tensor x = (rand({32, 784}, {}, &gen) > 0.8).to(DType::Int64);  // random binary images, 20% ones
      out << name << " " << format("%.1f", adam_step_ms(*model, x)) << " ms\n" << std::flush;
    }
  } else if (name == "realnvp_step_B32") {
    run_realnvp_step(name, out);
  }
}

}  // namespace

const std::vector<std::string>& bench_names() {
  static const std::vector<std::string> names = {"gemm_256",        "gemm_512", "gemm_1024", "mlp_ar_step_B16",
                                                 "imagegpt_step_B32_d64_h4_l2", "imagegpt_sample16",
                                                 "realnvp_step_B32"};
  return names;
}

double median_seconds(const std::function<void()>& fn, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void run_bench(const std::vector<std::string>& names, std::ostream& out) {
  const auto& known = bench_names();
  for (const std::string& name : names)
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
      throw UsageError(cat("dgm bench: unknown workload '", name, "' (known: ", list, ")"));
    }
  for (const std::string& name : names.empty() ? known : names) run_one(name, out);
}

}  // namespace dgm::cli
