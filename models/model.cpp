#include <dgm/models/model.h>

namespace dgm::models {

const char* data_kind_name(DataKind k) {
  switch (k) {
    case DataKind::Binary: return "binary";
    case DataKind::Byte: return "8-bit";
    case DataKind::Continuous: return "continuous";
  }
  return "?";
}

const char* nll_unit(DataKind k) { return k == DataKind::Byte ? "bits/dim" : "nats/dim"; }

const char* objective_label(Objective o) {
  switch (o) {
    case Objective::ExactNLL: return "test_nll";
    case Objective::NLLBound: return "test_nll_bound";
    case Objective::None: return "test_loss";
  }
  return "?";
}

Tensor GenerativeModel::log_prob(const Batch& batch) {
  throw ValueError(cat(type_name(), ".log_prob: this model has no likelihood (asked for a batch ", shape_str(batch.x.shape()),
                       "); its objective() is None and the evaluator reports its loss instead"));
}

Tensor GenerativeModel::loss(const Batch& batch, Generator&) {
  return -mean(log_prob(batch)) / static_cast<double>(batch.x.size(1));
}

// Autocompletion needs the conditionals p(x_j | x_<j), which the joint log_prob alone does not give.
// Autoregressive models get it from models::AutoregressiveModel (models/autoregressive.h), which
// implements complete() for any model that provides its per-pixel conditionals; other models
// (VAEs, flows, ...) override complete() themselves or keep this error.
Tensor GenerativeModel::complete(const Batch& batch, int64_t k, Generator&) {
  throw ValueError(cat(type_name(), ".complete: autocompletion is not supported by this model (asked to keep ", k, " pixels of x ",
                       shape_str(batch.x.shape()), "); an autoregressive model gets it by deriving from models::AutoregressiveModel"));
}

void check_labels(const GenerativeModel& model, const Batch& batch, const char* op) {
  const int64_t classes = model.num_classes();
  if (classes == 0) return;
  if (!batch.y.defined())
    throw ValueError(cat(model.type_name(), ".", op, ": the model is conditional on ", classes, " classes and needs a label per example"));
  if (batch.y.dtype() != DType::Int64) throw DTypeError(cat(model.type_name(), ".", op, ": labels must be int64, got ", dtype_name(batch.y.dtype())));
  if (batch.y.dim() != 1 || batch.y.size(0) != batch.x.size(0))
    throw ShapeError(cat(model.type_name(), ".", op, ": labels must be (", batch.x.size(0), ",), got ", shape_str(batch.y.shape())));
  for (int64_t v : batch.y.contiguous().to_vector<int64_t>())
    if (v < 0 || v >= classes) throw ValueError(cat(model.type_name(), ".", op, ": label ", v, " outside [0, ", classes, ")"));
}

double GenerativeModel::train_step(const Batch& batch, Generator& gen, const std::vector<nn::Optimizer*>& optimizers) {
  for (nn::Optimizer* o : optimizers) o->zero_grad();
  Tensor l = loss(batch, gen);
  l.backward();
  if (const double max_norm = max_grad_norm(); max_norm > 0) nn::clip_grad_norm_(parameters(), max_norm);
  for (nn::Optimizer* o : optimizers) o->step();
  return l.item();
}

}  // namespace dgm::models
