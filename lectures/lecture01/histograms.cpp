// Lecture 1, problem statement: the computations (report and figures in histograms_chapter.cpp).
#include <dgm/lectures/lecture01/histograms.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <dgm/autograd/ops.h>
#include <dgm/data/mnist.h>
#include <dgm/nn/distributions.h>
#include <dgm/nn/functional.h>
#include <dgm/nn/optim.h>

namespace dgm::lecture01 {

namespace {
constexpr TensorOptions f64{.dtype = DType::Float64};
constexpr TensorOptions f64_grad{.dtype = DType::Float64, .requires_grad = true};
double Phi(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }
}  // namespace

// ---- the seminar's 1-D data ----------------------------------------------------------------------

Data1d seminar_data_1d(uint64_t seed, int64_t n, double train_fraction) {
  Generator gen(seed);
  nn::GaussianMixture mixture(tensor({0.5, 0.5}, f64), tensor({0.2, 0.6}, f64), tensor({0.05, 0.15}, f64));
  std::vector<double> x = mixture.sample(n, gen).to_vector<double>();
  Data1d data;
  const int64_t n_train = static_cast<int64_t>(std::round(train_fraction * double(n)));
  for (int64_t i = 0; i < n; ++i) {
    // scale by 99, clip to [0, 99], round down: a bin 0..99
    auto bin = static_cast<int64_t>(std::floor(std::clamp(x[i] * 99.0, 0.0, 99.0)));
    (i < n_train ? data.train : data.test).push_back(bin);
  }
  return data;
}

std::vector<double> seminar_bin_probs(int64_t bins) {
  auto cdf = [](double x) { return 0.5 * Phi((x - 0.2) / 0.05) + 0.5 * Phi((x - 0.6) / 0.15); };
  const double scale = double(bins - 1);  // 99: x * 99 in [k, k + 1) falls in bin k
  std::vector<double> p(bins);
  for (int64_t k = 0; k < bins; ++k) {
    double lo = k == 0 ? 0.0 : cdf(double(k) / scale);               // everything below 0 is clipped into bin 0
    double hi = k == bins - 1 ? 1.0 : cdf(double(k + 1) / scale);    // everything from 1 up lands in bin 99
    p[k] = hi - lo;
  }
  return p;
}

double nll_nats(const std::vector<double>& probs, const std::vector<int64_t>& x) {
  double total = 0;
  for (int64_t v : x) total -= std::log(probs.at(static_cast<size_t>(v)));  // log 0 = -inf: an infinite NLL
  return total / double(x.size());
}

HistogramFit fit_histogram_1d(const Data1d& data, int64_t steps, double lr) {
  const int64_t K = data.bins, N = static_cast<int64_t>(data.train.size());
  HistogramFit fit;
  fit.counts.assign(K, 0.0);
  for (int64_t v : data.train) fit.counts[v] += 1;
  for (int64_t k = 0; k < K; ++k) {
    fit.mle.push_back(fit.counts[k] / double(N));                  // pi_k = sum_i [x_i = k] / n
    fit.laplace.push_back((fit.counts[k] + 1) / double(N + K));    // add-one smoothing
    if (fit.counts[k] == 0) ++fit.empty_bins;
  }
  for (int64_t v : data.test)
    if (fit.counts[v] == 0) ++fit.test_in_empty_bins;
  fit.truth = seminar_bin_probs(K);

  // The same model trained by gradient descent: p = softmax(theta), loss = the NLL of the train data,
  //   -(1/n) sum_i log p(x_i) = -sum_k (c_k / n) log p_k = H(mle, p)   (the cross entropy),
  // the n terms grouped by value: 100 terms per step instead of 800, the same number (see
  // nll_by_samples, which the tests compare with nn::F::cross_entropy over the samples).
  Tensor theta = zeros({K}, f64_grad);
  Tensor mle = from_vector(fit.mle, {K});
  nn::Adam opt({theta}, {.lr = lr});
  for (int64_t step = 0; step < steps; ++step) {
    opt.zero_grad();
    Tensor loss = -sum(mle * log_softmax(theta, 0));
    loss.backward();
    opt.step();
    fit.loss_curve.push_back(loss.item());
  }
  fit.learned = softmax(theta.detach(), 0).to_vector<double>();
  fit.steps = steps;

  fit.train_nll_mle = nll_nats(fit.mle, data.train);
  fit.train_nll_learned = nll_nats(fit.learned, data.train);
  // train NLL(q) - train NLL(mle) = sum_k mle_k log(mle_k / q_k) = KL(mle || q)
  fit.kl_mle_learned = fit.train_nll_learned - fit.train_nll_mle;
  fit.test_nll_mle = nll_nats(fit.mle, data.test);
  fit.test_nll_laplace = nll_nats(fit.laplace, data.test);
  fit.test_nll_learned = nll_nats(fit.learned, data.test);
  fit.test_nll_truth = nll_nats(fit.truth, data.test);
  return fit;
}

double nll_by_samples(const std::vector<double>& logits, const std::vector<int64_t>& x) {
  const int64_t N = static_cast<int64_t>(x.size()), K = static_cast<int64_t>(logits.size());
  Tensor theta = expand(unsqueeze(from_vector(logits, {K}), 0), {N, K});  // the same logits for every sample
  return nn::F::cross_entropy(theta, from_vector(x, {N})).item();
}

// ---- counting parameters -------------------------------------------------------------------------

BigNat::BigNat(uint64_t v) {
  do {
    digits_.push_back(static_cast<uint8_t>(v % 10));
    v /= 10;
  } while (v > 0);
}

BigNat BigNat::pow2(int64_t e) {
  if (e < 0) throw ValueError(cat("BigNat::pow2: negative exponent ", e));
  BigNat r(1);
  for (int64_t i = 0; i < e; ++i) r = r * 2;
  return r;
}

BigNat BigNat::operator+(const BigNat& o) const {
  BigNat r;
  r.digits_.clear();
  int carry = 0;
  for (size_t i = 0; i < std::max(digits_.size(), o.digits_.size()) || carry; ++i) {
    int s = carry + (i < digits_.size() ? digits_[i] : 0) + (i < o.digits_.size() ? o.digits_[i] : 0);
    r.digits_.push_back(static_cast<uint8_t>(s % 10));
    carry = s / 10;
  }
  return r;
}

BigNat BigNat::operator*(uint64_t k) const {
  if (k == 0) return BigNat(0);
  BigNat r;
  r.digits_.clear();
  unsigned __int128 carry = 0;
  for (size_t i = 0; i < digits_.size() || carry; ++i) {
    unsigned __int128 s = carry + (i < digits_.size() ? static_cast<unsigned __int128>(digits_[i]) * k : 0);
    r.digits_.push_back(static_cast<uint8_t>(s % 10));
    carry = s / 10;
  }
  return r;
}

BigNat BigNat::minus_one() const {
  if (digits_.size() == 1 && digits_[0] == 0) throw ValueError("BigNat::minus_one: 0 - 1 is not a natural number");
  BigNat r = *this;
  size_t i = 0;
  while (r.digits_[i] == 0) r.digits_[i++] = 9;  // borrow
  r.digits_[i] -= 1;
  while (r.digits_.size() > 1 && r.digits_.back() == 0) r.digits_.pop_back();
  return r;
}

std::string BigNat::str() const {
  std::string s;
  for (auto it = digits_.rbegin(); it != digits_.rend(); ++it) s += static_cast<char>('0' + *it);
  return s;
}

BigNat markov_param_count(int64_t m, int64_t d) {
  if (m < 1 || d < 0 || d >= m) throw ValueError(cat("markov_param_count: need m >= 1 and 0 <= d < m, got m = ", m, ", d = ", d));
  // pixels 1..d see all their predecessors: 1 + 2 + ... + 2^(d-1) = 2^d - 1; the other m - d see d each: 2^d
  return (BigNat::pow2(d) * static_cast<uint64_t>(m - d + 1)).minus_one();
}

// ---- binarized MNIST baselines -------------------------------------------------------------------

BinaryMnist load_binary_mnist(const std::string& source) {
  BinaryMnist out;
  for (data::Split split : {data::Split::Train, data::Split::Test}) {
    data::MnistData d = data::load_mnist(source, split);
    std::vector<uint8_t> bits = data::binarize(d.pixels);  // pixel > 128
    Tensor x = from_vector(std::vector<double>(bits.begin(), bits.end()), {d.n, d.pixels_per_image()});
    std::vector<int64_t> labels(d.labels.begin(), d.labels.end());
    if (split == data::Split::Train) out.train = x, out.train_labels = labels;
    else out.test = x, out.test_labels = labels;
  }
  return out;
}

int64_t test_images_in_train(const BinaryMnist& data) {
  auto rows = [](const Tensor& x) {
    std::vector<double> v = x.to_vector<double>();
    const size_t D = static_cast<size_t>(x.size(1));
    std::vector<std::string> out;
    for (size_t i = 0; i < v.size(); i += D) {
      std::string r(D, '0');
      for (size_t j = 0; j < D; ++j) r[j] = v[i + j] > 0.5 ? '1' : '0';
      out.push_back(r);
    }
    return out;
  };
  std::vector<std::string> train = rows(data.train);
  std::sort(train.begin(), train.end());
  int64_t seen = 0;
  for (const std::string& r : rows(data.test)) seen += std::binary_search(train.begin(), train.end(), r) ? 1 : 0;
  return seen;
}

namespace {
// The previous pixel of every pixel in raster order, with a virtual 0 before the first: (N, D).
Tensor previous_pixels(const Tensor& x) {
  const int64_t N = x.size(0), D = x.size(1);
  return cat({zeros({N, 1}, f64), slice(x, 1, 0, D - 1)}, 1);
}
}  // namespace

PixelModel fit_independent(const Tensor& x) {
  const double N = double(x.size(0));
  Tensor p = (sum(x, {0}) + 1.0) / (N + 2.0);  // P(x_j = 1) = (n_j1 + 1) / (N + 2): (D)
  return {"independent pixels", stack({p, p}, 1), false};  // the same for either previous pixel
}

PixelModel fit_markov1(const Tensor& x, bool shared) {
  Tensor prev = previous_pixels(x);
  // counts of (previous pixel a, pixel = 1) and of a, per position (D) or over all positions (shared)
  std::vector<int64_t> dims = shared ? std::vector<int64_t>{0, 1} : std::vector<int64_t>{0};
  Tensor n_a1 = sum(prev * x, dims), n_a = sum(prev, dims);                    // a = 1
  Tensor n_01 = sum((1.0 - prev) * x, dims), n_0 = sum(1.0 - prev, dims);      // a = 0
  Tensor p0 = (n_01 + 1.0) / (n_0 + 2.0), p1 = (n_a1 + 1.0) / (n_a + 2.0);    // P(x_j = 1 | x_{j-1} = a)
  const int64_t D = x.size(1);
  if (shared) p0 = expand(p0, {D}), p1 = expand(p1, {D});
  return {shared ? "Markov-1, shared table" : "Markov-1, table per position", contiguous(stack({p0, p1}, 1)), true};
}

Tensor log_prob(const PixelModel& model, const Tensor& x) {
  Tensor prev = previous_pixels(x);
  Tensor p0 = select(model.p_one, 1, 0), p1 = select(model.p_one, 1, 1);  // (D)
  Tensor p = p0 + prev * (p1 - p0);                                       // P(x_j = 1 | x_{j-1}): (N, D)
  return sum(x * log(p) + (1.0 - x) * log(1.0 - p), {1});                 // sum_j log Bernoulli(x_j | p)
}

double nll_per_dim(const PixelModel& model, const Tensor& x) {
  return -mean(log_prob(model, x)).item() / double(x.size(1));
}

std::vector<uint8_t> sample(const PixelModel& model, int64_t n, Generator& gen) {
  const int64_t D = model.p_one.size(0);
  std::vector<double> p = model.p_one.to_vector<double>();  // row j: (P(1 | prev 0), P(1 | prev 1))
  std::vector<uint8_t> out(static_cast<size_t>(n * D));
  for (int64_t i = 0; i < n; ++i) {
    int prev = 0;
    for (int64_t j = 0; j < D; ++j) {  // raster order: each pixel given the one before
      int v = gen.uniform() < p[j * 2 + prev] ? 1 : 0;
      out[i * D + j] = static_cast<uint8_t>(v);
      prev = v;
    }
  }
  return out;
}

ClassConditional fit_class_conditional(const Tensor& x, const std::vector<int64_t>& labels) {
  Tensor y = to(one_hot(from_vector(labels, {int64_t(labels.size())}), 10), DType::Float64);  // (N, 10)
  Tensor counts = matmul(y.t(), x);            // (10, D): images of class c with pixel j on
  Tensor n_c = sum(y, {0});                    // (10)
  ClassConditional m;
  m.p_one = (counts + 1.0) / unsqueeze(n_c + 2.0, 1);
  m.prior = n_c / double(labels.size());
  return m;
}

// log p(x | y = c) for every image and class: (N, 10)
Tensor class_log_likelihoods(const ClassConditional& m, const Tensor& x) {
  return matmul(x, log(m.p_one).t()) + matmul(1.0 - x, log(1.0 - m.p_one).t());
}

ClassConditionalEval evaluate(const ClassConditional& model, const Tensor& x, const std::vector<int64_t>& labels) {
  const int64_t N = x.size(0), D = x.size(1);
  Tensor L = class_log_likelihoods(model, x);
  Tensor y = from_vector(labels, {N});
  Tensor joint = L + log(model.prior);  // log p(x, y)
  ClassConditionalEval e;
  e.conditional_nll = -mean(gather(L, 1, unsqueeze(y, 1))).item() / double(D);
  e.mixture_nll = -mean(logsumexp(joint, {1})).item() / double(D);
  e.accuracy = mean(to(argmax(joint, 1) == y, DType::Float64)).item();  // Bayes' rule: argmax p(y | x)
  return e;
}

std::vector<uint8_t> sample(const ClassConditional& model, int64_t per_class, Generator& gen) {
  const int64_t D = model.p_one.size(1);
  std::vector<uint8_t> out;
  for (int64_t c = 0; c < 10; ++c) {
    Tensor p = contiguous(expand(unsqueeze(select(model.p_one, 0, c), 0), {per_class, D}));
    for (double v : bernoulli(p, &gen).to_vector<double>()) out.push_back(static_cast<uint8_t>(v));
  }
  return out;
}

}  // namespace dgm::lecture01
