// Lecture 1, conditional models: the report section and the figures (numbers from conditional.cpp).
#include <algorithm>
#include <sstream>

#include <dgm/data/mnist.h>
#include <dgm/lectures/lecture01/conditional.h>
#include <dgm/lectures/lecture01/lecture01.h>
#include <dgm/tools/image.h>

namespace dgm::lecture01 {

namespace {

// The short runs: small models, a few hundred Adam steps, scored on a spread of test digits, so the
// module takes a minute or two on 2 cores. `dgm train ... --conditional true` does the real runs
// (pass them with --checkpoint).
constexpr int64_t kTestImages = 200, kPerClass = 4, kLeastLikely = 8;
struct ShortRun {
  const char* model;
  const char* config;
  int64_t steps, batch;
  double lr;
};
const ShortRun kShortRuns[] = {
    {"imagegpt", R"({"embed_dim": 16, "heads": 2, "layers": 1})", 150, 16, 3e-3},
    {"pixelcnn", R"({"channels": 16, "layers": 2})", 150, 16, 3e-3},
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string percent(double v) { return strf("%.1f%%", 100 * v); }

Table confusion_table(const train::ClassifierResult& r) {
  Table t{{"true \\ predicted"}, {}};
  for (int64_t y = 0; y < r.classes; ++y) t.header.push_back(std::to_string(y));
  for (int64_t a = 0; a < r.classes; ++a) {
    std::vector<std::string> row = {std::to_string(a)};
    for (int64_t y = 0; y < r.classes; ++y) row.push_back(std::to_string(r.confusion[static_cast<size_t>(a * r.classes + y)]));
    t.rows.push_back(row);
  }
  return t;
}

}  // namespace

void write_conditional(Chapter& ch) {
  const Options& opt = ch.options();
  const uint64_t seed = opt.seed + 1700;
  ch.section("Conditional models and Bayes' rule",
             "p(y | \\mathbf{x}) = \\frac{p(\\mathbf{x} | y)\\, p(y)}{p(\\mathbf{x})}, \\quad p(\\mathbf{x}) = \\sum_{y=0}^{9} "
             "p(\\mathbf{x} | y)\\, p(y)",
             "p(y | x) = p(x | y) p(y) / p(x),  p(x) = sum_y p(x | y) p(y)");
  const data::MnistData test = data::load_mnist(opt.data, data::Split::Test);
  const std::vector<int64_t> picks = spread_indices(test.n, kTestImages);
  const int64_t N = static_cast<int64_t>(picks.size());

  // ---- naive Bayes: the baseline --------------------------------------------------------------------
  const train::ClassifierResult nb_all = naive_bayes(opt.data), nb = naive_bayes(opt.data, picks);
  ch.text(strf("A conditional generative model $p(\\mathbf{x} | y)$ is a classifier: score an image under every label, weigh by "
               "the class frequencies $p(y)$ of the training split and normalise. The simplest one is the per-digit histogram "
               "of the previous section, independent pixels given the class — **naive Bayes**: $p(\\mathbf{x} | y) = \\prod_j "
               "\\mathrm{Bernoulli}(x_j | p_{yj})$. On all %lld test digits it classifies %s correctly, with $-\\log p(\\mathbf{x} | y)$ "
               "= %.4f and the mixture's $-\\log p(\\mathbf{x})$ = %.4f nats/dim. That is the baseline the neural models must beat.",
               (long long)nb_all.images, percent(nb_all.accuracy).c_str(), nb_all.conditional_nll, nb_all.marginal_nll),
          strf("naive Bayes (per-digit independent pixels) on all %lld test digits: accuracy %s, -log p(x|y) %.4f, -log p(x) %.4f "
               "nats/dim",
               (long long)nb_all.images, percent(nb_all.accuracy).c_str(), nb_all.conditional_nll, nb_all.marginal_nll));

  // ---- the neural conditional models -----------------------------------------------------------------
  std::vector<ConditionalRun> given;  // --checkpoint A,B: trained models replace the short runs of their kind
  for (const std::string& file : split_commas(opt.checkpoint)) given.push_back(load_conditional(file, seed, picks, kPerClass, opt.data));
  std::vector<ConditionalRun> runs;
  for (const ShortRun& s : kShortRuns) {
    auto it = std::find_if(given.begin(), given.end(), [&](const ConditionalRun& r) { return r.model == s.model; });
    runs.push_back(it != given.end() ? *it
                                     : train_conditional(s.model, nlohmann::json::parse(s.config), s.steps, s.batch, s.lr, seed, picks,
                                                         kPerClass, opt.data));
  }
  ch.text(strf("The neural models take the label as an input: **ImageGPT** adds a learned class embedding $e_y$ to every input "
               "position, the start token included, $h_t^0 = \\mathrm{pos}_t + (t = 0 ? \\mathrm{sos} : \\mathrm{tok}[x_{t-1}]) + e_y$; "
               "**PixelCNN** adds a class-dependent bias $b_y^l$ (a $(10, C)$ embedding per layer) after every masked convolution, "
               "as in the conditional PixelCNN paper — the same at every pixel, so causality is untouched. Both are the existing "
               "models with `--conditional true`; with $e = b = 0$ they are the unconditional ones. Each of the 10 likelihoods "
               "$\\log p(\\mathbf{x} | y)$ is one forward pass: the test batch is repeated 10 times with labels 0..9 "
               "(`train::classify`, behind `dgm eval MODEL --classify`). Scored on %lld test digits spread over the split:",
               (long long)N),
          strf("conditional ImageGPT (class embedding at every position) and PixelCNN (class bias after every masked conv), "
               "scored on %lld test digits:",
               (long long)N));
  Table t{{"model", "parameters", "training", "accuracy", "-log p(x | y) nats/dim", "-log p(x) nats/dim"}, {}};
  t.rows.push_back({"naive Bayes (per-digit histograms)", "10 x 784 + 9", "counting", percent(nb.accuracy), strf("%.4f", nb.conditional_nll),
                    strf("%.4f", nb.marginal_nll)});
  for (const ConditionalRun& r : runs)
    t.rows.push_back({r.model + " " + r.config, strf("%lld", (long long)r.parameters),
                      r.steps > 0 ? strf("%lld steps x %lld, %.0f s (loss %.3f -> %.3f)", (long long)r.steps, (long long)r.batch, r.seconds,
                                         r.train_loss_first, r.train_loss_last)
                                  : "checkpoint " + r.source,
                      percent(r.result.accuracy), strf("%.4f", r.result.conditional_nll), strf("%.4f", r.result.marginal_nll)});
  ch.table(t);
  const bool short_runs = runs.front().steps > 0 || runs.back().steps > 0;
  ch.text(std::string(short_runs ? "**The neural rows above are short runs** (a few hundred steps of small models, not converged): "
                                   "pass trained ones with `dgm lecture 1 conditional --checkpoint RUN_A,RUN_B`, from\n\n"
                                   "```sh\ndgm train imagegpt --conditional true\ndgm train pixelcnn --conditional true\n```\n\n"
                                 : "") +
              "$-\\log p(\\mathbf{x})$ of the mixture $\\sum_y p(\\mathbf{x} | y) p(y)$ is an ordinary unconditional NLL, comparable "
              "with `dgm eval` of an unconditional model; it exceeds $-\\log p(\\mathbf{x} | y)$ by at most $\\log(1/p(y))/784$ per "
              "pixel — knowing the label is worth at most $\\log 10$ nats per image.",
          short_runs ? "(short runs; pass trained ones with --checkpoint RUN_A,RUN_B from `dgm train imagegpt|pixelcnn --conditional true`)" : "");
  for (const ConditionalRun& r : runs) {
    ch.text(strf("Confusion matrix of %s (rows: the true digit, columns: argmax_y p(y | x)):", r.model.c_str()));
    ch.table(confusion_table(r.result));
  }

  // ---- samples per digit, and what each model finds least likely --------------------------------------
  for (const ConditionalRun& r : runs) {
    std::vector<uint8_t> px(r.samples.begin(), r.samples.end());
    const std::string file = "conditional_samples_" + r.model + ".png";
    tools::save_image_grid(ch.path(file), px, 10 * r.per_class, 28, 28, 10, 2, 2, 1);
    ch.image(file, strf("samples of the conditional %s, p(x | y): one row per digit y = 0..9", r.model.c_str()));
  }
  struct Scored {
    std::string name;
    const train::ClassifierResult* result;
  };
  std::vector<Scored> scored = {{"naive Bayes", &nb}};
  for (const ConditionalRun& r : runs) scored.push_back({r.model, &r.result});
  const int64_t D = test.pixels_per_image();
  for (const Scored& s : scored) {
    const std::vector<int64_t> worst = least_likely(*s.result, kLeastLikely);
    std::vector<uint8_t> px;
    std::string labels;
    for (int64_t i : worst) {
      const uint8_t* image = test.image(picks[static_cast<size_t>(i)]);
      px.insert(px.end(), image, image + D);
      labels += strf("%s%lld->%lld", labels.empty() ? "" : ", ", (long long)s.result->labels[static_cast<size_t>(i)],
                     (long long)s.result->predicted[static_cast<size_t>(i)]);
    }
    std::string file = "least_likely_" + s.name + ".png";
    for (char& c : file)
      if (c == ' ') c = '_';
    tools::save_image_grid(ch.path(file), px, static_cast<int64_t>(worst.size()), 28, 28, 1, 2, 2);
    ch.image(file, strf("the %lld test digits %s finds least likely, -log p(x | y_true) highest first (true -> predicted: %s)",
                        (long long)worst.size(), s.name.c_str(), labels.c_str()));
  }
  ch.text("The least likely digits are the unusual ones — thick, slanted, broken or touching the border — and they are where "
          "the classifiers err: a low $p(\\mathbf{x} | y)$ under the true label leaves room for another label to win.",
          "");
}

}  // namespace dgm::lecture01
