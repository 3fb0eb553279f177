// Lecture 1, conditional models: p(x | y) with y the digit's label, and Bayes' rule turning any
// conditional generative model into a classifier (seminar 1).
//
//   p(y | x) = p(x | y) p(y) / p(x),      p(x) = sum_y p(x | y) p(y)
//   naive Bayes:        p(x | y) = prod_j Bernoulli(x_j | p_yj)           (the per-digit histograms)
//   conditional ImageGPT: h_t^0 = pos_t + (t == 0 ? sos : tok[x_{t-1}]) + e_y
//   conditional PixelCNN: h = masked_conv_l(...) + b_y^l after every masked convolution
//
// Every figure is a number returned by a function here (tests/test_lecture01_conditional.cpp checks
// them); conditional_chapter.cpp prints them and writes the report.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <dgm/autograd/tensor.h>
#include <dgm/train/classify.h>

namespace dgm::lecture01 {

// `n` indices spread evenly over [0, total): i * total / n (the test split is ordered by digit, so
// the first n would all be zeros).
std::vector<int64_t> spread_indices(int64_t total, int64_t n);

// Naive Bayes from the per-digit histograms (histograms.h: fit_class_conditional, add-one smoothing)
// as a classifier on the test images `indices` (all when empty): accuracy, confusion, posteriors.
train::ClassifierResult naive_bayes(const std::string& data = "", const std::vector<int64_t>& indices = {});

struct ConditionalRun {
  std::string model;          // "imagegpt" or "pixelcnn"
  std::string config;         // the JSON config (with "conditional": true)
  std::string source;         // "trained in the lecture" or the checkpoint file
  int64_t parameters = 0;
  int64_t steps = 0, batch = 0;  // the lecture's short run (0 steps for a checkpoint)
  double lr = 0;
  double seconds = 0;         // of training
  double train_loss_first = 0, train_loss_last = 0;  // nats/dim, means of the first / last 10 steps
  train::ClassifierResult result;  // on the test images scored
  std::vector<int64_t> samples;    // per_class samples of each digit 0..9, class by class, 784 values each
  int64_t per_class = 0;
};

// A conditional `name` (imagegpt or pixelcnn) with `config` (+ "conditional": true), trained from
// scratch for `steps` Adam steps of `batch` binarized train digits (seed), then scored as a classifier
// on the test images `indices` (all when empty), p(y) the train split's label frequencies, and
// sampled: `per_class` images of each digit.
ConditionalRun train_conditional(const std::string& name, nlohmann::json config, int64_t steps, int64_t batch, double lr, uint64_t seed,
                                 const std::vector<int64_t>& indices, int64_t per_class, const std::string& data = "");
// The same from a `dgm train NAME --conditional true` checkpoint (a file or its run folder).
ConditionalRun load_conditional(const std::string& checkpoint, uint64_t seed, const std::vector<int64_t>& indices, int64_t per_class,
                                const std::string& data = "");

// The k images of a classifier's result it finds least likely: the indices (into result.labels) of the
// k smallest log p(x | y_true), least likely first.
std::vector<int64_t> least_likely(const train::ClassifierResult& result, int64_t k);

}  // namespace dgm::lecture01
