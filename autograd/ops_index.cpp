// Indexing ops. Gathering and scattering are each other's backward:
//   gather <-> scatter_add, index_select <-> index_add, embedding -> index_add into the table.
#include <dgm/autograd/node.h>
#include <dgm/autograd/ops.h>
#include <dgm/tensor/kernels.h>

namespace dgm {

using Grads = std::vector<Tensor>;

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  int64_t d = wrap_dim(dim, x.dim(), "gather");
  return record1(Op::Gather, {x, index}, cpu::gather(x.array(), d, index.array()), {save::in(1)}, [d, in = x.shape()](const Grads& g, const Grads& s) {
    return Grads{scatter_add(zeros(in, {.dtype = g[0].dtype()}), d, s[0], g[0]), Tensor()};
  });
}
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  int64_t d = wrap_dim(dim, x.dim(), "scatter_add");
  return record1(Op::ScatterAdd, {x, index, src}, cpu::scatter_add(x.array(), d, index.array(), src.array()), {save::in(1)},
                 [d, src_shape = src.shape()](const Grads& g, const Grads& s) {
                   Tensor gs = gather(g[0], d, s[0]);
                   // src may be larger than index: the rest of src does not reach the output
                   if (gs.shape() != src_shape) {
                     std::vector<int64_t> pads;
                     for (size_t i = src_shape.size(); i-- > 0;) pads.insert(pads.end(), {0, src_shape[i] - gs.shape()[i]});
                     gs = pad(gs, pads);
                   }
                   return Grads{g[0], Tensor(), gs};
                 });
}
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  int64_t d = wrap_dim(dim, x.dim(), "index_select");
  return record1(Op::IndexSelect, {x, index}, cpu::index_select(x.array(), d, index.array()), {save::in(1)},
                 [d, in = x.shape()](const Grads& g, const Grads& s) {
                   return Grads{index_add(zeros(in, {.dtype = g[0].dtype()}), d, s[0], g[0]), Tensor()};
                 });
}
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  int64_t d = wrap_dim(dim, x.dim(), "index_add");
  return record1(Op::IndexAdd, {x, index, src}, cpu::index_add(x.array(), d, index.array(), src.array()), {save::in(1)},
                 [d](const Grads& g, const Grads& s) { return Grads{g[0], Tensor(), index_select(g[0], d, s[0])}; });
}

// out[..., :] = weight[index[...], :]
Tensor embedding(const Tensor& weight, const Tensor& index) {
  if (weight.dim() != 2) throw ShapeError(cat("embedding: weight must be (num_embeddings, dim), got ", shape_str(weight.shape())));
  Shape out_shape = index.shape();
  out_shape.push_back(weight.shape()[1]);
  if (index.dtype() != DType::Int64) throw DTypeError(cat("embedding: index must be int64, got ", dtype_name(index.dtype())));
  Array flat_index = index.array().reshape({-1});
  int64_t V = weight.shape()[0];
  for (int64_t i : flat_index.to_vector<int64_t>())
    if (i < 0 || i >= V) throw IndexError(cat("embedding: index ", i, " is out of range for a table of ", V, " rows"));
  Array y = cpu::index_select(weight.array(), 0, flat_index).view(out_shape);
  return record1(Op::Embedding, {weight, index}, y, {save::in(1)}, [ws = weight.shape()](const Grads& g, const Grads& s) {
    Tensor flat_g = reshape(g[0], {-1, ws[1]});
    return Grads{index_add(zeros(ws, {.dtype = g[0].dtype()}), 0, reshape(s[0], {-1}), flat_g), Tensor()};
  });
}

Tensor one_hot(const Tensor& index, int64_t num_classes) { return Tensor(cpu::one_hot(index.array(), num_classes)); }

}  // namespace dgm
