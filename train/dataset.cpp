#include <dgm/train/dataset.h>

#include <algorithm>
#include <numeric>

namespace dgm::train {

Dataset Dataset::from_mnist(const data::MnistData& data, DataKind kind, int64_t height, int64_t width) {
  if ((height > 0 && height != data.rows) || (width > 0 && width != data.cols))
    return from_mnist(data::resize(data, height > 0 ? height : data.rows, width > 0 ? width : data.cols), kind);
  if (kind == DataKind::Continuous)
    throw ValueError("Dataset::from_mnist: MNIST pixels are Binary or Byte data; a continuous model dequantises the bytes itself");
  const int64_t dim = data.pixels_per_image();
  if (data.n < 0 || dim <= 0 || static_cast<int64_t>(data.pixels.size()) / dim != data.n ||
      static_cast<int64_t>(data.pixels.size()) % dim != 0)
    throw ValueError(cat("Dataset::from_mnist: ", data.pixels.size(), " pixels for ", data.n, " images of ", data.rows, "x", data.cols));
  Dataset d;
  d.kind_ = kind;
  d.n_ = data.n;
  d.dim_ = dim;
  d.height_ = data.rows;
  d.width_ = data.cols;
  d.pixels_ = kind == DataKind::Binary ? data::binarize(data.pixels) : data.pixels;
  if (static_cast<int64_t>(data.labels.size()) == data.n) d.labels_.assign(data.labels.begin(), data.labels.end());
  return d;
}

Dataset Dataset::from_tensor(const Tensor& x, const Tensor& y, DataKind kind, int64_t height, int64_t width) {
  if (!x.defined() || x.dim() != 2) throw ShapeError(cat("Dataset::from_tensor: x must be (N, D), got ", x.defined() ? shape_str(x.shape()) : "none"));
  Dataset d;
  d.kind_ = kind;
  d.n_ = x.size(0);
  d.dim_ = x.size(1);
  if (height > 0 || width > 0) {
    if (height * width != d.dim_) throw ShapeError(cat("Dataset::from_tensor: ", height, "x", width, " images need D = ", height * width, ", got ", d.dim_));
    d.height_ = height;
    d.width_ = width;
  }
  if (kind == DataKind::Continuous) {
    if (!is_floating(x.dtype())) throw DTypeError(cat("Dataset::from_tensor: continuous data must be float, got ", dtype_name(x.dtype())));
    d.values_ = x.detach().contiguous();
  } else {
    const int64_t top = kind == DataKind::Binary ? 1 : 255;
    for (int64_t v : x.to(DType::Int64).contiguous().to_vector<int64_t>()) {
      if (v < 0 || v > top) throw ValueError(cat("Dataset::from_tensor: value ", v, " outside [0, ", top, "] for ", models::data_kind_name(kind), " data"));
      d.pixels_.push_back(static_cast<uint8_t>(v));
    }
  }
  if (y.defined()) {
    if (y.dim() != 1 || y.size(0) != d.n_) throw ShapeError(cat("Dataset::from_tensor: y must be (", d.n_, ",), got ", shape_str(y.shape())));
    d.labels_ = y.to(DType::Int64).contiguous().to_vector<int64_t>();
  }
  return d;
}

Batch Dataset::gather(const int64_t* indices, int64_t count) const {
  for (int64_t r = 0; r < count; ++r)
    if (indices[r] < 0 || indices[r] >= n_) throw IndexError(cat("Dataset::gather: index ", indices[r], " outside [0, ", n_, ")"));
  Batch b;
  if (kind_ == DataKind::Continuous) {
    b.x = index_select(values_, 0, from_vector(std::vector<int64_t>(indices, indices + count), {count}));
  } else {
    std::vector<int64_t> values(static_cast<size_t>(count * dim_));
    for (int64_t r = 0; r < count; ++r) {
      const uint8_t* src = pixels_.data() + indices[r] * dim_;
      std::copy(src, src + dim_, values.begin() + r * dim_);
    }
    b.x = from_vector(values, {count, dim_});
  }
  if (has_labels()) {
    std::vector<int64_t> y(static_cast<size_t>(count));
    for (int64_t r = 0; r < count; ++r) y[static_cast<size_t>(r)] = labels_[static_cast<size_t>(indices[r])];
    b.y = from_vector(y, {count});
  }
  return b;
}

Batch Dataset::all() const {
  std::vector<int64_t> order(static_cast<size_t>(n_));
  std::iota(order.begin(), order.end(), int64_t{0});
  return gather(order);
}

}  // namespace dgm::train
