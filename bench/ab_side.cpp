// One side of bench/ab.sh: compiled once per revision with -Ddgm=dgmA or -Ddgm=dgmB and
// -DAB_SIDE=A or B, against that revision's tensor layer, so that both live in one process.
// Each function runs one workload once and returns its milliseconds.
#include <dgm/tensor/array.h>
#include <dgm/tensor/conv.h>
#include <dgm/tensor/fused.h>
#include <dgm/tensor/gemm.h>

#include <chrono>
#include <cstdint>
#include <vector>

#define AB_CAT2(a, b) a##b
#define AB_CAT(a, b) AB_CAT2(a, b)

namespace {
using namespace dgm;
double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count() * 1e3;
}
// values in [-1, 1) from a fixed linear congruential sequence: both sides see the same inputs
Array filled(const Shape& shape) {
  Array a = Array::empty(shape, DType::Float32);
  float* p = a.data<float>();
  uint32_t x = 12345;
  for (int64_t i = 0; i < a.numel(); ++i) {
    x = x * 1664525u + 1013904223u;
    p[i] = float(int(x >> 9) - (1 << 22)) / float(1 << 22);
  }
  return a;
}
double gemm_ms(int64_t M, int64_t N, int64_t K) {
  static std::vector<Array> ops;  // A, B, C of the last shape
  if (ops.empty() || ops[0].size(0) != M || ops[1].size(1) != N || ops[0].size(1) != K) ops = {filled({M, K}), filled({K, N}), filled({M, N})};
  auto t = std::chrono::steady_clock::now();
  cpu::gemm(M, N, K, 1.0f, ops[0].data<float>(), K, 1, ops[1].data<float>(), N, 1, 0.0f, ops[2].data<float>(), N, 1);
  return ms_since(t);
}
}  // namespace

// 1024^3, then MLP-AR's layer (12544 x 256 x 256) and its weight gradient (256 x 256 x 12544)
double AB_CAT(gemm_1024_, AB_SIDE)() { return gemm_ms(1024, 1024, 1024); }
double AB_CAT(gemm_mlp_ar_, AB_SIDE)() { return gemm_ms(12544, 256, 256) + gemm_ms(256, 256, 12544); }
// a PixelCNN layer: 3x3 mask-B convolution, 64 -> 64 channels, batch 32 of 28 x 28, forward + backward
double AB_CAT(conv_pixelcnn_, AB_SIDE)() {
  static Array x = filled({32, 64, 28, 28}), w = filled({64, 64, 3, 3}), b = filled({64}), dy = filled({32, 64, 28, 28});
  static const std::vector<int64_t> taps = {0, 1, 2, 3, 4};
  auto t = std::chrono::steady_clock::now();
  Array y = cpu::conv2d_forward(x, w, b, 1, 1, taps);
  cpu::Conv2dGrads g = cpu::conv2d_backward(x, w, dy, 1, 1, taps, true, true, true);
  return ms_since(t);
}
// the same layer's forward alone (the convolution kernel that the backward's input gradient shares)
double AB_CAT(conv_forward_pixelcnn_, AB_SIDE)() {
  static Array x = filled({32, 64, 28, 28}), w = filled({64, 64, 3, 3}), b = filled({64});
  static const std::vector<int64_t> taps = {0, 1, 2, 3, 4};
  auto t = std::chrono::steady_clock::now();
  Array y = cpu::conv2d_forward(x, w, b, 1, 1, taps);
  return ms_since(t);
}
// ImageGPT's attention: causal, batch 32, 4 heads, 784 positions, head size 16, forward + backward
double AB_CAT(attention_imagegpt_, AB_SIDE)() {
  static Array q = filled({32, 4, 784, 16}), k = filled({32, 4, 784, 16}), v = filled({32, 4, 784, 16}), dout = filled({32, 4, 784, 16});
  auto t = std::chrono::steady_clock::now();
  cpu::AttentionResult r = cpu::attention_forward(q, k, v, true, 0.25);
  cpu::AttentionGrads g = cpu::attention_backward(q, k, v, r.out, r.lse, dout, true, 0.25);
  return ms_since(t);
}
// MLP-AR's first layer backward: 12544 bags of 2 rows of a 512 x 256 table (context pixels), ReLU, bias
double AB_CAT(embedding_bag_mlp_ar_, AB_SIDE)() {
  static Array dy = filled({12544, 256}), idx = [] {
    Array a = Array::empty({12544, 2}, DType::Int64);
    int64_t* p = a.data<int64_t>();
    uint32_t x = 777;
    for (int64_t i = 0; i < a.numel(); ++i) x = x * 1664525u + 1013904223u, p[i] = (i % 2) * 256 + int64_t(x >> 24);
    return a;
  }();
  static Array saved = cpu::embedding_bag_forward(filled({512, 256}), idx, filled({256}), cpu::LinearActivation::ReLU).y;
  auto t = std::chrono::steady_clock::now();
  cpu::EmbeddingBagGrads g = cpu::embedding_bag_backward(idx, saved, dy, 512, cpu::LinearActivation::ReLU, true);
  return ms_since(t);
}
// MLP-AR's loss: cross-entropy over 256 values for 12544 pixels, forward + backward
double AB_CAT(cross_entropy_mlp_ar_, AB_SIDE)() {
  static Array logits = filled({12544, 256}), grad = filled({12544}), target = [] {
    Array a = Array::empty({12544}, DType::Int64);
    for (int64_t i = 0; i < a.numel(); ++i) a.data<int64_t>()[i] = (i * 37) % 256;
    return a;
  }();
  auto t = std::chrono::steady_clock::now();
  auto [loss, lse] = cpu::cross_entropy_forward(logits, target);
  Array dx = cpu::cross_entropy_backward(logits, target, lse, grad);
  return ms_since(t);
}
