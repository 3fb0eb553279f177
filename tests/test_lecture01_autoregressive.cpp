// Tests of lecture 1's autoregressive chapter (lectures/lecture01/autoregressive.h): one test per
// claim. Deterministic float64 checks use float64 rounding tolerances (a sum of 784 terms of size
// ~1: ~1e-13, asked 1e-9); float32 models get float32 tolerances; the baselines are compared with
// the PyTorch peer's numbers to their printed precision.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include <dgm/lectures/lecture01/autoregressive.h>

using namespace dgm;
using namespace dgm::lecture01;

TEST(Lecture01Autoregressive, LogProbIsTheSumOfConditionalsAndThe512ImagesSumToOne) {
  std::vector<ConditionalsCheck> checks = check_product_of_conditionals(7, 2);
  ASSERT_EQ(checks.size(), 4u);
  int64_t enumerated = 0;
  for (const ConditionalsCheck& c : checks) {
    SCOPED_TRACE(c.model);
    EXPECT_EQ(c.images, 2);
    EXPECT_LT(c.max_sum_diff, 1e-9);    // log_prob(x) = sum_j log p(x_j | x_<j)
    EXPECT_LT(c.max_norm_error, 1e-12);  // every conditional sums to 1 (a log-softmax: ~1e-15)
    EXPECT_TRUE(std::isfinite(c.log_prob));
    EXPECT_LT(c.log_prob, 0.0);
    if (c.enumerated > 0) {
      ++enumerated;
      EXPECT_EQ(c.enumerated, 512);
      EXPECT_NEAR(c.total_prob_3x3, 1.0, 1e-9);  // 512 probabilities in float64
    }
  }
  EXPECT_EQ(enumerated, 2);  // imagegpt and pixelcnn
  // random init: binary conditionals near 1/2, 8-bit ones near 1/256 (within a factor e^{+-1} per pixel on average)
  EXPECT_NEAR(checks[0].log_prob / 784, -std::log(2.0), 0.3);
  EXPECT_NEAR(checks[2].log_prob / 784, -std::log(256.0), 1.0);
}

TEST(Lecture01Autoregressive, KVCacheAndNaiveSamplersDrawTheSameImages) {
  SamplerComparison s = compare_imagegpt_samplers(8, 2, 2, 6, 4, 3);
  EXPECT_EQ(s.differing_pixels, 0);
  EXPECT_TRUE(s.same_draw_count);
  ASSERT_EQ(s.samples.size(), 4u * 36u);
  int64_t ones = 0;
  for (int64_t v : s.samples) {
    ASSERT_TRUE(v == 0 || v == 1);
    ones += v;
  }
  EXPECT_GT(ones, 0);  // random init: about half the pixels are 1
  EXPECT_LT(ones, 4 * 36);
  EXPECT_GT(s.seconds_cached, 0.0);
  EXPECT_GT(s.seconds_naive, 0.0);
}

TEST(Lecture01Autoregressive, ByteBaselinesMatchThePyTorchPeer) {
  static const ByteMnist data = load_byte_mnist();
  ASSERT_EQ(data.train.size(0), 9003);
  ASSERT_EQ(data.test.size(0), 997);
  ByteBaselines b = byte_baselines(data);
  // pytorch_train.py baselines: 1.1942 and 0.9916 nats/dim = 1.7229 and 1.4306 bits/dim (4 decimals)
  EXPECT_NEAR(b.independent_bits, 1.7229, 1e-4);  // 5e-5 nats of rounding = 7e-5 bits
  EXPECT_NEAR(b.markov1_bits, 1.4306, 1e-4);
}

TEST(Lecture01Autoregressive, ShortMlpRunsLowerTheTestBitsOfBothHeads) {
  static const ByteMnist data = load_byte_mnist();
  for (const char* head : {"categorical", "logistic_mixture"}) {
    SCOPED_TRACE(head);
    MlpArRun r = train_mlp_ar_short(data, head, 15, 4, 1e-2, 5, 32, 2, 1);
    ASSERT_EQ(r.train_bits.size(), 15u);
    EXPECT_LT(r.test_bits, r.test_bits_init);
    if (std::string(head) == "categorical") {
      EXPECT_NEAR(r.test_bits_init, 8.0, 0.2);  // near-uniform softmax at init
    }
    // the per-pixel bits of test digit 0 add up to its NLL (the test set here is that one digit); float32
    ASSERT_EQ(r.pixel_bits.size(), 784u);
    const double total = std::accumulate(r.pixel_bits.begin(), r.pixel_bits.end(), 0.0);
    EXPECT_NEAR(total / 784, r.test_bits, 1e-4 * r.test_bits);
    ASSERT_EQ(r.samples.size(), 2u * 784u);
    for (int64_t v : r.samples) ASSERT_TRUE(v >= 0 && v < 256);
  }
}

TEST(Lecture01Autoregressive, ChangingPixelJLeavesConditionalsUpToJUnchanged) {
  std::vector<CausalityCheck> checks = check_causality(9, 3);
  ASSERT_EQ(checks.size(), 3u);
  for (const CausalityCheck& c : checks) {
    SCOPED_TRACE(c.model);
    EXPECT_LE(c.max_change_up_to_j, 1e-12);  // exactly 0 in exact arithmetic
    EXPECT_GT(c.max_change_after_j, 1e-6);
    EXPECT_GT(c.mean_later_reached, 0.0);
    EXPECT_LE(c.mean_later_reached, c.mean_later_total);
  }
  EXPECT_DOUBLE_EQ(checks[0].mean_later_reached, checks[0].mean_later_total);  // ImageGPT: attention reaches every later pixel
  EXPECT_LT(checks[1].mean_later_reached, checks[1].mean_later_total);         // PixelCNN: only its receptive cone
  EXPECT_DOUBLE_EQ(checks[2].mean_later_reached, 2.0);                         // MLP with d = 2: the next two pixels
}

TEST(Lecture01Autoregressive, PixelCNNReceptiveFieldHasABlindSpotAndNoFuture) {
  ReceptiveFields rf = pixelcnn_receptive_fields(2, 3, 7, 3, 15);
  const int64_t n = 15, c = 7;
  ASSERT_EQ(rf.binary.size(), size_t(n * n));
  // mask A alone: exactly the 7x7 kernel's rows above the centre and the pixels to its left
  for (int64_t r = 0; r < n; ++r)
    for (int64_t col = 0; col < n; ++col) {
      const bool expected = (r >= c - 3 && r < c && std::abs(col - c) <= 3) || (r == c && col >= c - 3 && col < c);
      EXPECT_EQ(rf.mask_a[size_t(r * n + col)], expected ? 1.0 : 0.0) << r << "," << col;
    }
  EXPECT_EQ(rf.seen_after, 0);
  EXPECT_GT(rf.blind, 0);
  EXPECT_EQ(rf.seen + rf.blind, rf.preceding);
  EXPECT_EQ(rf.binary[size_t((c - 1) * n + c + 4)], 0.0);  // one row up, four to the right: blind
  for (size_t i = 0; i < rf.weighted.size(); ++i) EXPECT_EQ(rf.weighted[i] > 0, rf.binary[i] == 1.0) << i;
}

TEST(Lecture01Autoregressive, BinaryBaselinesAreTheBarAndRandomModelsStartFarAboveIt) {
  BinaryBaselines b = binary_baselines(1, 20);
  EXPECT_NEAR(b.independent, 0.2620, 6e-5);  // pytorch_train.py baselines
  EXPECT_NEAR(b.markov1, 0.2154, 6e-5);
  EXPECT_NEAR(b.imagegpt_init, std::log(2.0), 0.1);
  // PixelCNN's random logits are not small (its initial NLL depends on the seed), but far above the bar
  EXPECT_GT(b.pixelcnn_init, b.independent + 0.1);
  EXPECT_GT(b.imagegpt_init, b.independent + 0.1);
}
