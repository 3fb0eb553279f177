#include "models/config.h"

#include <algorithm>

#include "tensor/errors.h"

namespace dgm::models {

static std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + items[i];
  return s;
}

ConfigReader::ConfigReader(std::string model, const nlohmann::json& config) : model_(std::move(model)), config_(config) {
  if (config_.is_null()) config_ = nlohmann::json::object();
  if (!config_.is_object()) throw ValueError(cat(model_, ": the config must be a JSON object, got ", config_.dump()));
}

int64_t ConfigReader::integer(const std::string& key, int64_t fallback, int64_t min_value) {
  known_.push_back(key);
  if (!config_.contains(key)) return fallback;
  const nlohmann::json& v = config_[key];
  if (!v.is_number_integer()) throw ValueError(cat(model_, ": config key '", key, "' must be an integer, got ", v.dump()));
  const int64_t value = v.get<int64_t>();
  if (value < min_value) throw ValueError(cat(model_, ": config key '", key, "' must be >= ", min_value, ", got ", value));
  return value;
}

bool ConfigReader::boolean(const std::string& key, bool fallback) {
  known_.push_back(key);
  if (!config_.contains(key)) return fallback;
  const nlohmann::json& v = config_[key];
  if (!v.is_boolean()) throw ValueError(cat(model_, ": config key '", key, "' must be true or false, got ", v.dump()));
  return v.get<bool>();
}

std::string ConfigReader::choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& choices) {
  known_.push_back(key);
  if (!config_.contains(key)) return fallback;
  const nlohmann::json& v = config_[key];
  if (v.is_string())
    for (const std::string& c : choices)
      if (v.get<std::string>() == c) return c;
  throw ValueError(cat(model_, ": config key '", key, "' must be one of ", join(choices), "; got ", v.dump()));
}

void ConfigReader::finish() const {
  std::vector<std::string> unknown;
  for (const auto& [key, value] : config_.items())
    if (std::find(known_.begin(), known_.end(), key) == known_.end()) unknown.push_back("'" + key + "'");
  if (!unknown.empty())
    throw ValueError(cat(model_, ": unknown config key", unknown.size() > 1 ? "s " : " ", join(unknown), " (known: ", join(known_), ")"));
}

}  // namespace dgm::models
