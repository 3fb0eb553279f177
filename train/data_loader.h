// Batches of a Dataset (train/dataset.h) as the models want them: x (B, D) — int64 pixels in raster
// order, or floats — and the class labels y (B,) when the dataset has them.
//
//   DataLoader train(Dataset::from_mnist(mnist, DataKind::Binary), {.batch_size = 32, .shuffle = true, .seed = 0});
//   for (int64_t i = 0; i < train.num_batches(); ++i) { Batch b = train.next(); ... }  // one epoch
//
// With shuffle, every epoch draws a fresh order from the loader's own Generator
// (Fisher-Yates), so the order depends only on the seed and the epoch — not on the model, the thread
// count or how many random numbers training used. state()/set_state() save and restore the position
// inside an epoch, so a resumed run sees exactly the batches the interrupted one would have.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <dgm/autograd/tensor.h>
#include <dgm/train/dataset.h>

namespace dgm::train {

struct DataLoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  bool drop_last = true;  // skip a last batch smaller than batch_size
  uint64_t seed = 0;      // of the loader's own Generator (shuffling only)
};

class DataLoader {
 public:
  DataLoader(Dataset data, DataLoaderOptions options = {});

  const Dataset& dataset() const { return data_; }
  int64_t size() const { return n_; }                 // examples
  int64_t dim() const { return data_.dim(); }         // values per example
  int64_t batch_size() const { return options_.batch_size; }
  int64_t num_batches() const;                        // batches per epoch
  DataKind kind() const { return data_.kind(); }

  // The next batch: x (B, dim), y (B,) if labelled. Starts a new epoch (with a new order) when the current one is
  // used up, so it can be called forever.
  Batch next();
  // Batch i of the current epoch's order (file order before the first epoch, and always without
  // shuffle), without moving the position (0 <= i < num_batches()).
  Batch batch(int64_t i) const;
  int64_t epoch() const { return epoch_; }            // 0-based epoch of the last batch; -1 before the first
  int64_t position() const { return position_; }      // batches taken from the current epoch
  bool epoch_done() const { return epoch_ >= 0 && position_ == num_batches(); }
  const std::vector<int64_t>& order() const { return order_; }  // image indices of the current epoch

  // {"epoch", "position", "generator"}: enough to rebuild the current epoch's order and position.
  nlohmann::json state() const;
  void set_state(const nlohmann::json& state);

  // Every example as one batch, in file order (for small test sets and tests).
  Batch all() const { return data_.all(); }

 private:
  void begin_epoch();  // draws the order of the next epoch

  Dataset data_;
  DataLoaderOptions options_;
  int64_t n_ = 0;
  std::vector<int64_t> order_;
  Generator gen_;
  std::string epoch_start_state_;  // gen_ before drawing the current epoch's order
  int64_t epoch_ = -1, position_ = 0;
};

}  // namespace dgm::train
