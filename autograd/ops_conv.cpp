// conv2d: the convolution kernel of tensor/conv.h as a differentiable op, and its composite
// reference (unfold + matmul).
//
//   y = conv2d(x, w) + b      dL/dx = conv_transpose(dL/dy, w) (col2im of Wt^T dy)
//                             dL/dw = sum_b dy_b cols_b^T      dL/db = sum over b, ho, wo of dL/dy
//
// Backward with create_graph (double backward, e.g. a gradient penalty) differentiates the
// composite reference instead, so it is exact to any order.
#include <functional>

#include <dgm/autograd/engine.h>
#include <dgm/autograd/fused.h>
#include <dgm/autograd/node.h>
#include <dgm/autograd/ops.h>
#include <dgm/tensor/conv.h>

namespace dgm {

using Grads = std::vector<Tensor>;

namespace reference {

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding,
              const std::vector<int64_t>& taps) {
  if (x.dim() != 4) throw ShapeError(cat("conv2d: input must be (B, C, H, W), got ", shape_str(x.shape())));
  if (weight.dim() != 4) throw ShapeError(cat("conv2d: weight must be (out_channels, in_channels, kh, kw), got ", shape_str(weight.shape())));
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = weight.size(0), KH = weight.size(2), KW = weight.size(3);
  if (weight.size(1) != C)
    throw ShapeError(cat("conv2d: input ", shape_str(x.shape()), " has ", C, " channels but the weight ", shape_str(weight.shape()), " expects ",
                         weight.size(1)));
  if (stride < 1 || padding < 0) throw ValueError(cat("conv2d: stride must be >= 1 and padding >= 0, got ", stride, " and ", padding));
  if (bias.defined() && bias.shape() != Shape{O})
    throw ShapeError(cat("conv2d: bias ", shape_str(bias.shape()), " does not match out_channels = ", O));
  const int64_t Hp = H + 2 * padding, Wp = W + 2 * padding;
  if (Hp < KH || Wp < KW)
    throw ShapeError(cat("conv2d: kernel ", KH, "x", KW, " is larger than the padded input ", Hp, "x", Wp, " (input ", shape_str(x.shape()), ")"));
  const int64_t Ho = (Hp - KH) / stride + 1, Wo = (Wp - KW) / stride + 1;

  Tensor w = weight;
  if (!taps.empty()) {  // the taps not listed count as zero: multiply by their 0/1 mask
    std::vector<double> mask(static_cast<size_t>(KH * KW), 0.0);
    for (int64_t t : taps) {
      if (t < 0 || t >= KH * KW) throw ValueError(cat("conv2d: tap ", t, " outside the ", KH, "x", KW, " kernel"));
      mask[static_cast<size_t>(t)] = 1.0;
    }
    w = weight * from_vector(mask, {1, 1, KH, KW}).to(weight.dtype());
  }
  // Channels last, one row per input pixel: x (B, C, H, W) -> (B*Hp*Wp, C)
  Tensor xp = padding > 0 ? pad(x, {padding, padding, padding, padding}) : x;
  Tensor pixels = reshape(permute(xp, {0, 2, 3, 1}), {B * Hp * Wp, C});
  // im2col: the row of output pixel (b, ho, wo) is its patch, pixels (ho*s + i, wo*s + j) for
  // i < KH, j < KW, each C wide. index_select copies whole rows; its backward adds them back.
  std::vector<int64_t> index;
  index.reserve(static_cast<size_t>(B * Ho * Wo * KH * KW));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t ho = 0; ho < Ho; ++ho)
      for (int64_t wo = 0; wo < Wo; ++wo)
        for (int64_t i = 0; i < KH; ++i)
          for (int64_t j = 0; j < KW; ++j) index.push_back((b * Hp + ho * stride + i) * Wp + wo * stride + j);
  Tensor patches = reshape(index_select(pixels, 0, from_vector(index, {static_cast<int64_t>(index.size())})),
                           {B * Ho * Wo, KH * KW * C});                 // (B*Ho*Wo, KH*KW*C)
  Tensor wmat = reshape(permute(w, {0, 2, 3, 1}), {O, KH * KW * C});  // (O, KH*KW*C), same patch order
  Tensor y = matmul(patches, wmat.t());                               // (B*Ho*Wo, O)
  if (bias.defined()) y = y + bias;
  return contiguous(permute(reshape(y, {B, Ho, Wo, O}), {0, 3, 1, 2}));  // (B, O, Ho, Wo)
}

}  // namespace reference


static Tensor wrap(const Array& a) { return a.defined() ? Tensor(a) : Tensor(); }

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding, const std::vector<int64_t>& taps) {
  Array y = cpu::conv2d_forward(x.array(), weight.array(), bias.defined() ? bias.array() : Array(), stride, padding, taps);
  return record1(Op::Conv2d, {x, weight, bias}, y, {save::in(0), save::in(1), save::in(2)}, [stride, padding, taps](const Grads& g, const Grads& s) {
    if (is_grad_enabled())
      return fused::reference_backward([=](const Grads& in) { return reference::conv2d(in[0], in[1], in[2], stride, padding, taps); }, s, g[0]);
    auto d = cpu::conv2d_backward(s[0].array(), s[1].array(), g[0].array(), stride, padding, taps, s[0].requires_grad(),
                                  s[1].requires_grad(), s[2].defined() && s[2].requires_grad());
    return Grads{wrap(d.dx), wrap(d.dweight), wrap(d.dbias)};
  });
}

}  // namespace dgm
