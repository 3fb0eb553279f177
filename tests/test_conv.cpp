// The conv2d op (tensor/conv.h: the direct kernels, per-tap GEMMs or im2col + GEMM) against its
// composite reference (index_select + matmul) in value and gradient, at training-like sizes in float32; taps skipped by a mask; the
// result independent of the thread count.
#include <gtest/gtest.h>

#include <omp.h>

#include <dgm/autograd/engine.h>
#include <dgm/autograd/ops.h>

namespace dgm {
namespace {

double rel_err(const Tensor& a, const Tensor& b) {
  return amax(abs(a.to(DType::Float64) - b.to(DType::Float64))).item() / std::max(1e-30, amax(abs(b.to(DType::Float64))).item());
}

struct ConvCase {
  const char* name;
  Shape x, w;
  bool bias, noncontig;
  int64_t stride, padding;
  std::vector<int64_t> taps;
};

TEST(Conv2d, MatchesTheCompositeReferenceInValueAndGradient) {
  const ConvCase cases[] = {
      {"3x3 pad 1", {3, 5, 9, 8}, {6, 5, 3, 3}, true, false, 1, 1, {}},
      {"3x3 stride 2 pad 1, no bias", {2, 4, 11, 10}, {5, 4, 3, 3}, false, false, 2, 1, {}},
      {"5x3 stride 3, no padding", {2, 3, 13, 9}, {4, 3, 5, 3}, true, false, 3, 0, {}},
      {"non-contiguous input", {2, 4, 7, 9}, {3, 4, 3, 3}, true, true, 1, 1, {}},
      {"mask B taps (batch parallel)", {4, 16, 12, 12}, {16, 16, 3, 3}, true, false, 1, 1, {0, 1, 2, 3, 4}},
      {"7x7 mask A taps, 1 channel", {3, 1, 10, 10}, {8, 1, 7, 7}, true, false, 1, 3,
       {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}},
      // the paths of tensor/conv.cpp: the product transposed (O >= 8) or not, dx as the convolution
      // of dy with the flipped weight (stride 1, C >= 8) or by col2im, a 1x1 kernel reading the image
      {"realnvp 16 -> 16 3x3 (transposed, flipped dx)", {3, 16, 10, 9}, {16, 16, 3, 3}, true, false, 1, 1, {}},
      {"16 -> 2 3x3 (flipped dx, small O)", {2, 16, 8, 8}, {2, 16, 3, 3}, true, false, 1, 1, {}},
      {"1x1 16 -> 32", {3, 16, 5, 7}, {32, 16, 1, 1}, true, false, 1, 0, {}},
      {"1x1 non-contiguous", {2, 8, 5, 6}, {12, 8, 1, 1}, true, true, 1, 0, {}},
      {"3x3 pad 2 (col2im dx)", {2, 9, 6, 7}, {10, 9, 3, 3}, true, false, 1, 2, {}},
      {"3x3 8 -> 6 (per-tap GEMMs as rows)", {2, 8, 6, 6}, {6, 8, 3, 3}, true, false, 1, 1, {}},
      {"3x3 12 -> 3 masked taps (axpys and dot products)", {3, 12, 7, 5}, {3, 12, 3, 3}, true, false, 1, 1, {0, 1, 2, 3, 4}},
      {"3x3 8 -> 8 non-contiguous (one GEMM per tap)", {2, 8, 6, 9}, {8, 8, 3, 3}, false, true, 1, 1, {}},
      // the direct convolution of AVX2 / AVX-512 builds: partial pixel tiles (nw not a multiple of the
      // tile), output channels padded to whole tiles (7 -> 8, 1), pairs padded to whole gradient tiles
      {"realnvp 1 -> 16 3x3, odd width", {3, 1, 9, 11}, {16, 1, 3, 3}, true, false, 1, 1, {}},
      {"realnvp 4 -> 16 3x3 on 7x7", {4, 4, 7, 7}, {16, 4, 3, 3}, true, false, 1, 1, {}},
      {"16 -> 1 3x3 (one output channel)", {2, 16, 6, 7}, {1, 16, 3, 3}, true, false, 1, 1, {}},
      {"5 -> 7 5x5 pad 2", {2, 5, 9, 8}, {7, 5, 5, 5}, true, false, 1, 2, {}},
      {"6 -> 5 3x3 no padding", {2, 6, 8, 9}, {5, 6, 3, 3}, false, false, 1, 0, {}},
      {"3 -> 4 7x5 pad 2 (col2im dx)", {2, 3, 9, 8}, {4, 3, 7, 5}, true, false, 1, 2, {}},
      {"2 -> 3 3x3 non-contiguous, masked taps", {3, 2, 10, 6}, {3, 2, 3, 3}, true, true, 1, 1, {1, 3, 4, 8}},
      // outputs in the lanes (AVX2 builds, O >= 16 for float32): a partial panel of outputs (20 of
      // 32), pixels not a multiple of the 6-pixel tile, a padding of 2 on a non-contiguous input
      {"24 -> 20 3x3 (outputs in lanes, partial panel)", {2, 24, 7, 9}, {20, 24, 3, 3}, true, false, 1, 1, {}},
      {"16 -> 16 5x5 mask B pad 2, non-contiguous (outputs in lanes)", {2, 16, 9, 7}, {16, 16, 5, 5}, false, true, 1, 2,
       {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
      {"64 -> 64 3x3 mask B (PixelCNN's layer)", {2, 64, 11, 10}, {64, 64, 3, 3}, true, false, 1, 1, {0, 1, 2, 3, 4}},
      // 648 pairs: the lane forward sums them in chunks whose weights fill half of L1 (2 or more
      // chunks up to a 64 KiB L1), forward and dx (72 -> 16 and 16 -> 72)
      {"72 -> 16 3x3 (outputs in lanes, pairs in chunks)", {2, 72, 6, 5}, {16, 72, 3, 3}, true, false, 1, 1, {}},
  };
  Generator g(3);
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor x = c.noncontig ? Tensor(randn({c.x[0], c.x[1], c.x[3], c.x[2]}, {}, &g).array().transpose(2, 3), true)
                           : randn(c.x, {}, &g).requires_grad_();
    ASSERT_EQ(x.is_contiguous(), !c.noncontig);
    Tensor w = randn(c.w, {}, &g).requires_grad_(), b = c.bias ? randn({c.w[0]}, {}, &g).requires_grad_() : Tensor();
    Tensor y = conv2d(x, w, b, c.stride, c.padding, c.taps), y_ref = reference::conv2d(x, w, b, c.stride, c.padding, c.taps);
    ASSERT_EQ(y.shape(), y_ref.shape());
    EXPECT_LT(rel_err(y, y_ref), 2e-6);
    Tensor r = randn(y.shape(), {}, &g);
    std::vector<Tensor> wrt{x, w};
    if (c.bias) wrt.push_back(b);
    auto grads = autograd::grad({sum(y * r)}, wrt), grads_ref = autograd::grad({sum(y_ref * r)}, wrt);
    for (size_t i = 0; i < wrt.size(); ++i) EXPECT_LT(rel_err(grads[i], grads_ref[i]), 2e-6) << "gradient of input " << i;
    if (!c.taps.empty()) {  // the weights at skipped taps get exactly zero gradient
      Tensor dw = grads[1].reshape({c.w[0] * c.w[1], c.w[2] * c.w[3]});
      std::vector<bool> used(size_t(c.w[2] * c.w[3]), false);
      for (int64_t t : c.taps) used[size_t(t)] = true;
      for (int64_t t = 0; t < c.w[2] * c.w[3]; ++t) {
        if (!used[size_t(t)]) {
          EXPECT_EQ(amax(abs(select(dw, 1, t))).item(), 0.0) << "tap " << t;
        }
      }
    }
  }
}

TEST(Conv2d, SameBitsForAnyThreadCount) {
  Generator g(5);
  Tensor x = randn({6, 16, 14, 14}, {}, &g).requires_grad_(), w = randn({16, 16, 3, 3}, {}, &g).requires_grad_();
  Tensor b = randn({16}, {}, &g).requires_grad_();
  auto run = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tensor y = conv2d(x, w, b, 1, 1, {0, 1, 2, 3, 4});
    auto grads = autograd::grad({sum(y * y)}, {x, w, b});
    omp_set_num_threads(before);
    return std::vector<Tensor>{y, grads[0], grads[1], grads[2]};
  };
  auto one = run(1), two = run(2), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_GT(amax(abs(one[i])).item(), 0.0);
    EXPECT_EQ(one[i].to_vector<float>(), two[i].to_vector<float>()) << "output " << i << " differs between 1 and 2 threads";
    EXPECT_EQ(one[i].to_vector<float>(), three[i].to_vector<float>()) << "output " << i << " differs between 1 and 3 threads";
  }
}

TEST(Conv2d, ErrorsNameTheShapes) {
  Tensor x = randn({1, 2, 5, 5}), w = randn({3, 4, 3, 3});
  try {
    conv2d(x, w);
    FAIL() << "expected a ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("2 channels"), std::string::npos) << e.what();
  }
  EXPECT_THROW(conv2d(x, randn({3, 2, 3, 3}), Tensor(), 1, 0, {4, 2}), ValueError);  // taps not increasing
  EXPECT_THROW(conv2d(x, randn({3, 2, 7, 7})), ShapeError);                          // kernel larger than the input
}

}  // namespace
}  // namespace dgm
