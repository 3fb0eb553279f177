// The generative classifier; see classify.h.
#include <dgm/train/classify.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <dgm/tools/progress.h>

namespace dgm::train {

std::vector<double> label_prior(const Dataset& data, int64_t num_classes) {
  if (num_classes < 1) throw ValueError(cat("label_prior: num_classes must be positive, got ", num_classes));
  if (!data.has_labels()) throw ValueError("label_prior: the dataset has no labels");
  std::vector<double> counts(static_cast<size_t>(num_classes), 0.0);
  for (int64_t y : data.labels()) {
    if (y < 0 || y >= num_classes) throw ValueError(cat("label_prior: label ", y, " outside [0, ", num_classes, ")"));
    counts[static_cast<size_t>(y)] += 1;
  }
  for (double& c : counts) c /= static_cast<double>(data.labels().size());
  return counts;
}

namespace {

void check_prior(const std::vector<double>& prior, int64_t K) {
  if (static_cast<int64_t>(prior.size()) != K) throw ValueError(cat("classify: the prior has ", prior.size(), " entries, the model ", K, " classes"));
  for (double p : prior)
    if (!(p > 0) || !std::isfinite(p)) throw ValueError(cat("classify: every prior probability must be positive, got ", p));
}

}  // namespace

ClassifierResult bayes_classify(const std::vector<double>& log_likelihood, const std::vector<int64_t>& labels,
                                const std::vector<double>& prior, int64_t dim) {
  const int64_t K = static_cast<int64_t>(prior.size()), N = static_cast<int64_t>(labels.size());
  check_prior(prior, K);
  if (static_cast<int64_t>(log_likelihood.size()) != N * K)
    throw ShapeError(cat("bayes_classify: ", log_likelihood.size(), " log-likelihoods for ", N, " images x ", K, " classes"));
  if (N == 0 || dim < 1) throw ValueError(cat("bayes_classify: need images and dim >= 1, got ", N, " images, dim ", dim));
  ClassifierResult r;
  r.classes = K;
  r.images = N;
  r.dim = dim;
  r.labels = labels;
  r.log_likelihood = log_likelihood;
  r.confusion.assign(static_cast<size_t>(K * K), 0);
  r.posterior.resize(static_cast<size_t>(N * K));
  int64_t correct = 0;
  double sum_conditional = 0, sum_marginal = 0;
  std::vector<double> joint(static_cast<size_t>(K));
  for (int64_t i = 0; i < N; ++i) {
    const int64_t y_true = labels[static_cast<size_t>(i)];
    if (y_true < 0 || y_true >= K) throw ValueError(cat("classify: label ", y_true, " of image ", i, " outside [0, ", K, ")"));
    // log p(x, y) = log p(x | y) + log p(y);  log p(x) = logsumexp_y log p(x, y)
    double top = -std::numeric_limits<double>::infinity();
    int64_t best = 0;
    for (int64_t y = 0; y < K; ++y) {
      joint[static_cast<size_t>(y)] = log_likelihood[static_cast<size_t>(i * K + y)] + std::log(prior[static_cast<size_t>(y)]);
      if (joint[static_cast<size_t>(y)] > top) top = joint[static_cast<size_t>(y)], best = y;
    }
    double z = 0;
    for (double j : joint) z += std::exp(j - top);
    const double log_px = top + std::log(z);
    for (int64_t y = 0; y < K; ++y) r.posterior[static_cast<size_t>(i * K + y)] = std::exp(joint[static_cast<size_t>(y)] - log_px);  // p(y | x)
    r.log_marginal.push_back(log_px);
    r.predicted.push_back(best);
    r.confusion[static_cast<size_t>(y_true * K + best)] += 1;
    correct += best == y_true;
    sum_conditional -= log_likelihood[static_cast<size_t>(i * K + y_true)];
    sum_marginal -= log_px;
  }
  const double per = static_cast<double>(N) * static_cast<double>(dim);
  r.accuracy = static_cast<double>(correct) / static_cast<double>(N);
  r.conditional_nll = sum_conditional / per;
  r.marginal_nll = sum_marginal / per;
  return r;
}

ClassifierResult classify(models::GenerativeModel& model, const Dataset& test, const std::vector<double>& prior, int64_t batch_size,
                          int64_t max_images, bool quiet, std::ostream* log) {
  const int64_t K = model.num_classes();
  if (K <= 0) throw ValueError(cat("classify: ", model.type_name(), " is not conditional (num_classes() = 0); train it with --conditional true"));
  if (model.objective() == models::Objective::None)
    throw ValueError(cat("classify: ", model.type_name(), " has no likelihood p(x | y) to classify with"));
  check_prior(prior, K);
  if (!test.has_labels()) throw ValueError("classify: the test data has no labels to score the classifier against");
  if (batch_size < 1) throw ValueError(cat("classify: batch_size must be positive, got ", batch_size));
  const int64_t N = max_images > 0 ? std::min(max_images, test.size()) : test.size();
  if (N == 0) throw ValueError("classify: no test images");

  std::vector<double> log_likelihood(static_cast<size_t>(N * K));
  std::vector<int64_t> truth(static_cast<size_t>(N));
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  tools::ProgressOptions bar_options;
  bar_options.desc = "classify";
  bar_options.unit = "batch";
  bar_options.quiet = quiet;
  bar_options.out = log;
  tools::ProgressBar bar((N + batch_size - 1) / batch_size, bar_options);
  for (int64_t start = 0; start < N; start += batch_size) {
    const int64_t B = std::min(batch_size, N - start);
    // row b * K + y: image start + b under label y
    std::vector<int64_t> rows(static_cast<size_t>(B * K)), labels(static_cast<size_t>(B * K));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t y = 0; y < K; ++y) {
        rows[static_cast<size_t>(b * K + y)] = start + b;
        labels[static_cast<size_t>(b * K + y)] = y;
      }
    models::Batch repeated = test.gather(rows);
    const std::vector<int64_t> true_labels = repeated.y.to_vector<int64_t>();  // each K times
    repeated.y = from_vector(labels, {B * K});
    Tensor lp = model.log_prob(repeated);  // (B K,): log p(x_b | y)
    if (lp.dim() != 1 || lp.size(0) != B * K)
      throw ShapeError(cat("classify: log_prob gave ", shape_str(lp.shape()), " for ", B * K, " rows"));
    const std::vector<double> ll = lp.to_vector<double>();
    std::copy(ll.begin(), ll.end(), log_likelihood.begin() + start * K);
    for (int64_t b = 0; b < B; ++b) truth[static_cast<size_t>(start + b)] = true_labels[static_cast<size_t>(b * K)];
    bar.update();
  }
  bar.finish();
  model.train(was_training);
  return bayes_classify(log_likelihood, truth, prior, test.dim());
}

}  // namespace dgm::train
