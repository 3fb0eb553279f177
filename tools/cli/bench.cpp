// `dgm bench`; see bench.h.
#include <dgm/tools/cli/bench.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <omp.h>

#include <dgm/models/registry.h>
#include <dgm/nn/optim.h>
#include <dgm/tensor/gemm.h>
#include <dgm/tools/cli/args.h>

namespace dgm::cli {

namespace {

std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// `iters` rounds of 12 independent FMA chains in registers on every thread; returns the seconds.
double fma_region(int64_t iters) {
  float sink = 0;
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel reduction(+ : sink)
  {
#if defined(__AVX512F__)
    __m512 a[12], b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < 12; ++k) a[k] = _mm512_set1_ps(float(k));
    for (int64_t i = 0; i < iters; ++i)
      for (int k = 0; k < 12; ++k) a[k] = _mm512_fmadd_ps(a[k], b, c);
    float t[16];  // (not _mm512_reduce_add_ps: GCC 12's reads an undefined register and warns)
    for (int k = 0; k < 12; ++k) _mm512_storeu_ps(t, a[k]), sink += t[0];
#elif defined(__AVX2__) && defined(__FMA__)
    __m256 a[12], b = _mm256_set1_ps(1.0000001f), c = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < 12; ++k) a[k] = _mm256_set1_ps(float(k));
    for (int64_t i = 0; i < iters; ++i)
      for (int k = 0; k < 12; ++k) a[k] = _mm256_fmadd_ps(a[k], b, c);
    float t[8];
    for (int k = 0; k < 12; ++k) _mm256_storeu_ps(t, a[k]), sink += t[0];
#else
    float a[12][8];
    for (int k = 0; k < 12; ++k)
      for (int l = 0; l < 8; ++l) a[k][l] = float(k);
    for (int64_t i = 0; i < iters; ++i)
      for (int k = 0; k < 12; ++k)
        for (int l = 0; l < 8; ++l) a[k][l] = a[k][l] * 1.0000001f + 1e-7f;
    for (int k = 0; k < 12; ++k) sink += a[k][0];
#endif
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (sink == 12345.0f) std::printf(" ");  // keeps the chains alive
  return seconds;
}

// The machine's limit for float32 matrix work, as ../shared/peers/peak_flops.c measures it:
// GFLOP/s of 12 independent FMA chains in registers on every thread, the best of regions of about
// 50 ms each. The first reading comes after about 0.1 s of the same work (the OS may run a
// process's newly started threads on one core until it balances the load: 3 regions of 8 ms right
// at the start, s13's version, read half the 2-core peak in most runs on a 2-core Zen 3 VM) and
// takes 5 regions; each workload then reads it again (one region to wake the threads, then 3) and
// reports its share of the best reading so far. On that VM the host sometimes holds one vCPU for
// a second or more: a single reading at the start once gave 103 GFLOP/s and the GEMM after it
// 137, "134% of peak".
class PeakMeter {
 public:
  double best() const { return best_; }
  void measure() {
#if defined(__AVX512F__)
    const double lanes = 16;
#else
    const double lanes = 8;
#endif
    int regions = 3;
    if (iters_ == 0) {  // warm up, and size a region to ~50 ms
      iters_ = int64_t{1} << 20;
      double warm = 0;
      for (int rounds = 0; warm < 0.1 && rounds < 64; ++rounds) {
        const double s = fma_region(iters_);
        warm += s;
        if (s < 0.05) iters_ = std::min<int64_t>(iters_ * 2, int64_t{1} << 30);
      }
      regions = 5;
    } else {
      fma_region(iters_);
    }
    for (int rep = 0; rep < regions; ++rep)
      best_ = std::max(best_, double(iters_) * 12 * lanes * 2 * omp_get_max_threads() / fma_region(iters_) / 1e9);
  }

 private:
  int64_t iters_ = 0;
  double best_ = 0;
};

// " # S% of peak" for a rate of `gflops` against the measured peak.
std::string share_of_peak(double gflops, double peak) { return format(" # %.0f%% of peak", 100 * gflops / peak); }

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

// Useful GFLOP of one training step (forward + backward = 3 x the forward's 2 x multiply-adds),
// from the model's shapes: the products of its linear maps and convolutions (a lookup, a
// normalisation or an activation counts nothing), attention's causal half only, the taps a mask
// zeroes not at all.
double step_gflop(const std::string& model, const nlohmann::json& config, int64_t batch) {
  const int64_t pixels = 784;
  double macs_per_pixel = 0;
  if (model == "mlp_ar") {
    const int64_t H = config.value("hidden", 256);
    macs_per_pixel = double(H * H + H * 256);  // l2, l3 (the first layer is a lookup)
  } else if (model == "imagegpt") {
    const int64_t d = config.value("embed_dim", 64), layers = config.value("layers", 2);
    // qkv 3d^2 + projection d^2 + MLP 2 x 2d^2, and q.k plus p.v over the ~L/2 earlier positions
    macs_per_pixel = double(layers * (8 * d * d + pixels * d)) + double(d * 2);
  } else if (model == "pixelcnn") {
    const int64_t C = config.value("channels", 64), layers = config.value("layers", 5);
    const int64_t ka = config.value("kernel_a", 7), kb = config.value("kernel_b", 3);
    const int64_t taps_a = ka * ka / 2, taps_b = kb * kb / 2 + 1;  // above the centre and left of it (+ the centre for B)
    macs_per_pixel = double(taps_a * C + layers * taps_b * C * C + 2 * C);
  } else if (model == "realnvp") {
    // each coupling's conditioner: conv3x3 (c -> F), blocks x (conv3x3 F -> F, conv1x1 F -> 2F),
    // conv3x3 (F -> 2c); checkerboard couplings see c = 1 at 28 x 28, channel couplings c = 4 at
    // 14 x 14 (a quarter of the pixels); averaged here per pixel of the image
    const int64_t F = config.value("filters", 16), blocks = config.value("blocks", 1);
    const int64_t checker = config.value("checkerboard", 3), channel = config.value("channel", 3);
    auto conditioner = [&](int64_t c) { return double(9 * c * F + blocks * (9 * F * F + 2 * F * F) + 9 * F * 2 * c); };
    macs_per_pixel = double(2 * checker) * conditioner(1) + double(channel) * conditioner(4) / 4;
  }
  return 6.0 * macs_per_pixel * double(batch * pixels) / 1e9;
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

// Milliseconds per Adam step (lr 1e-3) on the fixed batch x, as pytorch_ref.py's step(): the model's
// own train_step, so with the gradient clipping of the models that clip (the flows, as their twin).
double adam_step_ms(models::GenerativeModel& model, const Tensor& x) {
  model.train();
  nn::Adam optimizer(model.parameters(), {.lr = 1e-3});
  const models::Batch batch(x);
  auto step = [&] { model.train_step(batch, default_generator(), {&optimizer}); };
  return median_seconds(step, 2, 5) * 1e3;
}

// "NAME MS ms # G GFLOP/step, R GFLOP/s = S% of peak" for one model step.
void print_step(std::ostream& out, const std::string& name, double ms, double gflop, double peak) {
  out << name << " " << format("%.1f", ms) << " ms" << format(" # %.1f GFLOP/step, ", gflop)
      << format("%.0f GFLOP/s,", gflop / ms * 1e3) << share_of_peak(gflop / ms * 1e3, peak).substr(2) << "\n" << std::flush;
}

// realnvp (lecture 2): ms per Adam step, batch 32 of random 8-bit images, the architecture that
// bench/realnvp_ref.py builds in PyTorch (16 filters, 1 block, 3 + 3 + 3 affine couplings, uniform
// dequantisation), pinned here so that the comparison holds whatever realnvp's defaults become.
void run_realnvp_step(const std::string& name, std::ostream& out, double peak) {
  const nlohmann::json twin = {{"filters", 16}, {"blocks", 1}, {"checkerboard", 3}, {"channel", 3}, {"scales", 1},
                               {"mixtures", 0}, {"learned_prior", false}, {"dequantization", "uniform"},
                               {"logit_alpha", 1e-6}};
  auto model = bench_model(name, "realnvp", twin, out);
  if (!model) return;
  Generator gen(0);
  Tensor x = randint(0, 256, {32, 784}, &gen);
  print_step(out, name, adam_step_ms(*model, x), step_gflop("realnvp", twin, 32), peak);
}

// "L1d 48 KiB, L2 1 MiB, L3 32 MiB (one for all CPUs: yes)": the sizes the kernels' blocking
// follows and whether the OS reported one L3 for every CPU (the GEMM's thread split follows it).
std::string cache_report() {
  const cpu::CacheSizes& c = cpu::cache_sizes();
  auto size = [](int64_t bytes) {
    return bytes % (int64_t{1} << 20) == 0 ? std::to_string(bytes >> 20) + " MiB" : std::to_string(bytes >> 10) + " KiB";
  };
  return "L1d " + size(c.l1) + ", L2 " + size(c.l2) + ", L3 " + size(c.l3) + " (one for all CPUs: " +
         (c.l3_shared ? "yes" : "not reported") + ")";
}

void run_one(const std::string& name, std::ostream& out, double peak) {
  if (name == "peak_f32_fma") {
    out << name << " " << format("%.1f", peak) << " GFLOP/s # " << omp_get_max_threads() << " threads, "
        << cpu::gemm_kernel_isa() << " GEMM kernel; " << cache_report() << "\n" << std::flush;
  } else if (name.rfind("gemm_", 0) == 0) {
    const int64_t n = std::stoll(name.substr(5));
    const double g = gemm_gflops(n);
    out << name << " " << format("%.1f", g) << " GFLOP/s" << share_of_peak(g, peak) << "\n" << std::flush;
  } else if (name == "mlp_ar_step_B16") {
    const nlohmann::json config = {{"context", 2}, {"hidden", 256}};
    auto model = bench_model(name, "mlp_ar", config, out);
    if (!model) return;
    Generator gen(0);
    Tensor x = randint(0, 256, {16, 784}, &gen);  // random 8-bit images
    print_step(out, name, adam_step_ms(*model, x), step_gflop("mlp_ar", config, 16), peak);
  } else if (name == "imagegpt_step_B32_d64_h4_l2" || name == "imagegpt_sample16") {
    const nlohmann::json config = {{"embed_dim", 64}, {"heads", 4}, {"layers", 2}};
    auto model = bench_model(name, "imagegpt", config, out);
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
      print_step(out, name, adam_step_ms(*model, x), step_gflop("imagegpt", config, 32), peak);
    }
  } else if (name == "pixelcnn_step_B32_c64_l5") {
    const nlohmann::json config = {{"channels", 64}, {"layers", 5}, {"kernel_a", 7}, {"kernel_b", 3}};
    auto model = bench_model(name, "pixelcnn", config, out);
    if (!model) return;
    Generator gen(0);
    Tensor x = (rand({32, 784}, {}, &gen) > 0.8).to(DType::Int64);  // random binary images, as pixelcnn_ref.py
    print_step(out, name, adam_step_ms(*model, x), step_gflop("pixelcnn", config, 32), peak);
  } else if (name == "realnvp_step_B32") {
    run_realnvp_step(name, out, peak);
  }
}

}  // namespace

const std::vector<std::string>& bench_names() {
  static const std::vector<std::string> names = {"peak_f32_fma",    "gemm_256",
                                                 "gemm_512",        "gemm_1024",
                                                 "mlp_ar_step_B16", "imagegpt_step_B32_d64_h4_l2",
                                                 "pixelcnn_step_B32_c64_l5", "imagegpt_sample16",
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
  // The peak is measured first and again before each GEMM and model step, which reports its share
  // of the best reading so far (see PeakMeter).
  const std::vector<std::string>& todo = names.empty() ? known : names;
  auto needs_peak = [](const std::string& n) { return n != "imagegpt_sample16"; };
  // The peak's own line comes last, with the best reading of the run.
  PeakMeter peak;
  const bool any_peak = std::any_of(todo.begin(), todo.end(), needs_peak);
  if (any_peak) peak.measure();
  for (const std::string& name : todo) {
    if (name == "peak_f32_fma") continue;
    if (needs_peak(name)) peak.measure();
    run_one(name, out, peak.best());
  }
  if (any_peak) run_one("peak_f32_fma", out, peak.best());
}

}  // namespace dgm::cli
