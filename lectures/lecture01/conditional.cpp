// Lecture 1, conditional models: the numbers (see conditional.h).
#include <dgm/lectures/lecture01/conditional.h>

#include <algorithm>
#include <chrono>
#include <numeric>

#include <dgm/data/mnist.h>
#include <dgm/lectures/lecture01/histograms.h>
#include <dgm/models/registry.h>
#include <dgm/nn/optim.h>
#include <dgm/nn/serialize.h>
#include <dgm/train/data_loader.h>
#include <dgm/train/trainer.h>

namespace dgm::lecture01 {

std::vector<int64_t> spread_indices(int64_t total, int64_t n) {
  if (total < 1) throw ValueError(cat("spread_indices: nothing to pick from (", total, " items)"));
  n = std::clamp<int64_t>(n, 1, total);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(i * total / n);
  return out;
}

namespace {

std::vector<int64_t> all_or(const std::vector<int64_t>& indices, int64_t total) {
  if (!indices.empty()) return indices;
  std::vector<int64_t> all(static_cast<size_t>(total));
  std::iota(all.begin(), all.end(), int64_t{0});
  return all;
}

// The binarized test images `indices` as a Dataset (with labels), for train::classify.
train::Dataset test_subset(const data::MnistData& test, const std::vector<int64_t>& indices) {
  train::Dataset full = train::Dataset::from_mnist(test, models::DataKind::Binary);
  models::Batch b = full.gather(all_or(indices, full.size()));
  return train::Dataset::from_tensor(b.x, b.y, models::DataKind::Binary, test.rows, test.cols);
}

// Score the model as a classifier and draw per_class samples of each digit.
void score_and_sample(ConditionalRun& run, models::GenerativeModel& model, const std::string& data, const std::vector<int64_t>& indices,
                      int64_t per_class, uint64_t seed) {
  const data::MnistData train_split = data::load_mnist(data, data::Split::Train), test_split = data::load_mnist(data, data::Split::Test);
  const std::vector<double> prior = train::label_prior(train::Dataset::from_mnist(train_split, models::DataKind::Binary), 10);
  run.result = train::classify(model, test_subset(test_split, indices), prior, 10);
  run.per_class = per_class;
  if (per_class > 0) {
    std::vector<int64_t> labels;
    for (int64_t y = 0; y < 10; ++y) labels.insert(labels.end(), static_cast<size_t>(per_class), y);
    Generator gen(seed);
    model.eval();
    NoGradGuard no_grad;
    run.samples = model.sample(10 * per_class, gen, {.labels = from_vector(labels, {10 * per_class})}).to_vector<int64_t>();
  }
  run.parameters = model.num_parameters();
  run.config = model.config().dump();
}

}  // namespace

train::ClassifierResult naive_bayes(const std::string& data, const std::vector<int64_t>& indices) {
  BinaryMnist mnist = load_binary_mnist(data);
  ClassConditional model = fit_class_conditional(mnist.train, mnist.train_labels);
  const std::vector<int64_t> picks = all_or(indices, mnist.test.size(0));
  Tensor x = index_select(mnist.test, 0, from_vector(picks, {static_cast<int64_t>(picks.size())}));
  std::vector<int64_t> labels;
  for (int64_t i : picks) labels.push_back(mnist.test_labels[static_cast<size_t>(i)]);
  return train::bayes_classify(class_log_likelihoods(model, x).contiguous().to_vector<double>(), labels,
                               model.prior.to_vector<double>(), x.size(1));
}

ConditionalRun train_conditional(const std::string& name, nlohmann::json config, int64_t steps, int64_t batch, double lr, uint64_t seed,
                                 const std::vector<int64_t>& indices, int64_t per_class, const std::string& data) {
  if (steps < 1 || batch < 1) throw ValueError(cat("train_conditional: steps and batch must be positive, got ", steps, ", ", batch));
  config["conditional"] = true;
  manual_seed(seed);
  std::shared_ptr<models::GenerativeModel> model = models::create_model(name, config);
  ConditionalRun run;
  run.model = name;
  run.source = "trained in the lecture";
  run.steps = steps, run.batch = batch, run.lr = lr;
  train::DataLoader loader(train::Dataset::from_mnist(data::load_mnist(data, data::Split::Train), models::DataKind::Binary),
                           {.batch_size = batch, .shuffle = true, .seed = seed});
  nn::Adam adam(model->parameters(), {.lr = lr});
  Generator gen(seed);
  std::vector<double> losses;
  const auto start = std::chrono::steady_clock::now();
  model->train();
  for (int64_t s = 0; s < steps; ++s) losses.push_back(model->train_step(loader.next(), gen, {&adam}));
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const size_t w = std::min<size_t>(10, losses.size());
  run.train_loss_first = std::accumulate(losses.begin(), losses.begin() + static_cast<std::ptrdiff_t>(w), 0.0) / static_cast<double>(w);
  run.train_loss_last = std::accumulate(losses.end() - static_cast<std::ptrdiff_t>(w), losses.end(), 0.0) / static_cast<double>(w);
  score_and_sample(run, *model, data, indices, per_class, seed + 1);
  return run;
}

ConditionalRun load_conditional(const std::string& checkpoint, uint64_t seed, const std::vector<int64_t>& indices, int64_t per_class,
                                const std::string& data) {
  const std::string file = train::resolve_checkpoint(checkpoint);
  nn::SafetensorsFile ck = nn::load_safetensors(file);
  auto meta = [&](const char* key) {
    auto it = ck.metadata.find(key);
    if (it == ck.metadata.end()) throw FormatError(cat(file, ": no '", key, "' in its metadata (not written by dgm train?)"));
    return it->second;
  };
  ConditionalRun run;
  run.model = meta("model");
  run.source = file;
  std::shared_ptr<models::GenerativeModel> model = models::create_model(run.model, models::saved_config(run.model, nlohmann::json::parse(meta("config"))));
  if (model->num_classes() != 10)
    throw ValueError(cat(file, ": the ", run.model, " in it is not conditional on the 10 digits (train it with --conditional true)"));
  model->load_state_dict(train::model_tensors(ck));
  score_and_sample(run, *model, data, indices, per_class, seed);
  return run;
}

std::vector<int64_t> least_likely(const train::ClassifierResult& r, int64_t k) {
  std::vector<int64_t> order(static_cast<size_t>(r.images));
  std::iota(order.begin(), order.end(), int64_t{0});
  auto ll = [&](int64_t i) { return r.log_likelihood[static_cast<size_t>(i * r.classes + r.labels[static_cast<size_t>(i)])]; };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ll(a) < ll(b); });
  order.resize(static_cast<size_t>(std::clamp<int64_t>(k, 0, r.images)));
  return order;
}

}  // namespace dgm::lecture01
