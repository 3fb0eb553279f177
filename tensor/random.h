// Seeded random numbers. One global default generator (dgm::manual_seed) plus explicit
// generators; the same seed gives the same numbers on every machine and thread count.
#pragma once
#include <cstdint>
#include <random>
#include <string>

#include <dgm/tensor/array.h>

namespace dgm {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { manual_seed(seed); }
  void manual_seed(uint64_t seed) {
    engine_.seed(seed);
    has_spare_normal_ = false;
  }
  uint64_t next_u64() { return engine_(); }
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }  // [0, 1), 53 random bits
  double normal();                                                               // Box-Muller
  int64_t randint(int64_t low, int64_t high);                                    // [low, high), unbiased
  // The whole state as text, so a checkpoint can resume the exact stream.
  std::string state() const;
  void set_state(const std::string& s);

 private:
  std::mt19937_64 engine_;
  bool has_spare_normal_ = false;
  double spare_normal_ = 0;
};

Generator& default_generator();
void manual_seed(uint64_t seed);  // seeds the default generator

namespace cpu {
Array rand(const Shape& shape, Generator& g, DType dtype = DType::Float32);   // U[0, 1)
Array randn(const Shape& shape, Generator& g, DType dtype = DType::Float32);  // N(0, 1)
Array randint(int64_t low, int64_t high, const Shape& shape, Generator& g);    // int64 in [low, high)
Array bernoulli(const Array& p, Generator& g);                                 // 0/1 with probability p, dtype of p
// Indices sampled from the rows of `probs` ((n,) or (B, n), non-negative, need not sum to 1).
Array multinomial(const Array& probs, int64_t num_samples, bool replacement, Generator& g);
}  // namespace cpu

}  // namespace dgm
