#include <dgm/models/imagegpt.h>

#include <dgm/models/config.h>
#include <dgm/nn/init.h>

namespace dgm::models {

namespace F = nn::functional;

ImageGPTConfig ImageGPTConfig::from_json(const nlohmann::json& config) {
  ConfigReader r("imagegpt", config);
  ImageGPTConfig c;
  c.embed_dim = r.integer("embed_dim", c.embed_dim);
  c.heads = r.integer("heads", c.heads);
  c.layers = r.integer("layers", c.layers, 0);
  c.image_size = r.integer("image_size", c.image_size, 2);
  c.conditional = r.boolean("conditional", c.conditional);
  r.finish();
  return c;
}

nlohmann::json ImageGPTConfig::to_json() const {
  nlohmann::json j = {{"embed_dim", embed_dim}, {"heads", heads}, {"layers", layers}, {"image_size", image_size}};
  if (conditional) j["conditional"] = true;  // unconditional configs stay as they were
  return j;
}

ImageGPT::ImageGPT(ImageGPTConfig config) : AutoregressiveModel("ImageGPT"), config_(config) {
  const int64_t d = config.embed_dim, L = config.image_size * config.image_size;
  sos = register_parameter("sos", zeros({d}));
  tok = register_module("tok", std::make_shared<nn::Embedding>(2, d));
  pos = register_module("pos", std::make_shared<nn::Embedding>(L, d));
  auto block_list = register_module("blocks", std::make_shared<nn::Module>("ModuleList"));
  for (int64_t i = 0; i < config.layers; ++i) {
    auto block = block_list->register_module(std::to_string(i), std::make_shared<nn::TransformerBlock>(d, config.heads));
    // as torch.nn.MultiheadAttention initialises itself: xavier-uniform input projection, zero biases
    nn::init::xavier_uniform_(block->attn->qkv->weight);
    nn::init::zeros_(block->attn->qkv->bias);
    nn::init::zeros_(block->attn->proj->bias);
    blocks.push_back(block);
  }
  ln = register_module("ln", std::make_shared<nn::LayerNorm>(d));
  head = register_module("head", std::make_shared<nn::Linear>(d, 1, nn::LinearOptions{.bias = false}));
  if (config.conditional) {
    label = register_module("label", std::make_shared<nn::Embedding>(num_classes(), d));
    label->weight.set_data(zeros({num_classes(), d}).array());  // starts as the unconditional model; training adds the class
  }
}

std::shared_ptr<GenerativeModel> ImageGPT::create(const nlohmann::json& config) {
  return std::make_shared<ImageGPT>(ImageGPTConfig::from_json(config));
}

// x: (B, L), y: (B,) -> (B, L)
Tensor ImageGPT::logits(const Batch& batch) {
  check_input(batch, "logits");
  const Tensor& x = batch.x;
  const int64_t B = x.size(0), L = x.size(1), d = config_.embed_dim;
  Tensor previous = tok->forward(slice(x, 1, 0, L - 1));  // tokens of x_0 .. x_{L-2}: (B, L-1, d)
  Tensor start = expand(reshape(sos, {1, 1, d}), {B, 1, d});  // (B, 1, d)
  Tensor h = cat({start, previous}, 1) + pos->weight;        // input at position t sees x_{t-1}: (B, L, d)
  if (label) h = h + unsqueeze(label->forward(batch.y), 1);  // + e_y at every position: (B, 1, d) broadcast over L
  for (const auto& block : blocks) h = block->forward(h);   // (B, L, d)
  return squeeze(head->forward(ln->forward(h)), 2);         // (B, L, 1) -> (B, L)
}

// x: (B, L) -> (B, L, 2)
Tensor ImageGPT::conditional_log_probs(const Batch& batch) {
  return bernoulli_log_probs(logits(batch));
}

// x: (B, L) -> (B,)
Tensor ImageGPT::log_prob(const Batch& batch) {
  const Tensor& x = batch.x;
  Tensor l = logits(batch);  // (B, L)
  return -sum(F::binary_cross_entropy_with_logits(l, x.to(l.dtype()), "none"), {1});
}

Tensor ImageGPT::loss(const Batch& batch, Generator&) {
  const Tensor& x = batch.x;
  Tensor l = logits(batch);
  return F::binary_cross_entropy_with_logits(l, x.to(l.dtype()));
}

Tensor ImageGPT::complete(const Batch& batch, int64_t k, Generator& gen, double temperature) {
  check_input(batch, "complete");
  if (!(temperature > 0) || !std::isfinite(temperature))
    throw ValueError(cat("ImageGPT.sample: the temperature must be positive and finite, got ", temperature));
  const Tensor& x = batch.x;
  const int64_t B = x.size(0), L = num_pixels(), d = config_.embed_dim;
  if (k < 0 || k > L) throw ValueError(cat("ImageGPT.complete: k must be in [0, ", L, "], got ", k));
  NoGradGuard no_grad;
  Tensor out = clone(x);
  if (k == L) return out;
  int64_t* pixels = out.data<int64_t>();
  std::vector<nn::KVCache> caches(blocks.size());
  for (nn::KVCache& c : caches) c.reserve = L;
  const Tensor class_embedding = label ? label->forward(batch.y) : Tensor();  // e_y: (B, d)
  for (int64_t t = 0; t < L; ++t) {
    // the input at position t, as in logits(): (B, d)
    Tensor h = (t == 0 ? expand(unsqueeze(sos, 0), {B, d}) : tok->forward(select(out, 1, t - 1))) + select(pos->weight, 0, t);
    if (label) h = h + class_embedding;
    for (size_t i = 0; i < blocks.size(); ++i) h = blocks[i]->forward_step(h, caches[i]);  // (B, d), caches grow by one
    if (t < k) continue;  // a given pixel: only its keys and values were needed
    Tensor l = squeeze(head->forward(ln->forward(h)), 1);                                 // (B,)
    std::vector<int64_t> drawn = draw_from_log_probs(bernoulli_log_probs(l / temperature), gen);  // x_t ~ Bernoulli(sigmoid(l_t / T))
    for (int64_t b = 0; b < B; ++b) pixels[b * L + t] = drawn[static_cast<size_t>(b)];
  }
  return out;
}

Tensor ImageGPT::sample_naive(int64_t n, Generator& gen, const Tensor& labels) {
  if (n <= 0) throw ValueError(cat("ImageGPT.sample_naive: n must be positive, got ", n));
  return complete_naive(Batch(zeros({n, num_pixels()}, {.dtype = DType::Int64}), labels), 0, gen);
}

}  // namespace dgm::models
