// Reading a model's hyper-parameters from JSON, with defaults and errors that name the key.
//
//   ConfigReader r("imagegpt", config);          // config: a JSON object, e.g. {"layers": 4}
//   int64_t layers = r.integer("layers", 2);     // 4; a missing key takes the default
//   bool conditional = r.boolean("conditional", false);
//   std::string head = r.choice("head", "categorical", {"categorical", "logistic_mixture"});
//   r.finish();                                  // ValueError if the object holds a key nobody read
//
// A typo in a key ("layer" for "layers") must not silently train the default model, hence finish().
//
// A config is untrusted input (it may come from a checkpoint's metadata), so every integer also has
// an upper bound, checked before the model allocates anything: a per-key table for the usual size
// keys (kConfigLimits below: "hidden" <= 65536, "layers" <= 1024, ...) and 2^20 for any other key.
// Within those bounds, models::create_model additionally caps the memory a model may allocate
// while it is built (max_model_memory()), since a product of in-range sizes can still be huge.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dgm::models {

// The largest value an integer config key may take (each named key's limit is far above any model
// that trains on a CPU, and small enough that no size computed from it overflows).
struct ConfigLimit {
  const char* key;
  int64_t max_value;
};
inline constexpr ConfigLimit kConfigLimits[] = {
    {"hidden", 65536}, {"embed_dim", 65536}, {"channels", 65536}, {"layers", 1024}, {"heads", 1024},
    {"context", 4096}, {"mixtures", 1024},   {"kernel_a", 255},   {"kernel_b", 255}, {"image_size", 1024},
};
inline constexpr int64_t kDefaultConfigMax = int64_t{1} << 20;  // any integer key not in the table
int64_t config_max(const std::string& key);

// The memory a model may allocate while it is built from a config: 8 GiB (about 2^31 float32
// parameters), or the environment variable DGM_MAX_MEMORY (bytes, or with a suffix K, M, G, T:
// "512M"). ValueError naming the variable if it is not such a size.
size_t max_model_memory();
// "8 GiB", "512 MiB", "100 bytes": a byte count for a message.
std::string format_bytes(size_t bytes);

class ConfigReader {
 public:
  ConfigReader(std::string model, const nlohmann::json& config);
  // An integer in min_value..max_value (ValueError otherwise, naming the model, the key and the
  // range); max_value -1 takes the key's limit (config_max).
  int64_t integer(const std::string& key, int64_t fallback, int64_t min_value = 1, int64_t max_value = -1);
  // A finite number in min_value..max_value (ValueError otherwise); integers are numbers too.
  double number(const std::string& key, double fallback, double min_value, double max_value);
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
