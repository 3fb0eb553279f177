#include "models/model.h"

namespace dgm::models {

// Autocompletion needs the conditionals p(x_j | x_<j), which the joint log_prob alone does not give.
// Autoregressive models get it from models::AutoregressiveModel (models/autoregressive.h), which
// implements complete() for any model that provides its per-pixel conditionals; other models
// (VAEs, flows, ...) override complete() themselves or keep this error.
Tensor GenerativeModel::complete(const Tensor& x, int64_t k, Generator&) {
  throw ValueError(cat(type_name(), ".complete: autocompletion is not supported by this model (asked to keep ", k, " pixels of x ",
                       shape_str(x.shape()), "); an autoregressive model gets it by deriving from models::AutoregressiveModel"));
}

}  // namespace dgm::models
