#include <cmath>
#include <functional>

#include <dgm/autograd/engine.h>
#include <dgm/autograd/fused.h>
#include <dgm/autograd/node.h>
#include <dgm/autograd/ops.h>
#include <dgm/tensor/fused.h>

namespace dgm {

using Grads = std::vector<Tensor>;

namespace fused {
Grads reference_backward(const std::function<Tensor(const Grads&)>& ref, const Grads& inputs, const Tensor& grad) {
  Grads wrt;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) wrt.push_back(t);
  Grads g = wrt.empty() ? Grads{} : autograd::grad({ref(inputs)}, wrt, {grad}, true, true, true);
  Grads out;
  size_t k = 0;
  for (const Tensor& t : inputs) out.push_back(t.defined() && t.requires_grad() ? g[k++] : Tensor());
  return out;
}
}  // namespace fused

namespace reference {

// The score a causal mask gives the keys a query may not see.
constexpr double kMaskedScore = -1e30;

Tensor cross_entropy(const Tensor& logits, const Tensor& target) {
  return -squeeze(gather(log_softmax(logits, 1), 1, unsqueeze(target, 1)), 1);
}
Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& y) {
  // softplus(x) - x y. softplus is a primitive whose kernel never exponentiates a large positive
  // number and whose derivative is sigmoid(x): 1/2 - y at x = 0, as the fused kernel (and PyTorch)
  // give. Written as relu(x) - x y + log1p(exp(-|x|)) the gradient at exactly 0 would be -y, and a
  // gradient penalty's second derivative there would change too.
  return softplus(x) - x * y;
}
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  Tensor centered = x - mean(x, {-1}, true);
  Tensor y = centered * rsqrt(mean(centered * centered, {-1}, true) + eps);
  if (weight.defined()) y = y * weight;
  if (bias.defined()) y = y + bias;
  return y;
}
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale) {
  int64_t Lq = q.size(-2), Lk = k.size(-2);
  if (scale <= 0) scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  Tensor s = matmul(q, transpose(k, -1, -2)) * scale;  // (B, H, Lq, Lk)
  if (causal) {
    // query i may not see key j > i + Lk - Lq. A large finite negative score (not -inf) gives the
    // same exactly-zero weight after softmax and keeps anomaly mode quiet.
    Tensor future = triu(ones({Lq, Lk}, {.dtype = DType::Float64}), Lk - Lq + 1) > 0.5;
    s = masked_fill(s, future, kMaskedScore);
  }
  return matmul(softmax(s, -1), v);
}
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, LinearActivation act) {
  Tensor y = matmul(x, transpose(weight, 0, 1));  // (N, in) @ (in, out)
  if (bias.defined()) y = y + bias;
  if (act == LinearActivation::ReLU) return relu(y);
  if (act == LinearActivation::GELU) return gelu(y);
  return y;
}
Tensor embedding_bag(const Tensor& weight, const Tensor& indices, const Tensor& bias, LinearActivation act) {
  Tensor y = sum(embedding(weight, indices), {1});  // (N, K, H) rows summed over the bag
  if (bias.defined()) y = y + bias;
  if (act == LinearActivation::ReLU) return relu(y);
  if (act == LinearActivation::GELU) return gelu(y);
  return y;
}

Tensor gated_residual(const Tensor& h, const Tensor& u) {
  auto vg = chunk(u, 2, 1);
  return elu(h + vg[0] * sigmoid(vg[1]));
}

}  // namespace reference

namespace fused {

Tensor gated_residual(const Tensor& h, const Tensor& u) {
  return record1(Op::GatedResidual, {h, u}, cpu::gated_residual_forward(h.array(), u.array()), {save::in(0), save::in(1), save::out()},
                 [](const Grads& g, const Grads& s) {
                   Grads in(s.begin(), s.begin() + 2);
                   if (is_grad_enabled())
                     return reference_backward([](const Grads& x) { return reference::gated_residual(x[0], x[1]); }, in, g[0]);
                   auto [dh, du] = cpu::gated_residual_backward(s[1].array(), s[2].array(), g[0].array());
                   return Grads{s[0].requires_grad() ? Tensor(dh) : Tensor(), s[1].requires_grad() ? Tensor(du) : Tensor()};
                 });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target) {
  auto [loss, lse] = cpu::cross_entropy_forward(logits.array(), target.array());
  Tensor lse_t(lse);
  return record1(Op::CrossEntropy, {logits, target}, loss, {save::in(0), save::in(1)}, [lse_t](const Grads& g, const Grads& s) {
    if (is_grad_enabled()) return reference_backward([](const Grads& in) { return reference::cross_entropy(in[0], in[1]); }, s, g[0]);
    return Grads{Tensor(cpu::cross_entropy_backward(s[0].array(), s[1].array(), lse_t.array(), g[0].array())), Tensor()};
  });
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target) {
  return record1(Op::BceWithLogits, {logits, target}, cpu::bce_with_logits_forward(logits.array(), target.array()), {save::in(0), save::in(1)},
                 [](const Grads& g, const Grads& s) {
                   if (is_grad_enabled())
                     return reference_backward([](const Grads& in) { return reference::binary_cross_entropy_with_logits(in[0], in[1]); }, s, g[0]);
                   // d/dx = sigmoid(x) - y ;  d/dy = -x (a soft target may be learned too)
                   Tensor gx(cpu::bce_with_logits_backward(s[0].array(), s[1].array(), g[0].array()));
                   Tensor gy = s[1].requires_grad() ? -g[0] * s[0] : Tensor();
                   return Grads{gx, gy};
                 });
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  auto r = cpu::layer_norm_forward(x.array(), weight.defined() ? weight.array() : Array(), bias.defined() ? bias.array() : Array(), eps);
  Tensor mean_t(r.mean), rstd_t(r.rstd);
  return record1(Op::LayerNorm, {x, weight, bias}, r.y, {save::in(0), save::in(1), save::in(2)}, [mean_t, rstd_t, eps](const Grads& g, const Grads& s) {
    if (is_grad_enabled())
      return reference_backward([eps](const Grads& in) { return reference::layer_norm(in[0], in[1], in[2], eps); }, s, g[0]);
    auto d = cpu::layer_norm_backward(s[0].array(), s[1].defined() ? s[1].array() : Array(), mean_t.array(), rstd_t.array(), g[0].array());
    return Grads{Tensor(d.dx), s[1].defined() ? Tensor(d.dweight) : Tensor(), s[2].defined() ? Tensor(d.dbias) : Tensor()};
  });
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale) {
  if (scale <= 0) scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto r = cpu::attention_forward(q.array(), k.array(), v.array(), causal, scale);
  Tensor lse_t(r.lse);
  return record1(Op::Attention, {q, k, v}, r.out, {save::in(0), save::in(1), save::in(2), save::out()}, [lse_t, causal, scale](const Grads& g, const Grads& s) {
    Grads in(s.begin(), s.begin() + 3);
    if (is_grad_enabled())
      return reference_backward([causal, scale](const Grads& x) { return reference::attention(x[0], x[1], x[2], causal, scale); }, in, g[0]);
    auto d = cpu::attention_backward(s[0].array(), s[1].array(), s[2].array(), s[3].array(), lse_t.array(), g[0].array(), causal, scale);
    return Grads{Tensor(d.dq), Tensor(d.dk), Tensor(d.dv)};
  });
}

// Ops with an activation (linear, embedding_bag): GELU's derivative needs the pre-activation, which
// is kept; ReLU's and the identity's are read off the output, which is saved instead. `kernel` is
// the fused backward (the three inputs, the saved tensor, the output gradient); with create_graph
// the composite `ref` is differentiated instead.
using ActivationBackward = std::function<Grads(const Grads& inputs, const Tensor& saved, const Tensor& grad)>;
static Tensor record_with_activation(Op op, const Grads& inputs, const cpu::LinearResult& r, LinearActivation act,
                                     std::function<Tensor(const Grads&)> ref, ActivationBackward kernel) {
  const bool keep_pre = act == LinearActivation::GELU;
  Tensor pre_t = keep_pre ? Tensor(r.pre) : Tensor();
  std::vector<SaveSlot> to_save{save::in(0), save::in(1), save::in(2)};  // x, weight, bias
  if (!keep_pre) to_save.push_back(save::out());                        // y
  return record1(op, inputs, r.y, to_save, [pre_t, keep_pre, ref, kernel](const Grads& g, const Grads& s) {
    Grads in{s[0], s[1], s[2]};
    if (is_grad_enabled()) return reference_backward(ref, in, g[0]);
    return kernel(in, keep_pre ? pre_t : s[3], g[0]);
  });
}

static Tensor wrap(const Array& a) { return a.defined() ? Tensor(a) : Tensor(); }

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, LinearActivation act) {
  auto r = cpu::linear_forward(x.array(), weight.array(), bias.defined() ? bias.array() : Array(), act);
  return record_with_activation(
      Op::Linear, {x, weight, bias}, r, act, [act](const Grads& in) { return reference::linear(in[0], in[1], in[2], act); },
      [act](const Grads& in, const Tensor& saved, const Tensor& grad) {
        auto d = cpu::linear_backward(in[0].array(), in[1].array(), saved.array(), grad.array(), act, in[0].requires_grad(),
                                      in[1].requires_grad(), in[2].defined() && in[2].requires_grad());
        return Grads{wrap(d.dx), wrap(d.dweight), wrap(d.dbias)};
      });
}

Tensor embedding_bag(const Tensor& weight, const Tensor& indices, const Tensor& bias, LinearActivation act) {
  auto r = cpu::embedding_bag_forward(weight.array(), indices.array(), bias.defined() ? bias.array() : Array(), act);
  return record_with_activation(
      Op::EmbeddingBag, {weight, indices, bias}, r, act, [act](const Grads& in) { return reference::embedding_bag(in[0], in[1], in[2], act); },
      [act](const Grads& in, const Tensor& saved, const Tensor& grad) {
        auto d = cpu::embedding_bag_backward(in[1].array(), saved.array(), grad.array(), in[0].size(0), act,
                                             in[2].defined() && in[2].requires_grad());
        return Grads{in[0].requires_grad() ? Tensor(d.dweight) : Tensor(), Tensor(), wrap(d.dbias)};
      });
}

}  // namespace fused
}  // namespace dgm
