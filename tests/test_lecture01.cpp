// Lecture 1: every claim of the chapters in lectures/lecture01/ checked on small, seeded samples.
//
// Tolerances: a Monte-Carlo number is compared with its exact value within 5 standard errors (a
// Gaussian deviation that large has probability 6e-7, and the seeds are fixed); a deterministic
// computation within the rounding error of float64 arithmetic; an optimisation within a stated
// optimisation tolerance.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <dgm/autograd/ops.h>
#include <dgm/lectures/lecture01/lecture01.h>
#include <dgm/tensor/errors.h>

using namespace dgm;
using namespace dgm::lecture01;

namespace {

constexpr double kSigmas = 5;  // standard errors allowed for a Monte-Carlo estimate

// float64 rounding of a few dozen operations on O(1) numbers (eps = 2.2e-16)
constexpr double kRounding = 1e-12;

}  // namespace

// ==== course tricks =================================================================================

TEST(Lecture01Tricks, LogDerivativeTrickHoldsUnderAutograd) {
  std::vector<LogDerivativeCheck> checks = check_log_derivative(7);
  ASSERT_EQ(checks.size(), 4u);
  for (const LogDerivativeCheck& c : checks) EXPECT_LT(c.max_abs_diff, kRounding) << c.formula;
}

TEST(Lecture01Tricks, ScoreFunctionAndReparameterisationAreUnbiased) {
  ScoreVsReparam r = score_vs_reparam(1.5, 0.8, 20000, 3);
  for (const GradientEstimate* e : {&r.score_mu, &r.reparam_mu, &r.score_sigma, &r.reparam_sigma})
    EXPECT_LT(std::abs(e->estimate - e->exact), kSigmas * e->std_error) << e->estimate << " vs " << e->exact;
  EXPECT_DOUBLE_EQ(r.score_mu.exact, 3.0);
  EXPECT_DOUBLE_EQ(r.score_sigma.exact, 1.6);
}

TEST(Lecture01Tricks, ScoreFunctionHasTheLargerVariance) {
  ScoreVsReparam r = score_vs_reparam(1.5, 0.8, 20000, 4);
  // the sample variances agree with the closed forms within 5 standard errors of a variance
  for (const GradientEstimate* e : {&r.score_mu, &r.reparam_mu, &r.score_sigma, &r.reparam_sigma})
    EXPECT_LT(std::abs(e->variance - e->exact_variance), kSigmas * e->variance_se) << e->variance << " vs " << e->exact_variance;
  // and the closed forms order the estimators: the score function is the noisier one
  EXPECT_GT(r.score_mu.exact_variance, 5 * r.reparam_mu.exact_variance);
  EXPECT_GT(r.score_sigma.exact_variance, 5 * r.reparam_sigma.exact_variance);
  EXPECT_GT(r.score_mu.variance, r.reparam_mu.variance);
  EXPECT_GT(r.score_sigma.variance, r.reparam_sigma.variance);
}

TEST(Lecture01Tricks, JensenInequalityHoldsBeyondMonteCarloError) {
  for (const JensenRow& r : jensen_examples(20000, 5)) {
    double se = r.ci95 / 1.96;
    EXPECT_LT(std::abs(r.mean_f - r.exact_mean_f), kSigmas * se) << r.f;
    EXPECT_GT(r.mean_f - kSigmas * se, r.f_of_mean) << r.f;  // E f(x) > f(E x), significantly
    EXPECT_GE(r.sample_gap, 0.0) << r.f;                    // Jensen for the empirical distribution
  }
}

TEST(Lecture01Tricks, JensenGapForLogIsMinusHalfTheSquaredSpread) {
  JensenLogGap g = jensen_log_gap({0.25, 0.5, 1.0}, 20000, 6);
  for (size_t i = 0; i < g.spread.size(); ++i) {
    EXPECT_LT(std::abs(g.gap[i] - g.exact_gap[i]), kSigmas * g.ci95[i] / 1.96) << "s = " << g.spread[i];
    EXPECT_LT(g.gap[i], 0.0);  // E log x <= log E x
  }
}

TEST(Lecture01Tricks, MonteCarloErrorFallsAsOneOverSqrtN) {
  for (const McTarget& t : mc_targets()) {
    McConvergence c = mc_convergence(t, {10, 30, 100, 300, 1000}, 400, 8);
    EXPECT_LT(std::abs(c.slope + 0.5), kSigmas * c.slope_se) << t.name << ": slope " << c.slope << " +- " << c.slope_se;
    EXPECT_LT(c.slope_se, 0.05) << t.name;  // the fit over 400 replications pins the slope down
  }
}

TEST(Lecture01Tricks, CltIntervalsCoverAtTheirNominalRate) {
  for (const McTarget& t : mc_targets()) {
    McConvergence c = mc_convergence(t, {300, 1000}, 1500, 9);
    EXPECT_LT(std::abs(c.coverage.back() - 0.95), kSigmas * c.coverage_se) << t.name << ": coverage " << c.coverage.back();
  }
}

TEST(Lecture01Tricks, RunningEstimateOfPiConverges) {
  RunningEstimate r = mc_running_estimate(mc_targets()[3], 20000, 10);
  double se = (r.hi.back() - r.lo.back()) / (2 * 1.96);
  EXPECT_LT(std::abs(r.estimate.back() - M_PI), kSigmas * se);
  EXPECT_EQ(r.n.back(), 20000);
}

TEST(Lecture01Tricks, ChangeOfVariablesMatchesAnalyticDensityAndSamples) {
  std::vector<InvertibleMap> maps = cov_maps_1d();
  for (const InvertibleMap& m : cov_maps_2d(11)) maps.push_back(m);
  ASSERT_EQ(maps.size(), 6u);
  for (const InvertibleMap& m : maps) {
    CovCheck c = check_change_of_variables(m, 20000, m.dim == 1 ? 30 : 12, 12);
    // the theorem with autograd's Jacobian is the analytic density, to float64 rounding
    EXPECT_LT(c.max_abs_log_diff, 1e-9) << m.formula;
    // the histogram of samples: Pearson chi2 ~ dof +- sqrt(2 dof) under the right density
    EXPECT_GT(c.dof, 10) << m.formula;
    EXPECT_LT(c.chi2, double(c.dof) + kSigmas * std::sqrt(2.0 * double(c.dof))) << m.formula << ": chi2 " << c.chi2;
  }
}

TEST(Lecture01Tricks, ChangeOfVariablesAtAPointByHand) {
  // y = exp(x): p(y) = N(log y) / y; at y = 2
  InvertibleMap exp_map = cov_maps_1d()[0];
  double by_hand = -0.5 * std::log(2.0) * std::log(2.0) - 0.5 * std::log(2 * M_PI) - std::log(2.0);
  EXPECT_NEAR(cov_log_density(exp_map, {2.0}), by_hand, kRounding);
  // affine y = A x + b: log p(y) = log N(A^-1 (y - b)) - log |det A|, whatever the point
  InvertibleMap affine = cov_maps_2d(11)[0];
  EXPECT_NEAR(cov_log_density(affine, {0.3, -0.7}), affine.exact_log_density({0.3, -0.7}), kRounding);
}

TEST(Lecture01Tricks, LotusGivesTheSameExpectationBothWays) {
  for (const LotusRow& r : lotus_examples(20000, 13)) {
    EXPECT_LT(std::abs(r.via_y - r.exact), kSigmas * r.via_y_se) << r.description;
    EXPECT_LT(std::abs(r.via_x - r.exact), kSigmas * r.via_x_se) << r.description;
    EXPECT_LT(std::abs(r.via_x - r.via_y), kSigmas * std::hypot(r.via_x_se, r.via_y_se)) << r.description;
  }
}

TEST(Lecture01Tricks, GaussiansShrinkingToADiracDeltaGiveFOfX0) {
  DiracDelta d = dirac_delta_limit(1.0, {1, 0.1, 0.01, 0.001}, 20000, 14);
  for (size_t i = 0; i < d.rows.size(); ++i) {
    const DiracRow& r = d.rows[i];
    EXPECT_LT(std::abs(r.mc - r.exact), kSigmas * r.mc_se + kRounding) << "sigma " << r.sigma;
    if (i > 0) {
      EXPECT_LT(r.error, d.rows[i - 1].error);
    }
  }
  // the error ~ sigma^2 (1 - sin(x0) / 2): sin(x0)(e^{-s^2/2} - 1) + s^2 = s^2 (1 - sin x0 / 2) + O(s^4)
  const DiracRow& small = d.rows[2];
  EXPECT_NEAR(small.error / (small.sigma * small.sigma), 1 - std::sin(1.0) / 2, 1e-4);
  EXPECT_LT(d.rows.back().error, 1e-6);
}

// ==== problem statement and histograms ==============================================================

TEST(Lecture01Histograms, SeminarDataFollowsTheRecipe) {
  Data1d d = seminar_data_1d(0);
  EXPECT_EQ(d.train.size(), 800u);
  EXPECT_EQ(d.test.size(), 200u);
  std::vector<double> counts(100, 0.0);
  for (const auto* part : {&d.train, &d.test})
    for (int64_t v : *part) {
      ASSERT_GE(v, 0);
      ASSERT_LE(v, 99);
      counts[v] += 1;
    }
  std::vector<double> p = seminar_bin_probs();
  double total = 0, chi2 = 0;
  int64_t used = 0;
  for (int k = 0; k < 100; ++k) {
    total += p[k];
    if (1000 * p[k] >= 5) chi2 += (counts[k] - 1000 * p[k]) * (counts[k] - 1000 * p[k]) / (1000 * p[k]), ++used;
  }
  EXPECT_NEAR(total, 1.0, kRounding);
  double dof = double(used - 1);
  EXPECT_LT(chi2, dof + kSigmas * std::sqrt(2 * dof));
}

TEST(Lecture01Histograms, GroupedNllIsTheCrossEntropyOverSamples) {
  Data1d d = seminar_data_1d(1);
  Generator gen(2);
  std::vector<double> logits = randn({100}, {.dtype = DType::Float64}, &gen).to_vector<double>();
  std::vector<double> p = softmax(from_vector(logits, {100}), 0).to_vector<double>();
  std::vector<double> counts(100, 0.0);
  for (int64_t v : d.train) counts[v] += 1;
  double grouped = 0;  // -sum_k (c_k / n) log p_k
  for (int k = 0; k < 100; ++k) grouped -= counts[k] / double(d.train.size()) * std::log(p[k]);
  EXPECT_NEAR(nll_by_samples(logits, d.train), grouped, kRounding);
  EXPECT_NEAR(nll_nats(p, d.train), grouped, kRounding);
}

TEST(Lecture01Histograms, TrainingSoftmaxLogitsReachesTheHistogram) {
  Data1d d = seminar_data_1d(0);
  HistogramFit f = fit_histogram_1d(d, 2000, 0.05);
  // the histogram is the MLE: nothing has a lower train NLL (Gibbs' inequality), and the gap is KL(mle || learned)
  EXPECT_GE(f.kl_mle_learned, -kRounding);
  // optimisation tolerance after 2000 Adam steps (the gap falls like 1/steps, see the report's figure)
  EXPECT_LT(f.kl_mle_learned, 1e-3);
  for (int k = 0; k < 100; ++k) EXPECT_NEAR(f.learned[k], f.mle[k], std::sqrt(2 * 1e-3)) << "bin " << k;  // Pinsker
  double s = 0;
  for (double v : f.mle) s += v;
  EXPECT_NEAR(s, 1.0, kRounding);
  // empty train bins: the MLE's test NLL is infinite exactly when a test point falls in one
  EXPECT_EQ(std::isinf(f.test_nll_mle), f.test_in_empty_bins > 0);
  EXPECT_TRUE(std::isfinite(f.test_nll_laplace));
  EXPECT_TRUE(std::isfinite(f.test_nll_learned));
  EXPECT_EQ(f.loss_curve.size(), 2000u);
}

TEST(Lecture01Histograms, BigNatCountsExactly) {
  EXPECT_EQ(BigNat::pow2(10).minus_one().str(), "1023");
  EXPECT_EQ(BigNat::pow2(64).str(), "18446744073709551616");
  EXPECT_EQ((BigNat(999) + BigNat(1)).str(), "1000");
  EXPECT_EQ(BigNat(1000).minus_one().str(), "999");
  EXPECT_EQ((BigNat(123456789) * 1000000007).str(), "123456789864197523");
  EXPECT_THROW(BigNat(0).minus_one(), ValueError);

  BigNat full = BigNat::pow2(784).minus_one();
  // 784 log10 2 = 236.007...: 237 digits, leading digits 10^0.00774 = 1.0174...
  EXPECT_EQ(full.digits(), 237u);
  EXPECT_EQ(full.str().substr(0, 4), "1017");
  // the last 18 digits independently: 2^784 mod 10^18 by repeated doubling
  uint64_t mod = 1;
  for (int i = 0; i < 784; ++i) mod = (mod * 2) % 1000000000000000000ull;
  std::string tail = std::to_string(mod - 1);
  tail = std::string(18 - tail.size(), '0') + tail;
  EXPECT_EQ(full.str().substr(237 - 18), tail);
}

TEST(Lecture01Histograms, MarkovParameterCounts) {
  EXPECT_EQ(markov_param_count(784, 0).str(), "784");                      // independent pixels
  EXPECT_EQ(markov_param_count(784, 1).str(), std::to_string(1 + 2 * 783));  // first-order chain
  EXPECT_EQ(markov_param_count(784, 2).str(), std::to_string(1 + 2 + 4 * 782));
  EXPECT_TRUE(markov_param_count(784, 783) == BigNat::pow2(784).minus_one());  // the full joint
  // brute force sum_j 2^min(j-1, d) for a small m
  for (int64_t d = 0; d < 10; ++d) {
    uint64_t s = 0;
    for (int64_t j = 1; j <= 10; ++j) s += uint64_t{1} << std::min(j - 1, d);
    EXPECT_EQ(markov_param_count(10, d).str(), std::to_string(s)) << "d = " << d;
  }
  EXPECT_THROW(markov_param_count(10, 10), ValueError);
}

namespace {
const BinaryMnist& mnist() {
  static const BinaryMnist data = load_binary_mnist("");
  return data;
}
}  // namespace

TEST(Lecture01Histograms, EmbeddedMnistSplit) {
  EXPECT_EQ(mnist().train.size(0), 9003);
  EXPECT_EQ(mnist().test.size(0), 997);
  EXPECT_EQ(mnist().train.size(1), 784);
  EXPECT_EQ(mnist().test_labels.size(), 997u);
}

TEST(Lecture01Histograms, BaselinesMatchThePyTorchReference) {
  // /usr/bin/python3 ../shared/peers/pytorch_train.py baselines 0 data/mnist10k prints
  //   binary: independent 0.2620 nats/dim, markov1-shared 0.2154 nats/dim  (4 decimals: +- 5e-5)
  double independent = nll_per_dim(fit_independent(mnist().train), mnist().test);
  double shared = nll_per_dim(fit_markov1(mnist().train, true), mnist().test);
  double per_position = nll_per_dim(fit_markov1(mnist().train, false), mnist().test);
  EXPECT_NEAR(independent, 0.2620, 5e-5);
  EXPECT_NEAR(shared, 0.2154, 5e-5);
  EXPECT_LT(per_position, shared);  // 1567 parameters beat 2
  EXPECT_LT(shared, independent);
}

TEST(Lecture01Histograms, PixelModelLogProbByHand) {
  PixelModel m = fit_markov1(mnist().train, false);
  Tensor x = slice(mnist().test, 0, 0, 2);
  std::vector<double> lp = log_prob(m, x).to_vector<double>(), v = x.to_vector<double>(), p = m.p_one.to_vector<double>();
  for (int i = 0; i < 2; ++i) {
    double s = 0;
    int prev = 0;
    for (int j = 0; j < 784; ++j) {
      int xj = int(v[i * 784 + j]);
      double p1 = p[j * 2 + prev];
      s += std::log(xj ? p1 : 1 - p1);
      prev = xj;
    }
    EXPECT_NEAR(lp[i], s, 1e-9);  // 784 terms of size ~1
  }
}

TEST(Lecture01Histograms, MarkovSamplesFollowTheChain) {
  PixelModel m = fit_markov1(mnist().train, true);
  Generator gen(15);
  const int64_t n = 100;
  std::vector<uint8_t> s = sample(m, n, gen);
  ASSERT_EQ(s.size(), size_t(n * 784));
  // transition frequencies P(x_j = 1 | x_{j-1} = a) against the table, 5 binomial standard errors
  double ones[2] = {0, 0}, total[2] = {0, 0};
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < 784; ++j) {
      int prev = j == 0 ? 0 : s[i * 784 + j - 1];
      total[prev] += 1, ones[prev] += s[i * 784 + j];
    }
  std::vector<double> p = m.p_one.to_vector<double>();
  for (int a = 0; a < 2; ++a) {
    double q = p[a], se = std::sqrt(q * (1 - q) / total[a]);
    EXPECT_LT(std::abs(ones[a] / total[a] - q), kSigmas * se) << "a = " << a;
  }
}

TEST(Lecture01Histograms, FullHistogramCountsSeenTestImages) {
  BinaryMnist tiny;
  tiny.train = slice(mnist().train, 0, 0, 50);
  tiny.test = cat({slice(mnist().train, 0, 10, 13), slice(mnist().test, 0, 0, 5)}, 0);  // 3 seen, 5 (almost surely) not
  EXPECT_EQ(test_images_in_train(tiny), 3);
}

TEST(Lecture01Histograms, ClassConditionalModel) {
  ClassConditional m = fit_class_conditional(mnist().train, mnist().train_labels);
  ClassConditionalEval e = evaluate(m, mnist().test, mnist().test_labels);
  double unconditional = nll_per_dim(fit_independent(mnist().train), mnist().test);
  EXPECT_LT(e.conditional_nll, unconditional);  // knowing y makes x more likely
  EXPECT_LT(e.mixture_nll, unconditional);      // a mixture of 10 independent models beats one
  // counting is deterministic: naive Bayes on binarized MNIST classifies ~84% (chance: 10%)
  EXPECT_GT(e.accuracy, 0.8);
  EXPECT_NEAR(sum(m.prior).item(), 1.0, kRounding);

  // samples of each class have the ink of that class: mean over pixels within 5 standard errors
  Generator gen(16);
  const int64_t k = 50;
  std::vector<uint8_t> s = sample(m, k, gen);
  ASSERT_EQ(s.size(), size_t(10 * k * 784));
  std::vector<double> p = m.p_one.to_vector<double>();
  for (int c = 0; c < 10; ++c) {
    double ink = 0, expected = 0, var = 0;
    for (int64_t i = 0; i < k * 784; ++i) ink += s[c * k * 784 + i];
    for (int j = 0; j < 784; ++j) expected += p[c * 784 + j] * k, var += p[c * 784 + j] * (1 - p[c * 784 + j]) * k;
    EXPECT_LT(std::abs(ink - expected), kSigmas * std::sqrt(var)) << "class " << c;
  }
}

// ==== divergences ===================================================================================

TEST(Lecture01Divergences, KlClosedFormMatchesMonteCarlo) {
  for (const KlPair& k : kl_gaussian_pairs(20000, 17)) {
    if (k.m1 == k.m2 && k.s1 == k.s2) {
      EXPECT_EQ(k.mc, 0.0);  // log p - log p = 0 for every sample
      EXPECT_EQ(k.closed_form, 0.0);
    } else {
      EXPECT_LT(std::abs(k.mc - k.closed_form), kSigmas * k.mc_se) << k.m1 << " " << k.s1 << " | " << k.m2 << " " << k.s2;
      EXPECT_GT(k.closed_form, 0.0);
    }
  }
  EXPECT_NEAR(kl_normal(0, 1, 1, 1), 0.5, kRounding);
  EXPECT_NE(kl_normal(0, 1, 0, 2), kl_normal(0, 2, 0, 1));  // asymmetric
}

TEST(Lecture01Divergences, KlIsNonNegativeZeroOnlyAtEqualityAndAsymmetric) {
  KlProperties p = kl_properties(2000, 10, 18);
  EXPECT_GE(p.min_kl_categorical, 0.0);
  EXPECT_GE(p.min_kl_gaussian, 0.0);
  EXPECT_EQ(p.max_self_kl, 0.0);
  EXPECT_GT(p.min_kl_near_equal, 0.0);  // a perturbation of 1e-3 already gives KL > 0
  EXPECT_GT(p.max_asymmetry, 0.1);
}

TEST(Lecture01Divergences, KlQuadratureMatchesClosedForm) {
  auto normal = [](double m, double s) {
    return [=](double x) { return -0.5 * (x - m) * (x - m) / (s * s) - std::log(s) - 0.5 * std::log(2 * M_PI); };
  };
  // on [-20, 20] the truncated tails of N(1, 2^2) (beyond 9.5 sd) weigh < 1e-19; the trapezoid rule on a
  // smooth, fast-decaying integrand is accurate far beyond 1e-8
  EXPECT_NEAR(kl_quadrature(normal(0, 1), normal(1, 2)), kl_normal(0, 1, 1, 2), 1e-8);
  EXPECT_NEAR(kl_quadrature(normal(1, 2), normal(0, 1)), kl_normal(1, 2, 0, 1), 1e-8);
}

TEST(Lecture01Divergences, ForwardKlCoversModesReverseKlSeeksOne) {
  const int64_t n = 2000;
  ForwardVsReverse r = forward_vs_reverse(n, 256, 800, 19);
  // (a) forward KL = MLE: converges to the sample mean and std (optimisation tolerance 1e-3) ...
  EXPECT_NEAR(r.forward.mu, r.sample_mean, 1e-3);
  EXPECT_NEAR(r.forward.sigma, r.sample_std, 1e-3);
  // ... which estimate pi's moments: se(mean) = sd / sqrt(n), se(sd) = sqrt(Var(x^2)... ) via m4
  const double var = r.moment_sigma * r.moment_sigma;
  double m4 = 0;  // E (x - mean)^4 of pi (mean 0): sum_k w_k (mu^4 + 6 mu^2 s^2 + 3 s^4)
  for (size_t k = 0; k < 2; ++k) {
    double mu = r.target.means[k], s = r.target.stds[k];
    m4 += r.target.weights[k] * (mu * mu * mu * mu + 6 * mu * mu * s * s + 3 * s * s * s * s);
  }
  EXPECT_LT(std::abs(r.sample_mean - r.moment_mu), kSigmas * std::sqrt(var / n));
  EXPECT_LT(std::abs(r.sample_std - r.moment_sigma), kSigmas * std::sqrt((m4 - var * var) / (4 * var * n)));
  // mode covering: the mean between the modes, the width of both
  EXPECT_LT(std::abs(r.forward.mu), 0.5);
  EXPECT_GT(r.forward.sigma, 2.0);
  // (b) reverse KL: the noisy fit reaches the quadrature optimum (optimisation tolerance 1e-3 nats) ...
  EXPECT_LT(r.reverse.reverse_kl - r.reverse_opt_kl, 1e-3);
  EXPECT_GE(r.reverse.reverse_kl - r.reverse_opt_kl, -1e-6);
  // ... which is one mode: N(2, 0.5^2) up to the other mode's e^-32 overlap; KL = log 2
  EXPECT_NEAR(r.reverse_opt_mu, 2.0, 1e-3);
  EXPECT_NEAR(r.reverse_opt_sigma, 0.5, 1e-3);
  EXPECT_NEAR(r.reverse_opt_kl, std::log(2.0), 1e-4);
  EXPECT_LT(std::abs(r.reverse.mu - 2.0), r.reverse.sigma);  // sits on the mode
  EXPECT_LT(r.reverse.sigma, 0.6);
  // each fit is the better one in its own divergence
  EXPECT_LT(r.forward.forward_kl, r.reverse.forward_kl);
  EXPECT_LT(r.reverse.reverse_kl, r.forward.reverse_kl);
}

TEST(Lecture01Divergences, MleIsTheMonteCarloForwardKl) {
  const int64_t n = 2000;
  MleVsForwardKl r = mle_vs_forward_kl(n, 300, 20);
  EXPECT_LT(r.max_param_diff, kRounding);    // the same steps
  EXPECT_LT(r.max_constant_dev, kRounding);  // objectives differ by the constant (1/n) sum log pi(x_i)
  // an MLE with k = 5 parameters has expected excess KL ~ k / (2n) (asymptotic chi2_k / 2n); allow 5x
  EXPECT_LT(r.final_forward_kl, 5 * 5.0 / (2 * n));
  EXPECT_GT(r.final_forward_kl, 0.0);
}

// ==== run ============================================================================================

TEST(Lecture01Run, ModulesAndUnknownName) {
  std::vector<std::string> names;
  for (const ModuleInfo& m : modules()) names.push_back(m.name);
  ASSERT_GE(names.size(), 3u);
  EXPECT_EQ(names[0], "tricks");
  EXPECT_EQ(names[1], "histograms");
  EXPECT_EQ(names[2], "divergences");
  Options opt;
  opt.out_dir = (std::filesystem::temp_directory_path() / ("dgm_lecture01_bad_" + std::to_string(getpid()))).string();
  EXPECT_THROW(run("no-such-module", opt), ValueError);
}

TEST(Lecture01Run, DivergencesWritesReportAndFigures) {
  namespace fs = std::filesystem;
  Options opt;
  opt.out_dir = (fs::temp_directory_path() / ("dgm_lecture01_" + std::to_string(getpid()))).string();
  opt.quiet = true;
  run("divergences", opt);
  std::ifstream in(fs::path(opt.out_dir) / "report.md");
  std::stringstream report;
  report << in.rdbuf();
  EXPECT_NE(report.str().find("Forward KL vs reverse KL"), std::string::npos);
  EXPECT_NE(report.str().find("divergences/forward_vs_reverse_kl.svg"), std::string::npos);
  for (const char* f : {"forward_vs_reverse_kl.svg", "kl_asymmetry.svg", "mle_vs_forward_kl.svg"})
    EXPECT_TRUE(fs::exists(fs::path(opt.out_dir) / "divergences" / f)) << f;
  fs::remove_all(opt.out_dir);
}
