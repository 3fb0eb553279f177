// Reverse-mode backward: find every node reachable from the outputs, count how many edges point
// at each, then run nodes once all their gradient contributions have arrived (a topological
// order), summing contributions per input slot. Deterministic: the same graph always runs in the
// same order, so gradients are bit-for-bit reproducible.
#include <dgm/autograd/engine.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include <dgm/autograd/node.h>
#include <dgm/autograd/ops.h>
#include <dgm/tensor/kernels.h>

namespace dgm {

namespace {
thread_local bool grad_enabled = true;
thread_local bool anomaly_enabled = false;
}  // namespace
bool is_grad_enabled() { return grad_enabled; }
void set_grad_enabled(bool on) { grad_enabled = on; }
bool is_anomaly_enabled() { return anomaly_enabled; }
void set_anomaly_enabled(bool on) { anomaly_enabled = on; }

namespace autograd {
namespace {

struct Capture {  // autograd::grad: where to pick up the gradient of input j
  Node* node;
  uint32_t slot;
  size_t j;
};

std::vector<Tensor> run(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs_in, bool retain_graph,
                        bool create_graph, const std::vector<Tensor>* inputs, bool allow_unused) {
  if (!grad_outputs_in.empty() && grad_outputs_in.size() != outputs.size())
    throw ValueError(cat("backward: got ", grad_outputs_in.size(), " grad_outputs for ", outputs.size(), " outputs"));
  // 1. root gradients
  std::vector<Edge> roots;
  std::vector<Tensor> root_grads;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    if (!out.requires_grad())
      throw AutogradError(cat("backward: output ", i, " (shape ", shape_str(out.shape()),
                              ") does not require grad and has no grad_fn; did you forget requires_grad on a leaf, or call it "
                              "under NoGradGuard?"));
    Tensor g = grad_outputs_in.empty() ? Tensor() : grad_outputs_in[i];
    if (!g.defined()) {
      if (out.numel() != 1)
        throw AutogradError(cat("backward: grad can be implicitly created only for scalar outputs; output ", i, " has shape ",
                                shape_str(out.shape()), ", pass a gradient of that shape"));
      g = Tensor(Array::ones(out.shape(), out.dtype()));
    } else if (g.shape() != out.shape()) {
      throw ShapeError(cat("backward: gradient of shape ", shape_str(g.shape()), " for output ", i, " of shape ", shape_str(out.shape())));
    }
    roots.push_back(gradient_edge(out));
    root_grads.push_back(g);
  }

  // 2. the reachable graph and, for each node, the number of edges pointing at it
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack;
  std::unordered_set<Node*> seen;
  for (auto& e : roots)
    if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& e : n->next_edges) {
      if (!e.fn) continue;
      deps[e.fn.get()]++;
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }

  // 3. autograd::grad: which slots to capture, and which nodes lead to an input at all
  std::vector<Capture> captures;
  std::unordered_set<Node*> needed;
  std::vector<Tensor> results;
  if (inputs) {
    results.resize(inputs->size());
    for (size_t j = 0; j < inputs->size(); ++j) {
      const Tensor& x = (*inputs)[j];
      if (!x.requires_grad()) throw AutogradError(cat("grad: input ", j, " does not require grad"));
      Edge e = gradient_edge(x);
      captures.push_back({e.fn.get(), e.input_nr, j});
    }
    // a node is needed if an input's node is reachable from it: mark in reverse topological order
    std::unordered_set<Node*> targets;
    for (auto& c : captures) targets.insert(c.node);
    std::unordered_map<Node*, int> pending = deps;
    std::vector<Node*> order, ready;
    for (auto& e : roots)
      if (pending[e.fn.get()] == 0 && std::find(ready.begin(), ready.end(), e.fn.get()) == ready.end()) ready.push_back(e.fn.get());
    while (!ready.empty()) {
      Node* n = ready.back();
      ready.pop_back();
      order.push_back(n);
      for (auto& e : n->next_edges)
        if (e.fn && --pending[e.fn.get()] == 0) ready.push_back(e.fn.get());
    }
    for (size_t k = order.size(); k-- > 0;) {
      Node* n = order[k];
      bool need = targets.count(n) > 0;
      for (auto& e : n->next_edges) need |= e.fn && needed.count(e.fn.get());
      if (need) needed.insert(n);
    }
  }

  // 4. run nodes whose contributions are complete
  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  auto add_to = [&](const Edge& e, const Tensor& g) {
    auto& buf = buffers[e.fn.get()];
    if (buf.size() < e.fn->num_outputs) buf.resize(e.fn->num_outputs);
    Tensor& slot = buf[e.input_nr];
    slot = slot.defined() ? slot + g : g;
  };
  EnableGradGuard enable_outer;  // the sums above are recorded only when create_graph
  set_grad_enabled(create_graph);
  std::vector<std::shared_ptr<Node>> ready;
  for (size_t i = 0; i < roots.size(); ++i) {
    add_to(roots[i], root_grads[i]);
    if (deps[roots[i].fn.get()] == 0 &&
        std::none_of(ready.begin(), ready.end(), [&](auto& r) { return r.get() == roots[i].fn.get(); }))
      ready.push_back(roots[i].fn);
  }
  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.back();
    ready.pop_back();
    std::vector<Tensor> grads = std::move(buffers[node.get()]);
    buffers.erase(node.get());
    grads.resize(node->num_outputs);
    for (auto& [slot, weak] : node->retained) {
      auto impl = weak.lock();
      if (!impl || !grads[slot].defined()) continue;
      Tensor g = create_graph ? grads[slot] : Tensor(grads[slot].array().clone());
      impl->grad = TensorAccess::impl(impl->grad ? Tensor(impl->grad) + g : g);
    }
    for (auto& c : captures)
      if (c.node == node.get() && grads[c.slot].defined())
        results[c.j] = results[c.j].defined() ? results[c.j] + grads[c.slot] : grads[c.slot];
    bool any_grad = std::any_of(grads.begin(), grads.end(), [](const Tensor& g) { return g.defined(); });
    bool run_node = any_grad && (inputs ? needed.count(node.get()) > 0 : true);
    if (inputs && dynamic_cast<AccumulateGrad*>(node.get())) run_node = false;  // grad() leaves .grad alone
    std::vector<Tensor> in_grads;
    if (run_node) {
      {
        InBackwardScope scope;
        in_grads = node->apply(grads);
      }
      if (is_anomaly_enabled()) {
        for (size_t i = 0; i < in_grads.size(); ++i)
          if (in_grads[i].defined() && cpu::has_nonfinite(in_grads[i].array()))
            throw AnomalyError(cat("anomaly: backward of '", node->name(), "' produced NaN/Inf in the gradient of its input ", i,
                                   " (shape ", shape_str(in_grads[i].shape()), "); the forward op that created this node is '",
                                   node->name(), "'"));
      }
      if (!retain_graph) node->release_saved();
    }
    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      const Edge& e = node->next_edges[i];
      if (!e.fn) continue;
      if (i < in_grads.size() && in_grads[i].defined()) add_to(e, in_grads[i]);
      if (--deps[e.fn.get()] == 0) ready.push_back(e.fn);  // all its contributions are in
    }
  }
  if (inputs) {
    for (size_t j = 0; j < results.size(); ++j) {
      if (!results[j].defined() && !allow_unused)
        throw AutogradError(cat("grad: input ", j, " (shape ", shape_str((*inputs)[j].shape()),
                                ") was not used to compute the outputs; pass allow_unused=true if that is intended"));
      if (results[j].defined() && !create_graph) results[j] = results[j].detach();
    }
  }
  return results;
}

}  // namespace

void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs, bool retain_graph, bool create_graph) {
  run(outputs, grad_outputs, retain_graph || create_graph, create_graph, nullptr, false);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs, const std::vector<Tensor>& grad_outputs,
                         std::optional<bool> retain_graph, bool create_graph, bool allow_unused) {
  return run(outputs, grad_outputs, retain_graph.value_or(create_graph), create_graph, &inputs, allow_unused);
}

}  // namespace autograd
}  // namespace dgm
