// Graph nodes of reverse-mode autograd. Each differentiable op that sees an input requiring grad
// creates a Node holding (a) edges to the nodes of its inputs and (b) the tensors its backward
// needs. backward() walks the nodes in reverse topological order, calling apply().
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <dgm/autograd/tensor.h>

namespace dgm {

struct Edge {
  std::shared_ptr<Node> fn;  // null: that input needs no gradient
  uint32_t input_nr = 0;     // which output of `fn` the input was
};

// A tensor saved for backward. Inputs are kept as tensors; outputs are kept as data only (the
// node itself is their grad_fn, so holding the tensor would make a reference cycle) and rebuilt
// on unpack. The version at save time is checked on unpack: an in-place change in between would
// make the gradient silently wrong, so it is an error instead.
class SavedTensor {
 public:
  SavedTensor() = default;
  SavedTensor(const Tensor& t, bool is_output);
  Tensor unpack(const std::shared_ptr<Node>& owner, const char* op) const;
  void reset() { *this = SavedTensor(); }
  bool defined() const { return data_.defined(); }

 private:
  Tensor tensor_;  // inputs
  Array data_;     // outputs (and a copy of the handle for inputs)
  uint64_t version_ = 0;
  bool is_output_ = false, requires_grad_ = false;
  uint32_t output_nr_ = 0;
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  explicit Node(Op op) : op_(op), seq_(next_seq()) {}
  virtual ~Node() = default;

  // Gradients w.r.t. the outputs -> gradients w.r.t. the inputs (undefined = zero / not needed).
  virtual std::vector<Tensor> apply(const std::vector<Tensor>& grad_outputs) = 0;
  virtual void release_saved() {}  // frees saved tensors after backward (unless retain_graph)
  virtual std::string name() const { return op_name(op_); }

  Op op() const { return op_; }
  uint64_t seq() const { return seq_; }
  uint32_t num_outputs = 1;
  std::vector<Edge> next_edges;  // one per input
  // (output_nr, tensor) pairs whose .grad should be kept (retain_grad on non-leaves)
  std::vector<std::pair<uint32_t, std::weak_ptr<TensorImpl>>> retained;

 private:
  static uint64_t next_seq();
  Op op_;
  uint64_t seq_;
};

// The sink for a leaf tensor: adds the incoming gradient into leaf.grad.
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(std::weak_ptr<TensorImpl> leaf) : Node(Op::Add), leaf_(std::move(leaf)) {}
  std::vector<Tensor> apply(const std::vector<Tensor>& grads) override;
  std::string name() const override { return "AccumulateGrad"; }
  std::shared_ptr<TensorImpl> leaf() const { return leaf_.lock(); }

 private:
  std::weak_ptr<TensorImpl> leaf_;
};

// The node used by every op: a backward lambda plus its saved tensors. The lambda receives the
// output gradients and the unpacked saved tensors and returns one gradient per input; the node
// then sums each one down to its input's shape (undoing broadcasting) and dtype.
class FunctionNode : public Node {
 public:
  using Backward = std::function<std::vector<Tensor>(const std::vector<Tensor>& grads, const std::vector<Tensor>& saved)>;
  FunctionNode(Op op, Backward fn) : Node(op), fn_(std::move(fn)) {}
  std::vector<Tensor> apply(const std::vector<Tensor>& grads) override;
  void release_saved() override;

  std::vector<SavedTensor> saved;
  std::vector<Shape> input_shapes;
  std::vector<DType> input_dtypes;

 private:
  Backward fn_;
  bool released_ = false;
};

// A tensor an op's backward needs, named by what it is: save::in(k) is the op's k-th input,
// save::out() its output (save::out(k): its k-th output, for ops with several).
struct SaveSlot {
  bool is_output = false;
  uint32_t index = 0;
};
namespace save {
constexpr SaveSlot in(uint32_t k) { return {false, k}; }
constexpr SaveSlot out(uint32_t k = 0) { return {true, k}; }
}  // namespace save

// Records `op` in the graph if grad mode is on and some input requires grad:
//   outputs are wrapped as Tensors (requiring grad, with this node as grad_fn);
//   `to_save` names the tensors the backward needs; the backward gets them as `saved`, in the order
//   listed: with {save::in(0), save::out()}, saved[0] is the input x and saved[1] the output y.
//   An undefined optional input is saved as an undefined tensor.
// Returns the output tensors. Used by every op in autograd/ops_*.cpp.
std::vector<Tensor> record(Op op, const std::vector<Tensor>& inputs, std::vector<Array> outputs, const std::vector<SaveSlot>& to_save,
                           FunctionNode::Backward backward);
// Single-output convenience form.
Tensor record1(Op op, const std::vector<Tensor>& inputs, Array output, const std::vector<SaveSlot>& to_save,
               FunctionNode::Backward backward);

// True while the engine runs backward formulas (anomaly mode then blames the node, not the
// ops its formula is made of).
bool in_backward();
struct InBackwardScope {
  InBackwardScope();
  ~InBackwardScope();
};

// The edge through which a gradient flows into `t` (its grad_fn, or its leaf accumulator).
Edge gradient_edge(const Tensor& t);

}  // namespace dgm
