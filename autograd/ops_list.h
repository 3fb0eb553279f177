// The one place where differentiable ops are registered. Every graph node names one of these;
// tests/test_gradcheck.cpp fails if any op listed here has no gradcheck row.
#pragma once

#define DGM_DIFFERENTIABLE_OPS(X)                                                                         \
  /* unary elementwise */                                                                                 \
  X(Neg, "neg") X(Abs, "abs") X(Exp, "exp") X(Log, "log") X(Log1p, "log1p") X(Expm1, "expm1")             \
  X(Sqrt, "sqrt") X(Rsqrt, "rsqrt") X(Sin, "sin") X(Cos, "cos") X(Tanh, "tanh") X(Sigmoid, "sigmoid")     \
  X(Relu, "relu") X(Gelu, "gelu") X(Softplus, "softplus") X(Erf, "erf") X(PowScalar, "pow_scalar")        \
  X(Elu, "elu") X(GeluTanh, "gelu_tanh")                                                                  \
  X(Clamp, "clamp")                                                                                       \
  /* binary elementwise (broadcasting) */                                                                 \
  X(Add, "add") X(Sub, "sub") X(Mul, "mul") X(Div, "div") X(Maximum, "maximum") X(Minimum, "minimum")     \
  X(Pow, "pow") X(Where, "where") X(MaskedFill, "masked_fill")                                            \
  /* reductions */                                                                                        \
  X(Sum, "sum") X(Mean, "mean") X(Var, "var") X(Std, "std") X(MaxDim, "max") X(MinDim, "min")            \
  X(Amax, "amax") X(Amin, "amin") X(Logsumexp, "logsumexp") X(Cumsum, "cumsum") X(SumTo, "sum_to")        \
  /* movement and shaping (views where possible) */                                                       \
  X(Reshape, "reshape") X(Permute, "permute") X(Expand, "expand") X(Slice, "slice") X(Select, "select")   \
  X(Split, "split")                                                                                       \
  X(Squeeze, "squeeze") X(Unsqueeze, "unsqueeze") X(Contiguous, "contiguous") X(Cast, "to")               \
  X(Cat, "cat") X(Stack, "stack") X(Tril, "tril") X(Triu, "triu") X(Pad, "pad")                           \
  /* indexing */                                                                                          \
  X(Gather, "gather") X(ScatterAdd, "scatter_add") X(IndexSelect, "index_select")                         \
  X(IndexAdd, "index_add") X(Embedding, "embedding")                                                      \
  /* matrix and nn */                                                                                     \
  X(Matmul, "matmul") X(Slogdet, "slogdet") X(Inverse, "inverse") X(Softmax, "softmax")                   \
  X(LogSoftmax, "log_softmax") X(SolveTriangular, "solve_triangular")                                     \
  /* fused kernels (each checked against its composite reference) */                                    \
  X(CrossEntropy, "cross_entropy") X(BceWithLogits, "binary_cross_entropy_with_logits")                  \
  X(LayerNorm, "layer_norm") X(Attention, "attention") X(Linear, "linear")                             \
  X(EmbeddingBag, "embedding_bag") X(Conv2d, "conv2d") X(GatedResidual, "gated_residual")

namespace dgm {

enum class Op {
#define DGM_OP_ENUM(name, str) name,
  DGM_DIFFERENTIABLE_OPS(DGM_OP_ENUM)
#undef DGM_OP_ENUM
};

inline const char* op_name(Op op) {
  switch (op) {
#define DGM_OP_NAME(name, str) \
  case Op::name:               \
    return str;
    DGM_DIFFERENTIABLE_OPS(DGM_OP_NAME)
#undef DGM_OP_NAME
  }
  return "?";
}

// Every registered op, for the gradcheck coverage test.
inline const Op kAllOps[] = {
#define DGM_OP_LIST(name, str) Op::name,
    DGM_DIFFERENTIABLE_OPS(DGM_OP_LIST)
#undef DGM_OP_LIST
};

}  // namespace dgm
