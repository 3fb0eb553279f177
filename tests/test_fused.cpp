// Fused kernels against their composite references (value and gradient), at training-like sizes
// in float32, plus the vectorised exp they use and the caching allocator.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>

#include <dgm/autograd/engine.h>
#include <dgm/autograd/fused.h>
#include <dgm/autograd/ops.h>
#include <dgm/tensor/allocator.h>
#include <dgm/tensor/vecmath.h>

namespace dgm {
namespace {

// max |a - b| relative to max |b|
double rel_err(const Tensor& a, const Tensor& b) {
  return amax(abs(a.to(DType::Float64) - b.to(DType::Float64))).item() / std::max(1e-30, amax(abs(b.to(DType::Float64))).item());
}

// Checks fused(inputs) == reference(inputs) and d(sum(w * out))/d(inputs) agree, for a random w.
void expect_same(const std::function<Tensor(const std::vector<Tensor>&)>& fused_fn,
                 const std::function<Tensor(const std::vector<Tensor>&)>& ref_fn, const std::vector<Tensor>& inputs, double tol) {
  Tensor yf = fused_fn(inputs), yr = ref_fn(inputs);
  ASSERT_EQ(yf.shape(), yr.shape());
  EXPECT_LT(rel_err(yf, yr), tol) << "forward";
  Tensor w = randn(yf.shape(), {.dtype = yf.dtype()});
  std::vector<Tensor> wrt;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) wrt.push_back(t);
  auto gf = autograd::grad({sum(yf * w)}, wrt), gr = autograd::grad({sum(yr * w)}, wrt);
  for (size_t i = 0; i < wrt.size(); ++i) EXPECT_LT(rel_err(gf[i], gr[i]), tol) << "gradient of input " << i;
}

// Runs fn on 1 and then on 2 threads and expects the same bits in every tensor it returns.
void expect_same_bits_on_1_and_2_threads(const std::function<std::vector<Tensor>()>& fn) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  auto one = fn();
  omp_set_num_threads(2);
  auto two = fn();
  omp_set_num_threads(threads);
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) EXPECT_EQ(amax(abs(one[i] - two[i])).item(), 0.0) << "tensor " << i;
}

// float32 sums over ~10^3 terms: a few 1e-6 of relative error is rounding, not a bug
constexpr double kTol32 = 2e-5;

TEST(Fused, ExpApproxIsAccurate) {
  double worst = 0;
  for (double x = -87; x <= 88.37; x += 0.01) {
    float e = cpu::exp_approx(static_cast<float>(x));
    double ref = std::exp(static_cast<double>(static_cast<float>(x)));
    worst = std::max(worst, std::abs(e - ref) / ref);
  }
  EXPECT_LT(worst, 5e-7);
  EXPECT_EQ(cpu::exp_approx(-INFINITY), 0.0f);
  EXPECT_EQ(cpu::exp_approx(-1000.0f), 0.0f);
  // overflow is +inf, as std::exp's (an earlier clamp at 88 returned e^88 ~ 1.65e38 for any larger x)
  EXPECT_EQ(cpu::exp_approx(88.5f), INFINITY);
  EXPECT_EQ(cpu::exp_approx(1000.0f), INFINITY);
  EXPECT_EQ(cpu::exp_approx(INFINITY), INFINITY);
  EXPECT_TRUE(std::isnan(cpu::exp_approx(NAN)));
}

// GELU's slope in the fused Linear's backward, Phi(x) + x phi(x), with one exp for phi and Phi's tail:
// against float64 across the switch at |x| = sqrt 2 and far into both tails.
TEST(Fused, GeluSlopeIsAccurate) {
  double worst = 0, worst_tail = 0;
  for (double x = -12; x <= 12; x += 0.001) {
    const float xf = static_cast<float>(x);
    const double v = xf, want = 0.5 * std::erfc(-v * M_SQRT1_2) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI);
    const double err = std::abs(cpu::gelu_slope_approx(xf) - want);
    if (std::abs(v) <= 6) worst = std::max(worst, err / (std::abs(want) + 0.1));  // relative, absolute near the root at -0.75
    else worst_tail = std::max(worst_tail, err / std::abs(want));
  }
  EXPECT_LT(worst, 1e-6);
  // beyond |x| = 6 the rounding of x^2 / 2 in float moves e^{-x^2/2} by up to ~x^2 / 2 ulp
  EXPECT_LT(worst_tail, 1e-4);
  EXPECT_NEAR(cpu::gelu_slope_approx(0.0f), 0.5f, 1e-7);
  EXPECT_NEAR(cpu::gelu_slope_approx(1.0f), 0.5 * std::erfc(-M_SQRT1_2) + std::exp(-0.5) / std::sqrt(2 * M_PI), 3e-7);
}

TEST(Fused, CrossEntropyMatchesReference) {
  manual_seed(1);
  Tensor logits = (randn({64, 256}) * 3.0).detach().requires_grad_();
  Tensor target = randint(0, 256, {64});
  expect_same([](auto& x) { return fused::cross_entropy(x[0], x[1]); }, [](auto& x) { return reference::cross_entropy(x[0], x[1]); },
              {logits, target}, kTol32);
}

TEST(Fused, CrossEntropyRejectsBadTargets) {
  EXPECT_THROW(fused::cross_entropy(zeros({2, 3}), tensor({0, 3}, {.dtype = DType::Int64})), IndexError);
  EXPECT_THROW(fused::cross_entropy(zeros({2, 3}), tensor({0, 1})), DTypeError);
  EXPECT_THROW(fused::cross_entropy(zeros({2, 3}), tensor({0, 1, 1}, {.dtype = DType::Int64})), ShapeError);
}

TEST(Fused, BceWithLogitsMatchesReferenceAndIsStable) {
  manual_seed(2);
  Tensor x = (randn({32, 784}) * 4.0).detach().requires_grad_();
  Tensor y = (rand({32, 784}) > 0.7).to(DType::Float32);
  expect_same([](auto& a) { return fused::binary_cross_entropy_with_logits(a[0], a[1]); },
              [](auto& a) { return reference::binary_cross_entropy_with_logits(a[0], a[1]); }, {x, y}, kTol32);
  // extreme logits: finite, and equal to |x| when the label disagrees
  Tensor big = fused::binary_cross_entropy_with_logits(tensor({100, -100}), tensor({0, 1}));
  EXPECT_NEAR(big.to_vector<float>()[0], 100, 1e-4);
  EXPECT_NEAR(big.to_vector<float>()[1], 100, 1e-4);
}

TEST(Fused, LayerNormMatchesReference) {
  manual_seed(3);
  Tensor x = (randn({8, 49, 64}) * 2.0 + 1.0).detach().requires_grad_();
  Tensor w = (randn({64}) * 0.5 + 1.0).detach().requires_grad_(), b = randn({64}, {.requires_grad = true});
  expect_same([](auto& a) { return fused::layer_norm(a[0], a[1], a[2]); }, [](auto& a) { return reference::layer_norm(a[0], a[1], a[2]); },
              {x, w, b}, kTol32);
  // weight and bias as strided views (every other value of a longer vector): the kernels copy them to
  // contiguous arrays, which must live as long as the loops that read them (the sanitized CI stage,
  // whose allocator hands freed memory straight back, sees a copy freed too early)
  Tensor w2 = (randn({128}) * 0.5 + 1.0).detach().requires_grad_(), b2 = randn({128}, {.requires_grad = true});
  ASSERT_FALSE(slice(w2, 0, 0, 128, 2).is_contiguous());
  expect_same([](auto& a) { return fused::layer_norm(a[0], slice(a[1], 0, 0, 128, 2), slice(a[2], 0, 1, 128, 2)); },
              [](auto& a) { return reference::layer_norm(a[0], slice(a[1], 0, 0, 128, 2), slice(a[2], 0, 1, 128, 2)); }, {x, w2, b2},
              kTol32);
}

// RealNVP's gated residual block at its training size (B 8, F 16, 28 x 28), both sides of the ELU and
// of the gate exercised; u a non-contiguous view as well (the kernel copies it to rows first).
TEST(Fused, GatedResidualMatchesReference) {
  manual_seed(5);
  Tensor h = (randn({8, 16, 28, 28}) * 1.5).detach().requires_grad_(), u = (randn({8, 32, 28, 28}) * 2.0).detach().requires_grad_();
  auto fused_fn = [](auto& a) { return fused::gated_residual(a[0], a[1]); };
  auto ref_fn = [](auto& a) { return reference::gated_residual(a[0], a[1]); };
  expect_same(fused_fn, ref_fn, {h, u}, kTol32);
  Tensor out = fused::gated_residual(h, u);
  EXPECT_LT(amin(out).item(), -0.5);
  EXPECT_GT(amax(out).item(), 0.5);
  Tensor ut = transpose(randn({8, 32, 28, 28}), 2, 3).detach().requires_grad_();
  ASSERT_FALSE(ut.is_contiguous());
  expect_same(fused_fn, ref_fn, {h, ut}, kTol32);
  EXPECT_THROW(fused::gated_residual(h, randn({8, 16, 28, 28})), ShapeError);  // u must have 2F channels
}

// A ConvNet's channel norm: (B, C, H, W) permuted to (B, H, W, C). The fused kernel normalises in the
// NCHW memory (no copy); its output and input gradient come back as views of that layout.
TEST(Fused, LayerNormOverChannelsOfAnImageMatchesReference) {
  manual_seed(4);
  for (DType dt : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(dtype_name(dt));
    const double tol = dt == DType::Float64 ? 1e-12 : kTol32;
    Tensor x = (randn({3, 24, 20, 15}, {.dtype = dt}) * 2.0 + 1.0).detach().requires_grad_();  // 300 pixels: two blocks
    Tensor w = (randn({24}, {.dtype = dt}) * 0.5 + 1.0).detach().requires_grad_(), b = randn({24}, {.dtype = dt, .requires_grad = true});
    Tensor y = fused::layer_norm(permute(x, {0, 2, 3, 1}), w, b);
    EXPECT_FALSE(y.is_contiguous());
    EXPECT_TRUE(permute(y, {0, 3, 1, 2}).is_contiguous());  // the output is NCHW memory, as the input
    // the output gradient in the (B, H, W, C) layout (copied to channels first inside) ...
    expect_same([](auto& a) { return fused::layer_norm(permute(a[0], {0, 2, 3, 1}), a[1], a[2]); },
                [](auto& a) { return reference::layer_norm(permute(a[0], {0, 2, 3, 1}), a[1], a[2]); }, {x, w, b}, tol);
    // ... and in NCHW, as a following convolution gives it (read in place)
    expect_same([](auto& a) { return permute(fused::layer_norm(permute(a[0], {0, 2, 3, 1}), a[1], a[2]), {0, 3, 1, 2}); },
                [](auto& a) { return permute(reference::layer_norm(permute(a[0], {0, 2, 3, 1}), a[1], a[2]), {0, 3, 1, 2}); },
                {x, w, b}, tol);
    expect_same([](auto& a) { return fused::layer_norm(permute(a[0], {0, 2, 3, 1}), Tensor(), Tensor()); },
                [](auto& a) { return reference::layer_norm(permute(a[0], {0, 2, 3, 1}), Tensor(), Tensor()); }, {x}, tol);
  }
}

TEST(Fused, LinearWithBiasAndActivationMatchesReference) {
  manual_seed(5);
  Tensor x = randn({200, 64}, {.requires_grad = true}), w = (randn({96, 64}) * 0.1).detach().requires_grad_();
  Tensor b = randn({96}, {.requires_grad = true});
  for (auto act : {fused::LinearActivation::None, fused::LinearActivation::ReLU, fused::LinearActivation::GELU}) {
    expect_same([act](auto& a) { return fused::linear(a[0], a[1], a[2], act); },
                [act](auto& a) { return reference::linear(a[0], a[1], a[2], act); }, {x, w, b}, kTol32);
    expect_same([act](auto& a) { return fused::linear(a[0], a[1], Tensor(), act); },
                [act](auto& a) { return reference::linear(a[0], a[1], Tensor(), act); }, {x, w}, kTol32);
  }
}

TEST(Fused, EmbeddingBagWithBiasAndActivationMatchesReference) {
  manual_seed(8);
  // 600 bags of 3 rows from a 300-row table: enough rows for the threaded paths, and repeats
  Tensor w = randn({300, 64}, {.requires_grad = true}), b = randn({64}, {.requires_grad = true});
  Tensor idx = randint(0, 300, {600, 3});
  for (auto act : {fused::LinearActivation::None, fused::LinearActivation::ReLU, fused::LinearActivation::GELU}) {
    expect_same([act](auto& a) { return fused::embedding_bag(a[0], a[1], a[2], act); },
                [act](auto& a) { return reference::embedding_bag(a[0], a[1], a[2], act); }, {w, idx, b}, kTol32);
    expect_same([act](auto& a) { return fused::embedding_bag(a[0], a[1], Tensor(), act); },
                [act](auto& a) { return reference::embedding_bag(a[0], a[1], Tensor(), act); }, {w, idx}, kTol32);
  }
}

TEST(Fused, EmbeddingBagRejectsBadInput) {
  Tensor w = zeros({4, 3});
  EXPECT_THROW(fused::embedding_bag(w, tensor({{0, 4}}, {.dtype = DType::Int64}), Tensor()), IndexError);
  EXPECT_THROW(fused::embedding_bag(w, tensor({0, 1}, {.dtype = DType::Int64}), Tensor()), ShapeError);
  EXPECT_THROW(fused::embedding_bag(w, tensor({{0, 1}}), Tensor()), DTypeError);
  EXPECT_THROW(fused::embedding_bag(w, tensor({{0, 1}}, {.dtype = DType::Int64}), zeros({2})), ShapeError);
}

// Bias and table gradients are sums over rows; they are summed in fixed chunks, so one thread and
// two threads give the same bits.
TEST(Fused, RowSumGradientsDoNotDependOnTheThreadCount) {
  manual_seed(9);
  Tensor x = randn({3000, 32}), w = randn({48, 32}, {.requires_grad = true}), b = randn({48}, {.requires_grad = true});
  Tensor table = randn({50, 48}, {.requires_grad = true}), idx = randint(0, 50, {3000, 2});
  // a width that is no whole number of cache lines: the threads' bands of columns end mid-line
  Tensor table2 = randn({20, 37}, {.requires_grad = true}), b2 = randn({37}, {.requires_grad = true});
  Tensor idx2 = randint(0, 20, {3000, 3});
  auto grads = [&] {
    Tensor h = fused::linear(x, w, b, fused::LinearActivation::ReLU);
    Tensor y = fused::embedding_bag(table, idx, b, fused::LinearActivation::ReLU);
    Tensor y2 = fused::embedding_bag(table2, idx2, b2, fused::LinearActivation::GELU);
    return autograd::grad({sum(h * h) + sum(y * y) + sum(y2 * y2)}, {w, b, table, table2, b2});
  };
  expect_same_bits_on_1_and_2_threads(grads);
}

// LayerNorm's weight and bias gradients sum one partial per chunk of rows (or, over the channels of
// an image as in PixelCNN, per block of pixels), in chunk order, whichever thread computed it.
TEST(Fused, LayerNormGradientsDoNotDependOnTheThreadCount) {
  manual_seed(11);
  Tensor x = randn({5, 16, 30, 30}), w = randn({16}, {.requires_grad = true}), b = randn({16}, {.requires_grad = true});
  Tensor rows = randn({3000, 48}), w2 = randn({48}, {.requires_grad = true}), b2 = randn({48}, {.requires_grad = true});
  auto grads = [&] {
    Tensor y = fused::layer_norm(permute(x, {0, 2, 3, 1}), w, b), z = fused::layer_norm(rows, w2, b2);
    return autograd::grad({sum(y * y * y) + sum(z * z * z)}, {w, b, w2, b2});
  };
  expect_same_bits_on_1_and_2_threads(grads);
}

TEST(Fused, CausalAttentionMatchesReference) {
  manual_seed(4);
  Tensor q = randn({2, 4, 96, 16}, {.requires_grad = true}), k = randn({2, 4, 96, 16}, {.requires_grad = true}),
         v = randn({2, 4, 96, 16}, {.requires_grad = true});
  expect_same([](auto& a) { return fused::attention(a[0], a[1], a[2], true); }, [](auto& a) { return reference::attention(a[0], a[1], a[2], true); },
              {q, k, v}, kTol32);
}

// Longer than one key tile (256): the online softmax rescales rows whose max grows in a later tile.
TEST(Fused, AttentionOverSeveralKeyTilesMatchesReference) {
  manual_seed(10);
  Tensor q = randn({1, 2, 600, 8}, {.requires_grad = true}), k = randn({1, 2, 600, 8}, {.requires_grad = true}),
         v = randn({1, 2, 600, 8}, {.requires_grad = true});
  // later keys score higher, so the running max of most rows grows from tile to tile
  Tensor ramp = reshape(arange(600) / 150.0, {1, 1, 600, 1});
  Tensor k_ramp = (k + ramp).detach().requires_grad_();
  for (bool causal : {true, false})
    expect_same([causal](auto& a) { return fused::attention(a[0], a[1], a[2], causal); },
                [causal](auto& a) { return reference::attention(a[0], a[1], a[2], causal); }, {q, k_ramp, v}, kTol32);
  Tensor q_last = randn({1, 2, 70, 8}, {.requires_grad = true});  // queries after a cache: Lq < Lk
  expect_same([](auto& a) { return fused::attention(a[0], a[1], a[2], true); }, [](auto& a) { return reference::attention(a[0], a[1], a[2], true); },
              {q_last, k, v}, kTol32);
}

// The register-tile kernels (AVX2 / AVX-512 builds) cut D into panels of one or two vectors and the
// queries into blocks of 6 or 8 rows (60 or 80 for dK, dV): head sizes below, at and across a panel,
// sequences that end inside a block, and queries after a cache (Lq < Lk).
TEST(Fused, AttentionOfEveryHeadSizeMatchesReference) {
  manual_seed(11);
  for (int64_t D : {1, 5, 16, 20, 40})
    for (int64_t Lq : {int64_t{97}, int64_t{13}}) {
      Tensor q = randn({2, 2, Lq, D}, {.requires_grad = true}), k = randn({2, 2, 97, D}, {.requires_grad = true}),
             v = randn({2, 2, 97, D}, {.requires_grad = true});
      for (bool causal : {true, false}) {
        SCOPED_TRACE(cat("D ", D, ", Lq ", Lq, causal ? ", causal" : ""));
        expect_same([causal](auto& a) { return fused::attention(a[0], a[1], a[2], causal); },
                    [causal](auto& a) { return reference::attention(a[0], a[1], a[2], causal); }, {q, k, v}, kTol32);
      }
    }
}

// Decoding (fewer queries than two register-tile blocks; float32 with D a multiple of 8 on AVX2 and
// AVX-512 builds) scores 8 keys at a time and sums P V over 4 keys at a time: key counts below, at
// and across 8 and 4, head sizes of one to five vectors, and the lse it saves for the backward.
// Queries past the keys (Lq > Lk, causal) see none: zeros out, as the tiled paths.
TEST(Fused, DecodingAttentionMatchesReference) {
  manual_seed(14);
  for (int64_t D : {8, 16, 24, 40})
    for (int64_t Lk : {1, 3, 8, 13, 300})
      for (int64_t Lq : {1, 2, 11}) {
        Tensor q = randn({2, 3, Lq, D}, {.requires_grad = true}), k = randn({2, 3, Lk, D}, {.requires_grad = true}),
               v = randn({2, 3, Lk, D}, {.requires_grad = true});
        for (bool causal : {true, false}) {
          SCOPED_TRACE(cat("D ", D, ", Lk ", Lk, ", Lq ", Lq, causal ? ", causal" : ""));
          if (Lk == 1 || (causal && Lq > Lk)) {
            // forward only: the gradients of q and k are exactly 0 where a row sees one key (softmax
            // of one score), and relative errors against 0 are no measure of rounding
            Tensor y = fused::attention(q, k, v, causal), y64 = fused::attention(q.to(DType::Float64), k.to(DType::Float64), v.to(DType::Float64), causal);
            EXPECT_LT(rel_err(y, y64), kTol32);
            if (causal && Lq > Lk) {
              EXPECT_EQ(amax(abs(narrow(y, 2, 0, Lq - Lk))).item(), 0.0);
            }
            continue;
          }
          expect_same([causal](auto& a) { return fused::attention(a[0], a[1], a[2], causal); },
                      [causal](auto& a) { return reference::attention(a[0], a[1], a[2], causal); }, {q, k, v}, kTol32);
        }
      }
}

// Past 16384 keys the register tiles' row buffers would grow with the sequence: the fixed-size GEMM
// tiles take over, and agree.
TEST(Fused, AttentionOverVeryLongSequencesMatchesReference) {
  manual_seed(13);
  Tensor q = randn({1, 1, 12, 2}, {.requires_grad = true}), k = randn({1, 1, 16400, 2}, {.requires_grad = true}),
         v = randn({1, 1, 16400, 2}, {.requires_grad = true});
  for (bool causal : {true, false})
    expect_same([causal](auto& a) { return fused::attention(a[0], a[1], a[2], causal); },
                [causal](auto& a) { return reference::attention(a[0], a[1], a[2], causal); }, {q, k, v}, kTol32);
}

// Each head is computed by one thread in a fixed order: 1 and 2 threads give the same bits.
TEST(Fused, AttentionDoesNotDependOnTheThreadCount) {
  manual_seed(12);
  Tensor q = randn({2, 3, 130, 20}, {.requires_grad = true}), k = randn({2, 3, 130, 20}, {.requires_grad = true}),
         v = randn({2, 3, 130, 20}, {.requires_grad = true}), w = randn({2, 3, 130, 20});
  auto run = [&] {
    Tensor y = fused::attention(q, k, v, true);
    std::vector<Tensor> out = autograd::grad({sum(y * w)}, {q, k, v});
    out.push_back(y.detach());
    return out;
  };
  expect_same_bits_on_1_and_2_threads(run);
}

TEST(Fused, AttentionWithCacheEqualsTheLastRowsOfFullAttention) {
  // one new query against all earlier keys = the last row of causal attention over the sequence
  manual_seed(5);
  Tensor q = randn({1, 2, 7, 8}), k = randn({1, 2, 7, 8}), v = randn({1, 2, 7, 8});
  Tensor full = fused::attention(q, k, v, true);
  Tensor last = fused::attention(narrow(q, 2, 6, 1), k, v, true);
  EXPECT_LT(rel_err(last, narrow(full, 2, 6, 1)), 1e-6);
}

TEST(Fused, AttentionNeverLetsAQuerySeeTheFuture) {
  manual_seed(6);
  Tensor q = randn({1, 1, 6, 4}), k = randn({1, 1, 6, 4}), v = randn({1, 1, 6, 4});
  Tensor before = fused::attention(q, k, v, true);
  Tensor v2 = v.clone();
  {
    NoGradGuard ng;
    v2.select(2, 4).fill_(100);  // change key/value position 4
  }
  Tensor after = fused::attention(q, k, v2, true);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(rel_err(after.select(2, i), before.select(2, i)), 0) << "query " << i;
  EXPECT_GT(rel_err(after.select(2, 4), before.select(2, 4)), 0.1);
}

// Blocks of 4 MiB and more start on a 2 MiB boundary on Linux, so that the kernel can back them with
// huge pages (the allocator asks with madvise); smaller ones keep 64-byte alignment. Every byte of
// the block is usable.
TEST(Allocator, LargeBlocksStartOnHugePageBoundaries) {
#if !defined(__linux__)
  GTEST_SKIP() << "huge pages are requested on Linux only";
#else
  for (int64_t n : {int64_t{1} << 20, int64_t{3} << 20, int64_t{5} << 20}) {  // float counts: 4, 12, 20 MiB
    Tensor t = full({n}, 1.5f);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data<float>()) % (uintptr_t{2} << 20), 0u) << n << " floats";
    EXPECT_EQ(t.data<float>()[n - 1], 1.5f);
  }
  Tensor small = full({1000}, 2.0f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data<float>()) % 64, 0u);
#endif
}

TEST(Allocator, SteadyStateStepDoesNotCallTheSystemAllocator) {
  if (!caching_enabled()) GTEST_SKIP() << "caching disabled (sanitizer build or DGM_CACHING_ALLOCATOR=0)";
  Tensor w = randn({64, 32}, {.requires_grad = true});
  Tensor x = randn({16, 64});
  auto step = [&] {
    Tensor loss = sum(tanh(matmul(x, w)));
    loss.backward();
    w.zero_grad();
  };
  step();
  step();
  uint64_t before = allocator_stats().system_allocs;
  for (int i = 0; i < 5; ++i) step();
  EXPECT_EQ(allocator_stats().system_allocs, before);
  EXPECT_GT(allocator_stats().cache_hits, 0u);
}

// ---- one composite reference per fused op: value, gradient and second derivative -------------------
//
// For every fused op, in float64: the value, the first derivative (the fused backward kernel, no
// create_graph) and the second derivative (create_graph, what a gradient penalty needs) agree with
// the composite reference in dgm::reference. The inputs include the kinks exactly: BCE at logit 0,
// ReLU (linear, embedding_bag) at pre-activation 0.
void expect_same_to_second_order(const std::function<Tensor(const std::vector<Tensor>&)>& fused_fn,
                                 const std::function<Tensor(const std::vector<Tensor>&)>& ref_fn, const std::vector<Tensor>& inputs) {
  Tensor yf = fused_fn(inputs), yr = ref_fn(inputs);
  ASSERT_EQ(yf.shape(), yr.shape());
  EXPECT_LT(rel_err(yf, yr), 1e-12) << "value";
  Tensor w = randn(yf.shape(), {.dtype = DType::Float64});
  std::vector<Tensor> wrt;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) wrt.push_back(t);
  // first order, through the fused backward kernel (no graph of the gradient)
  auto gf = autograd::grad({sum(yf * w)}, wrt), gr = autograd::grad({sum(yr * w)}, wrt);
  for (size_t i = 0; i < wrt.size(); ++i) EXPECT_LT(rel_err(gf[i], gr[i]), 1e-12) << "gradient of input " << i;
  // second order: d/d(inputs) of sum(v * dL/d(input 0)), with create_graph
  auto gf2 = autograd::grad({sum(fused_fn(inputs) * w)}, {wrt[0]}, {}, std::nullopt, true)[0];
  auto gr2 = autograd::grad({sum(ref_fn(inputs) * w)}, {wrt[0]}, {}, std::nullopt, true)[0];
  EXPECT_LT(rel_err(gf2, gr2), 1e-12) << "gradient with create_graph";
  if (!gf2.requires_grad() && !gr2.requires_grad()) return;  // the gradient is constant in every input: no second derivative
  ASSERT_TRUE(gf2.requires_grad() && gr2.requires_grad()) << "one second derivative exists, the other does not";
  Tensor v = randn(gf2.shape(), {.dtype = DType::Float64});
  auto hf = autograd::grad({sum(gf2 * v)}, wrt, {}, false, false, true), hr = autograd::grad({sum(gr2 * v)}, wrt, {}, false, false, true);
  for (size_t i = 0; i < wrt.size(); ++i) {
    ASSERT_EQ(hf[i].defined(), hr[i].defined()) << "second derivative of input " << i;
    if (hf[i].defined()) {
      EXPECT_LT(rel_err(hf[i], hr[i]), 1e-12) << "second derivative of input " << i;
    }
  }
}

Tensor f64(const Tensor& t, bool grad = true) { return t.to(DType::Float64).detach().requires_grad_(grad); }

TEST(FusedReference, BceAtTheKinkAndBeyond) {
  manual_seed(21);
  // logits exactly 0 in the first row (the kink of |x|), large of both signs in the last
  Tensor x = f64(cat({zeros({1, 6}), randn({2, 6}) * 3.0, tensor({{-40.0, 40.0, -1e-8, 1e-8, 0.0, 0.0}})}, 0));
  Tensor y = f64((rand({4, 6}) > 0.5).to(DType::Float64), false);
  expect_same_to_second_order([](auto& a) { return fused::binary_cross_entropy_with_logits(a[0], a[1]); },
                              [](auto& a) { return reference::binary_cross_entropy_with_logits(a[0], a[1]); }, {x, y});
  // The values at the kink itself: d/dx = sigmoid(0) - y = 1/2 - y, d2/dx2 = sigmoid'(0) = 1/4.
  Tensor x0 = f64(zeros({2})), y0 = f64(tensor({0.0, 1.0}), false);
  for (auto fn : {+[](const Tensor& a, const Tensor& b) { return fused::binary_cross_entropy_with_logits(a, b); },
                  +[](const Tensor& a, const Tensor& b) { return reference::binary_cross_entropy_with_logits(a, b); }}) {
    Tensor g = autograd::grad({sum(fn(x0, y0))}, {x0}, {}, false, true)[0];
    EXPECT_EQ(g.to_vector<double>(), (std::vector<double>{0.5, -0.5}));
    Tensor h = autograd::grad({sum(g)}, {x0})[0];
    EXPECT_EQ(h.to_vector<double>(), (std::vector<double>{0.25, 0.25}));
  }
}

TEST(FusedReference, LinearAndEmbeddingBagAtTheReluKink) {
  manual_seed(22);
  // Inputs whose pre-activation is exactly 0 in some entries: x = 0 rows with a zero bias entry.
  Tensor x = f64(cat({zeros({2, 5}), randn({3, 5})}, 0));
  Tensor w = f64(randn({4, 5}));
  Tensor b = f64(tensor({0.0, 0.3, -0.2, 0.0}));
  for (auto act : {cpu::LinearActivation::None, cpu::LinearActivation::ReLU, cpu::LinearActivation::GELU}) {
    SCOPED_TRACE(static_cast<int>(act));
    expect_same_to_second_order([act](auto& a) { return fused::linear(a[0], a[1], a[2], act); },
                                [act](auto& a) { return reference::linear(a[0], a[1], a[2], act); }, {x, w, b});
  }
  // embedding_bag: two rows that cancel make a pre-activation of exactly 0
  Tensor table = f64(tensor({{1.0, -2.0, 0.5}, {-1.0, 2.0, -0.5}, {0.25, 0.0, 1.0}}));
  Tensor idx = tensor({{0, 1}, {2, 2}, {1, 0}}).to(DType::Int64);
  Tensor bias = f64(tensor({0.0, 0.0, -0.5}));
  for (auto act : {cpu::LinearActivation::ReLU, cpu::LinearActivation::GELU}) {
    expect_same_to_second_order([act](auto& a) { return fused::embedding_bag(a[0], a[1], a[2], act); },
                                [act](auto& a) { return reference::embedding_bag(a[0], a[1], a[2], act); }, {table, idx, bias});
  }
}

TEST(FusedReference, Conv2dWithAndWithoutMaskedTapsToSecondOrder) {
  manual_seed(24);
  Tensor x = f64(randn({2, 3, 5, 5})), w = f64(randn({4, 3, 3, 3})), b = f64(randn({4}));
  for (const std::vector<int64_t>& taps : {std::vector<int64_t>{}, std::vector<int64_t>{0, 1, 2, 3, 4}}) {  // all taps; mask B's
    for (int64_t stride : {1, 2}) {
      SCOPED_TRACE(cat("taps ", taps.size(), ", stride ", stride));
      expect_same_to_second_order([&](auto& a) { return conv2d(a[0], a[1], a[2], stride, 1, taps); },
                                  [&](auto& a) { return reference::conv2d(a[0], a[1], a[2], stride, 1, taps); }, {x, w, b});
    }
  }
}

TEST(FusedReference, CrossEntropyLayerNormAttentionToSecondOrder) {
  manual_seed(23);
  Tensor logits = f64(randn({5, 7}) * 2.0);
  Tensor target = randint(0, 7, {5});
  expect_same_to_second_order([](auto& a) { return fused::cross_entropy(a[0], a[1]); },
                              [](auto& a) { return reference::cross_entropy(a[0], a[1]); }, {logits, target});
  Tensor x = f64(randn({3, 6})), g = f64(randn({6})), bb = f64(randn({6}));
  expect_same_to_second_order([](auto& a) { return fused::layer_norm(a[0], a[1], a[2]); },
                              [](auto& a) { return reference::layer_norm(a[0], a[1], a[2]); }, {x, g, bb});
  Tensor q = f64(randn({1, 2, 4, 3})), k = f64(randn({1, 2, 4, 3})), v = f64(randn({1, 2, 4, 3}));
  for (bool causal : {false, true})
    expect_same_to_second_order([causal](auto& a) { return fused::attention(a[0], a[1], a[2], causal); },
                                [causal](auto& a) { return reference::attention(a[0], a[1], a[2], causal); }, {q, k, v});
}

}  // namespace
}  // namespace dgm
