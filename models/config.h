// Reading a model's hyper-parameters from JSON, with defaults and errors that name the key.
//
//   ConfigReader r("imagegpt", config);          // config: a JSON object, e.g. {"layers": 4}
//   int64_t layers = r.integer("layers", 2);     // 4; a missing key takes the default
//   bool conditional = r.boolean("conditional", false);
//   std::string head = r.choice("head", "categorical", {"categorical", "logistic_mixture"});
//   r.finish();                                  // ValueError if the object holds a key nobody read
//
// A typo in a key ("layer" for "layers") must not silently train the default model, hence finish().
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dgm::models {

class ConfigReader {
 public:
  ConfigReader(std::string model, const nlohmann::json& config);
  // An integer >= min_value (ValueError otherwise, naming the model and the key).
  int64_t integer(const std::string& key, int64_t fallback, int64_t min_value = 1);
  // true or false (ValueError otherwise; `--conditional true` on the command line is JSON true).
  bool boolean(const std::string& key, bool fallback);
  // One of `choices` (ValueError listing them otherwise).
  std::string choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& choices);
  // ValueError naming every key of the config that was not read, and listing the known keys.
  void finish() const;

 private:
  std::string model_;
  nlohmann::json config_;
  std::vector<std::string> known_;  // in the order they were read, for the error message
};

}  // namespace dgm::models
