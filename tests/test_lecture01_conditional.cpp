// Lecture 1, conditional models (lectures/lecture01/conditional.h): naive Bayes as the baseline
// classifier, the short conditional runs, the least likely digits, and the module end to end.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <dgm/lectures/lecture01/conditional.h>
#include <dgm/lectures/lecture01/lecture01.h>

using namespace dgm;
using namespace dgm::lecture01;
namespace fs = std::filesystem;

TEST(Lecture01Conditional, SpreadIndicesCoverTheSplit) {
  EXPECT_EQ(spread_indices(997, 4), (std::vector<int64_t>{0, 249, 498, 747}));
  EXPECT_EQ(spread_indices(3, 10), (std::vector<int64_t>{0, 1, 2}));  // at most all of them
  EXPECT_THROW(spread_indices(0, 3), ValueError);
}

// Naive Bayes through train::bayes_classify agrees with the histograms chapter's own evaluation.
TEST(Lecture01Conditional, NaiveBayesIsTheHistogramsClassifier) {
  const train::ClassifierResult r = naive_bayes();
  BinaryMnist mnist = load_binary_mnist();
  ClassConditionalEval e = evaluate(fit_class_conditional(mnist.train, mnist.train_labels), mnist.test, mnist.test_labels);
  EXPECT_EQ(r.images, mnist.test.size(0));
  EXPECT_NEAR(r.accuracy, e.accuracy, 1e-12);
  EXPECT_NEAR(r.conditional_nll, e.conditional_nll, 1e-9);
  EXPECT_NEAR(r.marginal_nll, e.mixture_nll, 1e-9);
  EXPECT_GT(r.accuracy, 0.80);  // 84.3% on the embedded digits
  EXPECT_LT(r.accuracy, 0.90);
  for (int64_t i = 0; i < r.images; i += 97) {
    double s = 0;
    for (int64_t y = 0; y < 10; ++y) s += r.posterior[static_cast<size_t>(i * 10 + y)];
    EXPECT_NEAR(s, 1.0, 1e-12);
  }
  // the least likely digits come first, in increasing log p(x | y_true)
  const std::vector<int64_t> worst = least_likely(r, 5);
  ASSERT_EQ(worst.size(), 5u);
  auto ll = [&](int64_t i) { return r.log_likelihood[static_cast<size_t>(i * 10 + r.labels[static_cast<size_t>(i)])]; };
  for (size_t k = 1; k < worst.size(); ++k) EXPECT_LE(ll(worst[k - 1]), ll(worst[k]));
  for (int64_t i = 0; i < r.images; ++i) EXPECT_GE(ll(i), ll(worst[0]));
}

TEST(Lecture01Conditional, AShortConditionalRunLearnsAndSamplesEveryDigit) {
  const std::vector<int64_t> picks = spread_indices(997, 20);
  ConditionalRun r = train_conditional("pixelcnn", {{"channels", 4}, {"layers", 1}, {"kernel_a", 5}}, 30, 8, 1e-2, 0, picks, 1);
  EXPECT_EQ(r.result.images, 20);
  EXPECT_EQ(r.samples.size(), 10u * 784u);
  EXPECT_LT(r.train_loss_last, r.train_loss_first);
  EXPECT_LT(r.result.conditional_nll, 0.69);  // better than a coin per pixel after 30 steps
  EXPECT_NE(r.config.find("\"conditional\":true"), std::string::npos);
  double s = 0;
  for (int64_t y = 0; y < 10; ++y) s += r.result.posterior[static_cast<size_t>(y)];
  EXPECT_NEAR(s, 1.0, 1e-9);
}
