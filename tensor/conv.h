// 2-D convolution (cross-correlation, as torch.nn.functional.conv2d) on the blocked GEMM:
//
//   y[b, o, ho, wo] = bias[o] + sum_{c, (i, j) in taps} w[o, c, i, j] * x[b, c, ho*s + i - p, wo*s + j - p]
//
// x: (B, C, H, W), weight: (O, C, KH, KW), bias: (O) or undefined -> y: (B, O, Ho, Wo),
// Ho = (H + 2p - KH) / s + 1 (the same for W); x outside the image reads as 0.
// `taps` lists the kernel offsets i*KW + j that take part (empty: all of them); the weights at the
// other offsets count as zero and get a zero gradient. A masked convolution passes the taps its
// mask keeps, so the taps the mask zeroes are never computed (PixelCNN's 3x3 mask B: 5 of 9).
//
// Stride 1 in AVX2 / AVX-512 builds (every convolution of RealNVP and PixelCNN): the direct kernel.
// On the zero-padded image the input of output pixel n for (channel c, tap t) sits at a fixed offset
// from n, so a register tile of 4 output channels x 96 pixels (AVX-512) sums all C*T pairs in one
// pass, reading the image in place: no im2col, no packing. The weight gradient is the same walk
// with a tile of 4 outputs x 6 pairs summed over the pixels, and dx is the convolution of dy with
// the flipped, transposed weight, on the same kernel (tensor/conv.cpp). AVX2's 16 registers hold
// too small a tile of that shape, so with 16 or more output channels the AVX2 build puts the outputs
// in the vector lanes instead: a tile of 6 pixels x 16 outputs, the GEMM micro-kernel's shape (weights
// loaded, image values broadcast), and for the weight gradient 6 pairs x 16 outputs over the pixels
// of dy^T (PixelCNN's 64 -> 64 layers: 1.4x / 1.8x faster forward / weight gradient on a Zen 3).
// Other strides, and builds without those instruction sets, take the paths below.
//
// Per image, packed im2col: cols (C*T, Ho*Wo) holds the T taps of every input channel, one row
// per (channel, tap), then y_b (O, Ho*Wo) = Wt (O, C*T) @ cols, one GEMM (computed as y_b^T =
// cols^T @ Wt^T when O >= 8, so cols is read in place). With stride 1 and C >= 8 there is no cols:
// one GEMM per tap reads the zero-padded image directly (tensor/conv.cpp). Backward: dW = sum_b
// dy_b @ cols_b^T (image groups in parallel, partials added in a fixed order); dx, for stride 1,
// square kernels and C >= 8, is the convolution of dy with the flipped, transposed weight, else
// dx_b = col2im(Wt^T @ dy_b). The composite reference (unfold + matmul) is reference::conv2d in
// autograd/ops_conv.cpp; tests check both agree in value and gradient on every path.
// Results do not depend on the thread count: each image is computed by the same code whichever
// thread runs it, and the weight gradient sums a fixed number (16) of image groups in a fixed order.
#pragma once
#include <cstdint>
#include <vector>

#include <dgm/tensor/array.h>

namespace dgm::cpu {

Array conv2d_forward(const Array& x, const Array& weight, const Array& bias, int64_t stride, int64_t padding,
                     const std::vector<int64_t>& taps = {});

struct Conv2dGrads {
  Array dx, dweight, dbias;
};
// Gradients not asked for (need_*) are left undefined.
Conv2dGrads conv2d_backward(const Array& x, const Array& weight, const Array& dy, int64_t stride, int64_t padding,
                            const std::vector<int64_t>& taps, bool need_dx, bool need_dweight, bool need_dbias);

}  // namespace dgm::cpu
