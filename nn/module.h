// Module: the base of every layer and model, as torch.nn.Module / libtorch's torch::nn::Module.
// A module owns named parameters (trained), buffers (saved but not trained, e.g. a conv mask) and
// submodules; names nest with dots, so a parameter deep in a model is "blocks.0.attn.qkv.weight".
//
//   struct MLP : nn::Module {
//     std::shared_ptr<nn::Linear> fc1, fc2;
//     MLP() : Module("MLP") {
//       fc1 = register_module("fc1", std::make_shared<nn::Linear>(784, 64));
//       fc2 = register_module("fc2", std::make_shared<nn::Linear>(64, 10));
//     }
//     Tensor forward(const Tensor& x) override { return fc2->forward(relu(fc1->forward(x))); }
//   };
//
// Modules are held by std::shared_ptr; parameters are Tensor handles, so the copy a layer keeps
// in a member and the one in the registry are the same tensor.
#pragma once
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <dgm/autograd/tensor.h>

namespace dgm::nn {

// An ordered list of (name, tensor): a state dict, a checkpoint's content, an optimiser's state.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;  // parameters are handles: a copy would silently share them
  Module& operator=(const Module&) = delete;

  // The single-input forward that Sequential chains. Modules with other signatures (attention
  // with a cache, models taking two inputs) add their own methods instead.
  virtual Tensor forward(const Tensor& x);

  // ---- registration ---------------------------------------------------------------------------
  // The tensor becomes a leaf that requires grad (when floating and requires_grad).
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // ---- traversal (registration order; each module's own entries before its children's) -------
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  // This module (name "") and all its descendants, in pre-order (pointers valid while this lives).
  std::vector<std::pair<std::string, const Module*>> named_modules() const;
  int64_t num_parameters() const;  // total number of scalars in all parameters

  // ---- mode -------------------------------------------------------------------------------------
  virtual void train(bool on = true);  // recursive; Dropout reads it
  void eval() { train(false); }
  bool is_training() const { return training_; }

  void zero_grad();  // every parameter's .grad becomes undefined (PyTorch's set_to_none)
  // Casts every floating parameter and buffer to `dtype` in place (e.g. Float64 for gradcheck).
  void to(DType dtype);

  // ---- state --------------------------------------------------------------------------------------
  // Parameters and buffers by full name, detached (sharing memory with the module).
  NamedTensors state_dict() const;
  // Copies every entry into the matching parameter/buffer. Strict: a missing key, an unexpected
  // key or a shape mismatch is an error naming the key and the shapes (values are cast to the
  // module's dtype).
  void load_state_dict(const NamedTensors& state);

  // ---- printing like PyTorch -----------------------------------------------------------------------
  const std::string& type_name() const { return type_name_; }
  // The text inside "Linear(...)": e.g. "in_features=2, out_features=3, bias=true".
  virtual std::string extra_repr() const { return ""; }
  std::string repr() const;

 protected:
  void add_child(const std::string& name, std::shared_ptr<Module> module);

 private:
  void check_new_name(const std::string& name, const char* what) const;
  void collect(const std::string& prefix, bool params, bool recurse, NamedTensors& out) const;

  std::string type_name_;
  bool training_ = true;
  NamedTensors parameters_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

std::ostream& operator<<(std::ostream& os, const Module& m);

}  // namespace dgm::nn
