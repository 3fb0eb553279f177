// The backward engine, and autograd::grad for gradients without touching .grad.
#pragma once
#include <vector>

#include <dgm/autograd/tensor.h>

namespace dgm::autograd {

// Accumulates d(sum_i <outputs_i, grad_outputs_i>)/d(leaf) into every reachable leaf's .grad.
void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
              bool create_graph = false);

// Returns d(sum_i <outputs_i, grad_outputs_i>)/d(inputs_j) without touching any .grad.
// create_graph=true records the backward computation itself, so the result can be
// differentiated again (Hessians, gradient penalties). An input the outputs do not depend on
// is an error unless allow_unused, in which case its gradient is undefined.
// retain_graph defaults to create_graph, as in PyTorch.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, std::optional<bool> retain_graph = std::nullopt,
                         bool create_graph = false, bool allow_unused = false);

}  // namespace dgm::autograd
