#include <dgm/autograd/node.h>

#include <atomic>

#include <dgm/autograd/ops.h>
#include <dgm/tensor/kernels.h>

namespace dgm {

uint64_t Node::next_seq() {
  static std::atomic<uint64_t> counter{0};
  return counter++;
}

namespace {
thread_local int backward_depth = 0;
}
bool in_backward() { return backward_depth > 0; }
InBackwardScope::InBackwardScope() { ++backward_depth; }
InBackwardScope::~InBackwardScope() { --backward_depth; }

// ---- saved tensors --------------------------------------------------------------------------------
SavedTensor::SavedTensor(const Tensor& t, bool is_output)
    : data_(t.array()), version_(t.version()), is_output_(is_output), requires_grad_(t.requires_grad()), output_nr_(t.output_nr()) {
  if (!is_output) tensor_ = t;
}

Tensor SavedTensor::unpack(const std::shared_ptr<Node>& owner, const char* op) const {
  if (!data_.defined())
    throw AutogradError(cat("backward of '", op, "': its saved tensors were already freed. Trying to backward through the graph a ",
                            "second time? Pass retain_graph=true to the first backward."));
  if (data_.version() != version_)
    throw AutogradError(cat("backward of '", op, "': one of the tensors it saved for backward (shape ", shape_str(data_.shape()), ", ",
                            dtype_name(data_.dtype()), ") was modified by an in-place operation: it is at version ", data_.version(),
                            ", expected version ", version_, ". Use an out-of-place op or clone() the tensor before changing it."));
  if (!is_output_) return tensor_;
  auto impl = std::make_shared<TensorImpl>();
  impl->data = data_;
  impl->requires_grad = requires_grad_;
  if (requires_grad_) {
    impl->grad_fn = owner;  // the output's history is the node itself
    impl->output_nr = output_nr_;
  }
  return Tensor(impl);
}

// ---- AccumulateGrad ----------------------------------------------------------------------------
std::vector<Tensor> AccumulateGrad::apply(const std::vector<Tensor>& grads) {
  auto leaf = leaf_.lock();
  if (!leaf || !grads[0].defined()) return {};
  Tensor g = grads[0];
  if (!is_grad_enabled()) g = Tensor(g.array());  // plain backward: keep no history in .grad
  if (g.shape() != leaf->data.shape())
    throw AutogradError(cat("AccumulateGrad: gradient of shape ", shape_str(g.shape()), " for a leaf of shape ",
                            shape_str(leaf->data.shape())));
  if (!leaf->grad) {
    // own the memory: the incoming gradient may alias a tensor the user still holds
    Tensor own = is_grad_enabled() ? g : Tensor(g.array().clone());
    leaf->grad = TensorAccess::impl(own);
  } else {
    leaf->grad = TensorAccess::impl(Tensor(leaf->grad) + g);
  }
  return {};
}

// ---- FunctionNode -----------------------------------------------------------------------------
std::vector<Tensor> FunctionNode::apply(const std::vector<Tensor>& grads) {
  if (released_)
    throw AutogradError(cat("backward of '", name(), "': its saved tensors were already freed. Trying to backward through the graph a ",
                            "second time? Pass retain_graph=true to the first backward."));
  std::vector<Tensor> unpacked;
  unpacked.reserve(saved.size());
  auto self = shared_from_this();
  for (const SavedTensor& s : saved) unpacked.push_back(s.defined() ? s.unpack(self, name().c_str()) : Tensor());
  // A missing output gradient means zero; give the formula zeros of the output's shape.
  std::vector<Tensor> gs = fn_(grads, unpacked);
  if (gs.size() != next_edges.size())
    throw AutogradError(cat("backward of '", name(), "' returned ", gs.size(), " gradients for ", next_edges.size(), " inputs"));
  for (size_t i = 0; i < gs.size(); ++i) {
    if (!gs[i].defined() || !next_edges[i].fn) continue;
    if (gs[i].shape() != input_shapes[i]) gs[i] = sum_to(gs[i], input_shapes[i]);  // undo broadcasting
    if (gs[i].dtype() != input_dtypes[i]) gs[i] = gs[i].to(input_dtypes[i]);       // undo type promotion
  }
  return gs;
}

void FunctionNode::release_saved() {
  for (auto& s : saved) s.reset();
  released_ = !saved.empty();
}

// ---- recording ----------------------------------------------------------------------------------
Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  const auto& impl = TensorAccess::impl(t);
  if (impl->grad_fn) return {impl->grad_fn, impl->output_nr};
  auto acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(impl);
    impl->grad_accumulator = acc;
  }
  return {acc, 0};
}

std::vector<Tensor> record(Op op, const std::vector<Tensor>& inputs, std::vector<Array> outputs, const std::vector<SaveSlot>& to_save,
                           FunctionNode::Backward backward) {
  if (is_anomaly_enabled() && !in_backward()) {
    for (size_t i = 0; i < outputs.size(); ++i)
      if (cpu::has_nonfinite(outputs[i]))
        throw AnomalyError(cat("anomaly: forward op '", op_name(op), "' produced NaN/Inf in output ", i, " (shape ",
                               shape_str(outputs[i].shape()), ")"));
  }
  bool needs_grad = false;
  if (is_grad_enabled())
    for (const Tensor& t : inputs) needs_grad |= t.defined() && t.requires_grad();
  std::vector<Tensor> result;
  result.reserve(outputs.size());
  if (!needs_grad) {
    for (Array& a : outputs) result.emplace_back(std::move(a));
    return result;
  }
  auto node = std::make_shared<FunctionNode>(op, std::move(backward));
  node->num_outputs = static_cast<uint32_t>(outputs.size());
  for (const Tensor& t : inputs) {
    node->next_edges.push_back(gradient_edge(t));
    node->input_shapes.push_back(t.defined() ? t.shape() : Shape{});
    node->input_dtypes.push_back(t.defined() ? t.dtype() : DType::Float32);
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    auto impl = std::make_shared<TensorImpl>();
    impl->data = std::move(outputs[i]);
    // integer/bool outputs (argmax indices...) carry no gradient
    impl->requires_grad = is_floating(impl->data.dtype());
    if (impl->requires_grad) {
      impl->grad_fn = node;
      impl->output_nr = static_cast<uint32_t>(i);
    }
    result.emplace_back(impl);
  }
  for (const SaveSlot& slot : to_save) {
    const std::vector<Tensor>& from = slot.is_output ? result : inputs;
    if (slot.index >= from.size())
      throw AutogradError(cat(op_name(op), ": asked to save ", slot.is_output ? "output " : "input ", slot.index, " of ", from.size()));
    if (!from[slot.index].defined()) node->saved.emplace_back();  // an optional input left out
    else node->saved.emplace_back(from[slot.index], slot.is_output);
  }
  return result;
}

Tensor record1(Op op, const std::vector<Tensor>& inputs, Array output, const std::vector<SaveSlot>& to_save,
               FunctionNode::Backward backward) {
  std::vector<Array> outs;
  outs.push_back(std::move(output));
  return record(op, inputs, std::move(outs), to_save, std::move(backward))[0];
}

}  // namespace dgm
