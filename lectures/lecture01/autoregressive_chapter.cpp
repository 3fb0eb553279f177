// Lecture 1, autoregressive modelling: the report section and the figures (numbers from autoregressive.cpp).
#include <algorithm>
#include <cmath>

#include <dgm/lectures/lecture01/autoregressive.h>
#include <dgm/lectures/common/figures.h>
#include <dgm/lectures/lecture01/lecture01.h>
#include <dgm/tools/image.h>
#include <dgm/tools/plot.h>

namespace dgm::lecture01 {

namespace {

using tools::Figure;
using tools::Style;

// The short MLP runs: a few seconds each on 2 cores. `dgm train mlp_ar` does the real run.
constexpr int64_t kMlpSteps = 100, kMlpBatch = 8, kMlpHidden = 64, kMlpTest = 100;
constexpr double kMlpLr = 1e-2;

void product_of_conditionals(Chapter& ch, uint64_t seed) {
  ch.section("Likelihood as a product of conditionals",
             "\\log p(\\mathbf{x}|\\boldsymbol\\theta) = \\sum_{j=1}^m \\log p(x_j|\\mathbf{x}_{1:j-1}, \\boldsymbol\\theta)",
             "log p(x | theta) = sum_j log p(x_j | x_{1:j-1}, theta)");
  std::vector<ConditionalsCheck> checks = check_product_of_conditionals(seed, 4, ch.options().data);
  ch.text("Every autoregressive model in `models/` gives its conditionals for all pixels at once, "
          "`conditional_log_probs(x)`: $[b, j, v] = \\log p(x_j = v | \\mathbf{x}_{1:j-1})$. Below, four models at random "
          "initialisation in float64, on 28×28 test digits (binarized for ImageGPT and PixelCNN, 8-bit for the MLP): `log_prob(x)` "
          "(each model's own code path) against the sum of the picked conditionals, and whether each conditional is a "
          "distribution. On 3×3 images the binary models are summed over all $2^9 = 512$ images: the joint is normalised "
          "because every conditional is — no partition function to compute.",
          "log_prob(x) vs the sum of the per-pixel conditionals (random init, float64, 28x28 test digits); "
          "sum over all 512 3x3 binary images of p(x):");
  Table t{{"model", "log p(x) of digit 0", "max |log p - sum_j|", "max |log sum_v p(v | x_<j)|", "sum of p(x), all 3x3 images"}, {}};
  for (const ConditionalsCheck& c : checks)
    t.rows.push_back({c.model, strf("%.3f", c.log_prob), strf("%.1e", c.max_sum_diff), strf("%.1e", c.max_norm_error),
                      c.enumerated > 0 ? strf("%.15f (%lld images)", c.total_prob_3x3, (long long)c.enumerated)
                                       : std::string("256^9 images: see the previous column")});
  ch.table(t);
  ch.text("At random initialisation every binary conditional is close to 1/2, so $\\log p(\\mathbf{x}) \\approx -784 \\log 2 = "
          "-543$; the 8-bit ones start near $-784 \\log 256 = -4347$.",
          "(random init: about -784 log 2 = -543 for binary, -784 log 256 = -4347 for 8-bit)");
}

void sequential_sampling(Chapter& ch, uint64_t seed) {
  ch.section("Sampling is sequential",
             "\\hat{x}_1 \\sim p(x_1|\\boldsymbol\\theta), \\; \\hat{x}_2 \\sim p(x_2|\\hat{x}_1, \\boldsymbol\\theta), \\; \\dots, \\; "
             "\\hat{x}_m \\sim p(x_m|\\hat{\\mathbf{x}}_{1:m-1}, \\boldsymbol\\theta)",
             "x1 ~ p(x1), x2 ~ p(x2 | x1), ..., xm ~ p(xm | x_{1:m-1})");
  const int64_t embed = 16, heads = 2, layers = 2, size = 8, n = 4;
  SamplerComparison s = compare_imagegpt_samplers(embed, heads, layers, size, n, seed);
  ch.text(strf("Sampling draws pixel $j$ only once pixels $1..j-1$ are drawn: $m$ model calls per image. ImageGPT's sampler "
               "(`ImageGPT::sample`) keeps the keys and values of the pixels already drawn (a KV cache), so each new pixel costs one "
               "row of attention; the naive sampler (`sample_naive`, the homework's) reruns the whole sequence for every pixel. "
               "Both take pixel $t$ of image $b$ from the same uniform. ImageGPT %s (random init), %lld images of %lldx%lld, one seed:",
               s.config.c_str(), (long long)n, (long long)size, (long long)size),
          strf("ImageGPT %s, %lld images of %lldx%lld, the same seed for both samplers:", s.config.c_str(), (long long)n,
               (long long)size, (long long)size));
  Table t{{"sampler", "model calls", "seconds", "pixels differing from the other sampler"}, {}};
  const int64_t m = size * size;
  t.rows.push_back({"KV cache (sample)", strf("%lld steps of 1 position", (long long)m), strf("%.3f", s.seconds_cached),
                    strf("%lld of %lld", (long long)s.differing_pixels, (long long)(n * m))});
  t.rows.push_back({"full recompute (sample_naive)", strf("%lld forwards of %lld positions", (long long)m, (long long)m),
                    strf("%.3f", s.seconds_naive), strf("%lld of %lld", (long long)s.differing_pixels, (long long)(n * m))});
  ch.table(t);
  ch.text(strf("The same images (%s generator state afterwards), %.1fx faster with the cache. The naive cost grows like $m^2$ "
               "positions (times the attention's own $m$), the cached one like $m$.",
               s.same_draw_count ? "and the same" : "but a DIFFERENT", s.speedup),
          strf("identical samples: %s; same generator state: %s; speed-up %.1fx", s.differing_pixels == 0 ? "yes" : "NO",
               s.same_draw_count ? "yes" : "NO", s.speedup));
}

// Pixel t of the sequence of partial images: the first t raster pixels of each sample, the rest mid-grey.
std::vector<float> partial_images(const std::vector<int64_t>& samples, int64_t n, int64_t D, const std::vector<int64_t>& steps) {
  std::vector<float> out;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t : steps)
      for (int64_t j = 0; j < D; ++j)
        out.push_back(j < t ? static_cast<float>(samples[static_cast<size_t>(i * D + j)]) / 255.0f : 0.5f);
  return out;
}

void mlp_markov(Chapter& ch, uint64_t seed) {
  ch.section("Autoregressive MLP with a Markov context",
             "p(x_j | \\mathbf{x}_{1:j-1}, \\theta) = p(x_j | x_{j-1}, x_{j-2}, \\theta) = \\mathrm{Categorical}(\\mathrm{softmax}("
             "\\mathrm{MLP}_\\theta(x_{j-1}, x_{j-2})))",
             "p(x_j | x_{j-1}, x_{j-2}) = Categorical(softmax(MLP(x_{j-1}, x_{j-2}))), x_j in {0..255}");
  ByteMnist data = load_byte_mnist(ch.options().data);
  ByteBaselines base = byte_baselines(data, kMlpTest), full = byte_baselines(data);
  MlpArRun cat = train_mlp_ar_short(data, "categorical", kMlpSteps, kMlpBatch, kMlpLr, seed, kMlpHidden, 8, kMlpTest);
  MlpArRun mix = train_mlp_ar_short(data, "logistic_mixture", kMlpSteps, kMlpBatch, kMlpLr, seed, kMlpHidden, 8, kMlpTest);
  ch.text(strf("The slide's example: $d = 2$, $x_j \\in \\{0, \\dots, 255\\}$ (8-bit MNIST), `mlp_ar` with %lld hidden units: the "
               "two previous pixels (0 before the image) → MLP → 256 logits → softmax. \"Is it possible to model continuous "
               "distributions instead?\" — the `logistic_mixture` head outputs a mixture of 5 logistics over the pixel's value "
               "(15 numbers instead of 256), discretised to the 256 bins, so neighbouring grey levels share mass. **These are "
               "short runs**: %lld Adam steps (lr %.0e) of batches of %lld train digits, a few seconds each — not converged. "
               "Test bits/dim on the first %lld test digits (to keep this fast), next to the 8-bit counting baselines "
               "(`models/baselines.h`) on the same digits; on the whole test split the baselines give %.4f and %.4f.",
               (long long)kMlpHidden, (long long)kMlpSteps, kMlpLr, (long long)kMlpBatch, (long long)kMlpTest, full.independent_bits,
               full.markov1_bits),
          strf("mlp_ar, d = 2, %lld hidden, SHORT runs: %lld Adam steps (lr %.0e, batch %lld); test bits/dim on the first %lld "
               "test digits (whole split: independent %.4f, Markov-1 %.4f):",
               (long long)kMlpHidden, (long long)kMlpSteps, kMlpLr, (long long)kMlpBatch, (long long)kMlpTest, full.independent_bits,
               full.markov1_bits));
  Table t{{"model", "parameters", "test bits/dim", "train steps", "seconds"}, {}};
  t.rows.push_back({"independent pixels (counting)", "784 * 255", strf("%.4f", base.independent_bits), "exact MLE", "-"});
  t.rows.push_back({"Markov-1, shared table (counting)", "256 * 255", strf("%.4f", base.markov1_bits), "exact MLE", "-"});
  for (const MlpArRun* r : {&cat, &mix})
    t.rows.push_back({"mlp_ar, " + r->head, strf("%lld", (long long)r->parameters),
                      strf("%.4f (init %.3f)", r->test_bits, r->test_bits_init), strf("%lld x %lld", (long long)r->steps, (long long)r->batch),
                      strf("%.1f", r->seconds)});
  ch.table(t);
  ch.text("The full runs (the trainer, checkpoints, curves; about 5 epochs):\n\n"
          "```sh\ndgm train mlp_ar --head categorical --epochs 5 --batch 32 --lr 1e-3\n"
          "dgm train mlp_ar --head logistic_mixture --mixtures 5 --epochs 5 --batch 32 --lr 1e-3\n```\n\n"
          "The mixture head starts far better (its initial distribution is already smooth over grey levels, while the softmax "
          "starts near uniform, 8 bits/dim), but in a run this short the categorical head overtakes it: compare the two after "
          "the full runs.",
          "full runs: dgm train mlp_ar --head categorical --epochs 5 --batch 32 --lr 1e-3\n"
          "           dgm train mlp_ar --head logistic_mixture --mixtures 5 --epochs 5 --batch 32 --lr 1e-3");

  Figure fig(1, 1, 700, 420);
  {
    tools::Axes& ax = fig.axes(0, 0);
    ax.plot_indexed(cat.train_bits, "categorical head (batch bits/dim)");
    ax.plot_indexed(mix.train_bits, "logistic mixture head");
    Style dashed;
    dashed.dashed = true, dashed.color = "black", dashed.line_width = 1;
    ax.axhline(base.markov1_bits, "Markov-1 counting baseline (test)", dashed);
    Style dotted = dashed;
    dotted.color = lectures::kGrey;
    ax.axhline(base.independent_bits, "independent pixels (test)", dotted);
    ax.log_y().title("mlp_ar, d = 2: a short run").xlabel("Adam step").ylabel("train bits/dim");
  }
  ch.figure(fig, "mlp_ar_short_run.svg", "train bits/dim per step of the two heads, against the counting baselines");

  for (const MlpArRun* r : {&cat, &mix}) {
    std::vector<uint8_t> px(r->samples.begin(), r->samples.end());
    const std::string file = "mlp_ar_samples_" + r->head + ".png";
    tools::save_image_grid(ch.path(file), px, 8, 28, 28, 1, 2, 3);
    ch.image(file, strf("8 samples of mlp_ar (%s head) after the short run", r->head.c_str()));
  }
  // sampling is sequential: the state of 4 samples after t pixels
  const std::vector<int64_t> steps = {0, 98, 196, 294, 392, 490, 588, 686, 784};
  std::vector<float> partial = partial_images(mix.samples, 4, 784, steps);
  tools::save_image_grid(ch.path("mlp_ar_sampling_order.png"), partial, int64_t(partial.size() / 784), 28, 28, 4, 2, 3);
  ch.image("mlp_ar_sampling_order.png",
           "sampling is sequential: each row is one sample of the mixture head after t = 0, 98, ..., 784 raster pixels "
           "(mid-grey: not drawn yet)");
  // where the bits go: -log2 p(x_j | x_{j-1}, x_{j-2}) of one test digit
  std::vector<float> bits_map;
  const double top = 12.0;
  for (const MlpArRun* r : {&cat, &mix})
    for (double b : r->pixel_bits) bits_map.push_back(static_cast<float>(std::min(b, top) / top));
  std::vector<float> digit;
  for (int64_t j = 0; j < 784; ++j) digit.push_back(static_cast<float>(data.test.data<int64_t>()[j]) / 255.0f);
  digit.insert(digit.end(), bits_map.begin(), bits_map.end());
  tools::save_image_grid(ch.path("mlp_ar_pixel_bits.png"), digit, 3, 28, 28, 1, 2, 6);
  ch.image("mlp_ar_pixel_bits.png",
           strf("the first test digit, then -log2 p(x_j | x_{j-1}, x_{j-2}) per pixel under the categorical and the mixture "
                "head (white = %.0f bits or more; totals %.0f and %.0f bits): the cost sits on the strokes' edges, where two "
                "pixels of context cannot tell what comes next",
                top, [&] { double s = 0; for (double b : cat.pixel_bits) s += b; return s; }(),
                [&] { double s = 0; for (double b : mix.pixel_bits) s += b; return s; }()));
}

void raster_models(Chapter& ch, uint64_t seed) {
  ch.section("ImageGPT and PixelCNN: raster order",
             "p(\\mathbf{x}|\\theta) = \\prod_{j=1}^{\\text{width} \\times \\text{height}} p(x_j | \\mathbf{x}_{1:j-1}, \\theta)",
             "p(x | theta) = prod_{j=1}^{width x height} p(x_j | x_{1:j-1}, theta)");
  std::vector<CausalityCheck> causal = check_causality(seed, 6, ch.options().data);
  ch.text("A model of $p(\\mathbf{x})$ in raster order must keep $p(x_i | \\mathbf{x}_{1:i-1})$ blind to $x_j$ for $j \\ge i$: "
          "ImageGPT by a causal attention mask and the input shifted by one (a start token first), PixelCNN by masked "
          "kernels (mask A hides the centre in the first layer, mask B allows it afterwards), the MLP by looking only at "
          "$x_{j-1}, x_{j-2}$. Changing one pixel $j$ of a test digit (6 positions spread over the image, float64, random "
          "init, the homework's default sizes):",
          "change pixel j of a test digit (6 positions), compare all conditionals (float64, random init):");
  Table t{{"model", "max change of p(x_i | .) for i <= j", "max change for i > j", "later pixels affected (mean)", "pixels after j (mean)"}, {}};
  for (const CausalityCheck& c : causal)
    t.rows.push_back({c.model, strf("%.1e", c.max_change_up_to_j), strf("%.2e", c.max_change_after_j),
                      strf("%.1f", c.mean_later_reached), strf("%.1f", c.mean_later_total)});
  ch.table(t);
  ch.text("Exactly 0 up to $j$. After $j$ ImageGPT's attention reaches every later pixel, PixelCNN only those whose receptive "
          "field holds $j$, and the MLP exactly the next two.",
          "Exactly 0 up to j. After j: ImageGPT reaches every later pixel, PixelCNN its receptive cone, the MLP the next two.");

  ReceptiveFields rf = pixelcnn_receptive_fields(seed, 5, 7, 3, 21);
  ch.text(strf("**PixelCNN's receptive field and its blind spot.** Backpropagating the logit of the centre output pixel of a "
               "%lldx%lld image (`models::receptive_field`) to the input: with mask A (7×7) and %lld mask-B 3×3 layers it reaches "
               "%lld rows up and columns to either side, but of the %lld pixels before the centre in that window it sees only "
               "%lld — the other %lld, above and to the right, are a blind spot, though the raster order allows them. It sees %lld "
               "pixels at or after the centre (causality).",
               (long long)rf.size, (long long)rf.size, (long long)rf.layers, (long long)(rf.kernel_a / 2 + rf.layers * (rf.kernel_b / 2)),
               (long long)rf.preceding, (long long)rf.seen, (long long)rf.blind, (long long)rf.seen_after),
          strf("PixelCNN receptive field (7x7 mask A + %lld 3x3 mask B): of %lld preceding pixels within reach it sees %lld; "
               "blind spot %lld pixels; pixels at/after the centre seen: %lld",
               (long long)rf.layers, (long long)rf.preceding, (long long)rf.seen, (long long)rf.blind, (long long)rf.seen_after));
  {
    const int64_t n2 = rf.size * rf.size, centre = (rf.size / 2) * rf.size + rf.size / 2;
    std::vector<float> maps;
    for (const std::vector<double>* m : {&rf.mask_a, &rf.binary})
      for (int64_t i = 0; i < n2; ++i) maps.push_back(i == centre ? 0.5f : static_cast<float>((*m)[static_cast<size_t>(i)]));
    const double mx = *std::max_element(rf.weighted.begin(), rf.weighted.end());
    for (int64_t i = 0; i < n2; ++i)  // square root: the small gradients far away stay visible
      maps.push_back(i == centre ? 0.5f : static_cast<float>(std::sqrt(rf.weighted[static_cast<size_t>(i)] / mx)));
    tools::save_image_grid(ch.path("pixelcnn_receptive_field.png"), maps, 3, rf.size, rf.size, 1, 1, 10);
    ch.image("pixelcnn_receptive_field.png",
             "PixelCNN's receptive field for the centre pixel (mid-grey): mask A alone; the 6-layer stack (white = depends); "
             "the stack weighted by sqrt(|d logit / d x|) summed over random images. The black wedge above-right is the blind spot.");
  }

  BinaryBaselines b = binary_baselines(seed, 100, ch.options().data);
  ch.text("**The bar to beat.** On binarized MNIST (nats/dim, test split) the counting baselines give the numbers below; at "
          "random initialisation ImageGPT gives about $\\log 2 = 0.693$ (its output layer starts small) and PixelCNN more (its "
          "random logits are larger); both have to go under Markov-1 to be worth their parameters. They are "
          "not trained here (minutes, not seconds); the commands:\n\n"
          "```sh\ndgm train imagegpt --epochs 5 --batch 32 --lr 1e-3 --embed-dim 64 --heads 4 --layers 2\n"
          "dgm train pixelcnn --epochs 5 --batch 32 --lr 1e-3 --channels 64 --layers 5\n```",
          "binarized MNIST, test nats/dim (train for real: dgm train imagegpt --epochs 5 --batch 32 --lr 1e-3; "
          "dgm train pixelcnn --epochs 5 --batch 32 --lr 1e-3):");
  Table bt{{"model", "test NLL (nats/dim)"}, {}};
  bt.rows.push_back({"independent pixels (counting)", strf("%.4f", b.independent)});
  bt.rows.push_back({"Markov-1, shared table (counting)", strf("%.4f", b.markov1)});
  bt.rows.push_back({"imagegpt, random init (first 100 test digits)", strf("%.4f", b.imagegpt_init)});
  bt.rows.push_back({"pixelcnn, random init (first 100 test digits)", strf("%.4f", b.pixelcnn_init)});
  ch.table(bt);
}

}  // namespace

void write_autoregressive(Chapter& ch) {
  const uint64_t seed = ch.options().seed;
  product_of_conditionals(ch, seed + 4000);
  sequential_sampling(ch, seed + 4100);
  mlp_markov(ch, seed + 4200);
  raster_models(ch, seed + 4300);
}

}  // namespace dgm::lecture01
