// A dataset in memory, in the form a model wants it: N examples of D values, of one DataKind, with
// an optional class label each. The DataLoader draws its batches from one.
//
//   Dataset train = Dataset::from_mnist(load_mnist("", data::Split::Train), DataKind::Binary);  // 0/1 pixels, labels
//   Dataset moons = Dataset::from_tensor(x);                        // x: (N, 2) float, continuous data
//   Batch b = train.gather({0, 5, 7});                              // x (3, 784) int64, y (3,) int64
//
// Pixels are kept as bytes (a tenth of the memory of int64) and widened per batch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <dgm/data/mnist.h>
#include <dgm/models/model.h>

namespace dgm::train {

using models::Batch;
using models::DataKind;

class Dataset {
 public:
  Dataset() = default;
  // MNIST-style images: Binary keeps pixel > 128 as 1 (the course's binarized MNIST), Byte keeps
  // 0..255. Continuous is refused: a model of continuous pixels dequantises the bytes itself.
  // The labels are kept (0..9). A height and width other than the images' resize them first
  // (data::resize, bilinear, before binarizing): the homework's 32x32 MNIST; 0 keeps the size.
  static Dataset from_mnist(const data::MnistData& data, DataKind kind, int64_t height = 0, int64_t width = 0);
  // Any (N, D) tensor: float values (Continuous) or int64 pixels (Binary/Byte, checked to be in
  // range); `y`, if given, (N,) int64 class labels. height x width = D for images (0: not images).
  static Dataset from_tensor(const Tensor& x, const Tensor& y = Tensor(), DataKind kind = DataKind::Continuous, int64_t height = 0,
                             int64_t width = 0);

  int64_t size() const { return n_; }      // examples
  int64_t dim() const { return dim_; }     // values per example
  DataKind kind() const { return kind_; }
  bool has_labels() const { return !labels_.empty(); }
  const std::vector<int64_t>& labels() const { return labels_; }  // n labels, or empty
  int64_t height() const { return height_; }
  int64_t width() const { return width_; }

  // Examples `indices` in that order: x (n, D) int64 (pixels) or float (continuous), y (n,) or none.
  Batch gather(const int64_t* indices, int64_t count) const;
  Batch gather(const std::vector<int64_t>& indices) const { return gather(indices.data(), static_cast<int64_t>(indices.size())); }
  Batch all() const;  // every example, in order

 private:
  DataKind kind_ = DataKind::Continuous;
  int64_t n_ = 0, dim_ = 0, height_ = 0, width_ = 0;
  std::vector<uint8_t> pixels_;  // Binary/Byte: n_ * dim_ values
  Tensor values_;                // Continuous: (n_, dim_) contiguous float
  std::vector<int64_t> labels_;  // n_ labels, or empty
};

}  // namespace dgm::train
