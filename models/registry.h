// The model registry: `dgm train|eval|sample NAME` and `dgm bench` find models here.
// Adding a model = one new file in models/ plus one line in models/registry.cpp.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <dgm/models/model.h>

namespace dgm::models {

// What `dgm train NAME` does when --steps / --epochs or --lr are not given. Most models train one
// epoch at Adam's usual 1e-3; one that needs more to show what it learns within a run of a few
// minutes on a 2-core laptop says so here (the budgets and their timings: models/README.md).
struct TrainDefaults {
  int64_t epochs = 1;  // passes over the training split
  double lr = 1e-3;    // Adam's learning rate
  // The learning-rate schedule and warm-up steps (train::TrainOptions::lr_schedule): a model whose
  // test NLL is noisy at the end of a constant-lr run ends lower on a decaying one.
  std::string lr_schedule = "constant";
  int64_t warmup = 0;
  // Passes with `--conditional true` (0: `epochs`): a class-conditional model learns p(x | y) and
  // is judged as a classifier too, which takes longer than the unconditional NLL.
  int64_t conditional_epochs = 0;
  // The epochs for a model config: conditional_epochs when the config says "conditional": true.
  int64_t epochs_for(const nlohmann::json& config) const {
    const auto it = config.find("conditional");
    const bool conditional = it != config.end() && it->is_boolean() && it->get<bool>();
    return conditional && conditional_epochs > 0 ? conditional_epochs : epochs;
  }
};

struct ModelInfo {
  std::string name;         // as typed on the command line: "imagegpt"
  std::string description;  // one line for `dgm train --help`
  // Builds the model from a config; missing keys take the model's defaults. Unknown keys are errors.
  std::function<std::shared_ptr<GenerativeModel>(const nlohmann::json& config)> create;
  TrainDefaults train_defaults = {};
  // The number of parameters a config asks for, estimated from its size keys alone (a lower bound
  // is enough): create_model refuses a config past its memory limit before building anything.
  // Models whose size cannot grow large need none.
  std::function<double(const nlohmann::json& config)> parameters = nullptr;
  // Keys added to the config after checkpoints without them were written, with the value that
  // reproduces how those checkpoints were trained (maf: max_log_scale 0, unbounded). A saved config
  // goes through saved_config() so an old checkpoint keeps its meaning; a new config takes the defaults.
  nlohmann::json saved_defaults = nlohmann::json::object();
};

const std::vector<ModelInfo>& registry();
// ValueError listing the known names if `name` is not registered.
const ModelInfo& find_model(const std::string& name);
// Builds a model from an untrusted config: each integer key is range-checked (models/config.h), and
// the tensors made while building may total at most `max_memory` bytes (0: max_model_memory(),
// 8 GiB unless DGM_MAX_MEMORY says otherwise), so a hostile config is refused with a ValueError
// naming the model and its size keys before the allocation that would cross the limit.
std::shared_ptr<GenerativeModel> create_model(const std::string& name, const nlohmann::json& config = nlohmann::json::object(),
                                              size_t max_memory = 0);
// A config read back from a checkpoint or a run's metadata, with the model's saved_defaults filled in
// for the keys it lacks (a non-object is returned as it is, for create_model to refuse).
nlohmann::json saved_config(const std::string& name, nlohmann::json config);

}  // namespace dgm::models
