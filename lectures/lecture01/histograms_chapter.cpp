// Lecture 1, problem statement: the report section and the figures (numbers from histograms.cpp).
#include <cmath>

#include <dgm/lectures/common/figures.h>
#include <dgm/lectures/lecture01/lecture01.h>
#include <dgm/lectures/lecture01/histograms.h>
#include <dgm/tools/image.h>
#include <dgm/tools/plot.h>

namespace dgm::lecture01 {

namespace {

using tools::Figure;
using tools::Style;

void histogram_1d(Chapter& ch, uint64_t seed) {
  ch.section("Histogram as a generative model", "\\hat{\\pi}_k = \\hat{\\pi}(x = k) = \\frac{\\sum_{i=1}^n [x_i = k]}{n}",
             "pi_k = sum_i [x_i = k] / n");
  Data1d data = seminar_data_1d(seed);
  const int64_t steps = 2000;
  const double lr = 0.05;
  HistogramFit fit = fit_histogram_1d(data, steps, lr);
  ch.text(strf("The seminar's data: %zu points of $0.5\\,\\mathcal{N}(0.2, 0.05^2) + 0.5\\,\\mathcal{N}(0.6, 0.15^2)$, scaled by 99, "
               "clipped to $[0, 99]$ and rounded down — 100 bins; %zu train, %zu test. The histogram is the MLE of a categorical "
               "distribution. Training softmax logits $\\theta$ on the NLL $-\\frac1n \\sum_i \\log \\mathrm{softmax}(\\theta)_{x_i} = "
               "-\\sum_k \\hat\\pi_k \\log \\mathrm{softmax}(\\theta)_k$ (the cross entropy $H(\\hat\\pi, p_\\theta)$; Adam, lr %.2g, "
               "%lld full-batch steps) reaches the same distribution: the remaining gap in train NLL is exactly "
               "$H(\\hat\\pi, p_\\theta) - H(\\hat\\pi) = KL(\\hat\\pi \\| p_\\theta)$.",
               data.train.size() + data.test.size(), data.train.size(), data.test.size(), lr, static_cast<long long>(steps)),
          strf("seminar data: %zu train / %zu test points on 100 bins; histogram MLE vs softmax logits trained on the NLL "
               "(Adam, lr %.2g, %lld steps)",
               data.train.size(), data.test.size(), lr, static_cast<long long>(steps)));
  Table t{{"model", "train NLL (nats)", "test NLL (nats)", "note"}, {}};
  t.rows.push_back({"histogram counts / n (MLE)", strf("%.4f", fit.train_nll_mle),
                    std::isinf(fit.test_nll_mle) ? "inf" : strf("%.4f", fit.test_nll_mle),
                    strf("%lld empty train bins hold %lld test points", (long long)fit.empty_bins, (long long)fit.test_in_empty_bins)});
  t.rows.push_back({"histogram, add-one smoothing (c + 1) / (n + 100)", strf("%.4f", nll_nats(fit.laplace, data.train)),
                    strf("%.4f", fit.test_nll_laplace), "no empty bin"});
  t.rows.push_back({"softmax(theta) trained on the NLL", strf("%.4f", fit.train_nll_learned), strf("%.4f", fit.test_nll_learned),
                    strf("KL(MLE || learned) = %.1e", fit.kl_mle_learned)});
  t.rows.push_back({"the true bin probabilities", strf("%.4f", nll_nats(fit.truth, data.train)), strf("%.4f", fit.test_nll_truth),
                    "the best possible on average"});
  ch.table(t);
  ch.text("Where a train bin is empty the MLE gives probability 0 and the test NLL is infinite; smoothing (a prior count per "
          "bin) or stopping gradient descent early (the logits of empty bins drift to $-\\infty$ only slowly) keeps it finite. "
          "Both fits are noisier than the truth: 800 points for 99 free parameters.",
          "(Empty train bins make the MLE's test NLL infinite; smoothing or early stopping keeps it finite.)");

  Figure fig(1, 2, 1300, 440);
  {
    std::vector<double> centers;
    for (int64_t k = 0; k < data.bins; ++k) centers.push_back(double(k));
    Style bars;
    bars.color = "#9ecae1";
    tools::Axes& ax = fig.axes(0, 0);
    ax.bar(centers, fit.mle, "train histogram (counts / n)", bars, 1.0);
    Style learned = Style::markers_only();
    learned.color = lectures::kRed, learned.marker_size = 2.5;
    ax.plot(centers, fit.learned, "softmax(theta), trained on the NLL", learned);
    Style truth;
    truth.color = "black", truth.line_width = 1, truth.dashed = true;
    ax.plot(centers, fit.truth, "true bin probabilities", truth);
    ax.title("the learned distribution over the data histogram").xlabel("bin x").ylabel("probability");
  }
  {
    std::vector<double> kl;
    for (double loss : fit.loss_curve) kl.push_back(loss - fit.train_nll_mle);
    tools::Axes& ax = fig.axes(0, 1);
    ax.plot_indexed(kl, "train NLL - NLL of the MLE = KL(MLE || p_theta)");
    ax.log_y().title("gradient descent approaches the histogram").xlabel("Adam step").ylabel("nats");
  }
  ch.figure(fig, "histogram_1d.svg", "the histogram MLE and the same distribution reached by training softmax logits");
}

void curse_of_dimensionality(Chapter& ch, const BinaryMnist& mnist, uint64_t seed) {
  const int64_t m = mnist.train.size(1);
  ch.section("Curse of dimensionality",
             "\\pi(\\mathbf{x}) = \\pi(x_1) \\cdot \\pi(x_2|x_1) \\cdot \\dots \\cdot \\pi(x_m|x_{m-1}, \\dots, x_1)",
             "pi(x) = pi(x1) pi(x2|x1) ... pi(xm|x_{m-1}, ..., x1)");
  BigNat full = BigNat::pow2(m).minus_one();
  ch.text(strf("Binarized MNIST: $m = %lld$ pixels in $\\{0, 1\\}$. A histogram over all images needs $2^{%lld} - 1$ parameters — "
               "this number, exactly (%zu digits):\n\n```\n%s\n```\n\nA pixel that depends on the previous $d$ pixels needs $2^{\\min(j-1, d)}$ "
               "parameters, so a Markov chain of order $d$ needs $\\sum_j 2^{\\min(j-1,d)} = (2^d - 1) + (m - d)\\,2^d$:",
               (long long)m, (long long)m, full.digits(), full.str().c_str()),
          strf("m = %lld binary pixels; the full joint histogram has 2^%lld - 1 parameters (%zu digits):\n%s\n"
               "a Markov chain of order d has (2^d - 1) + (m - d) 2^d:",
               (long long)m, (long long)m, full.digits(), full.str().c_str()));
  Table t{{"model", "parameters"}, {}};
  t.rows.push_back({"independent pixels (d = 0)", markov_param_count(m, 0).str()});
  t.rows.push_back({"first-order Markov chain (d = 1): 1 + 2 * 783", markov_param_count(m, 1).str()});
  for (int64_t d : {2, 3, 8, 28}) t.rows.push_back({strf("order d = %lld", (long long)d), markov_param_count(m, d).str()});
  t.rows.push_back({"order d = 783: the full joint", strf("%zu digits (= 2^%lld - 1)", markov_param_count(m, m - 1).digits(), (long long)m)});
  ch.table(t);

  int64_t seen = test_images_in_train(mnist);
  ch.text(strf("With %lld train images, the full histogram puts $1/n$ on each of them and 0 elsewhere: only %lld of the %lld test "
               "images occur in the train set, so the test NLL is infinite.",
               (long long)mnist.train.size(0), (long long)seen, (long long)mnist.test.size(0)),
          strf("The full histogram (mass 1/n per train image) has seen %lld of %lld test images: test NLL = inf.", (long long)seen,
               (long long)mnist.test.size(0)));

  std::vector<PixelModel> models = {fit_independent(mnist.train), fit_markov1(mnist.train, false), fit_markov1(mnist.train, true)};
  const char* params[] = {"784", "1 + 2 * 783 = 1567", "2"};
  ch.text("Models with few parameters fitted by counting, with add-one (Laplace) smoothing as the PyTorch reference run "
          "`baselines`: $p_j = (n_{j1} + 1)/(n + 2)$ and $p(x_j = 1 | x_{j-1} = a) = (n_{a1} + 1)/(n_a + 2)$, with a virtual "
          "$x_0 = 0$. NLL on the test split in nats/dim (per image: $\\times 784$). The PyTorch reference "
          "(`pytorch_train.py baselines`) gives 0.2620 (independent) and 0.2154 (Markov-1 shared). These are the baselines the "
          "autoregressive models must beat.",
          "Fitted by counting with add-one smoothing (PyTorch reference: independent 0.2620, Markov-1 shared 0.2154 nats/dim):");
  Table b{{"model", "parameters", "train NLL", "test NLL (nats/dim)", "test bits/dim", "test nats/image"}, {}};
  Generator gen(seed);
  const char* files[] = {"samples_independent.png", "samples_markov1.png", "samples_markov1_shared.png"};
  for (size_t k = 0; k < models.size(); ++k) {
    double train = nll_per_dim(models[k], mnist.train), test = nll_per_dim(models[k], mnist.test);
    b.rows.push_back({models[k].name, params[k], strf("%.4f", train), strf("%.4f", test), strf("%.4f", test / std::log(2.0)),
                      strf("%.1f", test * double(m))});
  }
  ch.table(b);

  // sample grids: the data, then each model
  {
    std::vector<double> v = mnist.test.to_vector<double>();
    std::vector<uint8_t> real;
    Generator pick(seed + 1);
    for (int i = 0; i < 64; ++i) {
      int64_t r = pick.randint(0, mnist.test.size(0));
      for (int64_t j = 0; j < m; ++j) real.push_back(static_cast<uint8_t>(v[r * m + j]));
    }
    tools::save_image_grid(ch.path("test_images.png"), real, 64, 28, 28, 8, 2, 2, 1);
    ch.image("test_images.png", "64 binarized test digits, for comparison");
  }
  for (size_t k = 0; k < models.size(); ++k) {
    tools::save_image_grid(ch.path(files[k]), sample(models[k], 64, gen), 64, 28, 28, 8, 2, 2, 1);
    ch.image(files[k], "64 samples: " + models[k].name);
  }
  ch.text("Independent pixels give the average digit's ink as noise; the Markov chains draw horizontal strokes, since a pixel "
          "only sees its left neighbour; with a table per position the strokes stay where digits have ink, with one shared "
          "table they go anywhere.",
          "");
}

void conditional(Chapter& ch, const BinaryMnist& mnist, uint64_t seed) {
  ch.section("Conditional models", "\\pi(\\mathbf{x} | y), \\quad y \\text{ a class label}", "pi(x | y), y = the digit's label");
  ClassConditional model = fit_class_conditional(mnist.train, mnist.train_labels);
  ClassConditionalEval e = evaluate(model, mnist.test, mnist.test_labels);
  double unconditional = nll_per_dim(fit_independent(mnist.train), mnist.test);
  ch.text("An independent Bernoulli model per class, $p(\\mathbf{x} | y) = \\prod_j \\mathrm{Bernoulli}(x_j | p_{yj})$, fitted by "
          "counting (add-one smoothing), with $p(y)$ the class frequencies. Knowing the label makes each digit more likely; "
          "summing over labels gives an unconditional mixture model; Bayes' rule turns it into a classifier.",
          "an independent Bernoulli model per class, p(x | y) = prod_j Bernoulli(x_j | p_yj):");
  Table t{{"quantity", "test"}, {}};
  t.rows.push_back({"-log p(x) independent pixels (no label)", strf("%.4f nats/dim", unconditional)});
  t.rows.push_back({"-log p(x | y) class-conditional, true label", strf("%.4f nats/dim", e.conditional_nll)});
  t.rows.push_back({"-log sum_y p(y) p(x | y) (a mixture of 10)", strf("%.4f nats/dim", e.mixture_nll)});
  t.rows.push_back({"accuracy of argmax_y p(y | x) (naive Bayes)", strf("%.1f%%", 100 * e.accuracy)});
  ch.table(t);
  Generator gen(seed);
  tools::save_image_grid(ch.path("conditional_samples.png"), sample(model, 10, gen), 100, 28, 28, 10, 2, 2, 1);
  ch.image("conditional_samples.png", "samples of p(x | y): one row per digit y = 0..9");
  std::vector<float> means;
  for (double p : model.p_one.to_vector<double>()) means.push_back(static_cast<float>(p));
  tools::save_image_grid(ch.path("conditional_means.png"), means, 10, 28, 28, 1, 2, 3);
  ch.image("conditional_means.png", "the parameters p_yj = P(x_j = 1 | y), one image per digit");
}

}  // namespace

void write_histograms(Chapter& ch) {
  const uint64_t seed = ch.options().seed;
  histogram_1d(ch, seed + 1000);
  BinaryMnist mnist = load_binary_mnist(ch.options().data);
  curse_of_dimensionality(ch, mnist, seed + 1100);
  conditional(ch, mnist, seed + 1200);
}

}  // namespace dgm::lecture01
