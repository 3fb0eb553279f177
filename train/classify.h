// A conditional generative model is a classifier by Bayes' rule (lecture 1, seminar 1):
//
//   p(y | x) = p(x | y) p(y) / p(x),      p(x) = sum_y p(x | y) p(y),
//
// with p(x | y) the model's likelihood given the label and p(y) the class frequencies of the
// training split. One call scores every test image under every label (each batch repeated
// num_classes times, with labels 0, 1, ..., K-1), then gives
//
//   prediction      argmax_y [log p(x | y) + log p(y)]
//   posterior       p(y | x) = softmax_y(log p(x | y) + log p(y))      (rows sum to 1)
//   marginal NLL    -log p(x) = -logsumexp_y(log p(x | y) + log p(y))   per dim, nats
//   conditional NLL -log p(x | y_true)                                  per dim, nats
//
// The marginal NLL is comparable with an unconditional model's test NLL: both are -log p(x).
//
//   ClassifierResult r = train::classify(model, test, train::label_prior(train));
//   std::cout << r.accuracy;    // r.confusion[true * K + predicted]
#pragma once
#include <cstdint>
#include <ostream>
#include <vector>

#include <dgm/models/model.h>
#include <dgm/train/dataset.h>

namespace dgm::train {

// The class frequencies of a labelled dataset: p(y) = #{i: y_i = y} / N, for y in [0, num_classes).
// ValueError if the dataset has no labels, or a label is outside [0, num_classes).
std::vector<double> label_prior(const Dataset& data, int64_t num_classes = 10);

struct ClassifierResult {
  int64_t classes = 0, images = 0, dim = 0;
  double accuracy = 0;                   // fraction of images with argmax_y p(y | x) = y_true
  std::vector<int64_t> confusion;        // (classes x classes), [true * classes + predicted]
  std::vector<int64_t> predicted;        // per image
  std::vector<int64_t> labels;           // per image, the true label
  std::vector<double> log_likelihood;    // (images x classes), log p(x | y) in nats
  std::vector<double> posterior;         // (images x classes), p(y | x); each row sums to 1
  std::vector<double> log_marginal;      // per image, log p(x) = log sum_y p(x | y) p(y), nats
  double conditional_nll = 0;            // -mean log p(x | y_true) / D, nats/dim
  double marginal_nll = 0;               // -mean log p(x) / D, nats/dim
};

// Bayes' rule on given likelihoods: log_likelihood (images x classes) = log p(x_i | y) in nats,
// labels the true class of each image, prior p(y), dim the values per image (for the per-dim NLLs).
// For models outside the GenerativeModel interface (the lecture's naive Bayes); classify() uses it too.
ClassifierResult bayes_classify(const std::vector<double>& log_likelihood, const std::vector<int64_t>& labels,
                                const std::vector<double>& prior, int64_t dim);

// Scores the first `max_images` images of `test` (0: all) under every label, `batch_size` images
// (times num_classes rows) per forward. The model must be conditional (num_classes() > 0) and have a
// likelihood; `prior` has num_classes() entries, each > 0. Runs in eval mode without a graph and
// restores the model's training mode. With a log stream and !quiet, draws a progress bar.
ClassifierResult classify(models::GenerativeModel& model, const Dataset& test, const std::vector<double>& prior,
                          int64_t batch_size = 32, int64_t max_images = 0, bool quiet = true, std::ostream* log = nullptr);

}  // namespace dgm::train
