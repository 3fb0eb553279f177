// Shuffled batches of a Dataset; see data_loader.h.
#include <dgm/train/data_loader.h>

#include <algorithm>
#include <numeric>

namespace dgm::train {

DataLoader::DataLoader(Dataset data, DataLoaderOptions options)
    : data_(std::move(data)), options_(options), n_(data_.size()), gen_(options.seed) {
  if (options_.batch_size < 1) throw ValueError(cat("DataLoader: batch_size must be positive, got ", options_.batch_size));
  order_.resize(static_cast<size_t>(n_));
  std::iota(order_.begin(), order_.end(), int64_t{0});  // file order until the first epoch begins
}

int64_t DataLoader::num_batches() const {
  const int64_t b = options_.batch_size;
  return options_.drop_last ? n_ / b : (n_ + b - 1) / b;
}

void DataLoader::begin_epoch() {
  epoch_start_state_ = gen_.state();
  order_.resize(static_cast<size_t>(n_));
  std::iota(order_.begin(), order_.end(), int64_t{0});
  if (options_.shuffle)  // Fisher-Yates: swap each slot, from the last, with a uniformly chosen earlier-or-same one
    for (int64_t i = n_ - 1; i > 0; --i) std::swap(order_[i], order_[gen_.randint(0, i + 1)]);
  ++epoch_;
  position_ = 0;
}

Batch DataLoader::next() {
  if (num_batches() == 0)
    throw ValueError(cat("DataLoader: ", n_, " images make no batch of ", options_.batch_size, options_.drop_last ? " (drop_last)" : ""));
  if (epoch_ < 0 || position_ >= num_batches()) begin_epoch();
  return batch(position_++);
}

Batch DataLoader::batch(int64_t i) const {
  if (i < 0 || i >= num_batches()) throw IndexError(cat("DataLoader::batch: index ", i, " outside [0, ", num_batches(), ")"));
  const int64_t start = i * options_.batch_size;
  return data_.gather(order_.data() + start, std::min(options_.batch_size, n_ - start));
}

nlohmann::json DataLoader::state() const {
  return {{"epoch", epoch_}, {"position", position_}, {"generator", epoch_ < 0 ? gen_.state() : epoch_start_state_}};
}

void DataLoader::set_state(const nlohmann::json& state) {
  try {
    const int64_t epoch = state.at("epoch").get<int64_t>();
    const int64_t position = state.at("position").get<int64_t>();
    if (epoch < -1 || position < 0 || position > num_batches())
      throw ValueError(cat("DataLoader::set_state: position ", position, " of epoch ", epoch, " is outside an epoch of ",
                           num_batches(), " batches"));
    gen_.set_state(state.at("generator").get<std::string>());
    epoch_ = -1;
    position_ = 0;
    if (epoch >= 0) {  // redraw that epoch's order from the generator as it was when the epoch began
      epoch_ = epoch - 1;
      begin_epoch();
      position_ = position;
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(cat("DataLoader::set_state: malformed state: ", e.what()));
  }
}

}  // namespace dgm::train
