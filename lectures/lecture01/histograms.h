// Lecture 1, "Problem statement": the histogram as a generative model, why it fails in high
// dimension (the curse of dimensionality on binarized MNIST), and conditional models p(x | y).
//
//   histogram MLE        pi_k = sum_i [x_i = k] / n
//   MLE = cross entropy  argmin_theta -(1/n) sum_i log softmax(theta)_{x_i}  reaches the same pi
//   parameters           full joint 2^784 - 1;  independent 784;  Markov order d: 2^d (m - d + 1) - 1
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <dgm/autograd/tensor.h>

namespace dgm::lecture01 {

// ---- the seminar's 1-D data ----------------------------------------------------------------------

// 1,000 points of 0.5 N(0.2, 0.05^2) + 0.5 N(0.6, 0.15^2), scaled by 99, clipped to [0, 99] and
// rounded down: values 0..99 (100 bins); the first 80% train, the rest test.
struct Data1d {
  int64_t bins = 100;
  std::vector<int64_t> train, test;
};
Data1d seminar_data_1d(uint64_t seed, int64_t n = 1000, double train_fraction = 0.8);
// The exact probability of each bin under that process (mixture CDF differences; the clipped tails
// go to bins 0 and 99).
std::vector<double> seminar_bin_probs(int64_t bins = 100);

// Mean negative log-likelihood in nats of integer data under bin probabilities (inf if a value has
// probability 0).
double nll_nats(const std::vector<double>& probs, const std::vector<int64_t>& x);

struct HistogramFit {
  std::vector<double> counts;        // of the train data
  std::vector<double> mle;           // counts / n: the histogram
  std::vector<double> laplace;       // (counts + 1) / (n + K): add-one smoothing, no empty bin
  std::vector<double> learned;       // softmax(theta) after training theta on the NLL
  std::vector<double> truth;         // seminar_bin_probs
  std::vector<double> loss_curve;    // train NLL per step
  int64_t steps = 0, empty_bins = 0, test_in_empty_bins = 0;
  double train_nll_mle = 0, train_nll_learned = 0;
  double kl_mle_learned = 0;         // KL(mle || learned) = train_nll_learned - train_nll_mle >= 0
  double test_nll_mle = 0;           // inf when a test point falls in an empty train bin
  double test_nll_laplace = 0, test_nll_learned = 0, test_nll_truth = 0;
};
// Trains logits theta (K) with Adam on the train NLL (= cross entropy), full batch.
HistogramFit fit_histogram_1d(const Data1d& data, int64_t steps, double lr);
// The NLL -(1/n) sum_i log softmax(logits)_{x_i} as the cross entropy over the n samples
// (nn::F::cross_entropy), for checking the grouped form fit_histogram_1d trains on.
double nll_by_samples(const std::vector<double>& logits, const std::vector<int64_t>& x);

// ---- counting parameters -------------------------------------------------------------------------

// A natural number in decimal digits, just enough arithmetic to write 2^784 - 1 exactly.
class BigNat {
 public:
  BigNat(uint64_t v = 0);
  static BigNat pow2(int64_t e);
  BigNat operator+(const BigNat& o) const;
  BigNat operator*(uint64_t k) const;
  BigNat minus_one() const;  // ValueError on zero
  std::string str() const;
  size_t digits() const { return digits_.size(); }
  bool operator==(const BigNat& o) const { return digits_ == o.digits_; }

 private:
  std::vector<uint8_t> digits_;  // little-endian base 10, no leading zeros ("0" is {0})
};

// Free parameters of a binary model over m pixels in which each pixel depends on the previous d:
//   sum_{j=1}^{m} 2^{min(j-1, d)} = (2^d - 1) + (m - d) 2^d.
// d = 0: independent pixels (m); d = 1: first-order Markov chain (1 + 2 (m - 1));
// d = m - 1: the full joint histogram (2^m - 1).
BigNat markov_param_count(int64_t m, int64_t d);

// ---- binarized MNIST baselines -------------------------------------------------------------------

struct BinaryMnist {
  Tensor train, test;                            // (N, 784) float64 of 0/1 (pixel > 128)
  std::vector<int64_t> train_labels, test_labels;
};
BinaryMnist load_binary_mnist(const std::string& data = "");

// The full joint histogram puts mass 1/N on each distinct train image and 0 everywhere else: how
// many test images it has seen (all others get probability 0, an infinite NLL).
int64_t test_images_in_train(const BinaryMnist& data);

// Models fitted by counting with Laplace (add-one) smoothing, as the PyTorch reference run's baselines.
//   independent:     p(x) = prod_j Bernoulli(x_j | p_j),  p_j = (n_j1 + 1) / (n + 2)
//   markov1:         p(x) = prod_j p(x_j | x_{j-1}), x_0 = 0 (a virtual pixel before the first), with
//                    a table per position (1 + 2 * 783 parameters) or one table shared by all (2)
struct PixelModel {
  std::string name;
  // P(x_j = 1 | x_{j-1} = a) as a (784, 2) table, column a; the independent model ignores a.
  Tensor p_one;
  bool markov = false;
};
PixelModel fit_independent(const Tensor& x);
PixelModel fit_markov1(const Tensor& x, bool shared);
// log p(x) per image: (N, 784) -> (N) in nats
Tensor log_prob(const PixelModel& model, const Tensor& x);
// Mean NLL per pixel, nats/dim.
double nll_per_dim(const PixelModel& model, const Tensor& x);
// n samples (n * 784 bytes of 0/1), drawn pixel by pixel in raster order.
std::vector<uint8_t> sample(const PixelModel& model, int64_t n, Generator& gen);

// Class-conditional independent Bernoulli model p(x | y) = prod_j Bernoulli(x_j | p_{y j}) with a
// prior p(y) = class frequency. It gives the conditional NLL -log p(x | y), the unconditional
// mixture p(x) = sum_y p(y) p(x | y), and a classifier p(y | x) by Bayes' rule.
struct ClassConditional {
  Tensor p_one;  // (10, 784)
  Tensor prior;  // (10)
};
ClassConditional fit_class_conditional(const Tensor& x, const std::vector<int64_t>& labels);
// x (N, 784) float64 0/1 -> (N, 10): log p(x | y) for every label y, nats
Tensor class_log_likelihoods(const ClassConditional& model, const Tensor& x);
struct ClassConditionalEval {
  double conditional_nll = 0;  // -log p(x | y) per pixel, nats/dim
  double mixture_nll = 0;      // -log sum_y p(y) p(x | y) per pixel
  double accuracy = 0;         // argmax_y p(y | x) = label
};
ClassConditionalEval evaluate(const ClassConditional& model, const Tensor& x, const std::vector<int64_t>& labels);
// `per_class` samples of each digit, class by class: (10 * per_class) * 784 bytes of 0/1.
std::vector<uint8_t> sample(const ClassConditional& model, int64_t per_class, Generator& gen);

}  // namespace dgm::lecture01
