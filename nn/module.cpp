#include <dgm/nn/module.h>

#include <map>
#include <set>
#include <sstream>

#include <dgm/autograd/ops.h>

namespace dgm::nn {

Tensor Module::forward(const Tensor&) {
  throw ValueError(cat(type_name_, ": this module has no single-input forward(x); call its own methods instead"));
}

// ---- registration ------------------------------------------------------------------------------------
void Module::check_new_name(const std::string& name, const char* what) const {
  if (name.empty() || name.find('.') != std::string::npos)
    throw ValueError(cat(type_name_, ": ", what, " name '", name, "' must be non-empty and contain no '.'"));
  auto taken = [&](const auto& list) {
    for (const auto& [n, v] : list)
      if (n == name) return true;
    return false;
  };
  if (taken(parameters_) || taken(buffers_) || taken(children_))
    throw ValueError(cat(type_name_, ": cannot register ", what, " '", name, "': the name is already taken"));
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name, "parameter");
  if (!t.defined()) throw ValueError(cat(type_name_, ": parameter '", name, "' is an undefined tensor"));
  if (!t.is_leaf()) t = t.detach();
  if (is_floating(t.dtype())) t.requires_grad_(requires_grad);
  parameters_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name, "buffer");
  if (!t.defined()) throw ValueError(cat(type_name_, ": buffer '", name, "' is an undefined tensor"));
  t = t.detach();
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name, "submodule");
  if (!module) throw ValueError(cat(type_name_, ": submodule '", name, "' is null"));
  children_.emplace_back(name, std::move(module));
}

// ---- traversal ---------------------------------------------------------------------------------------
void Module::collect(const std::string& prefix, bool params, bool recurse, NamedTensors& out) const {
  for (const auto& [name, t] : params ? parameters_ : buffers_) out.emplace_back(prefix + name, t);
  if (!recurse) return;
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, true, out);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect("", true, recurse, out);
  return out;
}
NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect("", false, recurse, out);
  return out;
}
std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out{{"", this}};
  for (const auto& [name, child] : children_)
    for (auto& [sub, m] : child->named_modules()) out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& p : parameters()) n += p.numel();
  return n;
}

// ---- mode ----------------------------------------------------------------------------------------------
void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.zero_grad();
}

void Module::to(DType dtype) {
  // The tensors' data is swapped inside their handles, so members holding them see the change.
  auto cast = [dtype](const Tensor& t) {
    if (!is_floating(t.dtype()) || t.dtype() == dtype) return;
    const auto& impl = TensorAccess::impl(t);
    impl->data = impl->data.to(dtype);
    impl->grad.reset();
  };
  if (!is_floating(dtype)) throw DTypeError(cat(type_name_, ".to: expected a floating dtype, got ", dtype_name(dtype)));
  for (auto& [name, t] : named_parameters()) cast(t);
  for (auto& [name, t] : named_buffers()) cast(t);
}

// ---- state ---------------------------------------------------------------------------------------------
NamedTensors Module::state_dict() const {
  NamedTensors out;
  // PyTorch's order: a module's parameters, then its buffers, then each child's.
  for (const auto& [name, m] : named_modules()) {
    std::string prefix = name.empty() ? "" : name + ".";
    for (const auto& [n, t] : m->parameters_) out.emplace_back(prefix + n, t.detach());
    for (const auto& [n, t] : m->buffers_) out.emplace_back(prefix + n, t.detach());
  }
  return out;
}

void Module::load_state_dict(const NamedTensors& state) {
  std::map<std::string, Tensor> given;
  for (const auto& [name, t] : state) {
    if (!given.emplace(name, t).second) throw ValueError(cat("load_state_dict(", type_name_, "): key '", name, "' appears twice"));
  }
  NamedTensors own = state_dict();
  std::set<std::string> own_names;
  std::vector<std::string> missing, unexpected;
  for (const auto& [name, t] : own) {
    own_names.insert(name);
    if (!given.count(name)) missing.push_back(name);
  }
  for (const auto& [name, t] : state)
    if (!own_names.count(name)) unexpected.push_back(name);
  if (!missing.empty() || !unexpected.empty()) {
    std::ostringstream msg;
    msg << "load_state_dict(" << type_name_ << "):";
    auto list = [&](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      msg << " " << what << " key(s):";
      for (size_t i = 0; i < keys.size(); ++i) msg << (i ? ", '" : " '") << keys[i] << "'";
      msg << ".";
    };
    list("missing", missing);
    list("unexpected", unexpected);
    throw ValueError(msg.str());
  }
  // check every shape before changing anything, so a failed load leaves the module untouched
  for (const auto& [name, t] : own) {
    const Tensor& src = given.at(name);
    if (src.shape() != t.shape())
      throw ShapeError(cat("load_state_dict(", type_name_, "): shape mismatch for '", name, "': the checkpoint has ", shape_str(src.shape()),
                           ", the module expects ", shape_str(t.shape())));
    if (is_floating(t.dtype()) != is_floating(src.dtype()))
      throw DTypeError(cat("load_state_dict(", type_name_, "): dtype mismatch for '", name, "': the checkpoint has ", dtype_name(src.dtype()),
                           ", the module expects ", dtype_name(t.dtype())));
  }
  NoGradGuard no_grad;
  for (auto& [name, t] : own) t.set_data(given.at(name).array().to(t.dtype()));
}

// ---- printing ------------------------------------------------------------------------------------------
// Indents every line but the first by two spaces (PyTorch's _addindent).
static std::string indent_tail(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += c;
    if (c == '\n') out += "  ";
  }
  return out;
}

std::string Module::repr() const {
  std::vector<std::string> lines;
  std::string extra = extra_repr();
  size_t n_extra = 0;
  if (!extra.empty()) {
    std::istringstream is(extra);
    for (std::string line; std::getline(is, line);) lines.push_back(line), ++n_extra;
  }
  for (const auto& [name, child] : children_) lines.push_back("(" + name + "): " + indent_tail(child->repr()));
  std::string s = type_name_ + "(";
  if (n_extra == 1 && children_.empty()) {
    s += lines[0];
  } else if (!lines.empty()) {
    for (const std::string& line : lines) s += "\n  " + line;
    s += "\n";
  }
  return s + ")";
}

std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.repr(); }

}  // namespace dgm::nn
