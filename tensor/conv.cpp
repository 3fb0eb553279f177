// 2-D convolution on the blocked GEMM (see tensor/conv.h).
#include <dgm/tensor/conv.h>

#include <omp.h>

#include <algorithm>
#include <type_traits>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include <dgm/tensor/errors.h>
#include <dgm/tensor/gemm.h>
#include <dgm/tensor/kernels.h>
#include <dgm/tensor/loops.h>
#include <dgm/tensor/simd.h>

namespace dgm::cpu {
namespace {

// Sizes of one convolution, checked; the taps (offsets i*KW + j) spelled out.
struct Geometry {
  int64_t B, C, H, W, O, KH, KW, Ho, Wo, stride, padding;
  std::vector<int64_t> taps;
  int64_t T() const { return int64_t(taps.size()); }
  int64_t K() const { return C * T(); }  // rows of cols, columns of Wt
  int64_t P() const { return Ho * Wo; }  // output pixels per image
};

Geometry geometry(const Array& x, const Array& weight, int64_t stride, int64_t padding, const std::vector<int64_t>& taps) {
  if (x.dim() != 4) throw ShapeError(cat("conv2d: input must be (B, C, H, W), got ", shape_str(x.shape())));
  if (weight.dim() != 4)
    throw ShapeError(cat("conv2d: weight must be (out_channels, in_channels, kh, kw), got ", shape_str(weight.shape())));
  if (x.dtype() != weight.dtype() || (x.dtype() != DType::Float32 && x.dtype() != DType::Float64))
    throw DTypeError(cat("conv2d: input and weight must both be float32 or both float64, got ", dtype_name(x.dtype()), " and ",
                         dtype_name(weight.dtype())));
  Geometry g{x.size(0), x.size(1), x.size(2), x.size(3), weight.size(0), weight.size(2), weight.size(3), 0, 0, stride, padding, taps};
  if (weight.size(1) != g.C)
    throw ShapeError(cat("conv2d: input ", shape_str(x.shape()), " has ", g.C, " channels but the weight ", shape_str(weight.shape()),
                         " expects ", weight.size(1)));
  if (stride < 1 || padding < 0) throw ValueError(cat("conv2d: stride must be >= 1 and padding >= 0, got ", stride, " and ", padding));
  const int64_t Hp = g.H + 2 * padding, Wp = g.W + 2 * padding;
  if (Hp < g.KH || Wp < g.KW)
    throw ShapeError(cat("conv2d: kernel ", g.KH, "x", g.KW, " is larger than the padded input ", Hp, "x", Wp, " (input ",
                         shape_str(x.shape()), ")"));
  g.Ho = (Hp - g.KH) / stride + 1;
  g.Wo = (Wp - g.KW) / stride + 1;
  if (g.taps.empty())
    for (int64_t t = 0; t < g.KH * g.KW; ++t) g.taps.push_back(t);
  for (size_t t = 0; t < g.taps.size(); ++t)
    if (g.taps[t] < 0 || g.taps[t] >= g.KH * g.KW || (t > 0 && g.taps[t] <= g.taps[t - 1]))
      throw ValueError(cat("conv2d: taps must be increasing offsets i*kw + j in [0, ", g.KH * g.KW, "), got ", g.taps[t], " at ", t));
  return g;
}

// The columns wo of an output row whose input column wo*s + j - p lies inside [0, W): [lo, hi).
void valid_columns(const Geometry& g, int64_t j, int64_t& lo, int64_t& hi) {
  const int64_t first = j - g.padding;  // input column of wo = 0
  lo = first >= 0 ? 0 : (-first + g.stride - 1) / g.stride;
  hi = first > g.W - 1 ? 0 : std::min(g.Wo, (g.W - 1 - first) / g.stride + 1);
  lo = std::min(lo, hi);
}

// out[0, n) = in[0, n): an inline copy (rows here are ~30 values; a memcpy call per row cost more
// than the copy itself, so GCC is told not to turn these loops back into library calls).
template <class T>
inline void copy_row(const T* __restrict in, int64_t n, T* __restrict out) {
  int64_t k = 0;
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float>)
    for (; k + 8 <= n; k += 8) _mm256_storeu_ps(out + k, _mm256_loadu_ps(in + k));
#endif
  for (; k < n; ++k) out[k] = in[k];
}
template <class T>
inline void zero_row(T* out, int64_t n) {
  int64_t k = 0;
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float>)
    for (; k + 8 <= n; k += 8) _mm256_storeu_ps(out + k, _mm256_setzero_ps());
#endif
  for (; k < n; ++k) out[k] = T(0);
}

// cols[(c*T + t), ho*Wo + wo] = x[c, ho*s + i - p, wo*s + j - p] (0 outside the image), for one
// image x (C, H, W) with strides (sc, sh, sw) and tap t = (i, j).
// Channels [c_begin, c_end) only, when given: their rows start at cols.
template <class T>
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void im2col(const T* x, int64_t sc, int64_t sh, int64_t sw, const Geometry& g, T* cols, int64_t c_begin = 0, int64_t c_end = -1) {
  if (c_end < 0) c_end = g.C;
  for (int64_t c = c_begin; c < c_end; ++c)
    for (int64_t t = 0; t < g.T(); ++t) {
      const int64_t i = g.taps[t] / g.KW, j = g.taps[t] % g.KW;
      int64_t lo, hi;
      valid_columns(g, j, lo, hi);
      T* row = cols + ((c - c_begin) * g.T() + t) * g.P();
      for (int64_t ho = 0; ho < g.Ho; ++ho) {
        T* out = row + ho * g.Wo;
        const int64_t hi_in = ho * g.stride + i - g.padding;
        if (hi_in < 0 || hi_in >= g.H) {
          zero_row(out, g.Wo);
          continue;
        }
        const T* in = x + c * sc + hi_in * sh + (lo * g.stride + j - g.padding) * sw;
        zero_row(out, lo);
        const int64_t step = g.stride * sw;
        if (step == 1)
          copy_row(in, hi - lo, out + lo);
        else
          for (int64_t wo = lo; wo < hi; ++wo) out[wo] = in[(wo - lo) * step];
        zero_row(out + hi, g.Wo - hi);
      }
    }
}

// The adjoint of im2col: dx[c, ho*s + i - p, wo*s + j - p] += dcols[(c*T + t), ho*Wo + wo], for one
// contiguous image dx (C, H, W), in a fixed order.
template <class T>
void col2im(const T* dcols, const Geometry& g, T* dx) {
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t t = 0; t < g.T(); ++t) {
      const int64_t i = g.taps[t] / g.KW, j = g.taps[t] % g.KW;
      int64_t lo, hi;
      valid_columns(g, j, lo, hi);
      const T* row = dcols + (c * g.T() + t) * g.P();
      for (int64_t ho = 0; ho < g.Ho; ++ho) {
        const int64_t hi_in = ho * g.stride + i - g.padding;
        if (hi_in < 0 || hi_in >= g.H) continue;
        const T* in = row + ho * g.Wo;
        T* out = dx + (c * g.H + hi_in) * g.W + (lo * g.stride + j - g.padding);
        for (int64_t wo = lo; wo < hi; ++wo) out[(wo - lo) * g.stride] += in[wo];
      }
    }
}

// Wt (O, C*T): Wt[o, c*T + t] = w[o, c, taps[t]], the taps of the weight in cols' row order.
// Offset in w (O, C, KH, KW) of each tap g.taps[t] within one (o, c) kernel, from strides read
// once: Array::stride checks its dim on every call, and reading four per weight element was ~40% of
// PixelCNN sampling (a conv per pixel). `dgm sample pixelcnn --n 2`, 2 threads, 3.6-4.0 -> 0.8 s;
// --n 64 15.7-17.2 -> 12.7-13.4 s (binaries alternated).
std::vector<int64_t> tap_offsets(const Array& w, const Geometry& g) {
  std::vector<int64_t> tap(static_cast<size_t>(g.T()));
  for (int64_t t = 0; t < g.T(); ++t) tap[size_t(t)] = (g.taps[t] / g.KW) * w.stride(2) + (g.taps[t] % g.KW) * w.stride(3);
  return tap;
}

template <class T>
std::vector<T> gather_weight(const Array& w, const Geometry& g) {
  std::vector<T> wt(size_t(g.O * g.K()));
  const T* p = w.data<T>();
  const int64_t so = w.stride(0), sc = w.stride(1), nt = g.T();
  const std::vector<int64_t> tap = tap_offsets(w, g);
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t t = 0; t < nt; ++t) wt[size_t(o * g.K() + c * nt + t)] = p[o * so + c * sc + tap[size_t(t)]];
  return wt;
}

// Per-thread grow-only scratch (slot 0: cols, slot 1: a transposed output), so that a training
// step allocates, zero-fills and page-faults nothing here after its first call.
template <class T>
T* scratch(int slot, size_t n) {
  thread_local std::vector<T> buffers[2];
  if (buffers[slot].size() < n) buffers[slot].resize(n);
  return buffers[slot].data();
}

// The image x zero-padded by g.padding on each side, (C, Hp, Wp) contiguous in scratch slot 0, plus
// Wp + kPadSlack zeros after it (read by the dropped columns of the per-tap GEMMs and the last
// tiles of the direct convolution).
constexpr int64_t kPadSlack = 512;
template <class T>
__attribute__((optimize("no-tree-loop-distribute-patterns"))) const T* pad_image(const T* x, int64_t sc, int64_t sh, int64_t sw, const Geometry& g) {
  const int64_t p = g.padding, Wp = g.W + 2 * p, plane = (g.H + 2 * p) * Wp;
  const int64_t extra = Wp + kPadSlack;
  T* xpad = scratch<T>(0, size_t(g.C * plane + extra));
  // each value written once: the padding rows and the row ends zeroed around the copied rows
  for (int64_t c = 0; c < g.C; ++c) {
    T* plane_c = xpad + c * plane;
    zero_row(plane_c, p * Wp + p);
    for (int64_t h = 0; h < g.H; ++h) {
      const T* in = x + c * sc + h * sh;
      T* out = plane_c + (h + p) * Wp + p;
      if (sw == 1)
        copy_row(in, g.W, out);
      else
        for (int64_t w = 0; w < g.W; ++w) out[w] = in[w * sw];
      zero_row(out + g.W, h + 1 < g.H ? 2 * p : p + p * Wp);  // this row's right and the next row's left padding
    }
  }
  zero_row(xpad + g.C * plane, extra);
  return xpad;
}

// Whether an image's product (O outputs, inner size K) is computed transposed (see conv_image): it
// pays when cols (K rows) is big to pack and O fills most of the micro-tile's 16 columns.
bool transposed_product(int64_t O, int64_t K) { return O >= 8 && K >= O; }

#if DGM_SIMD_KERNELS
// ---- direct convolution (stride 1, AVX2 / AVX-512 builds) --------------------------------------
//
// Clever part: a stride-1 convolution is a GEMM whose A operand never needs to exist. On the
// zero-padded image, output pixel n = ho*Wp + wo of the padded-width grid reads channel c at tap
// (i, j) from xpad[c*plane + i*Wp + j + n]: for a fixed k = (c, t) the values of consecutive pixels
// are consecutive in memory. So a register tile of MO output channels x NV*width pixels is
// accumulated over all K = C*T pairs in one pass (NV vector loads of the image at offs[k] and MO
// broadcast weights per k), with no im2col, no packing and no per-tap passes over the output;
// the weight gradient runs the same walk with the roles turned (a tile of MO outputs x KB pairs,
// summed over the pixels). It wins where channel counts are small (RealNVP's 1 -> 16, 16 -> 16,
// 16 -> 2 convolutions), which blocked GEMMs handle worst: their tiles are sized for long inner
// dimensions. The Wp - Wo columns of padding per output row (KW - 1 of them) are computed and dropped.

// The tile shapes per register file: MO output channels x NV vectors of pixels (forward), MO
// output channels x KB pairs (weight gradient); accumulators + operands fit the registers.
constexpr int kForwardNV4 = kVectorRegisters == 32 ? 6 : 2;   // MO = 4
constexpr int kForwardNV2 = kVectorRegisters == 32 ? 8 : 4;   // MO = 2
constexpr int kForwardNV1 = kVectorRegisters == 32 ? 8 : 4;   // MO = 1
constexpr int kGradMO = kVectorRegisters == 32 ? 4 : 2;   // O >= 3
constexpr int kGradKB = kVectorRegisters == 32 ? 6 : 4;
constexpr int kGradKB2 = kVectorRegisters == 32 ? 10 : 5;  // O = 2 (MO = 2)
constexpr int kGradKB1 = kVectorRegisters == 32 ? 12 : 6;  // O = 1 (MO = 1)
constexpr int64_t kGradKBMultiple = 60;  // a multiple of each KB above
static_assert(kGradKBMultiple % kGradKB == 0 && kGradKBMultiple % kGradKB2 == 0 && kGradKBMultiple % kGradKB1 == 0);

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Outputs in the lanes, for the 16-register AVX2 file (see lane_tile): a tile of kLanePX pixels (or
// kLaneKB pairs) x kLaneOV vectors of output channels, 12 accumulators as in the GEMM micro-kernel.
// AVX-512 keeps the pixel-lane tiles, which measured near its peak (kLaneConv false there).
constexpr bool kLaneConv = kVectorRegisters == 16;
constexpr int kLanePX = 6, kLaneKB = 6, kLaneOV = 2;
static_assert(kGradKBMultiple % kLaneKB == 0);
template <class T>
constexpr int64_t lane_panel() {  // output channels per panel: kLaneOV vectors
  return kLaneOV * int64_t(VecOf<T>::type::width);
}
// How many rows of a panel (lane_panel values of T) fill half of L1: the pairs of a lane-forward chunk
// (their weights), the pixels of a weight-gradient chunk (their dy^T); the other half holds what the
// tiles read against them.
template <class T>
int64_t panel_rows_in_half_l1() {
  return cache_sizes().l1 / 2 / (lane_panel<T>() * int64_t(sizeof(T)));
}
// The lane forward when the outputs fill whole panels and each tile's sum is long enough to repay
// its scattered store (PixelCNN's 64 -> 64 convolutions and their dx; not RealNVP's 1 -> 16).
bool lane_forward_pays(int64_t O, int64_t K, int64_t panel) { return kLaneConv && O >= panel && K >= 64; }
bool lane_grad_pays(int64_t O, int64_t K, int64_t panel) { return kLaneConv && O >= panel && K >= kLaneKB; }

// What every image of one direct convolution shares: the offsets of the K = C*T (channel, tap)
// pairs in the padded image (then zeros up to a multiple of every gradient tile's KB: pairs read and
// dropped), the weights as (K, Opad) and the bias padded to Opad (neither for the weight gradient).
template <class T>
struct DirectPlan {
  int64_t Wp = 0, plane = 0, nw = 0, K = 0, O = 0;
  int mo = 4;          // output channels per tile: 4, 2 or 1
  int64_t Opad = 0;    // O rounded up to mo (to a whole panel with `lanes`)
  bool lanes = false;  // outputs in the vector lanes (see lane_tile): wk is (Opad / panel, K, panel)
  std::vector<int64_t> offs;
  std::vector<T> wk, bias;
};

// wt (O, K) as gather_weight lays it out (Wt[o, c*T + t]) or null (offsets only), bias (O) or null.
template <class T>
DirectPlan<T> direct_plan(const Geometry& g, const T* wt, const T* bias) {
  DirectPlan<T> p;
  p.Wp = g.W + 2 * g.padding;
  p.plane = (g.H + 2 * g.padding) * p.Wp;
  p.nw = g.Ho * p.Wp;
  p.K = g.K();
  p.O = g.O;
  p.mo = g.O >= 4 ? 4 : (g.O >= 2 ? 2 : 1);
  p.Opad = round_up(g.O, p.mo);
  p.offs.assign(size_t(round_up(p.K, kGradKBMultiple)), 0);
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t t = 0; t < g.T(); ++t) p.offs[size_t(c * g.T() + t)] = c * p.plane + (g.taps[t] / g.KW) * p.Wp + g.taps[t] % g.KW;
  if (!wt) return p;
  constexpr int64_t panel = lane_panel<T>();
  p.lanes = lane_forward_pays(g.O, p.K, panel);
  if (p.lanes) {
    p.Opad = round_up(g.O, panel);
    p.wk.assign(size_t(p.K * p.Opad), T(0));
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t k = 0; k < p.K; ++k) p.wk[size_t(((o / panel) * p.K + k) * panel + o % panel)] = wt[o * p.K + k];
  } else {
    p.wk.assign(size_t(p.K * p.Opad), T(0));
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t k = 0; k < p.K; ++k) p.wk[size_t(k * p.Opad + o)] = wt[o * p.K + k];
  }
  p.bias.assign(size_t(p.Opad), T(0));
  if (bias) std::copy(bias, bias + g.O, p.bias.begin());
  return p;
}

// y[mo, v*W + l] = bias[mo] + sum_k wk[k*ldw + mo] * x[offs[k] + v*W + l], for mo < MO, v < NV.
template <class V, int MO, int NV>
void direct_tile(const typename V::scalar* __restrict x, const int64_t* __restrict offs, int64_t K,
                 const typename V::scalar* __restrict wk, int64_t ldw, const typename V::scalar* bias,
                 typename V::scalar* __restrict y, int64_t ldy) {
  using Reg = typename V::type;
  constexpr int W = V::width;
  Reg acc[MO][NV];
#pragma GCC unroll 4
  for (int m = 0; m < MO; ++m) {
    const Reg b = V::broadcast(bias[m]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[m][v] = b;
  }
  // Four pairs per loop turn here and in the other tiles' pair / pixel loops, as the GEMM's k loop.
  // A PixelCNN layer's forward + backward (B32, 64 -> 64 channels, 28 x 28, mask B), the two versions
  // in one process, alternated: faster in 81 of 113 calls, medians 2-10% lower in 3 of 4 runs.
#pragma GCC unroll 4
  for (int64_t k = 0; k < K; ++k) {
    const typename V::scalar* xk = x + offs[k];
    Reg xv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) xv[v] = V::loadu(xk + v * W);
    const typename V::scalar* w = wk + k * ldw;
#pragma GCC unroll 4
    for (int m = 0; m < MO; ++m) {
      const Reg wm = V::broadcast(w[m]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[m][v] = V::fmadd(wm, xv[v], acc[m][v]);
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MO; ++m)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) V::storeu(y + m * ldy + v * W, acc[m][v]);
}

// Clever part (AVX2): the GEMM micro-kernel's 6 x 16 shape on the convolution. With the output
// channels in the lanes, a tile is PX pixels x OV vectors of outputs: per pair k it loads OV weight
// vectors (the panel's K x panel weights stay in L1) and broadcasts PX consecutive image values
// xpad[offs[k] + n0 + p], 12 FMAs from 2 loads and 6 broadcasts, where the pixel-lane tile of 16
// registers gets 8 FMAs from 6 unaligned loads and broadcasts. The tile starts from the bias, or with
// a null bias from the sums already in `out` (PX x panel, pixel-major), and is written back there.
// Not inlined, like the GEMM's micro-kernel: its code then stays the same whatever changes around it
// (inlined, its loop's offset in a cache line moved between builds that differed elsewhere).
template <class V, int PX, int OV>
[[gnu::noinline]] void lane_tile(const typename V::scalar* __restrict x, const int64_t* __restrict offs, int64_t K,
                                 const typename V::scalar* __restrict w, const typename V::scalar* bias, typename V::scalar* out) {
  using Reg = typename V::type;
  constexpr int W = V::width;
  Reg acc[PX][OV];
  if (bias) {
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) {
      const Reg b = V::loadu(bias + v * W);
#pragma GCC unroll 8
      for (int q = 0; q < PX; ++q) acc[q][v] = b;
    }
  } else {
#pragma GCC unroll 8
    for (int q = 0; q < PX; ++q)
#pragma GCC unroll 4
      for (int v = 0; v < OV; ++v) acc[q][v] = V::loadu(out + (q * OV + v) * W);
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < K; ++k) {
    const typename V::scalar* xk = x + offs[k];
    Reg wv[OV];
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) wv[v] = V::loadu(w + k * OV * W + v * W);
#pragma GCC unroll 8
    for (int q = 0; q < PX; ++q) {
      const Reg xq = V::broadcast(xk[q]);
#pragma GCC unroll 4
      for (int v = 0; v < OV; ++v) acc[q][v] = V::fmadd(xq, wv[v], acc[q][v]);
    }
  }
#pragma GCC unroll 8
  for (int q = 0; q < PX; ++q)
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) V::storeu(out + (q * OV + v) * W, acc[q][v]);
}

// y (O, Ho, Wo) of one image from its padded copy xpad, outputs in the lanes (p.lanes). The pairs go
// in chunks whose weights fill at most half of L1, so that they and the image rows they read stay
// there while the tiles sweep the image; each tile's sums are kept in `acc` between chunks and go on
// in the same order (the result does not depend on the chunks). PixelCNN's 64 -> 64 mask-B layer
// (K = 320 pairs, 20 KiB of weights per panel: 2 chunks on a 32 KiB L1), the two versions alternated
// in one process: forward faster in 18 of 21 calls, median 8.42 -> 8.01 ms.
template <class T>
void lane_forward(const T* xpad, const DirectPlan<T>& p, const Geometry& g, T* y) {
  using V = typename VecOf<T>::type;
  constexpr int64_t panel = lane_panel<T>();
  const int64_t P = g.Ho * g.Wo;
  T* acc = scratch<T>(1, size_t(round_up(p.nw, kLanePX) * panel));
  const int64_t kc_max = std::max<int64_t>(kLanePX, panel_rows_in_half_l1<T>());
  const int64_t chunks = (p.K + kc_max - 1) / kc_max, kc = (p.K + chunks - 1) / chunks;
  for (int64_t o0 = 0; o0 < p.Opad; o0 += panel) {
    const int64_t on = std::min(panel, p.O - o0);
    for (int64_t k0 = 0; k0 < p.K; k0 += kc)
      for (int64_t n0 = 0; n0 < p.nw; n0 += kLanePX)
        lane_tile<V, kLanePX, kLaneOV>(xpad + n0, p.offs.data() + k0, std::min(kc, p.K - k0), p.wk.data() + (o0 * p.K + k0 * panel),
                                       k0 == 0 ? p.bias.data() + o0 : nullptr, acc + n0 * panel);
    // then y from acc in one pass, skipping the dropped columns (each tile scattered right after its
    // last chunk measured slower, 6 of 21 calls faster: its writes to 16 planes share L1 with the tiles)
    for (int64_t n = 0; n < p.nw; ++n) {
      const int64_t ho = n / p.Wp, wo = n % p.Wp;
      if (ho >= g.Ho || wo >= g.Wo) continue;  // a dropped padding column, or past the last row
      T* dst = y + o0 * P + ho * g.Wo + wo;
      for (int64_t o = 0; o < on; ++o) dst[o * P] = acc[n * panel + o];
    }
  }
}

// acc[b*ldo + o] (+)= sum_{n in [n0, n1)} x[offs[b] + n] * dyt[n*panel + o] for b < KB, o < panel: the
// weight gradient of KB pairs x one panel of outputs, outputs in the lanes (the lane_tile shape:
// OV loads of dy^T and KB broadcasts of the image feed KB * OV FMAs; no lane sums).
template <class V, int KB, int OV>
void lane_grad_tile(const typename V::scalar* __restrict x, const int64_t* __restrict offs, const typename V::scalar* __restrict dyt,
                    int64_t n0, int64_t n1, bool accumulate, typename V::scalar* __restrict acc_out, int64_t ldo) {
  using Reg = typename V::type;
  using T = typename V::scalar;
  constexpr int W = V::width, panel = OV * W;
  Reg acc[KB][OV];
  const T* xk[KB];
#pragma GCC unroll 8
  for (int b = 0; b < KB; ++b) {
    xk[b] = x + offs[b];
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) acc[b][v] = accumulate ? V::loadu(acc_out + b * ldo + v * W) : V::zero();
  }
#pragma GCC unroll 4
  for (int64_t n = n0; n < n1; ++n) {
    Reg d[OV];
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) d[v] = V::loadu(dyt + n * panel + v * W);
#pragma GCC unroll 8
    for (int b = 0; b < KB; ++b) {
      const Reg xb = V::broadcast(xk[b][n]);
#pragma GCC unroll 4
      for (int v = 0; v < OV; ++v) acc[b][v] = V::fmadd(xb, d[v], acc[b][v]);
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < KB; ++b)
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) V::storeu(acc_out + b * ldo + v * W, acc[b][v]);
}

// dWt^T (Kpad, Opad) (+)= the weight gradient of one image, outputs in the lanes: x its input
// (strided), dy (O, Ho, Wo) contiguous; `accumulate` false overwrites. The pixels go in chunks whose
// panel of dy^T stays in L1 while every pair's tile reads it.
template <class T>
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void lane_weight_grad(
    const T* x, int64_t sc, int64_t sh, int64_t sw, const T* dy, const Geometry& g, const DirectPlan<T>& p, bool accumulate, T* dwtt) {
  using V = typename VecOf<T>::type;
  constexpr int64_t panel = lane_panel<T>();
  const T* xpad = pad_image(x, sc, sh, sw, g);
  const int64_t Opad = round_up(g.O, panel), Kpad = round_up(p.K, kLaneKB), P = g.Ho * g.Wo;
  // dy^T as (Opad / panel, nw, panel), zero in the dropped columns and the padded outputs
  T* dyt = scratch<T>(1, size_t(Opad * p.nw));
  zero_row(dyt, Opad * p.nw);
  // a row of pixels at a time, so that its Wo lines of dy^T stay in L1 while a panel's outputs fill them
  for (int64_t o0 = 0; o0 < g.O; o0 += panel)
    for (int64_t ho = 0; ho < g.Ho; ++ho)
      for (int64_t o = o0; o < std::min(g.O, o0 + panel); ++o) {
        T* dst = dyt + (o0 / panel) * p.nw * panel + ho * p.Wp * panel + (o - o0);
        const T* src = dy + o * P + ho * g.Wo;
        for (int64_t wo = 0; wo < g.Wo; ++wo) dst[wo * panel] = src[wo];
      }
  // chunks of pixels whose panel of dy^T fills half of L1 (256 pixels of float32 on a 32 KiB L1)
  const int64_t chunk = std::max<int64_t>(16, panel_rows_in_half_l1<T>());
  for (int64_t n0 = 0; n0 < p.nw; n0 += chunk) {
    const int64_t n1 = std::min(p.nw, n0 + chunk);
    for (int64_t o0 = 0; o0 < Opad; o0 += panel)
      for (int64_t k0 = 0; k0 < Kpad; k0 += kLaneKB)
        lane_grad_tile<V, kLaneKB, kLaneOV>(xpad, p.offs.data() + k0, dyt + o0 * p.nw, n0, n1, accumulate || n0 > 0,
                                            dwtt + k0 * Opad + o0, Opad);
  }
}

// y (O, Ho, Wo) of one image from its padded copy xpad, through the wide rows yw (Opad, nwr).
template <class T, int MO, int NV>
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void direct_forward(const T* xpad, const DirectPlan<T>& p, const Geometry& g,
                                                                                   T* y) {
  using V = typename VecOf<T>::type;
  constexpr int64_t tile = NV * V::width;
  const int64_t nwr = round_up(p.nw, tile);
  T* yw = scratch<T>(1, size_t(p.Opad * nwr));
  for (int64_t n0 = 0; n0 < nwr; n0 += tile)
    for (int64_t o0 = 0; o0 < p.Opad; o0 += MO)
      direct_tile<V, MO, NV>(xpad + n0, p.offs.data(), p.K, p.wk.data() + o0, p.Opad, p.bias.data() + o0, yw + o0 * nwr + n0, nwr);
  for (int64_t o = 0; o < p.O; ++o)
    for (int64_t ho = 0; ho < g.Ho; ++ho) copy_row(yw + o * nwr + ho * p.Wp, g.Wo, y + (o * g.Ho + ho) * g.Wo);
}

template <class T>
void direct_conv_image(const T* x, int64_t sc, int64_t sh, int64_t sw, const Geometry& g, const DirectPlan<T>& p, T* y) {
  const T* xpad = pad_image(x, sc, sh, sw, g);
  if (p.lanes)
    lane_forward(xpad, p, g, y);
  else if (p.mo == 4)
    direct_forward<T, 4, kForwardNV4>(xpad, p, g, y);
  else if (p.mo == 2)
    direct_forward<T, 2, kForwardNV2>(xpad, p, g, y);
  else
    direct_forward<T, 1, kForwardNV1>(xpad, p, g, y);
}

// sums[m*KB + b] = sum_{n < n_end} dyw[m*ldd + n] * x[offs[b] + n]: the weight gradient of MO
// outputs x KB (channel, tap) pairs over the pixels of one image (the lanes summed in a fixed tree).
template <class V, int MO, int KB>
void direct_grad_tile(const typename V::scalar* __restrict dyw, int64_t ldd, const typename V::scalar* __restrict x,
                      const int64_t* offs, int64_t n_end, typename V::scalar* sums) {
  using Reg = typename V::type;
  using T = typename V::scalar;
  constexpr int W = V::width;
  Reg acc[MO][KB];
  const T* xk[KB];
#pragma GCC unroll 8
  for (int b = 0; b < KB; ++b) {
    xk[b] = x + offs[b];
#pragma GCC unroll 4
    for (int m = 0; m < MO; ++m) acc[m][b] = V::zero();
  }
#pragma GCC unroll 4
  for (int64_t n = 0; n < n_end; n += W) {
    Reg d[MO];
#pragma GCC unroll 4
    for (int m = 0; m < MO; ++m) d[m] = V::loadu(dyw + m * ldd + n);
#pragma GCC unroll 8
    for (int b = 0; b < KB; ++b) {
      const Reg xv = V::loadu(xk[b] + n);
#pragma GCC unroll 4
      for (int m = 0; m < MO; ++m) acc[m][b] = V::fmadd(d[m], xv, acc[m][b]);
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MO; ++m)
#pragma GCC unroll 8
    for (int b = 0; b < KB; ++b) sums[m * KB + b] = V::sum(acc[m][b]);
}

// dWt (O, K) (+)= the weight gradient of one image: x its input (strided), dy (O, Ho, Wo)
// contiguous; `accumulate` false overwrites dwt.
template <class T, int MO, int KB>
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void direct_weight_grad(
    const T* x, int64_t sc, int64_t sh, int64_t sw, const T* dy, const Geometry& g, const DirectPlan<T>& p, bool accumulate, T* dwt) {
  using V = typename VecOf<T>::type;
  const T* xpad = pad_image(x, sc, sh, sw, g);
  // dy on the padded-width grid, zero in the dropped columns, past nw and in the padding rows
  const int64_t nwr = round_up(p.nw, V::width), rows = round_up(g.O, MO);
  T* dyw = scratch<T>(1, size_t(rows * nwr));
  zero_row(dyw, rows * nwr);
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t ho = 0; ho < g.Ho; ++ho) copy_row(dy + (o * g.Ho + ho) * g.Wo, g.Wo, dyw + o * nwr + ho * p.Wp);
  const int64_t Kpad = round_up(p.K, KB);  // p.offs holds zeros up to it (pairs read, then dropped)
  T sums[MO * KB];
  for (int64_t k0 = 0; k0 < Kpad; k0 += KB)
    for (int64_t o0 = 0; o0 < rows; o0 += MO) {
      direct_grad_tile<V, MO, KB>(dyw + o0 * nwr, nwr, xpad, p.offs.data() + k0, nwr, sums);
      for (int m = 0; m < MO && o0 + m < g.O; ++m)
        for (int b = 0; b < KB && k0 + b < p.K; ++b) {
          T& a = dwt[(o0 + m) * p.K + k0 + b];
          a = accumulate ? a + sums[m * KB + b] : sums[m * KB + b];
        }
    }
}
#endif

// True when cols would be a plain copy of the image: a 1x1 kernel, stride 1, no padding, contiguous
// rows and channels.
bool cols_is_image(const Geometry& g, int64_t sc, int64_t sh, int64_t sw) {
  return g.KH == 1 && g.KW == 1 && g.T() == 1 && g.stride == 1 && g.padding == 0 && sw == 1 && sh == g.W && sc == g.H * g.W;
}

// y (O, P) = Wt (O, K) @ cols (K, P) (+ bias[o]) for one image x, into a contiguous y.
// Clever part: with O >= 8 (and K >= O) it computes y^T (P, O) = cols^T @ Wt^T instead, so that the big operand
// cols is read in place by the micro-kernel as a column-major A (no packing pass over it), the
// O columns fill the micro-tile's width exactly and the bias rides in the GEMM's epilogue; the
// small y^T is then transposed into y from L1/L2. A 1x1 convolution reads the image as cols.
template <class T>
void conv_image(const T* x, int64_t sc, int64_t sh, int64_t sw, const Geometry& g, const T* wt, const T* bias, T* y) {
  const int64_t K = g.K(), P = g.P(), O = g.O;
  if (g.stride == 1 && g.C >= 8) {
    // Clever part: no cols at all. With stride 1, output pixel n = ho*Wp + wo of the padded-width
    // grid reads tap (i, j) of channel c at xpad[c, n + i*Wp + j], so for each tap cols_t^T (n, C)
    // is a column-major view of the zero-padded image (column stride Hp*Wp): one GEMM per tap of
    // inner size C, accumulated, reads the small padded image from L1/L2 instead of writing and
    // reading a 9x larger cols. The 2p padding columns of each output row are computed and dropped.
    const int64_t Wp = g.W + 2 * g.padding, plane = (g.H + 2 * g.padding) * Wp, nw = g.Ho * Wp;
    const T* xpad = pad_image(x, sc, sh, sw, g);
    if (!transposed_product(O, K)) {  // few outputs: y_wide (O, nw) += Wt_t (O, C) @ xpad_t (C, nw), as rows
      T* yw = scratch<T>(1, size_t(O * nw));
      if (O <= 4) {
        // a GEMM of 1 to 4 rows would pad them to 6 and pack xpad_t per tap: plain axpys over the
        // padded rows (in L1) instead, starting from the bias, summed over (c, t) in order
        for (int64_t o = 0; o < O; ++o) std::fill(yw + o * nw, yw + (o + 1) * nw, bias ? bias[o] : T(0));
        for (int64_t c = 0; c < g.C; ++c)
          for (int64_t t = 0; t < g.T(); ++t) {
            const T* __restrict src = xpad + c * plane + (g.taps[t] / g.KW) * Wp + g.taps[t] % g.KW;
            for (int64_t o = 0; o < O; ++o) {
              const T w = wt[o * K + c * g.T() + t];
              T* __restrict d = yw + o * nw;
              for (int64_t n = 0; n < nw; ++n) d[n] += w * src[n];
            }
          }
        bias = nullptr;  // already in
      } else {
        for (int64_t t = 0; t < g.T(); ++t)
          gemm(O, nw, g.C, T(1), wt + t, K, g.T(), xpad + (g.taps[t] / g.KW) * Wp + g.taps[t] % g.KW, plane, 1,
               t == 0 ? T(0) : T(1), yw, nw, 1);
      }
      for (int64_t o = 0; o < O; ++o) {
        const T b = bias ? bias[o] : T(0);
        for (int64_t ho = 0; ho < g.Ho; ++ho)
          for (int64_t wo = 0; wo < g.Wo; ++wo) y[o * P + ho * g.Wo + wo] = yw[o * nw + ho * Wp + wo] + b;
      }
      return;
    }
    T* yt = scratch<T>(1, size_t(nw * O));
    for (int64_t t = 0; t < g.T(); ++t) {
      const T* a = xpad + (g.taps[t] / g.KW) * Wp + g.taps[t] % g.KW;
      const T beta = t == 0 ? T(0) : T(1);
      // B (C, O): Wt[o, c*T + t]
      if (bias && t + 1 == g.T())
        gemm(nw, O, g.C, T(1), a, 1, plane, wt + t, g.T(), K, beta, yt, O, 1, GemmEpilogue<T>{bias, false});
      else
        gemm(nw, O, g.C, T(1), a, 1, plane, wt + t, g.T(), K, beta, yt, O, 1);
    }
    for (int64_t ho = 0; ho < g.Ho; ++ho)
      for (int64_t o = 0; o < O; ++o)
        for (int64_t wo = 0; wo < g.Wo; ++wo) y[o * P + ho * g.Wo + wo] = yt[(ho * Wp + wo) * O + o];
    return;
  }
  const T* cols = x;
  if (!cols_is_image(g, sc, sh, sw)) {
    T* c = scratch<T>(0, size_t(K * P));
    im2col(x, sc, sh, sw, g, c);
    cols = c;
  }
  if (transposed_product(O, K)) {
    T* yt = scratch<T>(1, size_t(P * O));
    if (bias)
      gemm(P, O, K, T(1), cols, 1, P, wt, 1, K, T(0), yt, O, 1, GemmEpilogue<T>{bias, false});
    else
      gemm(P, O, K, T(1), cols, 1, P, wt, 1, K, T(0), yt, O, 1);
    constexpr int64_t kBlock = 64;  // a 64 x O block of y^T stays in L1 while it is written out
    for (int64_t p0 = 0; p0 < P; p0 += kBlock) {
      const int64_t p1 = std::min(P, p0 + kBlock);
      for (int64_t o = 0; o < O; ++o)
        for (int64_t p = p0; p < p1; ++p) y[o * P + p] = yt[p * O + o];
    }
  } else {
    gemm(O, P, K, T(1), wt, K, 1, cols, P, 1, T(0), y, P, 1);  // (O, K) @ (K, P)
    if (bias)
      for (int64_t o = 0; o < O; ++o)
        for (int64_t p = 0; p < P; ++p) y[o * P + p] += bias[o];
  }
}

// Runs fn(b) for every image: in parallel over images when there are at least as many as threads
// and enough work in all (each image on one thread, its GEMMs single-threaded), otherwise one image
// at a time with the GEMMs threaded.
template <class Fn>
void for_each_image(int64_t B, int64_t work_per_image, const Fn& fn) {
  const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (nt > 1 && B >= nt && B * work_per_image >= 64 * 64 * 64) {
    // dynamic: a thread slowed by the machine's other load takes fewer images (an image's result
    // does not depend on which thread computes it)
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) fn(b);
  } else {
    for (int64_t b = 0; b < B; ++b) fn(b);
  }
}

// sum of x[0, n) with 16 running sums in a fixed order (vectorisable without reordering a sum).
template <class T>
T row_sum(const T* x, int64_t n) {
  constexpr int L = 16;
  T part[L] = {};
  int64_t k = 0;
  for (; k + L <= n; k += L)
    for (int l = 0; l < L; ++l) part[l] += x[k + l];
  T s = T(0);
  for (; k < n; ++k) s += x[k];
  for (int l = 0; l < L; ++l) s += part[l];
  return s;
}

// sum_k x[k] y[k] with 16 running sums in a fixed order (vectorisable without reordering a sum).
template <class T>
T dot16(const T* x, const T* y, int64_t n) {
  constexpr int L = 16;
  T part[L] = {};
  int64_t k = 0;
  for (; k + L <= n; k += L)
    for (int l = 0; l < L; ++l) part[l] += x[k + l] * y[k + l];
  T s = T(0);
  for (; k < n; ++k) s += x[k] * y[k];
  for (int l = 0; l < L; ++l) s += part[l];
  return s;
}

}  // namespace

Array conv2d_forward(const Array& x, const Array& weight, const Array& bias, int64_t stride, int64_t padding,
                     const std::vector<int64_t>& taps) {
  const Geometry g = geometry(x, weight, stride, padding, taps);
  if (bias.defined() && (bias.shape() != Shape{g.O} || bias.dtype() != x.dtype()))
    throw ShapeError(cat("conv2d: bias ", shape_str(bias.shape()), " ", dtype_name(bias.dtype()), " does not match out_channels = ", g.O,
                         " of ", dtype_name(x.dtype())));
  Array y = Array::empty({g.B, g.O, g.Ho, g.Wo}, x.dtype());
  dispatch_floating(x.dtype(), "conv2d", [&]<class T>() {
    const std::vector<T> wt = gather_weight<T>(weight, g);
    Array bc = bias.defined() ? bias.contiguous() : Array();
    const T* bp = bias.defined() ? bc.data<T>() : nullptr;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
#if DGM_SIMD_KERNELS
    if (g.stride == 1) {
      const DirectPlan<T> plan = direct_plan(g, wt.data(), bp);
      for_each_image(g.B, g.O * g.K() * g.P(), [&](int64_t b) {
        direct_conv_image(xp + b * x.stride(0), x.stride(1), x.stride(2), x.stride(3), g, plan, yp + b * g.O * g.P());
      });
      return;
    }
#endif
    for_each_image(g.B, g.O * g.K() * g.P(), [&](int64_t b) {
      conv_image(xp + b * x.stride(0), x.stride(1), x.stride(2), x.stride(3), g, wt.data(), bp, yp + b * g.O * g.P());
    });
  });
  return y;
}

Conv2dGrads conv2d_backward(const Array& x, const Array& weight, const Array& dy_in, int64_t stride, int64_t padding,
                            const std::vector<int64_t>& taps, bool need_dx, bool need_dweight, bool need_dbias) {
  const Geometry g = geometry(x, weight, stride, padding, taps);
  if (dy_in.shape() != Shape{g.B, g.O, g.Ho, g.Wo} || dy_in.dtype() != x.dtype())
    throw ShapeError(cat("conv2d backward: the output gradient ", shape_str(dy_in.shape()), " does not match the output (", g.B, ", ", g.O,
                         ", ", g.Ho, ", ", g.Wo, ")"));
  Conv2dGrads r;
  dispatch_floating(x.dtype(), "conv2d", [&]<class T>() {
    const Array dy = dy_in.contiguous();
    const T* dyp = dy.data<T>();
    const T* xp = x.data<T>();
    const int64_t K = g.K(), P = g.P(), O = g.O;
    if (need_dbias) {  // db[o] = sum_b (sum_p dy[b, o, p]), in a fixed order per o, the channels in parallel
      r.dbias = Array::empty({O}, x.dtype());
      T* db = r.dbias.data<T>();
      parallel_for(O, [&](int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; ++o) {
          T s = T(0);
          for (int64_t b = 0; b < g.B; ++b) s += row_sum(dyp + (b * O + o) * P, P);
          db[o] = s;
        }
      }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, g.B * P)));
    }
    if (need_dweight) {
      // dWt = sum_b dy_b (O, P) @ cols_b^T (P, K). The images are cut into a fixed number of
      // groups (independent of the thread count); each group sums its images in order into its
      // own partial, the partials are added in group order: the same bits for any thread count.
      // With O >= 8 (and K >= O) the partial is dWt^T (K, O) = cols (K, P) @ dy_b^T (P, O), so the micro-kernel
      // reads cols in place as a row-major A and only the small dy_b is packed.
#if DGM_SIMD_KERNELS
      const bool direct = g.stride == 1;
      const DirectPlan<T> plan = direct ? direct_plan<T>(g, nullptr, nullptr) : DirectPlan<T>();  // the offsets only
#else
      const bool direct = false;
#endif
      const bool transposed = !direct && transposed_product(O, K);
#if DGM_SIMD_KERNELS
      // outputs in the lanes: each group's partial is dWt^T (Kpad, Opad)
      const bool lanes = direct && lane_grad_pays(O, K, lane_panel<T>());
      const int64_t Opad = lanes ? round_up(O, lane_panel<T>()) : O, Kpad = lanes ? round_up(K, kLaneKB) : K;
#else
      const bool lanes = false;
      const int64_t Opad = O, Kpad = K;
#endif
      // 16 groups: enough for 16 threads, and on 2 threads a slow thread leaves the other at most
      // one group (2 of 32 images) to wait for
      const int64_t groups = std::min<int64_t>(g.B, 16), part_size = Opad * Kpad;
      std::vector<T> part(size_t(groups * part_size));
      const int nt = omp_in_parallel() || g.B * O * K * P < (1 << 18) ? 1 : omp_get_max_threads();
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
      for (int64_t q = 0; q < groups; ++q) {
        T* acc = part.data() + q * part_size;
        for (int64_t b = g.B * q / groups; b < g.B * (q + 1) / groups; ++b) {
          const T beta = b == g.B * q / groups ? T(0) : T(1);
          const T* xb = xp + b * x.stride(0);
#if DGM_SIMD_KERNELS
          if (lanes) {
            lane_weight_grad<T>(xb, x.stride(1), x.stride(2), x.stride(3), dyp + b * O * P, g, plan, beta != T(0), acc);
            continue;
          }
          if (direct) {
            if (O >= 3)
              direct_weight_grad<T, kGradMO, kGradKB>(xb, x.stride(1), x.stride(2), x.stride(3), dyp + b * O * P, g, plan, beta != T(0), acc);
            else if (O == 2)
              direct_weight_grad<T, 2, kGradKB2>(xb, x.stride(1), x.stride(2), x.stride(3), dyp + b * O * P, g, plan, beta != T(0), acc);
            else
              direct_weight_grad<T, 1, kGradKB1>(xb, x.stride(1), x.stride(2), x.stride(3), dyp + b * O * P, g, plan, beta != T(0), acc);
            continue;
          }
#endif
          if (!transposed && g.stride == 1 && g.C >= 8 && O <= 4) {
            // few outputs (as conv_image): dWt[o, c*T + t] = xpad_t[c] . dy_wide[o], dot products
            // over the padded-width grid, where dy_wide is dy_b with zeros in the dropped columns
            const int64_t Wp = g.W + 2 * g.padding, plane = (g.H + 2 * g.padding) * Wp, nw = g.Ho * Wp;
            const T* xpad = pad_image(xb, x.stride(1), x.stride(2), x.stride(3), g);
            T* dyw = scratch<T>(1, size_t(O * nw));
            const T* dyb = dyp + b * O * P;
            for (int64_t o = 0; o < O; ++o)
              for (int64_t ho = 0; ho < g.Ho; ++ho) {
                std::copy(dyb + o * P + ho * g.Wo, dyb + o * P + (ho + 1) * g.Wo, dyw + o * nw + ho * Wp);
                std::fill(dyw + o * nw + ho * Wp + g.Wo, dyw + o * nw + (ho + 1) * Wp, T(0));
              }
            for (int64_t o = 0; o < O; ++o)
              for (int64_t c = 0; c < g.C; ++c)
                for (int64_t t = 0; t < g.T(); ++t) {
                  const T d = dot16(xpad + c * plane + (g.taps[t] / g.KW) * Wp + g.taps[t] % g.KW, dyw + o * nw, nw);
                  T& a = acc[o * K + c * g.T() + t];
                  a = beta == T(0) ? d : a + d;
                }
            continue;
          }
          const T* cols = xb;
          if (!cols_is_image(g, x.stride(1), x.stride(2), x.stride(3))) {
            T* c = scratch<T>(0, size_t(K * P));
            im2col(xb, x.stride(1), x.stride(2), x.stride(3), g, c);
            cols = c;
          }
          const T* dyb = dyp + b * O * P;
          if (transposed)
            gemm(K, O, P, T(1), cols, P, 1, dyb, 1, P, beta, acc, O, 1);
          else
            gemm(O, K, P, T(1), dyb, P, 1, cols, 1, P, beta, acc, K, 1);
        }
      }
      parallel_for(part_size, [&](int64_t e0, int64_t e1) {  // each element sums the groups in order
        for (int64_t q = 1; q < groups; ++q)
          for (int64_t e = e0; e < e1; ++e) part[size_t(e)] += part[size_t(q * part_size + e)];
      }, kParallelGrain / 4);
      r.dweight = Array::zeros(weight.shape(), x.dtype());
      T* dw = r.dweight.data<T>();  // contiguous (O, C, KH, KW); the taps not used stay 0
      const int64_t rs = transposed || lanes ? 1 : K, cs = transposed || lanes ? Opad : 1;  // dWt[o, k] = part[o*rs + k*cs]
      for (int64_t o = 0; o < O; ++o)
        for (int64_t c = 0; c < g.C; ++c)
          for (int64_t t = 0; t < g.T(); ++t) dw[(o * g.C + c) * g.KH * g.KW + g.taps[t]] = part[size_t(o * rs + (c * g.T() + t) * cs)];
    }
    if (need_dx) {
      r.dx = Array::empty({g.B, g.C, g.H, g.W}, x.dtype());
      T* dx = r.dx.data<T>();
      if (g.stride == 1 && g.KH == g.KW && g.padding <= g.KH - 1 && (DGM_SIMD_KERNELS || transposed_product(g.C, O * g.T()))) {
        // Clever part: with stride 1, dx is itself a convolution, of dy with the flipped, transposed
        // weight (tap (i, j) -> (KH-1-i, KW-1-j), padding KH-1-p): one im2col + GEMM of inner size
        // O*T per image, instead of a GEMM of inner size O and a col2im scatter (for C >= 8; with
        // fewer input channels the old way is cheaper).
        const int64_t KK = g.KH * g.KW;
        std::vector<int64_t> flipped(g.taps.rbegin(), g.taps.rend());
        for (int64_t& t : flipped) t = KK - 1 - t;
        const Geometry gt{g.B, O, g.Ho, g.Wo, g.C, g.KH, g.KW, g.H, g.W, 1, g.KH - 1 - g.padding, flipped};
        // Wflip (C, O*T): Wflip[c, o*T + u] = w[o, c, KK-1-flipped[u]] = w[o, c, taps[T-1-u]]
        std::vector<T> wf(size_t(g.C * O * g.T()));
        const T* wp = weight.data<T>();
        const int64_t so = weight.stride(0), sc = weight.stride(1), nt = g.T();
        const std::vector<int64_t> tap = tap_offsets(weight, g);
        for (int64_t c = 0; c < g.C; ++c)
          for (int64_t o = 0; o < O; ++o)
            for (int64_t u = 0; u < nt; ++u) wf[size_t(c * O * nt + o * nt + u)] = wp[o * so + c * sc + tap[size_t(nt - 1 - u)]];
#if DGM_SIMD_KERNELS
        const DirectPlan<T> plan = direct_plan<T>(gt, wf.data(), nullptr);
        for_each_image(g.B, O * K * P, [&](int64_t b) {
          direct_conv_image(dyp + b * O * P, P, g.Wo, int64_t(1), gt, plan, dx + b * g.C * g.H * g.W);
        });
#else
        for_each_image(g.B, O * K * P, [&](int64_t b) {
          conv_image(dyp + b * O * P, P, g.Wo, int64_t(1), gt, wf.data(), static_cast<const T*>(nullptr), dx + b * g.C * g.H * g.W);
        });
#endif
      } else {
        // dcols_b (K, P) = Wt^T (K, O) @ dy_b (O, P), then col2im adds each tap back to its pixel.
        const std::vector<T> wt = gather_weight<T>(weight, g);
        std::fill(dx, dx + g.B * g.C * g.H * g.W, T(0));
        for_each_image(g.B, O * K * P, [&](int64_t b) {
          T* dcols = scratch<T>(0, size_t(K * P));
          gemm(K, P, O, T(1), wt.data(), 1, K, dyp + b * O * P, P, 1, T(0), dcols, P, 1);
          col2im(dcols, g, dx + b * g.C * g.H * g.W);
        });
      }
    }
  });
  return r;
}

}  // namespace dgm::cpu
