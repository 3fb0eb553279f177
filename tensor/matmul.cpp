// matmul with torch.matmul semantics, on top of the strided GEMM in tensor/gemm.h.
#include <dgm/tensor/gemm.h>
#include <dgm/tensor/kernels.h>

namespace dgm::cpu {

Array matmul(const Array& a_in, const Array& b_in) {
  if (a_in.dim() == 0 || b_in.dim() == 0)
    throw ShapeError(cat("matmul: both arguments need at least 1 dim, got shapes ", shape_str(a_in.shape()), " and ",
                         shape_str(b_in.shape())));
  if (a_in.dtype() != b_in.dtype() || !is_floating(a_in.dtype()))
    throw DTypeError(cat("matmul: expected two tensors of the same floating dtype, got ", dtype_name(a_in.dtype()), " and ",
                         dtype_name(b_in.dtype())));
  // 1-D operands become matrices: a vector on the left is a row, on the right a column.
  Array a = a_in.dim() == 1 ? a_in.unsqueeze(0) : a_in;
  Array b = b_in.dim() == 1 ? b_in.unsqueeze(1) : b_in;
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  if (b.size(-2) != K)
    throw ShapeError(cat("matmul: shapes ", shape_str(a_in.shape()), " and ", shape_str(b_in.shape()),
                         " cannot be multiplied (", K, " != ", b.size(-2), ")"));
  Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2), Shape(b.shape().begin(), b.shape().end() - 2), "matmul");
  int64_t B = numel_of(batch);
  Shape ae = batch, be = batch, oe = batch;
  ae.insert(ae.end(), {M, K});
  be.insert(be.end(), {K, N});
  oe.insert(oe.end(), {M, N});
  // One batch dim; broadcast batches keep stride 0, so nothing is copied for them.
  Array a3 = a.expand(ae).reshape({B, M, K});
  Array b3 = b.expand(be).reshape({B, K, N});
  Array out = Array::empty({B, M, N}, a.dtype());
  dispatch_floating(a.dtype(), "matmul", [&]<class T>() {
    gemm_batched(B, M, N, K, T(1), a3.data<T>(), a3.stride(0), a3.stride(1), a3.stride(2), b3.data<T>(), b3.stride(0), b3.stride(1),
                 b3.stride(2), T(0), out.data<T>(), M * N, N, 1);
  });
  Shape os = batch;
  if (a_in.dim() > 1) os.push_back(M);
  if (b_in.dim() > 1) os.push_back(N);
  return out.view(os);
}

}  // namespace dgm::cpu
