#include <dgm/models/config.h>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdio>
#include <cstdlib>

#include <dgm/tensor/errors.h>

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

int64_t config_max(const std::string& key) {
  for (const ConfigLimit& l : kConfigLimits)
    if (key == l.key) return l.max_value;
  return kDefaultConfigMax;
}

size_t max_model_memory() {
  constexpr size_t kDefault = size_t{8} << 30;
  const char* env = std::getenv("DGM_MAX_MEMORY");
  if (!env || !*env) return kDefault;
  const std::string text = env;
  size_t pos = 0;
  while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) ++pos;
  const std::string digits = text.substr(0, pos), suffix = text.substr(pos);
  int shift = -1;
  if (suffix.empty() || suffix == "B") shift = 0;
  else if (suffix == "K" || suffix == "KiB") shift = 10;
  else if (suffix == "M" || suffix == "MiB") shift = 20;
  else if (suffix == "G" || suffix == "GiB") shift = 30;
  else if (suffix == "T" || suffix == "TiB") shift = 40;
  size_t value = 0;
  bool ok = !digits.empty() && digits.size() <= 15 && shift >= 0;
  if (ok) {
    value = std::stoull(digits);
    ok = value > 0 && value <= (~size_t{0} >> shift);
  }
  if (!ok)
    throw ValueError(cat("DGM_MAX_MEMORY='", text, "' is not a memory size (expected bytes or a number with K, M, G or T, e.g. 16G)"));
  return value << shift;
}

std::string format_bytes(size_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  double v = static_cast<double>(bytes);
  while (u < 4 && v >= 1024) v /= 1024, ++u;
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.3g %s", v, units[u]);
  return buf;
}

int64_t ConfigReader::integer(const std::string& key, int64_t fallback, int64_t min_value, int64_t max_value) {
  known_.push_back(key);
  if (!config_.contains(key)) return fallback;
  if (max_value < 0) max_value = config_max(key);
  const nlohmann::json& v = config_[key];
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX}))
    throw ValueError(cat(model_, ": config key '", key, "' must be an integer in ", min_value, "..", max_value, ", got ", v.dump()));
  const int64_t value = v.get<int64_t>();
  if (value < min_value || value > max_value)
    throw ValueError(cat(model_, ": config key '", key, "' must be in ", min_value, "..", max_value, ", got ", value,
                         value > max_value ? " (above the limit for this key)" : ""));
  return value;
}

double ConfigReader::number(const std::string& key, double fallback, double min_value, double max_value) {
  known_.push_back(key);
  if (!config_.contains(key)) return fallback;
  const nlohmann::json& v = config_[key];
  const double value = v.is_number() ? v.get<double>() : std::nan("");
  if (!std::isfinite(value) || value < min_value || value > max_value)
    throw ValueError(cat(model_, ": config key '", key, "' must be a number in ", min_value, "..", max_value, ", got ", v.dump()));
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
