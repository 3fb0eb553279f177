#include <dgm/models/template_model.h>

#include <dgm/models/config.h>
#include <dgm/nn/distributions.h>

namespace dgm::models {

TemplateModel::TemplateModel(int64_t image_size) : GenerativeModel("TemplateModel"), image_size_(image_size) {
  logits = register_parameter("logits", zeros({image_size * image_size}));
}

std::shared_ptr<GenerativeModel> TemplateModel::create(const nlohmann::json& config) {
  ConfigReader r("template", config);
  int64_t image_size = r.integer("image_size", 28, 2);
  r.finish();
  return std::make_shared<TemplateModel>(image_size);
}

// x: (B, D) int64 in {0, 1} -> (B,)
Tensor TemplateModel::log_prob(const Batch& batch) {
  const Tensor& x = batch.x;
  const int64_t D = height() * width();
  if (x.dim() != 2 || x.size(1) != D || x.dtype() != DType::Int64)
    throw ShapeError(cat("TemplateModel.log_prob: x must be (B, ", D, ") int64, got ", shape_str(x.shape()), " ", dtype_name(x.dtype())));
  Tensor per_pixel = nn::Bernoulli::from_logits(logits).log_prob(x.to(logits.dtype()));  // (D) against (B, D) -> (B, D)
  return sum(per_pixel, {1});                                                              // (B,)
}

// -> (n, D) int64. At temperature T the logits are divided by T (T < 1: more confident pixels).
Tensor TemplateModel::sample(int64_t n, Generator& gen, const SampleOptions& options) {
  if (!(options.temperature > 0)) throw ValueError(cat("TemplateModel.sample: the temperature must be positive, got ", options.temperature));
  return nn::Bernoulli::from_logits(logits / options.temperature).sample({n}, gen).to(DType::Int64);  // (n, D)
}

}  // namespace dgm::models
