// The tensor layer (Array, CPU kernels, random numbers) through the user-facing Tensor API,
// checked against hand-computed values. PyTorch semantics are the reference: where an expected
// value is not obvious, the comment says how it was obtained (closed form, or the torch one-liner
// that printed it).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <dgm/autograd/ops.h>
#include <dgm/autograd/tensor.h>
#include <dgm/tensor/kernels.h>
#include <dgm/tensor/loops.h>
#include <dgm/tensor/random.h>

using namespace dgm;
using ::testing::HasSubstr;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// Element-wise comparison; NaN matches NaN and infinities must match exactly.
void expect_values(const Tensor& t, const std::vector<double>& want, double tol = 1e-6) {
  std::vector<double> got = values(t);
  ASSERT_EQ(got.size(), want.size()) << "shape " << shape_str(t.shape());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) EXPECT_TRUE(std::isnan(got[i])) << "element " << i << " = " << got[i] << ", expected nan";
    else if (std::isinf(want[i])) EXPECT_EQ(got[i], want[i]) << "element " << i;
    else EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
  }
}

// The message of the exception of type E thrown by f (a failure if f throws nothing or another type).
template <class E, class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected " << typeid(E).name() << ", got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected " << typeid(E).name() << ", nothing was thrown";
  return "";
}

std::string str(const Tensor& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

Tensor i64(std::initializer_list<double> v) { return tensor(v, {.dtype = DType::Int64}); }
Tensor f64(std::initializer_list<double> v) { return tensor(v, {.dtype = DType::Float64}); }
Tensor boolean(std::initializer_list<double> v) { return tensor(v, {.dtype = DType::Bool}); }

// Reference matmul of row-major (M, K) and (K, N) blocks, in double.
std::vector<double> naive_matmul(const double* a, const double* b, int64_t M, int64_t K, int64_t N) {
  std::vector<double> c(M * N, 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < K; ++k) c[i * N + j] += a[i * K + k] * b[k * N + j];
  return c;
}

// A float64 tensor of `shape` with random values and a random non-contiguous layout: a contiguous
// base with the dims permuted and some dims twice as long, sliced with step 2 and permuted back.
Tensor random_layout(const Shape& shape, Generator& g) {
  size_t nd = shape.size();
  std::vector<int64_t> perm(nd);
  for (size_t i = 0; i < nd; ++i) perm[i] = static_cast<int64_t>(i);
  for (size_t i = nd; i > 1; --i) std::swap(perm[i - 1], perm[g.randint(0, static_cast<int64_t>(i))]);
  std::vector<bool> doubled(nd);
  Shape base_shape(nd);
  for (size_t i = 0; i < nd; ++i) {
    doubled[i] = g.uniform() < 0.4;
    base_shape[i] = shape[perm[i]] * (doubled[i] ? 2 : 1);
  }
  Tensor t = randn(base_shape, {.dtype = DType::Float64}, &g);
  for (size_t i = 0; i < nd; ++i)
    if (doubled[i]) t = t.slice(static_cast<int64_t>(i), 0, base_shape[i], 2);
  std::vector<int64_t> inverse(nd);
  for (size_t i = 0; i < nd; ++i) inverse[perm[i]] = static_cast<int64_t>(i);
  return t.permute(inverse);
}

// Row-major multi-index <-> flat index.
std::vector<int64_t> unravel(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}
int64_t ravel(const std::vector<int64_t>& idx, const Shape& shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + idx[d];
  return flat;
}

}  // namespace

// =====================================================================================================
// dtypes, casts, promotion
// =====================================================================================================

TEST(TensorDTypes, NamesSizesAndDefaults) {
  EXPECT_STREQ(dtype_name(DType::Bool), "bool");
  EXPECT_STREQ(dtype_name(DType::Int64), "int64");
  EXPECT_STREQ(dtype_name(DType::Float32), "float32");
  EXPECT_STREQ(dtype_name(DType::Float64), "float64");
  EXPECT_EQ(itemsize(DType::Bool), 1u);
  EXPECT_EQ(itemsize(DType::Int64), 8u);
  EXPECT_EQ(itemsize(DType::Float32), 4u);
  EXPECT_EQ(itemsize(DType::Float64), 8u);
  EXPECT_EQ(zeros({2}).dtype(), DType::Float32);  // float32 is the default, as in PyTorch
  EXPECT_EQ(tensor({1, 2}).dtype(), DType::Float32);
  EXPECT_EQ(ones({2}, {.dtype = DType::Float64}).dtype(), DType::Float64);
  EXPECT_EQ(i64({1, 2}).dtype(), DType::Int64);
  EXPECT_EQ(from_vector<bool>({true, false}, {2}).dtype(), DType::Bool);
  EXPECT_EQ(from_vector<double>({1.0}, {1}).dtype(), DType::Float64);
  EXPECT_EQ(from_vector<int64_t>({1}, {1}).dtype(), DType::Int64);
  EXPECT_TRUE(is_floating(DType::Float32));
  EXPECT_FALSE(is_floating(DType::Int64));
}

TEST(TensorDTypes, CastsConvertValuesLikePyTorch) {
  // float -> int64 truncates toward zero: torch.tensor([-1.7, 0, 2.5]).to(torch.int64) = [-1, 0, 2]
  Tensor f = tensor({-1.7, 0, 2.5});
  Tensor i = f.to(DType::Int64);
  EXPECT_EQ(i.dtype(), DType::Int64);
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{-1, 0, 2}));
  // float -> bool is "nonzero"
  Tensor b = f.to(DType::Bool);
  EXPECT_EQ(b.dtype(), DType::Bool);
  EXPECT_EQ(b.to_vector<int>(), (std::vector<int>{1, 0, 1}));
  // bool -> float is 0/1
  expect_values(b.to(DType::Float32), {1, 0, 1});
  // float64 -> float32 rounds to the nearest float
  Tensor d = f64({0.1});
  EXPECT_EQ(d.to(DType::Float32).to_vector<float>()[0], 0.1f);
  EXPECT_EQ(d.to(DType::Float32).to(DType::Float64).item(), static_cast<double>(0.1f));
  // int64 -> float64 is exact up to 2^53
  Tensor big = from_vector<int64_t>({int64_t{1} << 53}, {1});
  EXPECT_EQ(big.to(DType::Float64).item(), 9007199254740992.0);
  // casting to the same dtype is a no-op handle to the same data
  EXPECT_TRUE(f.to(DType::Float32).array().shares_storage(f.array()));
  // a cast is a fresh array that does not follow later changes of the source
  Tensor c = f.to(DType::Float64);
  EXPECT_FALSE(c.array().shares_storage(f.array()));
  f.fill_(5);
  expect_values(c, {-1.7, 0, 2.5}, 1e-6);
}

TEST(TensorDTypes, TypePromotionFollowsPyTorch) {
  EXPECT_EQ(promote_types(DType::Int64, DType::Float32), DType::Float32);
  EXPECT_EQ(promote_types(DType::Float32, DType::Float64), DType::Float64);
  EXPECT_EQ(promote_types(DType::Bool, DType::Int64), DType::Int64);
  EXPECT_EQ(promote_types(DType::Bool, DType::Bool), DType::Bool);

  // int64 + float32 -> float32
  Tensor r1 = i64({1, 2}) + tensor({0.5, 0.25});
  EXPECT_EQ(r1.dtype(), DType::Float32);
  expect_values(r1, {1.5, 2.25});
  // float32 + float64 -> float64, computed in double after widening the float32 operand
  Tensor r2 = tensor({0.1}) + f64({0.2});
  EXPECT_EQ(r2.dtype(), DType::Float64);
  EXPECT_EQ(r2.item(), static_cast<double>(0.1f) + 0.2);
  // bool + int64 -> int64
  Tensor r3 = boolean({1, 0}) + i64({5, 5});
  EXPECT_EQ(r3.dtype(), DType::Int64);
  EXPECT_EQ(r3.to_vector<int64_t>(), (std::vector<int64_t>{6, 5}));
  // int64 op int64 stays int64 for + - *
  EXPECT_EQ((i64({7}) * i64({3})).dtype(), DType::Int64);
  EXPECT_EQ((i64({7}) - i64({3})).to_vector<int64_t>()[0], 4);
  // int / int is true division -> float32: torch.tensor([7, -7]) / torch.tensor([2, 2]) = [3.5, -3.5]
  Tensor q = i64({7, -7}) / i64({2, 2});
  EXPECT_EQ(q.dtype(), DType::Float32);
  expect_values(q, {3.5, -3.5});
  // comparisons promote before comparing: 1 < 1.5 and 2 > 1.5
  Tensor lt_ = i64({1, 2}) < tensor({1.5, 1.5});
  EXPECT_EQ(lt_.dtype(), DType::Bool);
  EXPECT_EQ(lt_.to_vector<int>(), (std::vector<int>{1, 0}));
  // where and cat promote too
  EXPECT_EQ(where(boolean({1, 0}), i64({1, 2}), tensor({0.5, 0.5})).dtype(), DType::Float32);
  Tensor cc = cat({i64({1, 2}), tensor({0.5})});
  EXPECT_EQ(cc.dtype(), DType::Float32);
  expect_values(cc, {1, 2, 0.5});
}

TEST(TensorDTypes, ScalarOperandsKeepAFloatTensorsDtype) {
  // A Python-style scalar does not widen a float tensor: float32 * 2.5 stays float32.
  EXPECT_EQ((tensor({1, 2}) * 2.5).dtype(), DType::Float32);
  EXPECT_EQ((tensor({1, 2}) / 3.0).dtype(), DType::Float32);
  EXPECT_EQ((2.0 - tensor({1, 2})).dtype(), DType::Float32);
  EXPECT_EQ((f64({1}) + 1.0).dtype(), DType::Float64);
  EXPECT_EQ((1.0 / f64({4})).dtype(), DType::Float64);
  expect_values(tensor({1, 2}) * 2.5, {2.5, 5});
  expect_values(2.0 - tensor({1, 2}), {1, 0});
  // the scalar is applied in the tensor's precision: 1 + 1e-10 is representable in float64
  EXPECT_EQ((f64({1}) + 1e-10).item(), 1.0 + 1e-10);
  // int64 with an integral scalar stays int64; a fractional scalar gives float32 (torch: [3] * 0.5 -> [1.5])
  EXPECT_EQ((i64({3}) + 2.0).dtype(), DType::Int64);
  EXPECT_EQ((i64({3}) + 2.0).to_vector<int64_t>()[0], 5);
  Tensor h = i64({3}) * 0.5;
  EXPECT_EQ(h.dtype(), DType::Float32);
  EXPECT_EQ(h.item(), 1.5);
  // int64 / integral scalar is still true division
  Tensor d = i64({3}) / 2.0;
  EXPECT_EQ(d.dtype(), DType::Float32);
  EXPECT_EQ(d.item(), 1.5);
}

// =====================================================================================================
// views
// =====================================================================================================

TEST(TensorViews, ReshapeAndViewShareStorageAndInferMinusOne) {
  Tensor a = arange(6);
  Tensor b = a.reshape({2, 3});
  EXPECT_TRUE(b.array().shares_storage(a.array()));
  EXPECT_EQ(b.shape(), (Shape{2, 3}));
  EXPECT_EQ(b.array().strides(), (Strides{3, 1}));
  Tensor c = a.view({3, -1});
  EXPECT_EQ(c.shape(), (Shape{3, 2}));
  EXPECT_TRUE(c.array().shares_storage(a.array()));
  EXPECT_EQ(a.reshape({2, -1, 1}).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(b.reshape({-1}).shape(), (Shape{6}));
  EXPECT_EQ(b.flatten().shape(), (Shape{6}));
  // a write into the base shows through every view
  a.array().data<float>()[4] = 40;
  expect_values(b, {0, 1, 2, 3, 40, 5});
  EXPECT_EQ(c.select(0, 2).select(0, 0).item(), 40);

  EXPECT_THAT(error_message<ShapeError>([&] { a.reshape({-1, -1}); }), HasSubstr("only one dimension can be -1"));
  std::string msg = error_message<ShapeError>([&] { a.reshape({4, -1}); });
  EXPECT_THAT(msg, HasSubstr("reshape"));
  EXPECT_THAT(msg, HasSubstr("(4, -1)"));
  EXPECT_THAT(msg, HasSubstr("(6,)"));
  msg = error_message<ShapeError>([&] { a.view({7}); });
  EXPECT_THAT(msg, HasSubstr("view"));
  EXPECT_THAT(msg, HasSubstr("(7,)"));
}

TEST(TensorViews, ViewOfTransposedIsRefusedWhileReshapeCopies) {
  Tensor m = arange(6).reshape({2, 3});
  Tensor mt = m.t();  // (3, 2), strides (1, 3)
  EXPECT_EQ(mt.array().strides(), (Strides{1, 3}));
  EXPECT_FALSE(mt.is_contiguous());
  std::string msg = error_message<ShapeError>([&] { mt.view({6}); });
  EXPECT_THAT(msg, HasSubstr("view"));
  EXPECT_THAT(msg, HasSubstr("(3, 2)"));
  Tensor r = mt.reshape({6});
  EXPECT_FALSE(r.array().shares_storage(m.array()));
  expect_values(r, {0, 3, 1, 4, 2, 5});
  // inserting a size-1 dim is compatible with any strides: still a view
  Tensor v = mt.view({3, 1, 2});
  EXPECT_TRUE(v.array().shares_storage(m.array()));
  expect_values(v, {0, 3, 1, 4, 2, 5});
}

TEST(TensorViews, ViewSplitsADimOfAPermutedTensorWithoutCopying) {
  // x[a][b][c] = 12a + 4b + c; p = x.permute(1, 0, 2): p[i][j][k] = x[j][i][k], strides (4, 12, 1)
  Tensor p = arange(24).reshape({2, 3, 4}).permute({1, 0, 2});
  EXPECT_EQ(p.array().strides(), (Strides{4, 12, 1}));
  // splitting the last dim (4 -> 2 x 2) is a view; merging dims 1 and 2 is not
  Tensor v = p.view({3, 2, 2, 2});
  EXPECT_TRUE(v.array().shares_storage(p.array()));
  std::vector<double> want;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 2; ++k)
        for (int l = 0; l < 2; ++l) want.push_back(12 * j + 4 * i + 2 * k + l);
  expect_values(v, want);
  EXPECT_THROW(p.view({3, 8}), ShapeError);
  Tensor r = p.reshape({3, 8});
  EXPECT_FALSE(r.array().shares_storage(p.array()));
  want.clear();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j)
      for (int c = 0; c < 4; ++c) want.push_back(12 * j + 4 * i + c);
  expect_values(r, want);
}

TEST(TensorViews, PermuteAndTranspose) {
  Tensor x = arange(24).reshape({2, 3, 4});
  Tensor p = x.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.array().strides(), (Strides{1, 12, 4}));
  EXPECT_TRUE(p.array().shares_storage(x.array()));
  EXPECT_EQ(p.select(0, 3).select(0, 1).select(0, 2).item(), 23);  // x[1][2][3] = 12 + 8 + 3
  Tensor t = x.transpose(0, -1);
  EXPECT_EQ(t.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(t.array().strides(), (Strides{1, 4, 12}));
  EXPECT_EQ(t.select(0, 1).select(0, 2).select(0, 1).item(), 21);  // x[1][2][1]
  EXPECT_EQ(arange(6).reshape({2, 3}).t().shape(), (Shape{3, 2}));
  EXPECT_THAT(error_message<ShapeError>([&] { x.permute({0, 0, 1}); }), HasSubstr("repeated"));
  EXPECT_THAT(error_message<ShapeError>([&] { x.permute({0, 1}); }), HasSubstr("(2, 3, 4)"));
  EXPECT_THROW(x.permute({0, 1, 3}), IndexError);
}

TEST(TensorViews, UnsqueezeAndSqueeze) {
  Tensor x = arange(6).reshape({2, 3});
  EXPECT_EQ(x.unsqueeze(0).shape(), (Shape{1, 2, 3}));
  Tensor u = x.unsqueeze(1);
  EXPECT_EQ(u.shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(u.array().strides(), (Strides{3, 3, 1}));
  EXPECT_TRUE(u.array().shares_storage(x.array()));
  Tensor last = x.unsqueeze(-1);
  EXPECT_EQ(last.shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(last.array().strides(), (Strides{3, 1, 1}));
  EXPECT_EQ(u.squeeze(1).shape(), (Shape{2, 3}));
  EXPECT_EQ(x.squeeze(0).shape(), (Shape{2, 3}));  // size 2: a no-op, as torch.squeeze(dim)
  EXPECT_EQ(x.array().reshape({1, 2, 1, 3, 1}).squeeze().shape(), (Shape{2, 3}));
  expect_values(u.squeeze(1), {0, 1, 2, 3, 4, 5});
  EXPECT_THROW(x.unsqueeze(3), IndexError);
  EXPECT_THROW(x.squeeze(2), IndexError);
}

TEST(TensorViews, ExpandGivesStrideZeroWithoutCopying) {
  Tensor c = tensor({1, 2, 3}).reshape({3, 1});
  Tensor e = c.expand({2, 3, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.array().strides(), (Strides{0, 1, 0}));
  EXPECT_TRUE(e.array().shares_storage(c.array()));
  std::vector<double> want;
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) want.push_back(i + 1);
  expect_values(e, want);
  EXPECT_EQ(c.expand({-1, 5}).shape(), (Shape{3, 5}));
  EXPECT_EQ(broadcast_to(c, {3, 2}).shape(), (Shape{3, 2}));
  // reshaping a broadcast view into one dim must copy (no single stride describes it)
  Tensor flat = e.reshape({24});
  EXPECT_FALSE(flat.array().shares_storage(c.array()));
  expect_values(flat, want);
  std::string msg = error_message<ShapeError>([&] { c.expand({2, 4}); });
  EXPECT_THAT(msg, HasSubstr("(3, 1)"));
  EXPECT_THAT(msg, HasSubstr("(2, 4)"));
  EXPECT_THROW(c.expand({4}), ShapeError);          // fewer dims than the input
  EXPECT_THROW(c.expand({-1, 3, 4}), ShapeError);   // -1 is only allowed for existing dims
}

TEST(TensorViews, SliceWithStepAndNegativeIndices) {
  Tensor a = arange(10);
  Tensor s = a.slice(0, 1, 8, 3);  // a[1:8:3]
  expect_values(s, {1, 4, 7});
  EXPECT_EQ(s.array().strides(), (Strides{3}));
  EXPECT_EQ(s.array().offset(), 1);
  EXPECT_TRUE(s.array().shares_storage(a.array()));
  expect_values(a.slice(0, -3, -1), {7, 8});   // a[-3:-1]
  expect_values(a.slice(0, 0, 10, 4), {0, 4, 8});
  EXPECT_EQ(a.slice(0, -100, 100).numel(), 10);  // python clamping
  EXPECT_EQ(a.slice(0, 8, 2).shape(), (Shape{0}));
  EXPECT_EQ(a.slice(0, 12, 20).shape(), (Shape{0}));
  Tensor m = arange(12).reshape({3, 4});
  Tensor cols = m.slice(1, 1, 4, 2);  // m[:, 1::2]
  EXPECT_EQ(cols.array().strides(), (Strides{4, 2}));
  expect_values(cols, {1, 3, 5, 7, 9, 11});
  expect_values(cols.slice(0, -1, 3), {9, 11});  // a slice of a slice
  EXPECT_THAT(error_message<ValueError>([&] { a.slice(0, 0, 5, 0); }), HasSubstr("slice"));
}

TEST(TensorViews, NarrowAndSelect) {
  Tensor m = arange(12).reshape({3, 4});
  Tensor n = m.narrow(1, 1, 2);
  EXPECT_TRUE(n.array().shares_storage(m.array()));
  expect_values(n, {1, 2, 5, 6, 9, 10});
  expect_values(m.narrow(1, -2, 2), {2, 3, 6, 7, 10, 11});
  expect_values(m.narrow(0, 2, 1), {8, 9, 10, 11});
  EXPECT_THAT(error_message<IndexError>([&] { m.narrow(1, 3, 2); }), HasSubstr("narrow"));
  Tensor col = m.select(1, -1);
  EXPECT_EQ(col.shape(), (Shape{3}));
  expect_values(col, {3, 7, 11});
  expect_values(m.select(0, 1), {4, 5, 6, 7});
  std::string msg = error_message<IndexError>([&] { m.select(0, 3); });
  EXPECT_THAT(msg, HasSubstr("select"));
  EXPECT_THAT(msg, HasSubstr("index 3"));
  EXPECT_THROW(m.select(0, -4), IndexError);
}

TEST(TensorViews, ScalarTensorsHaveNoDimToIndex) {
  Tensor s = scalar_tensor(3);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_THROW(s.size(0), IndexError);  // torch: "dimension specified as 0 but tensor has no dimensions"
  EXPECT_THROW(s.select(0, 0), IndexError);
  EXPECT_THROW(s.narrow(0, 0, 1), IndexError);
  EXPECT_THROW(s.slice(0, 0, 1), IndexError);
  EXPECT_EQ(s.squeeze(0).dim(), 0);       // torch.tensor(3.).squeeze(0) is a no-op
  EXPECT_EQ(s.array().transpose(0, -1).dim(), 0);  // so is torch.tensor(3.).transpose(0, -1)
  EXPECT_EQ(s.unsqueeze(0).shape(), (Shape{1}));
  EXPECT_EQ(s.reshape({1, 1}).shape(), (Shape{1, 1}));
  EXPECT_EQ(s.item(), 3);
}

TEST(TensorViews, ContiguousCopiesOnlyWhenNeeded) {
  Tensor m = arange(6).reshape({2, 3});
  EXPECT_TRUE(m.contiguous().array().shares_storage(m.array()));
  Tensor c = m.t().contiguous();
  EXPECT_FALSE(c.array().shares_storage(m.array()));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.array().strides(), (Strides{2, 1}));
  expect_values(c, {0, 3, 1, 4, 2, 5});
  // a slice with a step is not contiguous; a narrow of the first dim is
  EXPECT_FALSE(m.slice(1, 0, 3, 2).is_contiguous());
  EXPECT_TRUE(m.narrow(0, 1, 1).is_contiguous());
  Tensor k = m.clone();
  EXPECT_FALSE(k.array().shares_storage(m.array()));
  expect_values(k, {0, 1, 2, 3, 4, 5});
}

TEST(TensorViews, CopyThroughAViewWritesIntoTheBase) {
  Tensor base = zeros({3, 4});
  uint64_t v0 = base.version();
  Tensor col = base.select(1, 2);
  col.copy_(tensor({1, 2, 3}));
  EXPECT_EQ(base.version(), v0 + 1);
  expect_values(base, {0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0});
  base.slice(1, 0, 4, 2).fill_(7);  // columns 0 and 2
  // a (4,) int64 row broadcast into the (2, 4) float rows 1..2, with a cast
  base.narrow(0, 1, 2).copy_(i64({1, 2, 3, 4}));
  expect_values(base, {7, 0, 7, 0, 1, 2, 3, 4, 1, 2, 3, 4});
  // copy into a transposed view: d.t()[i][j] = src[i][j] = 2i + j
  Tensor d = zeros({2, 3});
  d.t().copy_(arange(6).reshape({3, 2}));
  expect_values(d, {0, 2, 4, 1, 3, 5});
  // a source that does not broadcast to the destination is refused (torch: "doesn't match the broadcast shape")
  EXPECT_THROW(zeros({3}).copy_(ones({1, 3})), ShapeError);
  EXPECT_THROW(zeros({3}).copy_(ones({2})), ShapeError);
}

TEST(TensorViews, VersionCounterBumpsOnEveryInPlaceOp) {
  Tensor t = zeros({3});
  EXPECT_EQ(t.version(), 0u);
  t.add_(ones({3}));
  EXPECT_EQ(t.version(), 1u);
  t.sub_(ones({3}));
  t.mul_(2.0);
  t.mul_(ones({3}));
  t.div_(full({3}, 2));
  t.fill_(1);
  t.zero_();
  EXPECT_EQ(t.version(), 7u);
  t.masked_fill_(boolean({1, 0, 0}), 5);
  t.copy_(t + 1.0);
  EXPECT_EQ(t.version(), 9u);
  expect_values(t, {6, 1, 1});
  // views share the counter of their storage
  Tensor v = t.slice(0, 0, 2);
  v.fill_(3);
  EXPECT_EQ(t.version(), 10u);
  EXPECT_EQ(v.version(), 10u);
  expect_values(t, {3, 3, 1});
  // out-of-place ops leave the input alone and start at version 0
  Tensor u = t * 2.0;
  EXPECT_EQ(t.version(), 10u);
  EXPECT_EQ(u.version(), 0u);
  EXPECT_EQ(t.clone().version(), 0u);
  EXPECT_EQ(full({2}, 3).version(), 0u);
  t.add_(ones({3}), -2);  // t += -2 * 1
  expect_values(t, {1, 1, -1});
}

// =====================================================================================================
// creation
// =====================================================================================================

TEST(TensorCreation, ConstantFills) {
  expect_values(zeros({2, 3}), std::vector<double>(6, 0));
  expect_values(ones({2, 2}, {.dtype = DType::Int64}), {1, 1, 1, 1});
  Tensor f = full({2}, 7, {.dtype = DType::Int64});
  EXPECT_EQ(f.dtype(), DType::Int64);
  EXPECT_EQ(f.to_vector<int64_t>(), (std::vector<int64_t>{7, 7}));
  expect_values(full({3}, -2.5, {.dtype = DType::Float64}), {-2.5, -2.5, -2.5});
  EXPECT_EQ(full({2}, 1, {.dtype = DType::Bool}).to_vector<int>(), (std::vector<int>{1, 1}));
  // empty shapes
  Tensor e = zeros({0, 3});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.shape(), (Shape{0, 3}));
  EXPECT_TRUE(values(e).empty());
  Tensor s = zeros({});
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item(), 0);
  EXPECT_EQ(scalar_tensor(2.5).item(), 2.5);
  EXPECT_EQ(empty({4, 5}).shape(), (Shape{4, 5}));
  Tensor like = zeros_like(ones({2}, {.dtype = DType::Float64}));
  EXPECT_EQ(like.dtype(), DType::Float64);
  expect_values(ones_like(i64({4, 5})), {1, 1});
  EXPECT_EQ(ones_like(i64({4, 5})).dtype(), DType::Int64);
  EXPECT_THAT(error_message<ValueError>([] { zeros({2, -1}); }), HasSubstr("(2, -1)"));
}

TEST(TensorCreation, RangesAndEye) {
  expect_values(arange(5), {0, 1, 2, 3, 4});
  expect_values(arange(0, 1, 0.25), {0, 0.25, 0.5, 0.75});
  expect_values(arange(1, 2.5, 0.5), {1, 1.5, 2});
  expect_values(arange(5, 0, -2), {5, 3, 1});  // torch.arange(5, 0, -2)
  EXPECT_EQ(arange(0, 1, 0.1).numel(), 10);     // torch.arange(0, 1, 0.1).shape == (10,)
  EXPECT_EQ(arange(0, 0.3, 0.1).numel(), 3);    // 0.3 / 0.1 = 2.9999999999999996 -> 3 elements
  EXPECT_EQ(arange(3, 3).numel(), 0);
  Tensor ia = arange(0, 6, 2, {.dtype = DType::Int64});
  EXPECT_EQ(ia.dtype(), DType::Int64);
  EXPECT_EQ(ia.to_vector<int64_t>(), (std::vector<int64_t>{0, 2, 4}));
  EXPECT_THROW(arange(0, 5, 0), ValueError);
  EXPECT_THROW(arange(5, 0, 1), ValueError);

  expect_values(linspace(0, 1, 5), {0, 0.25, 0.5, 0.75, 1});
  expect_values(linspace(-1, 1, 1), {-1});  // torch.linspace(-1, 1, 1) = [-1.]
  EXPECT_EQ(linspace(2, 3, 0).numel(), 0);
  expect_values(linspace(1, -1, 3, {.dtype = DType::Float64}), {1, 0, -1});
  EXPECT_EQ(linspace(0, 1, 7).to_vector<double>().back(), 1.0);  // the end point is exact

  expect_values(eye(3), {1, 0, 0, 0, 1, 0, 0, 0, 1});
  EXPECT_EQ(eye(2, {.dtype = DType::Int64}).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0, 1}));
}

TEST(TensorCreation, FromListsAndVectors) {
  Tensor m = tensor({{1, 2, 3}, {4, 5, 6}});
  EXPECT_EQ(m.shape(), (Shape{2, 3}));
  expect_values(m, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(tensor({1.5, -2}).shape(), (Shape{2}));
  EXPECT_THROW(tensor({{1, 2}, {3}}), ShapeError);  // ragged rows
  Tensor v = from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2});
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  EXPECT_EQ(v.dtype(), DType::Float64);
  EXPECT_EQ(v.select(0, 2).select(0, 1).item(), 6);
  Tensor b = from_vector<bool>({true, false, true}, {3});
  EXPECT_EQ(b.to_vector<int>(), (std::vector<int>{1, 0, 1}));
  Tensor r = from_vector<float>({1, 2}, {2}, /*requires_grad=*/true);
  EXPECT_TRUE(r.requires_grad());
  EXPECT_THAT(error_message<ShapeError>([] { from_vector<float>({1, 2, 3}, {2, 2}); }), HasSubstr("(2, 2)"));
}

// =====================================================================================================
// random numbers
// =====================================================================================================

TEST(TensorRandom, RandIsUniformOnHalfOpenUnitInterval) {
  const int64_t n = 100000;
  Generator g(1);
  for (DType t : {DType::Float32, DType::Float64}) {
    std::vector<double> u = values(rand({n}, {.dtype = t}, &g));
    double lo = 1, hi = 0, mean = 0;
    for (double v : u) lo = std::min(lo, v), hi = std::max(hi, v), mean += v / n;
    EXPECT_GE(lo, 0.0);
    EXPECT_LT(hi, 1.0);
    // U[0,1) has variance 1/12: the sample mean is within 5 standard errors of 1/2
    EXPECT_NEAR(mean, 0.5, 5 * std::sqrt(1.0 / 12 / n));
  }
  // float32 must stay below 1 even when the 53-bit double draw rounds up: with seed 1752027 the
  // 47th draw is 0.9999999948338858, which rounds to 1.0f (found by searching mt19937_64 seeds).
  Generator edge(1752027);
  std::vector<float> e = rand({47}, {}, &edge).to_vector<float>();
  EXPECT_LT(e[46], 1.0f);
  EXPECT_GT(e[46], 0.99999f);
}

TEST(TensorRandom, RandnHasZeroMeanAndUnitVariance) {
  const int64_t n = 100000;
  Generator g(2);
  for (DType t : {DType::Float32, DType::Float64}) {
    Tensor x = randn({n}, {.dtype = t}, &g);
    EXPECT_EQ(x.dtype(), t);
    std::vector<double> v = values(x);
    double mean = 0, var = 0;
    for (double a : v) mean += a / n;
    for (double a : v) var += (a - mean) * (a - mean) / (n - 1);
    EXPECT_NEAR(mean, 0.0, 5 / std::sqrt(n));      // standard error 1/sqrt(n)
    EXPECT_NEAR(var, 1.0, 5 * std::sqrt(2.0 / n));  // Var(s^2) = 2 sigma^4 / (n - 1) for a normal
  }
}

TEST(TensorRandom, RandintStaysInRangeAndCoversIt) {
  const int64_t n = 70000, k = 7;
  Generator g(3);
  Tensor r = randint(-3, 4, {n}, &g);
  EXPECT_EQ(r.dtype(), DType::Int64);
  std::vector<int64_t> counts(k, 0);
  for (int64_t v : r.to_vector<int64_t>()) {
    ASSERT_GE(v, -3);
    ASSERT_LT(v, 4);
    ++counts[v + 3];
  }
  double p = 1.0 / k, se = std::sqrt(n * p * (1 - p));  // binomial count
  for (int64_t c : counts) EXPECT_NEAR(static_cast<double>(c), n * p, 5 * se);
  EXPECT_EQ(randint(5, 6, {10}, &g).to_vector<int64_t>(), std::vector<int64_t>(10, 5));
  EXPECT_THAT(error_message<ValueError>([&] { randint(3, 3, {2}, &g); }), HasSubstr("randint"));
}

TEST(TensorRandom, BernoulliFrequencyMatchesP) {
  const int64_t n = 100000;
  Generator g(4);
  Tensor b = bernoulli(full({n}, 0.3), &g);
  EXPECT_EQ(b.dtype(), DType::Float32);
  std::vector<double> v = values(b);
  double mean = 0;
  for (double x : v) {
    ASSERT_TRUE(x == 0 || x == 1);
    mean += x / n;
  }
  EXPECT_NEAR(mean, 0.3, 5 * std::sqrt(0.3 * 0.7 / n));
  // p = 0 and p = 1 are certain; per-element probabilities
  expect_values(bernoulli(tensor({0, 1, 0, 1}), &g), {0, 1, 0, 1});
  EXPECT_EQ(bernoulli(f64({0.5}), &g).dtype(), DType::Float64);
  EXPECT_THAT(error_message<ValueError>([&] { bernoulli(tensor({0.5, 1.5}), &g); }), HasSubstr("1.5"));
}

TEST(TensorRandom, MultinomialWithReplacementMatchesFrequencies) {
  const int64_t n = 60000;
  Generator g(5);
  // weights need not sum to 1: {1, 0, 6, 3} -> p = {0.1, 0, 0.6, 0.3}
  Tensor s = multinomial(tensor({1, 0, 6, 3}), n, /*replacement=*/true, &g);
  EXPECT_EQ(s.shape(), (Shape{n}));
  EXPECT_EQ(s.dtype(), DType::Int64);
  std::vector<double> counts(4, 0);
  for (int64_t v : s.to_vector<int64_t>()) ++counts.at(v);
  EXPECT_EQ(counts[1], 0);  // a zero-probability class is never drawn
  const double p[] = {0.1, 0, 0.6, 0.3};
  for (int k : {0, 2, 3}) EXPECT_NEAR(counts[k], n * p[k], 5 * std::sqrt(n * p[k] * (1 - p[k]))) << "class " << k;
  // 2-D probs: one row of draws per row of probs
  Tensor rows = multinomial(tensor({{0, 1}, {1, 0}}), 5, true, &g);
  EXPECT_EQ(rows.shape(), (Shape{2, 5}));
  EXPECT_EQ(rows.to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 1, 1, 1, 0, 0, 0, 0, 0}));
}

TEST(TensorRandom, MultinomialWithoutReplacementDrawsDistinctClasses) {
  Generator g(6);
  // 7 nonzero classes out of 10, 7 draws: every row is a permutation of exactly those classes
  std::vector<double> w = {0.5, 0, 2, 1, 0, 3, 1, 1, 0, 4};
  std::vector<double> rows_w;
  const int64_t rows = 200;
  for (int64_t r = 0; r < rows; ++r) rows_w.insert(rows_w.end(), w.begin(), w.end());
  Tensor s = multinomial(from_vector<double>(rows_w, {rows, 10}), 7, /*replacement=*/false, &g);
  std::vector<int64_t> v = s.to_vector<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    std::set<int64_t> seen(v.begin() + r * 7, v.begin() + (r + 1) * 7);
    EXPECT_EQ(seen, (std::set<int64_t>{0, 2, 3, 5, 6, 7, 9})) << "row " << r;
  }
  // Frequencies of sequential draws without replacement, p = {.1, .2, .3, .4}:
  //   P(first = j) = p_j;  P(second = j) = p_j * sum_{i != j} p_i / (1 - p_i)
  //   = {0.134524, 0.241270, 0.308333, 0.315873} (computed in Python from the formula)
  const int64_t n = 20000;
  std::vector<double> probs;
  for (int64_t r = 0; r < n; ++r) probs.insert(probs.end(), {0.1, 0.2, 0.3, 0.4});
  std::vector<int64_t> d = multinomial(from_vector<double>(probs, {n, 4}), 2, false, &g).to_vector<int64_t>();
  std::vector<double> first(4, 0), second(4, 0);
  for (int64_t r = 0; r < n; ++r) {
    ASSERT_NE(d[2 * r], d[2 * r + 1]);
    ++first[d[2 * r]];
    ++second[d[2 * r + 1]];
  }
  const double p1[] = {0.1, 0.2, 0.3, 0.4};
  const double p2[] = {0.13452380952380955, 0.2412698412698413, 0.30833333333333335, 0.3158730158730159};
  for (int k = 0; k < 4; ++k) {
    EXPECT_NEAR(first[k], n * p1[k], 5 * std::sqrt(n * p1[k] * (1 - p1[k]))) << "first draw, class " << k;
    EXPECT_NEAR(second[k], n * p2[k], 5 * std::sqrt(n * p2[k] * (1 - p2[k]))) << "second draw, class " << k;
  }
  EXPECT_THROW(multinomial(tensor({1, 1}), 3, false, &g), ValueError);
  EXPECT_THROW(multinomial(tensor({1, -1}), 1, true, &g), ValueError);
  EXPECT_THROW(multinomial(tensor({0, 0}), 1, true, &g), ValueError);
}

TEST(TensorRandom, SameSeedSameDrawsAndGeneratorsAreIndependent) {
  manual_seed(123);
  std::vector<float> a = rand({5}).to_vector<float>();
  std::vector<float> an = randn({3}).to_vector<float>();
  manual_seed(123);
  EXPECT_EQ(rand({5}).to_vector<float>(), a);
  EXPECT_EQ(randn({3}).to_vector<float>(), an);
  manual_seed(124);
  EXPECT_NE(rand({5}).to_vector<float>(), a);

  // drawing from an explicit generator does not advance the global one
  manual_seed(123);
  Generator g(99);
  std::vector<float> from_g = rand({5}, {}, &g).to_vector<float>();
  EXPECT_EQ(rand({5}).to_vector<float>(), a);
  EXPECT_NE(from_g, a);
  // two generators with the same seed give the same stream
  Generator g1(7), g2(7);
  EXPECT_EQ(randn({4}, {}, &g1).to_vector<float>(), randn({4}, {}, &g2).to_vector<float>());
  EXPECT_EQ(randint(0, 1000, {4}, &g1).to_vector<int64_t>(), randint(0, 1000, {4}, &g2).to_vector<int64_t>());
}

TEST(TensorRandom, GeneratorStateResumesTheExactStream) {
  Generator g(42);
  for (int i = 0; i < 3; ++i) g.normal();  // an odd count: a Box-Muller spare is pending
  std::string state = g.state();
  std::vector<double> n1 = values(randn({7}, {.dtype = DType::Float64}, &g));
  std::vector<double> u1 = values(rand({5}, {.dtype = DType::Float64}, &g));
  g.set_state(state);
  EXPECT_EQ(values(randn({7}, {.dtype = DType::Float64}, &g)), n1);
  EXPECT_EQ(values(rand({5}, {.dtype = DType::Float64}, &g)), u1);
  // the state moves to another generator
  Generator h(0);
  h.set_state(state);
  EXPECT_EQ(values(randn({7}, {.dtype = DType::Float64}, &h)), n1);
  EXPECT_THROW(h.set_state("not a state"), ValueError);
}

// =====================================================================================================
// elementwise
// =====================================================================================================

TEST(TensorElementwise, UnaryKernelsMatchKnownValues) {
  Tensor x = f64({-2, -0.5, 0, 0.5, 2});
  expect_values(neg(x), {2, 0.5, 0, -0.5, -2}, 0);
  expect_values(-x, {2, 0.5, 0, -0.5, -2}, 0);
  expect_values(abs(x), {2, 0.5, 0, 0.5, 2}, 0);
  expect_values(sign(x), {-1, -1, 0, 1, 1}, 0);
  expect_values(relu(x), {0, 0, 0, 0.5, 2}, 0);
  expect_values(exp(f64({0, 1, -1})), {1, M_E, 1 / M_E}, 1e-15);
  expect_values(log(f64({0.5, 1, M_E})), {-M_LN2, 0, 1}, 1e-15);
  // log1p / expm1 keep full precision near 0 (log(1 + 1e-10) would lose ~7 digits)
  EXPECT_NEAR(log1p(f64({1e-10})).item(), 1e-10 - 5e-21, 1e-24);
  EXPECT_NEAR(expm1(f64({1e-10})).item(), 1e-10 + 5e-21, 1e-24);
  expect_values(log1p(f64({1})), {M_LN2}, 1e-15);
  expect_values(expm1(f64({1})), {M_E - 1}, 1e-15);
  expect_values(sqrt(f64({4, 2, 0})), {2, M_SQRT2, 0}, 1e-15);
  expect_values(rsqrt(f64({4, 0.25})), {0.5, 2}, 1e-15);
  expect_values(sin(f64({0, M_PI / 2, M_PI / 6})), {0, 1, 0.5}, 1e-15);
  expect_values(cos(f64({0, M_PI, M_PI / 3})), {1, -1, 0.5}, 1e-15);
  // torch.tanh / torch.sigmoid in float64
  expect_values(tanh(f64({1, -1, 0})), {0.7615941559557649, -0.7615941559557649, 0}, 1e-15);
  expect_values(sigmoid(f64({2, -2, 0})), {0.8807970779778823, 0.11920292202211755, 0.5}, 1e-15);
  // torch.nn.functional.gelu (exact erf form) on [-2, -0.5, 0, 0.5, 2] in float64
  expect_values(gelu(x), {-0.04550026389635842, -0.15426876936299344, 0.0, 0.34573123063700656, 1.9544997361036416}, 1e-14);
  // torch.nn.functional.gelu(x, approximate="tanh") on the same inputs, float64
  expect_values(gelu(x, "tanh"), {-0.04540230591222494, -0.15428599017485606, 0.0, 0.34571400982514394, 1.954597694087775}, 1e-15);
  EXPECT_THROW(gelu(x, "erf"), ValueError);
  // torch.nn.functional.softplus on the same inputs
  expect_values(softplus(x), {0.1269280110429725, 0.4740769841801067, 0.6931471805599453, 0.9740769841801067, 2.1269280110429727}, 1e-14);
  // torch.nn.functional.elu (alpha 1) on the same inputs
  expect_values(elu(x), {-0.8646647167633873, -0.3934693402873666, 0.0, 0.5, 2.0}, 1e-15);
  // torch.erf
  expect_values(erf(x), {-0.9953222650189527, -0.5204998778130465, 0.0, 0.5204998778130465, 0.9953222650189527}, 1e-15);
  expect_values(pow(x, 2), {4, 0.25, 0, 0.25, 4}, 0);
  expect_values(pow(x, 3), {-8, -0.125, 0, 0.125, 8}, 1e-15);
  expect_values(pow(f64({4, 9}), 0.5), {2, 3}, 1e-15);
  expect_values(pow(f64({2, 4}), -1), {0.5, 0.25}, 1e-15);
  expect_values(square(x), {4, 0.25, 0, 0.25, 4}, 0);
  // the same kernels on float32 keep the dtype
  for (Tensor y : {exp(tensor({1})), log(tensor({1})), sqrt(tensor({1})), tanh(tensor({1})), sigmoid(tensor({1})),
                   gelu(tensor({1})), softplus(tensor({1})), erf(tensor({1})), relu(tensor({1})), sin(tensor({1})),
                   cos(tensor({1})), log1p(tensor({1})), expm1(tensor({1})), rsqrt(tensor({1})), abs(tensor({1}))})
    EXPECT_EQ(y.dtype(), DType::Float32);
  EXPECT_NEAR(gelu(tensor({1})).item(), 0.8413447460685429, 1e-6);  // 1 * Phi(1)
  // integer inputs for the numeric (not float-only) kernels
  Tensor n = i64({-3, 0, 4});
  EXPECT_EQ(abs(n).to_vector<int64_t>(), (std::vector<int64_t>{3, 0, 4}));
  EXPECT_EQ(neg(n).to_vector<int64_t>(), (std::vector<int64_t>{3, 0, -4}));
  EXPECT_EQ(sign(n).to_vector<int64_t>(), (std::vector<int64_t>{-1, 0, 1}));
  EXPECT_EQ(relu(n).to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 4}));
  EXPECT_EQ(relu(n).dtype(), DType::Int64);
}

// The float32 ELU uses a vectorisable expm1 (tensor/vecmath.h): a Taylor polynomial near 0 and
// exp_approx(x) - 1 elsewhere. Against float64 expm1 at points on both sides of the switch at
// |x| = 1/2, near 0 (where e^x - 1 would cancel), far out, and at the IEEE special values.
TEST(TensorElementwise, Float32EluMatchesExpm1) {
  std::vector<float> xs = {-1e-30f, -1e-8f, -1e-4f, -0.01f, -0.3f, -0.4999f, -0.5f, -0.5001f, -0.7f, -1, -3, -10, -30, -87.5f, -200, 0, 1e-6f, 0.5f, 3};
  for (int i = 0; i <= 400; ++i) xs.push_back(-4.0f + 0.02f * static_cast<float>(i));
  const std::vector<float> got = elu(from_vector(xs, {static_cast<int64_t>(xs.size())})).to_vector<float>();
  for (size_t i = 0; i < xs.size(); ++i) {
    const double x = xs[i], want = x > 0 ? x : std::expm1(x);
    EXPECT_NEAR(got[i], want, 4e-7 * std::abs(want) + 1e-45) << "elu(" << x << ")";
  }
  const std::vector<float> special = elu(tensor({-kInf, kInf, kNaN})).to_vector<float>();
  EXPECT_EQ(special[0], -1.0f);
  EXPECT_EQ(special[1], kInf);
  EXPECT_TRUE(std::isnan(special[2]));
}

// The float32 tanh is -m / (2 + m), m = expm1_approx(-2|x|) (tensor/vecmath.h): against float64 tanh
// near 0 (where 1 - e^{-2|x|} would cancel), across expm1_approx's switch at |x| = 1/4, far out.
TEST(TensorElementwise, Float32TanhMatchesTanh) {
  std::vector<float> xs = {-1e-30f, -1e-8f, -1e-4f, 1e-4f, 0.2499f, 0.25f, 0.2501f, -0.2501f, 8.9f, 9.0f, 9.1f, -20, 50, 0};
  for (int i = 0; i <= 800; ++i) xs.push_back(-8.0f + 0.02f * static_cast<float>(i));
  const std::vector<float> got = tanh(from_vector(xs, {static_cast<int64_t>(xs.size())})).to_vector<float>();
  for (size_t i = 0; i < xs.size(); ++i) {
    const double want = std::tanh(static_cast<double>(xs[i]));
    EXPECT_NEAR(got[i], want, 6e-7 * std::abs(want) + 1e-45) << "tanh(" << xs[i] << ")";
  }
  const std::vector<float> special = tanh(tensor({-kInf, kInf, kNaN, -0.0f})).to_vector<float>();
  EXPECT_EQ(special[0], -1.0f);
  EXPECT_EQ(special[1], 1.0f);
  EXPECT_TRUE(std::isnan(special[2]));
  EXPECT_TRUE(std::signbit(special[3]));
}

// The float32 softplus is max(x, 0) + 2 atanh(e / (2 + e)), e = e^{-|x|}, by a series (tensor/vecmath.h).
TEST(TensorElementwise, Float32SoftplusMatchesLog1pExp) {
  std::vector<float> xs = {-200, -90, -87.5f, -30, -1e-8f, 0, 1e-8f, 15, 30, 87.5f, 100};
  for (int i = 0; i <= 800; ++i) xs.push_back(-20.0f + 0.05f * static_cast<float>(i));
  const std::vector<float> got = softplus(from_vector(xs, {static_cast<int64_t>(xs.size())})).to_vector<float>();
  for (size_t i = 0; i < xs.size(); ++i) {
    const double x = xs[i], want = x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    // below float's smallest normal number (x < -87) the result flushes to 0, as exp_approx does
    EXPECT_NEAR(got[i], want, 4e-7 * std::abs(want) + 1.2e-38) << "softplus(" << x << ")";
  }
  const std::vector<float> special = softplus(tensor({-kInf, kInf, kNaN})).to_vector<float>();
  EXPECT_EQ(special[0], 0.0f);
  EXPECT_EQ(special[1], kInf);
  EXPECT_TRUE(std::isnan(special[2]));
}

// The float32 erf and GELU use a vectorisable erf (tensor/vecmath.h): x P(x^2) below |x| = 1, the
// scaled erfc tail times e^{-x^2} above. Against float64 erf / erfc on both sides of the switch,
// near 0, far out, and at the IEEE special values; GELU = x Phi(x) keeps its relative accuracy far
// into the negative tail, where 1 + erf(x / sqrt 2) in float has no digit left.
TEST(TensorElementwise, Float32ErfAndGeluMatchFloat64) {
  std::vector<float> xs = {-1e-30f, -1e-8f, 1e-6f, 0.9999f, 1.0f, 1.0001f, -1.0001f, 3.9f, 4.0f, 4.1f, -6, 12, -30, 0};
  for (int i = 0; i <= 1200; ++i) xs.push_back(-6.0f + 0.01f * static_cast<float>(i));
  const Tensor x = from_vector(xs, {static_cast<int64_t>(xs.size())});
  const std::vector<float> e = erf(x).to_vector<float>(), g = gelu(x).to_vector<float>();
  for (size_t i = 0; i < xs.size(); ++i) {
    const double v = xs[i], want = std::erf(v);
    EXPECT_NEAR(e[i], want, 2.5e-7 * std::abs(want) + 1e-45) << "erf(" << v << ")";
  }
  // GELU through the tail: x Phi(x) with Phi = erfc(-x / sqrt 2) / 2, down to x = -12
  std::vector<float> gs;
  for (int i = 0; i <= 1800; ++i) gs.push_back(-12.0f + 0.01f * static_cast<float>(i));
  const std::vector<float> gg = gelu(from_vector(gs, {static_cast<int64_t>(gs.size())})).to_vector<float>();
  for (size_t i = 0; i < gs.size(); ++i) {
    const double v = gs[i], want = v * 0.5 * std::erfc(-v * M_SQRT1_2);
    // in the tail the rounding of x^2 / 2 in float moves e^{-x^2/2} by up to ~x^2 / 2 ulp
    EXPECT_NEAR(gg[i], want, (1e-6 + 2e-7 * v * v) * std::abs(want) + 1e-38) << "gelu(" << v << ")";
  }
  for (size_t i = 0; i < xs.size(); ++i) {
    const double v = xs[i], want = v * 0.5 * std::erfc(-v * M_SQRT1_2);
    EXPECT_NEAR(g[i], want, (1e-6 + 2e-7 * v * v) * std::abs(want) + 1e-38) << "gelu(" << v << ")";
  }
  const std::vector<float> special = erf(tensor({-kInf, kInf, kNaN, -0.0f})).to_vector<float>();
  EXPECT_EQ(special[0], -1.0f);
  EXPECT_EQ(special[1], 1.0f);
  EXPECT_TRUE(std::isnan(special[2]));
  EXPECT_TRUE(std::signbit(special[3]));
  const std::vector<float> gspecial = gelu(tensor({-kInf, kInf, kNaN})).to_vector<float>();
  EXPECT_TRUE(gspecial[0] == 0.0f || std::isnan(gspecial[0]));  // -inf * 0: torch gives nan too
  EXPECT_EQ(gspecial[1], kInf);
  EXPECT_TRUE(std::isnan(gspecial[2]));
}

TEST(TensorElementwise, ExtremeInputsStayFinite) {
  // sigmoid never computes exp of a large positive number: no inf/inf = NaN
  expect_values(sigmoid(tensor({1000, -1000, 0, 88.8f, -88.8f})), {1, 0, 0.5, 1, 0}, 1e-7);
  // softplus(x) = x above the threshold 20 (as PyTorch), and underflows gracefully below
  expect_values(softplus(tensor({100, 1000, 20.5, 19})), {100, 1000, 20.5, 19}, 1e-5);
  // log(1 + e^-100) = e^-100 (1 - e^-100 / 2 + ...) = e^-100 to double precision
  EXPECT_NEAR(softplus(f64({-100})).item(), std::exp(-100.0), 1e-58);
  expect_values(gelu(tensor({10, -10})), {10, 0}, 1e-6);
  // IEEE results: exp overflows to inf, log(0) = -inf, log/sqrt of negatives are NaN
  expect_values(exp(tensor({1000})), {kInf});
  expect_values(log(tensor({0, -1})), {-kInf, kNaN});
  expect_values(sqrt(tensor({-1})), {kNaN});
  // NaN propagates through relu (torch.relu(nan) = nan)
  expect_values(relu(tensor({kNaN, -1})), {kNaN, 0});
}

TEST(TensorElementwise, HasNonfinite) {
  EXPECT_FALSE(cpu::has_nonfinite(tensor({1, -2}).array()));
  EXPECT_TRUE(cpu::has_nonfinite(tensor({1, kNaN}).array()));
  EXPECT_TRUE(cpu::has_nonfinite(f64({-kInf}).array()));
  EXPECT_TRUE(cpu::has_nonfinite(tensor({kInf, 1, 2, 3}).slice(0, 0, 4, 2).array()));
  EXPECT_FALSE(cpu::has_nonfinite(tensor({kInf, 1, 2, 3}).slice(0, 1, 4, 2).array()));  // skips the inf
  EXPECT_FALSE(cpu::has_nonfinite(i64({1}).array()));
}

TEST(TensorElementwise, ClampHandlesInfinitiesAndNaN) {
  Tensor x = tensor({-kInf, -2, 0.5, 3, kInf, kNaN});
  expect_values(clamp(x, -1, 1), {-1, -1, 0.5, 1, 1, kNaN});
  expect_values(clamp(x, -kInf, 1), {-kInf, -2, 0.5, 1, 1, kNaN});
  expect_values(clamp_max(x, 1), {-kInf, -2, 0.5, 1, 1, kNaN});
  expect_values(clamp(x, 0, kInf), {0, 0, 0.5, 3, kInf, kNaN});
  expect_values(clamp_min(x, 0), {0, 0, 0.5, 3, kInf, kNaN});
  Tensor n = clamp(i64({-5, 0, 5}), -1, 2);
  EXPECT_EQ(n.dtype(), DType::Int64);
  EXPECT_EQ(n.to_vector<int64_t>(), (std::vector<int64_t>{-1, 0, 2}));
  EXPECT_THAT(error_message<ValueError>([&] { clamp(x, 2, 1); }), HasSubstr("clamp"));
}

TEST(TensorElementwise, BinaryOpsBroadcast) {
  Tensor a = tensor({0, 10, 20}).reshape({3, 1});
  Tensor b = tensor({0, 1, 2, 3}).reshape({1, 4});
  Tensor s = a + b;
  EXPECT_EQ(s.shape(), (Shape{3, 4}));
  std::vector<double> add_w, sub_w, mul_w, div_w;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      add_w.push_back(10 * i + j);
      sub_w.push_back(10 * i - j);
      mul_w.push_back(10 * i * j);
      div_w.push_back(j / (10.0 * i + 1));
    }
  expect_values(s, add_w);
  expect_values(a - b, sub_w);
  expect_values(a * b, mul_w);
  expect_values(b / (a + 1.0), div_w);
  expect_values(pow(tensor({2, 3}).reshape({2, 1}), tensor({1, 2, 3})), {2, 4, 8, 3, 9, 27});
  // scalar + tensor, and a 0-dim tensor operand
  expect_values(1.0 + b, {1, 2, 3, 4});
  Tensor z = scalar_tensor(0.5) * ones({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  expect_values(z, std::vector<double>(6, 0.5));
  // (2, 1, 4) + (3, 1) -> (2, 3, 4)
  Tensor c = arange(8).reshape({2, 1, 4}) + tensor({100, 200, 300}).reshape({3, 1});
  EXPECT_EQ(c.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(c.select(0, 1).select(0, 2).select(0, 3).item(), 307);  // 4 + 3 + 300
  // division by zero follows IEEE
  expect_values(tensor({1, -1, 0}) / zeros({3}), {kInf, -kInf, kNaN});
}

TEST(TensorElementwise, BinaryOpsOnNonContiguousOperands) {
  // x[i][j] = 4j + i (a transposed view), y[i][j] = 3i + j
  Tensor x = arange(12).reshape({3, 4}).t();
  Tensor y = arange(12).reshape({4, 3});
  std::vector<double> want;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) want.push_back(4 * i + 5 * j);
  expect_values(x + y, want);
  expect_values(y + x, want);
  // a stepped slice and an expanded (stride 0) operand
  expect_values(arange(10).slice(0, 0, 10, 2) * arange(5), {0, 2, 8, 18, 32});
  Tensor e = tensor({1, 2}).reshape({2, 1}).expand({2, 3});
  expect_values(e * arange(6).reshape({2, 3}).t().t(), {0, 1, 2, 6, 8, 10});
  // large enough to run on several threads: At[i][j] = A[j][i] = 300 j + i, plus j
  Tensor A = arange(60000, {.dtype = DType::Float64}).reshape({200, 300});
  Tensor r = A.t() + arange(200, {.dtype = DType::Float64});
  ASSERT_EQ(r.shape(), (Shape{300, 200}));
  std::vector<double> rv = values(r);
  int bad = 0;
  for (int i = 0; i < 300; ++i)
    for (int j = 0; j < 200; ++j) bad += rv[i * 200 + j] != 301.0 * j + i;
  EXPECT_EQ(bad, 0);
}

TEST(TensorElementwise, RandomLayoutsAndBroadcastsMatchAReference) {
  // Random shapes, non-contiguous layouts and broadcasts against an index-by-index reference
  // (to_vector walks the strides with a plain odometer, independently of the kernels' row merging).
  Generator g(31);
  for (int trial = 0; trial < 200; ++trial) {
    int64_t nd = g.randint(1, 5);
    Shape out(nd);
    for (auto& d : out) d = g.randint(1, 5);
    // b: drop some leading dims, set some others to 1 (broadcast); sometimes expand a 1 back (stride 0)
    Shape bs(out.begin() + g.randint(0, nd), out.end());
    for (auto& d : bs)
      if (g.uniform() < 0.3) d = 1;
    Tensor a = random_layout(out, g), b = random_layout(bs, g);
    if (!bs.empty() && bs.back() == 1 && g.uniform() < 0.5) {
      Shape e = bs;
      e.back() = out.back();
      b = b.expand(e);
      bs = e;
    }
    std::vector<double> av = values(a), bv = values(b);
    std::vector<double> want_add(av.size()), want_mul(av.size()), want_max(av.size());
    for (size_t i = 0; i < av.size(); ++i) {
      std::vector<int64_t> idx = unravel(static_cast<int64_t>(i), out), bidx(idx.end() - bs.size(), idx.end());
      for (size_t d = 0; d < bs.size(); ++d)
        if (bs[d] == 1) bidx[d] = 0;
      double x = av[i], y = bv[ravel(bidx, bs)];
      want_add[i] = x + y;
      want_mul[i] = x * y;
      want_max[i] = std::max(x, y);
    }
    SCOPED_TRACE(cat("trial ", trial, ": ", shape_str(out), " op ", shape_str(bs)));
    expect_values(a + b, want_add, 0);
    expect_values(b * a, want_mul, 0);
    expect_values(maximum(a, b), want_max, 0);
    expect_values(where(a > b, a, b), want_max, 0);
  }
}

TEST(TensorElementwise, MaximumMinimumPropagateNaN) {
  Tensor a = tensor({1, kNaN, 3, -kInf});
  Tensor b = tensor({2, 0, kNaN, 5});
  expect_values(maximum(a, b), {2, kNaN, kNaN, 5});
  expect_values(minimum(a, b), {1, kNaN, kNaN, -kInf});
  expect_values(maximum(tensor({0, 5}).reshape({2, 1}), tensor({1, 3, 7})), {1, 3, 7, 5, 5, 7});
  Tensor m = maximum(i64({1, 5}), i64({3, 2}));
  EXPECT_EQ(m.dtype(), DType::Int64);
  EXPECT_EQ(m.to_vector<int64_t>(), (std::vector<int64_t>{3, 5}));
  expect_values(minimum(i64({1, 5}), tensor({3, 2})), {1, 2});
}

TEST(TensorElementwise, ComparisonsGiveBool) {
  Tensor a = tensor({1, 2, 3}), b = tensor({3, 2, 1});
  auto as_int = [](const Tensor& t) {
    EXPECT_EQ(t.dtype(), DType::Bool);
    return t.to_vector<int>();
  };
  EXPECT_EQ(as_int(eq(a, b)), (std::vector<int>{0, 1, 0}));
  EXPECT_EQ(as_int(a != b), (std::vector<int>{1, 0, 1}));
  EXPECT_EQ(as_int(a < b), (std::vector<int>{1, 0, 0}));
  EXPECT_EQ(as_int(a <= b), (std::vector<int>{1, 1, 0}));
  EXPECT_EQ(as_int(a > b), (std::vector<int>{0, 0, 1}));
  EXPECT_EQ(as_int(ge(a, b)), (std::vector<int>{0, 1, 1}));
  EXPECT_EQ(as_int(a > 1.5), (std::vector<int>{0, 1, 1}));
  EXPECT_EQ(as_int(a == 2.0), (std::vector<int>{0, 1, 0}));
  // NaN compares unequal to everything, itself included
  Tensor n = tensor({kNaN});
  EXPECT_EQ(as_int(n == n), (std::vector<int>{0}));
  EXPECT_EQ(as_int(n != n), (std::vector<int>{1}));
  EXPECT_EQ(as_int(n < 1.0), (std::vector<int>{0}));
  // broadcast: (3, 1) > (1, 3) is the strictly lower triangle
  EXPECT_EQ(as_int(arange(3).reshape({3, 1}) > arange(3).reshape({1, 3})), (std::vector<int>{0, 0, 0, 1, 0, 0, 1, 1, 0}));
  Tensor p = boolean({1, 1, 0, 0}), q = boolean({1, 0, 1, 0});
  EXPECT_EQ(as_int(logical_and(p, q)), (std::vector<int>{1, 0, 0, 0}));
  EXPECT_EQ(as_int(logical_or(p, q)), (std::vector<int>{1, 1, 1, 0}));
  EXPECT_EQ(as_int(logical_not(p)), (std::vector<int>{0, 0, 1, 1}));
}

TEST(TensorElementwise, WhereAndMaskedFill) {
  Tensor cond = boolean({1, 0, 1}).reshape({3, 1});
  Tensor w = where(cond, arange(4).reshape({1, 4}), scalar_tensor(-1));
  EXPECT_EQ(w.shape(), (Shape{3, 4}));
  expect_values(w, {0, 1, 2, 3, -1, -1, -1, -1, 0, 1, 2, 3});
  EXPECT_THAT(error_message<DTypeError>([] { where(tensor({1, 0}), tensor({1, 2}), tensor({3, 4})); }), HasSubstr("where"));

  Tensor x = arange(6).reshape({2, 3});
  Tensor m = masked_fill(x, boolean({0, 1, 0}), -kInf);  // the mask broadcasts over rows
  EXPECT_EQ(m.dtype(), DType::Float32);
  expect_values(m, {0, -kInf, 2, 3, -kInf, 5});
  expect_values(masked_fill(x, boolean({1, 0}).reshape({2, 1}), 9), {9, 9, 9, 3, 4, 5});
  expect_values(x, {0, 1, 2, 3, 4, 5});  // out of place
  EXPECT_THAT(error_message<DTypeError>([&] { masked_fill(x, tensor({0, 1, 0}), 1); }), HasSubstr("masked_fill"));
  EXPECT_THAT(error_message<ShapeError>([&] { masked_fill(x, boolean({1, 0, 1, 0}), 1); }), HasSubstr("(2, 3)"));
  // the in-place form writes through a view into the base
  Tensor base = zeros({2, 3});
  base.select(0, 1).masked_fill_(boolean({1, 0, 1}), 4);
  expect_values(base, {0, 0, 0, 4, 0, 4});
}

TEST(TensorElementwise, InPlaceBinaryOps) {
  Tensor t = arange(6).reshape({2, 3});
  t.add_(tensor({1, 1, 1}));  // broadcast row
  expect_values(t, {1, 2, 3, 4, 5, 6});
  t.mul_(tensor({2, 3}).reshape({2, 1}));
  expect_values(t, {2, 4, 6, 12, 15, 18});
  t.div_(full({1}, 2));
  expect_values(t, {1, 2, 3, 6, 7.5, 9});
  Tensor col = t.select(1, 0);
  col.sub_(tensor({1, 6}));
  expect_values(t, {0, 2, 3, 0, 7.5, 9});
  // the result must keep the in-place operand's shape
  EXPECT_THAT(error_message<ShapeError>([&] { tensor({1, 2, 3}).add_(ones({2, 3})); }), HasSubstr("(2, 3)"));
  // and fit its dtype: torch.tensor([3, 4]).add_(torch.tensor([0.5, 0.5])) raises "result type Float can't be
  // cast to the desired output type Long" (truncating would silently leave [3, 4]); int64 /= int64 is a float too
  Tensor n = i64({3, 4});
  std::string msg = error_message<DTypeError>([&] { n.add_(tensor({0.5, 0.5})); });
  EXPECT_THAT(msg, HasSubstr("add_"));
  EXPECT_THAT(msg, HasSubstr("int64"));
  EXPECT_THAT(msg, HasSubstr("float32"));
  EXPECT_THROW(n.div_(i64({2, 2})), DTypeError);
  EXPECT_EQ(n.to_vector<int64_t>(), (std::vector<int64_t>{3, 4}));
  n.add_(boolean({1, 0}));  // bool and int64 fit in int64
  n.mul_(i64({2, 2}));
  EXPECT_EQ(n.to_vector<int64_t>(), (std::vector<int64_t>{8, 8}));
  Tensor f = f64({1, 2});
  f.add_(i64({1, 1}));  // an int operand into a float tensor is fine
  expect_values(f, {2, 3});
}

// =====================================================================================================
// reductions
// =====================================================================================================

// x[a][b][c] = 12a + 4b + c, float64
static Tensor x234() { return arange(24, {.dtype = DType::Float64}).reshape({2, 3, 4}); }

TEST(TensorReduce, SumOverOneSeveralAndAllDims) {
  Tensor x = x234();
  EXPECT_EQ(sum(x).item(), 276);  // 23 * 24 / 2
  EXPECT_EQ(sum(x).dim(), 0);
  Tensor s0 = sum(x, {0});  // 12 + 2 (4b + c)
  EXPECT_EQ(s0.shape(), (Shape{3, 4}));
  expect_values(s0, {12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34}, 0);
  expect_values(sum(x, {-1}), {6, 22, 38, 54, 70, 86}, 0);  // 4 (12a + 4b) + 6
  Tensor s02 = sum(x, {0, 2});                            // 60 + 32 b
  EXPECT_EQ(s02.shape(), (Shape{3}));
  expect_values(s02, {60, 92, 124}, 0);
  EXPECT_EQ(sum(x, {0, 2}, true).shape(), (Shape{1, 3, 1}));
  EXPECT_EQ(sum(x, {}, true).shape(), (Shape{1, 1, 1}));
  EXPECT_EQ(sum(x, {2, 0}).shape(), (Shape{3}));  // order of dims does not matter
  EXPECT_EQ(x.sum({1}, true).shape(), (Shape{2, 1, 4}));
  // the 0-dim case: dim 0 of a scalar is the scalar (torch.tensor(3.).sum(0) = 3)
  EXPECT_EQ(sum(scalar_tensor(3), {0}).item(), 3);
  EXPECT_EQ(sum(zeros({0, 3}), {0}).shape(), (Shape{3}));
  expect_values(sum(zeros({0, 3}), {0}), {0, 0, 0});
}

// A contiguous tensor reduced over a run of middle dims takes a row-by-row path (tensor/reduce.cpp);
// a non-contiguous copy of the same values takes the generic per-output walk. Both sum in the
// same order, so the results are equal to the bit, NaN included.
TEST(TensorReduce, MiddleDimsOfAContiguousTensorReduceAsTheGenericWalk) {
  Generator g(5);
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor x = randn({2, 3, 4, 5}, {.dtype = dt}, &g);
    Tensor strided = permute(permute(x, {3, 2, 1, 0}).contiguous(), {3, 2, 1, 0});
    ASSERT_FALSE(strided.is_contiguous());
    for (std::vector<int64_t> dims : {std::vector<int64_t>{1}, {1, 2}, {0, 1}, {2}, {-3}}) {
      SCOPED_TRACE(::testing::PrintToString(dims));
      EXPECT_EQ(sum(x, dims).to(DType::Float64).to_vector<double>(), sum(strided, dims).to(DType::Float64).to_vector<double>());
      EXPECT_EQ(amax(x, dims).to(DType::Float64).to_vector<double>(), amax(strided, dims).to(DType::Float64).to_vector<double>());
      EXPECT_EQ(amin(x, dims, true).to(DType::Float64).to_vector<double>(), amin(strided, dims, true).to(DType::Float64).to_vector<double>());
      EXPECT_EQ(logsumexp(x, dims).to(DType::Float64).to_vector<double>(), logsumexp(strided, dims).to(DType::Float64).to_vector<double>());
    }
  }
  Tensor ints = arange(0, 120, 1, {.dtype = DType::Int64}).reshape({2, 3, 4, 5});
  EXPECT_EQ(sum(ints, {1}).to_vector<int64_t>()[0], 0 + 20 + 40);
  std::vector<float> v(24, 1.0f);
  v[1 * 4 + 2] = kNaN;  // (0, 1, 2) of (2, 3, 4)
  Tensor with_nan = from_vector(v, {2, 3, 4});
  std::vector<float> m = amax(with_nan, {1}).to_vector<float>(), n = amin(with_nan, {1}).to_vector<float>();
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(std::isnan(m[i]), i == 2) << i;
    EXPECT_EQ(std::isnan(n[i]), i == 2) << i;
  }
}

TEST(TensorReduce, IntegerAndBoolSums) {
  // int64 sums are exact (2^40 + 1 is not a float32, and not needed as one)
  int64_t big = int64_t{1} << 40;
  Tensor t = from_vector<int64_t>({big, 1, big + 1}, {3});
  Tensor s = sum(t);
  EXPECT_EQ(s.dtype(), DType::Int64);
  EXPECT_EQ(s.item<int64_t>(), 2 * big + 2);
  // item<int64_t> is exact for int64 values that a double cannot hold
  EXPECT_EQ(from_vector<int64_t>({INT64_MAX}, {1}).item<int64_t>(), INT64_MAX);
  EXPECT_EQ(from_vector<int64_t>({(int64_t{1} << 53) + 1}, {}).item<int64_t>(), (int64_t{1} << 53) + 1);
  Tensor b = sum(boolean({1, 0, 1, 1}));
  EXPECT_EQ(b.dtype(), DType::Int64);  // torch: a bool sum counts
  EXPECT_EQ(b.item<int64_t>(), 3);
  EXPECT_EQ(sum(i64({1, 2, 3, 4}).reshape({2, 2}), {0}).to_vector<int64_t>(), (std::vector<int64_t>{4, 6}));
}

TEST(TensorReduce, MeanVarStd) {
  Tensor x = x234();
  EXPECT_EQ(mean(x).item(), 11.5);
  expect_values(mean(x, {1}), {4, 5, 6, 7, 16, 17, 18, 19}, 1e-12);  // 12a + 4 + c
  EXPECT_EQ(mean(x, {1}, true).shape(), (Shape{2, 1, 4}));
  Tensor v = f64({1, 2, 3, 4});
  EXPECT_NEAR(var(v).item(), 5.0 / 3, 1e-15);      // correction 1 (the default): sum (x - 2.5)^2 / 3
  EXPECT_NEAR(var(v, {}, 0).item(), 1.25, 1e-15);  // correction 0: / 4
  EXPECT_NEAR(dgm::std(v).item(), std::sqrt(5.0 / 3), 1e-15);
  EXPECT_NEAR(dgm::std(v, {}, 0).item(), std::sqrt(1.25), 1e-15);
  // along the last dim every row is {k, k+1, k+2, k+3}
  expect_values(var(x, {2}), std::vector<double>(6, 5.0 / 3), 1e-12);
  expect_values(var(x, {2}, 0), std::vector<double>(6, 1.25), 1e-12);
  // along dim 0 every pair is {v, v + 12}: sum of squares 72
  expect_values(var(x, {0}), std::vector<double>(12, 72), 1e-12);
  expect_values(var(x, {0}, 0), std::vector<double>(12, 36), 1e-12);
  // 0..23: var = n (n + 1) / 12 = 50 with correction 1, (n^2 - 1) / 12 = 575/12 with correction 0
  EXPECT_NEAR(var(x).item(), 50, 1e-12);
  EXPECT_NEAR(var(x, {}, 0).item(), 575.0 / 12, 1e-12);
  // over dims {0, 2}: the values {c, 12 + c} + 4b, c = 0..3, have sum of squared deviations 298
  Tensor v02 = var(x, {0, 2}, 1, true);
  EXPECT_EQ(v02.shape(), (Shape{1, 3, 1}));
  expect_values(v02, {298.0 / 7, 298.0 / 7, 298.0 / 7}, 1e-12);
  expect_values(dgm::std(x, {0, 2}, 0), std::vector<double>(3, std::sqrt(298.0 / 8)), 1e-12);
  EXPECT_TRUE(std::isnan(var(f64({1})).item()));  // one sample, correction 1: 0/0, as torch
  EXPECT_EQ(var(tensor({1, 2})).dtype(), DType::Float32);
  EXPECT_THAT(error_message<DTypeError>([] { mean(i64({1, 2})); }), HasSubstr("mean"));
}

TEST(TensorReduce, MaxMinWithIndicesFirstOccurrence) {
  Tensor m = tensor({{1, 5, 5, 2}, {7, 0, 7, -1}});
  auto [v1, i1] = max(m, 1);
  expect_values(v1, {5, 7});
  EXPECT_EQ(i1.dtype(), DType::Int64);
  EXPECT_EQ(i1.to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));  // ties: the first
  auto [v2, i2] = min(m, 1);
  expect_values(v2, {1, -1});
  EXPECT_EQ(i2.to_vector<int64_t>(), (std::vector<int64_t>{0, 3}));
  auto [v3, i3] = max(m, 0, true);
  EXPECT_EQ(v3.shape(), (Shape{1, 4}));
  expect_values(v3, {7, 5, 7, 2});
  EXPECT_EQ(i3.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 1, 0}));
  auto [v4, i4] = min(tensor({{3, 3}, {3, 1}}), -1);
  expect_values(v4, {3, 1});
  EXPECT_EQ(i4.to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(max(tensor({{3, 3}, {3, 1}}), 0).indices.to_vector<int64_t>(), (std::vector<int64_t>{0, 0}));
  Tensor am = argmax(m, 1, true);
  EXPECT_EQ(am.shape(), (Shape{2, 1}));
  EXPECT_EQ(am.to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(argmin(m, 0).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0, 1}));
  EXPECT_EQ(argmax(i64({4, 9, 9, 2}), 0).item<int64_t>(), 1);
  // NaN wins (torch.tensor([1., nan, 3.]).max(0) = (nan, 1))
  auto [nv, ni] = max(tensor({1, kNaN, 3}), 0);
  EXPECT_TRUE(std::isnan(nv.item()));
  EXPECT_EQ(ni.item<int64_t>(), 1);
  EXPECT_EQ(argmin(tensor({1, kNaN, -3}), 0).item<int64_t>(), 1);
  // the 0-dim case
  EXPECT_EQ(argmax(scalar_tensor(5), 0).item<int64_t>(), 0);
  EXPECT_THAT(error_message<ValueError>([] { max(zeros({2, 0}), 1); }), HasSubstr("max"));
}

TEST(TensorReduce, AmaxAmin) {
  Tensor x = x234();
  expect_values(amax(x, {0, 2}), {15, 19, 23}, 0);
  expect_values(amin(x, {0, 2}), {0, 4, 8}, 0);
  expect_values(amax(x, {-1}), {3, 7, 11, 15, 19, 23}, 0);
  EXPECT_EQ(amax(x).item(), 23);
  EXPECT_EQ(amin(x).item(), 0);
  EXPECT_EQ(amax(x, {1}, true).shape(), (Shape{2, 1, 4}));
  expect_values(amax(tensor({1, kNaN, 3})), {kNaN});
  expect_values(amin(tensor({-kInf, 2})), {-kInf});
  EXPECT_EQ(amax(i64({-4, -2})).item<int64_t>(), -2);
}

TEST(TensorReduce, LogsumexpIsStable) {
  // float32: 1000 + log 2, no overflow
  EXPECT_NEAR(logsumexp(tensor({1000, 1000}), {0}).item(), 1000 + M_LN2, 1e-3);
  EXPECT_NEAR(logsumexp(tensor({-1000, -1000}), {0}).item(), -1000 + M_LN2, 1e-3);
  EXPECT_NEAR(logsumexp(f64({0, std::log(3.0)}), {0}).item(), std::log(4.0), 1e-15);
  // an all -inf row is -inf (not NaN); a +inf entry gives +inf
  Tensor rows = tensor({{-kInf, -kInf}, {0, -kInf}, {kInf, 1}});
  expect_values(logsumexp(rows, {1}), {-kInf, 0, kInf});
  EXPECT_EQ(logsumexp(rows, {1}, true).shape(), (Shape{3, 1}));
  Tensor all = logsumexp(f64({0, 0, 0, 0}).reshape({2, 2}), {});  // no dims: all of them
  EXPECT_EQ(all.dim(), 0);
  EXPECT_NEAR(all.item(), std::log(4.0), 1e-15);
  // several dims: 8 zeros -> log 8
  Tensor l = logsumexp(zeros({2, 3, 4}), {0, 2});
  EXPECT_EQ(l.shape(), (Shape{3}));
  expect_values(l, std::vector<double>(3, std::log(8.0)), 1e-6);
  // on a transposed input: columns {0, 1} and {2, 3} of [[0, 2], [1, 3]]
  expect_values(logsumexp(f64({0, 1, 2, 3}).reshape({2, 2}).t(), {1}), {std::log(1 + M_E * M_E), std::log(M_E + std::exp(3.0))}, 1e-12);
  EXPECT_THAT(error_message<DTypeError>([] { logsumexp(i64({1, 2}), {0}); }), HasSubstr("logsumexp"));
}

TEST(TensorReduce, Cumsum) {
  expect_values(cumsum(tensor({1, 2, 3, 4}), 0), {1, 3, 6, 10});
  Tensor m = tensor({{1, 2}, {3, 4}});
  expect_values(cumsum(m, 0), {1, 2, 4, 6});
  expect_values(cumsum(m, -1), {1, 3, 3, 7});
  expect_values(cumsum(m.t(), 1), {1, 4, 2, 6});  // rows {1, 3} and {2, 4}
  Tensor ci = cumsum(i64({5, -1, 2}), 0);
  EXPECT_EQ(ci.dtype(), DType::Int64);
  EXPECT_EQ(ci.to_vector<int64_t>(), (std::vector<int64_t>{5, 4, 6}));
  Tensor cb = cumsum(boolean({1, 0, 1}), 0);
  EXPECT_EQ(cb.dtype(), DType::Int64);
  EXPECT_EQ(cb.to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 2}));
}

TEST(TensorReduce, NonContiguousInputs) {
  Tensor x = x234();
  // permuted: p[c][a][b] = x[a][b][c]; summing dim 0 is x summed over c
  expect_values(sum(x.permute({2, 0, 1}), {0}), {6, 22, 38, 54, 70, 86}, 0);
  // stepped slice: c in {0, 2} -> 2 (12a + 4b) + 2
  expect_values(sum(x.slice(2, 0, 4, 2), {2}), {2, 10, 18, 26, 34, 42}, 0);
  // expanded (stride 0)
  Tensor e = tensor({1, 2, 3}).expand({4, 3});
  expect_values(sum(e, {0}), {4, 8, 12});
  expect_values(mean(e, {0}), {1, 2, 3});
  expect_values(amax(e.t(), {1}), {1, 2, 3});
  EXPECT_EQ(argmax(x.transpose(0, 2), 2).to_vector<int64_t>(), std::vector<int64_t>(12, 1));
  expect_values(var(x.transpose(0, 2), {2}), std::vector<double>(12, 72), 1e-12);
  // a reduction big enough to run on several threads, over a transposed input:
  // A[j][k] = 40 j + k, At = A.t(); summing At over dim 0 gives 1600 j + 780
  Tensor A = arange(80000, {.dtype = DType::Float64}).reshape({2000, 40});
  std::vector<double> s = values(sum(A.t(), {0}));
  ASSERT_EQ(s.size(), 2000u);
  int bad = 0;
  for (int j = 0; j < 2000; ++j) bad += s[j] != 1600.0 * j + 780;
  EXPECT_EQ(bad, 0);
}

TEST(TensorReduce, RandomLayoutsAndDimsMatchAReference) {
  Generator g(32);
  for (int trial = 0; trial < 200; ++trial) {
    int64_t nd = g.randint(1, 5);
    Shape shape(nd);
    for (auto& d : shape) d = g.randint(1, 6);
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < nd; ++d)
      if (g.uniform() < 0.5) dims.push_back(g.uniform() < 0.5 ? d : d - nd);  // some as negative dims
    bool keepdim = g.uniform() < 0.5;
    std::vector<bool> reduced(nd, dims.empty());
    for (int64_t d : dims) reduced[(d + nd) % nd] = true;
    Shape out_keep = shape;
    for (int64_t d = 0; d < nd; ++d)
      if (reduced[d]) out_keep[d] = 1;
    Tensor x = random_layout(shape, g);
    std::vector<double> xv = values(x);
    int64_t n_out = numel_of(out_keep), n_red = x.numel() / n_out;
    std::vector<double> s(n_out, 0), mx(n_out, -kInf), mn(n_out, kInf);
    for (size_t i = 0; i < xv.size(); ++i) {
      std::vector<int64_t> idx = unravel(static_cast<int64_t>(i), shape);
      for (int64_t d = 0; d < nd; ++d)
        if (reduced[d]) idx[d] = 0;
      int64_t o = ravel(idx, out_keep);
      s[o] += xv[i];
      mx[o] = std::max(mx[o], xv[i]);
      mn[o] = std::min(mn[o], xv[i]);
    }
    std::vector<double> m(n_out), v(n_out, 0);
    for (int64_t o = 0; o < n_out; ++o) m[o] = s[o] / n_red;
    for (size_t i = 0; i < xv.size(); ++i) {
      std::vector<int64_t> idx = unravel(static_cast<int64_t>(i), shape);
      for (int64_t d = 0; d < nd; ++d)
        if (reduced[d]) idx[d] = 0;
      int64_t o = ravel(idx, out_keep);
      v[o] += (xv[i] - m[o]) * (xv[i] - m[o]) / n_red;  // correction 0
    }
    SCOPED_TRACE(cat("trial ", trial, ": ", shape_str(shape), " dims ", shape_str(dims), " keepdim ", keepdim));
    Tensor r = sum(x, dims, keepdim);
    Shape want_shape;
    for (int64_t d = 0; d < nd; ++d)
      if (!reduced[d] || keepdim) want_shape.push_back(out_keep[d]);
    EXPECT_EQ(r.shape(), want_shape);
    expect_values(r, s, 1e-12);
    expect_values(mean(x, dims, keepdim), m, 1e-12);
    expect_values(amax(x, dims, keepdim), mx, 0);
    expect_values(amin(x, dims, keepdim), mn, 0);
    expect_values(var(x, dims, 0, keepdim), v, 1e-12);
  }
}

TEST(TensorReduce, ResultsDoNotDependOnTheThreadCount) {
  // GUIDE: the same seed and thread count give the same numbers; reductions and softmax go further
  // and sum every output in a fixed order, so one thread and two threads agree bit for bit.
  Generator g(33);
  Tensor x = randn({300, 2000}, {}, &g);
  Tensor w = randn({2000, 64}, {}, &g);
  int before = cpu::get_num_threads();
  cpu::set_num_threads(1);
  std::vector<float> s1 = sum(x, {1}).to_vector<float>(), c1 = sum(x, {0}).to_vector<float>();
  std::vector<float> m1 = matmul(x, w).to_vector<float>(), p1 = softmax(x, 1).to_vector<float>();
  cpu::set_num_threads(2);
  EXPECT_EQ(sum(x, {1}).to_vector<float>(), s1);
  EXPECT_EQ(sum(x, {0}).to_vector<float>(), c1);
  EXPECT_EQ(matmul(x, w).to_vector<float>(), m1);
  EXPECT_EQ(softmax(x, 1).to_vector<float>(), p1);
  cpu::set_num_threads(before);
  EXPECT_THROW(cpu::set_num_threads(0), ValueError);
}

// Reductions over many elements per output are cut into ranges of at least 16384 elements (the
// count fixed by the shape), reduced in parallel and combined in range order (tensor/reduce.cpp):
// the results must be the same bits on any thread count, equal the one-pass answers (first index on
// a tie, the first NaN wins) and stay accurate.
TEST(TensorReduce, LongReductionsSplitIntoRangesKeepTheirResults) {
  Generator g(34);
  const int64_t n = 3 * 16384 + 77;  // 3 ranges
  Tensor x = randn({n}, {}, &g);
  // a middle run of 2 ranges of rows, and the same values with the reduced dim strided (generic walk)
  Tensor tall_strided = randn({1, 2 * 16384 + 5, 6}, {.dtype = DType::Float64}, &g).slice(2, 0, 6, 2);
  Tensor tall = tall_strided.contiguous();
  ASSERT_FALSE(tall_strided.is_contiguous());
  std::vector<float> xv = x.to_vector<float>();
  // the exact sum (to double rounding, in long double) and the one-pass max / argmax
  long double exact = 0;
  for (float v : xv) exact += v;
  int64_t first_max = 0;
  for (int64_t i = 1; i < n; ++i)
    if (xv[i] > xv[first_max]) first_max = i;
  Tensor ties = x.clone();  // the max again in a later range: the first index stays
  ties.data<float>()[2 * 16384 + 9] = xv[first_max];
  Tensor nans = x.clone();  // NaNs in the second and third ranges: the first one wins
  nans.data<float>()[16384 + 3] = NAN;
  nans.data<float>()[2 * 16384 + 1] = NAN;
  Tensor lines = randn({40, 700}, {.dtype = DType::Float64}, &g);  // cumsum: lines in parallel
  struct Results {
    std::vector<double> sum, tall_sum, tall_max, tall_strided_sum, cumsum;
    double amax, amin, nan_amax;
    int64_t argmax, tie_argmax, nan_argmax;
  };
  auto run = [&](int threads) {
    const int before = cpu::get_num_threads();
    cpu::set_num_threads(threads);
    Results r;
    r.sum = values(sum(x));
    r.tall_sum = values(sum(tall, {1}));
    r.tall_strided_sum = values(sum(tall_strided, {1}));
    r.tall_max = values(amax(tall, {1}));
    r.cumsum = values(cumsum(lines, 1));
    r.amax = amax(x).item();
    r.amin = amin(x).item();
    r.nan_amax = amax(nans).item();
    r.argmax = argmax(x, 0).item<int64_t>();
    r.tie_argmax = argmax(ties, 0).item<int64_t>();
    r.nan_argmax = argmax(nans, 0).item<int64_t>();
    cpu::set_num_threads(before);
    return r;
  };
  Results one = run(1);
  EXPECT_NEAR(one.sum[0], double(exact), 1e-6 * std::abs(double(exact)) + 1e-6);
  EXPECT_EQ(one.argmax, first_max);
  EXPECT_EQ(one.amax, xv[first_max]);
  EXPECT_EQ(one.amin, *std::min_element(xv.begin(), xv.end()));
  EXPECT_EQ(one.tie_argmax, first_max);
  EXPECT_TRUE(std::isnan(one.nan_amax));
  EXPECT_EQ(one.nan_argmax, 16384 + 3);
  // the middle run sums its rows in the same ranges and order as the generic walk of a strided copy
  EXPECT_EQ(one.tall_sum, one.tall_strided_sum);
  std::vector<double> tv = values(tall);
  for (int64_t i = 0; i < 3; ++i) {
    double s = 0, m = -INFINITY;
    for (int64_t r = 0; r < tall.shape()[1]; ++r) s += tv[r * 3 + i], m = std::max(m, tv[r * 3 + i]);
    EXPECT_NEAR(one.tall_sum[i], s, 1e-9);
    EXPECT_EQ(one.tall_max[i], m);
  }
  std::vector<double> lv = values(lines);
  for (int64_t l = 0; l < 40; ++l) {
    double s = 0;
    for (int64_t i = 0; i < 700; ++i) {
      s += lv[l * 700 + i];
      ASSERT_EQ(one.cumsum[l * 700 + i], s) << l << " " << i;
    }
  }
  for (int threads : {2, 3}) {
    SCOPED_TRACE(cat(threads, " threads"));
    Results r = run(threads);
    EXPECT_EQ(r.sum, one.sum);
    EXPECT_EQ(r.tall_sum, one.tall_sum);
    EXPECT_EQ(r.tall_strided_sum, one.tall_strided_sum);
    EXPECT_EQ(r.tall_max, one.tall_max);
    EXPECT_EQ(r.cumsum, one.cumsum);
    EXPECT_EQ(r.argmax, one.argmax);
    EXPECT_EQ(r.tie_argmax, one.tie_argmax);
    EXPECT_EQ(r.nan_argmax, one.nan_argmax);
  }
}

TEST(TensorReduce, SumToUndoesBroadcasting) {
  Tensor g = ones({2, 3, 4});
  Tensor s = sum_to(g, {3, 1});
  EXPECT_EQ(s.shape(), (Shape{3, 1}));
  expect_values(s, {8, 8, 8});
  expect_values(sum_to(g, {4}), {6, 6, 6, 6});
  EXPECT_THROW(sum_to(g, {2, 4}), ShapeError);
}

TEST(TensorReduce, DimErrors) {
  Tensor x = zeros({2, 3});
  std::string msg = error_message<IndexError>([&] { sum(x, {3}); });
  EXPECT_THAT(msg, HasSubstr("sum"));
  EXPECT_THAT(msg, HasSubstr("dim 3"));
  EXPECT_THAT(error_message<IndexError>([&] { max(x, -3); }), HasSubstr("max"));
  EXPECT_THAT(error_message<ValueError>([&] { sum(x, {1, -1}); }), HasSubstr("more than once"));
}

// =====================================================================================================
// matmul and linear algebra
// =====================================================================================================

TEST(TensorMatmul, VectorAndMatrixCases) {
  Tensor d = matmul(tensor({1, 2, 3}), tensor({4, 5, 6}));
  EXPECT_EQ(d.dim(), 0);
  EXPECT_EQ(d.item(), 32);
  Tensor c = matmul(tensor({{1, 2}, {3, 4}}), tensor({{5, 6}, {7, 8}}));
  EXPECT_EQ(c.shape(), (Shape{2, 2}));
  expect_values(c, {19, 22, 43, 50}, 0);
  Tensor vm = matmul(tensor({1, 2}), tensor({{1, 2, 3}, {4, 5, 6}}));
  EXPECT_EQ(vm.shape(), (Shape{3}));
  expect_values(vm, {9, 12, 15}, 0);
  Tensor mv = tensor({{1, 2, 3}, {4, 5, 6}}).matmul(tensor({1, 0, -1}));
  EXPECT_EQ(mv.shape(), (Shape{2}));
  expect_values(mv, {-2, -2}, 0);
  // vector with a batch of matrices: (3,) @ (2, 3, 2) -> (2, 2)
  Tensor vb = matmul(tensor({1, 1, 1}), arange(12).reshape({2, 3, 2}));
  EXPECT_EQ(vb.shape(), (Shape{2, 2}));
  expect_values(vb, {6, 9, 24, 27}, 0);
  EXPECT_EQ(matmul(f64({1, 2}), f64({3, 4})).dtype(), DType::Float64);
}

TEST(TensorMatmul, BatchedBroadcastAndTransposedOperands) {
  Generator g(11);
  // (2, 1, 3, 4) @ (5, 4, 2) -> (2, 5, 3, 2): the batch dims broadcast to (2, 5)
  Tensor a = randn({2, 1, 3, 4}, {.dtype = DType::Float64}, &g);
  Tensor b = randn({5, 4, 2}, {.dtype = DType::Float64}, &g);
  Tensor c = matmul(a, b);
  ASSERT_EQ(c.shape(), (Shape{2, 5, 3, 2}));
  std::vector<double> av = values(a), bv = values(b), cv = values(c);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 5; ++j) {
      std::vector<double> want = naive_matmul(&av[i * 12], &bv[j * 8], 3, 4, 2);
      for (int k = 0; k < 6; ++k) EXPECT_NEAR(cv[(i * 5 + j) * 6 + k], want[k], 1e-12) << i << "," << j << "," << k;
    }
  // plain batch: (3, 2, 4) @ (3, 4, 5)
  Tensor p = randn({3, 2, 4}, {.dtype = DType::Float64}, &g), q = randn({3, 4, 5}, {.dtype = DType::Float64}, &g);
  std::vector<double> pv = values(p), qv = values(q), rv = values(matmul(p, q));
  for (int bi = 0; bi < 3; ++bi) {
    std::vector<double> want = naive_matmul(&pv[bi * 8], &qv[bi * 20], 2, 4, 5);
    for (int k = 0; k < 10; ++k) EXPECT_NEAR(rv[bi * 10 + k], want[k], 1e-12);
  }
  // transposed operands are used as they are: A^T B^T == (B A)^T
  Tensor A = randn({4, 3}, {.dtype = DType::Float64}, &g), B = randn({5, 4}, {.dtype = DType::Float64}, &g);
  Tensor atbt = matmul(A.t(), B.t());  // (3, 4) @ (4, 5)
  std::vector<double> ba = values(matmul(B, A));  // (5, 3)
  std::vector<double> got = values(atbt);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) EXPECT_NEAR(got[i * 5 + j], ba[j * 3 + i], 1e-12);
  std::vector<double> ref = naive_matmul(values(A.t().contiguous()).data(), values(B.t().contiguous()).data(), 3, 4, 5);
  expect_values(atbt, ref, 1e-12);
  // a batch of transposed matrices
  Tensor bt = randn({2, 4, 3}, {.dtype = DType::Float64}, &g);
  Tensor r2 = matmul(bt.transpose(-1, -2), randn({4, 2}, {.dtype = DType::Float64}, &g));
  EXPECT_EQ(r2.shape(), (Shape{2, 3, 2}));
}

TEST(TensorMatmul, OddSizesInFloat32) {
  // sizes that are not multiples of any block size, against a double-precision reference
  Generator g(12);
  const int64_t M = 37, K = 53, N = 29;
  Tensor a = randn({M, K}, {}, &g), b = randn({K, N}, {}, &g);
  std::vector<double> want = naive_matmul(values(a).data(), values(b).data(), M, K, N);
  expect_values(matmul(a, b), want, 1e-4);
  // the same product with a column-major B
  Tensor bt = b.t().contiguous().t();
  EXPECT_FALSE(bt.is_contiguous());
  expect_values(matmul(a, bt), want, 1e-4);
}

TEST(TensorMatmul, Errors) {
  std::string msg = error_message<ShapeError>([] { matmul(zeros({2, 3}), zeros({4, 5})); });
  EXPECT_THAT(msg, HasSubstr("matmul"));
  EXPECT_THAT(msg, HasSubstr("(2, 3)"));
  EXPECT_THAT(msg, HasSubstr("(4, 5)"));
  // the kernel names the shapes as given, also for vectors
  msg = error_message<ShapeError>([] { cpu::matmul(Array::zeros({3}), Array::zeros({4})); });
  EXPECT_THAT(msg, HasSubstr("(3,)"));
  EXPECT_THAT(msg, HasSubstr("(4,)"));
  msg = error_message<ShapeError>([] { cpu::matmul(Array::zeros({2, 3}), Array::zeros({4})); });
  EXPECT_THAT(msg, HasSubstr("(2, 3)"));
  EXPECT_THAT(msg, HasSubstr("(4,)"));
  EXPECT_THROW(matmul(zeros({2, 2, 3}), zeros({3, 3, 2})), ShapeError);  // batch 2 vs 3
  msg = error_message<DTypeError>([] { matmul(i64({1, 2}), i64({3, 4})); });
  EXPECT_THAT(msg, HasSubstr("matmul"));
  EXPECT_THAT(msg, HasSubstr("int64"));
  msg = error_message<DTypeError>([] { matmul(zeros({2}), zeros({2}, {.dtype = DType::Float64})); });
  EXPECT_THAT(msg, HasSubstr("float32"));
  EXPECT_THAT(msg, HasSubstr("float64"));
  EXPECT_THROW(matmul(scalar_tensor(1), zeros({2})), ShapeError);
}

TEST(TensorLinalg, SlogdetOfKnownMatrices) {
  auto check = [](const Tensor& a, double sign, double logabs) {
    auto r = linalg::slogdet(a);
    EXPECT_EQ(r.sign.item(), sign) << a;
    if (std::isinf(logabs)) EXPECT_EQ(r.logabsdet.item(), logabs) << a;
    else EXPECT_NEAR(r.logabsdet.item(), logabs, 1e-12) << a;
  };
  check(f64({2, 1, 1, 3}).reshape({2, 2}), 1, std::log(5.0));
  check(f64({0, 1, 1, 0}).reshape({2, 2}), -1, 0);             // a swap: det -1
  check(f64({1, 2, 3, 4}).reshape({2, 2}), -1, std::log(2.0));  // det -2
  check(f64({2, 0, 0, 0, 3, 0, 0, 0, -4}).reshape({3, 3}), -1, std::log(24.0));
  // needs pivoting (a zero in the corner); torch.det gives -5
  check(f64({0, 2, 1, 1, 1, 0, 3, 0, 1}).reshape({3, 3}), -1, std::log(5.0));
  check(f64({1, 2, 2, 4}).reshape({2, 2}), 0, -kInf);  // singular: sign 0, log|det| = -inf
  check(zeros({3, 3}, {.dtype = DType::Float64}), 0, -kInf);
  // a batch keeps its batch shape
  auto r = linalg::slogdet(f64({2, 0, 0, 3, 0, 1, 1, 0}).reshape({2, 2, 2}));
  EXPECT_EQ(r.sign.shape(), (Shape{2}));
  expect_values(r.sign, {1, -1}, 0);
  expect_values(r.logabsdet, {std::log(6.0), 0}, 1e-12);
  EXPECT_THAT(error_message<ShapeError>([] { linalg::slogdet(zeros({2, 3})); }), HasSubstr("(2, 3)"));
  EXPECT_THROW(linalg::slogdet(eye(2, {.dtype = DType::Int64})), DTypeError);
}

TEST(TensorLinalg, InverseTimesMatrixIsIdentity) {
  // [[4, 7], [2, 6]]^-1 = [[6, -7], [-2, 4]] / 10
  expect_values(linalg::inv(f64({4, 7, 2, 6}).reshape({2, 2})), {0.6, -0.7, -0.2, 0.4}, 1e-15);
  Generator g(13);
  Tensor a = randn({3, 5, 5}, {.dtype = DType::Float64}, &g) + eye(5, {.dtype = DType::Float64}) * 5.0;
  Tensor ai = linalg::inv(a);
  EXPECT_EQ(ai.shape(), (Shape{3, 5, 5}));
  std::vector<double> id = values(matmul(a, ai));
  for (int b = 0; b < 3; ++b)
    for (int i = 0; i < 5; ++i)
      for (int j = 0; j < 5; ++j) EXPECT_NEAR(id[(b * 5 + i) * 5 + j], i == j ? 1 : 0, 1e-12);
  // float32, and a matrix that needs pivoting
  expect_values(matmul(linalg::inv(tensor({{0, 1}, {1, 1}})), tensor({{0, 1}, {1, 1}})), {1, 0, 0, 1}, 1e-6);
  std::string msg = error_message<ValueError>([] { linalg::inv(tensor({{1, 2}, {2, 4}})); });
  EXPECT_THAT(msg, HasSubstr("inverse"));
  EXPECT_THAT(msg, HasSubstr("singular"));
  EXPECT_THROW(linalg::inv(zeros({2, 3})), ShapeError);
}

// =====================================================================================================
// indexing and shaping
// =====================================================================================================

TEST(TensorIndexing, Gather) {
  // the torch.gather docs example
  Tensor x = tensor({{1, 2}, {3, 4}});
  Tensor idx = i64({0, 0, 1, 0}).reshape({2, 2});
  expect_values(gather(x, 1, idx), {1, 1, 4, 3});
  expect_values(gather(x, 0, idx), {1, 2, 3, 2});
  // an index smaller than the input in the other dims
  expect_values(gather(arange(12).reshape({3, 4}), 1, i64({3, 0}).reshape({2, 1})), {3, 4});
  // on a transposed input: xt = [[1, 3], [2, 4]]
  expect_values(gather(x.t(), 1, idx), {1, 1, 4, 2});
  std::string msg = error_message<IndexError>([&] { gather(x, 1, i64({0, 2}).reshape({1, 2})); });
  EXPECT_THAT(msg, HasSubstr("gather"));
  EXPECT_THAT(msg, HasSubstr("index 2"));
  EXPECT_THAT(msg, HasSubstr("size 2"));
  EXPECT_THAT(error_message<DTypeError>([&] { gather(x, 1, tensor({0, 1}).reshape({1, 2})); }), HasSubstr("int64"));
  // a transposed index: idx.t() = [[0, 1], [0, 0]]
  expect_values(gather(x, 1, idx.t()), {1, 2, 3, 3});
  expect_values(scatter_add(zeros({2, 2}), 1, idx.t(), tensor({{1, 2}, {3, 4}})), {1, 2, 7, 0});
  EXPECT_THROW(gather(x, 1, i64({0, 1})), ShapeError);  // 1-D index for a 2-D input
}

TEST(TensorIndexing, ScatterAddAccumulatesRepeatedIndices) {
  expect_values(scatter_add(zeros({3}), 0, i64({0, 1, 0, 2, 0}), tensor({1, 2, 3, 4, 5})), {9, 2, 4});
  // torch.zeros(3, 5).scatter_add(0, [[0,1,2,0,0],[2,0,0,1,2]], torch.ones(2, 5))
  Tensor idx = i64({0, 1, 2, 0, 0, 2, 0, 0, 1, 2}).reshape({2, 5});
  expect_values(scatter_add(zeros({3, 5}), 0, idx, ones({2, 5})), {1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1});
  // the input is not modified, and its values are kept
  Tensor base = ones({3});
  expect_values(scatter_add(base, 0, i64({2, 2}), tensor({5, 5})), {1, 1, 11});
  expect_values(base, {1, 1, 1});
  EXPECT_THAT(error_message<IndexError>([] { scatter_add(zeros({3}), 0, i64({3}), tensor({1})); }), HasSubstr("scatter_add"));
}

TEST(TensorIndexing, IndexSelectIndexAddEmbedding) {
  Tensor m = arange(12).reshape({3, 4});
  Tensor rows = index_select(m, 0, i64({2, 0, 2}));
  EXPECT_EQ(rows.shape(), (Shape{3, 4}));
  expect_values(rows, {8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11});
  expect_values(index_select(m, 1, i64({3, 1})), {3, 1, 7, 5, 11, 9});
  expect_values(index_select(m.t(), 0, i64({1})), {1, 5, 9});  // non-contiguous input
  expect_values(index_select(m, 0, i64({-1})), {8, 9, 10, 11});
  std::string msg = error_message<IndexError>([&] { index_select(m, 0, i64({3})); });
  EXPECT_THAT(msg, HasSubstr("index_select"));
  EXPECT_THAT(msg, HasSubstr("index 3"));
  EXPECT_THROW(index_select(m, 0, tensor({0})), DTypeError);

  expect_values(index_add(zeros({3, 2}), 0, i64({0, 2, 0}), tensor({{1, 2}, {3, 4}, {5, 6}})), {6, 8, 0, 0, 3, 4});
  // along dim 1: column 2 gets src columns 0 and 2, column 0 gets src column 1
  expect_values(index_add(zeros({2, 3}), 1, i64({2, 0, 2}), tensor({{1, 2, 3}, {4, 5, 6}})), {2, 0, 4, 5, 0, 10});
  EXPECT_THAT(error_message<ShapeError>([] { index_add(zeros({3, 2}), 0, i64({0}), zeros({1, 3})); }), HasSubstr("(1, 2)"));

  // weight[r] = {3r, 3r + 1, 3r + 2}; index (2, 2) -> (2, 2, 3)
  Tensor w = arange(12).reshape({4, 3});
  Tensor e = embedding(w, i64({1, 3, 0, 1}).reshape({2, 2}));
  EXPECT_EQ(e.shape(), (Shape{2, 2, 3}));
  expect_values(e, {3, 4, 5, 9, 10, 11, 0, 1, 2, 3, 4, 5});
  EXPECT_THROW(embedding(w, i64({4})), IndexError);
}

TEST(TensorIndexing, OneHot) {
  Tensor o = one_hot(i64({0, 2, 1}), 3);
  EXPECT_EQ(o.dtype(), DType::Int64);
  EXPECT_EQ(o.shape(), (Shape{3, 3}));
  EXPECT_EQ(o.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0, 0, 0, 1, 0, 1, 0}));
  Tensor o2 = one_hot(i64({3, 0, 1, 1}).reshape({2, 2}), 4);
  EXPECT_EQ(o2.shape(), (Shape{2, 2, 4}));
  EXPECT_EQ(o2.to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0}));
  std::string msg = error_message<IndexError>([] { one_hot(i64({0, 3}), 3); });
  EXPECT_THAT(msg, HasSubstr("one_hot"));
  EXPECT_THAT(msg, HasSubstr("3"));
  EXPECT_THROW(one_hot(i64({-1}), 3), IndexError);
  EXPECT_THROW(one_hot(tensor({0}), 3), DTypeError);
}

TEST(TensorIndexing, CatStackSplitChunk) {
  Tensor a = arange(6).reshape({2, 3}), b = arange(6, 10).reshape({2, 2});
  Tensor c1 = cat({a, b}, 1);
  EXPECT_EQ(c1.shape(), (Shape{2, 5}));
  expect_values(c1, {0, 1, 2, 6, 7, 3, 4, 5, 8, 9});
  Tensor c0 = cat({a, a.slice(0, 1, 2)}, -2);
  EXPECT_EQ(c0.shape(), (Shape{3, 3}));
  expect_values(c0, {0, 1, 2, 3, 4, 5, 3, 4, 5});
  expect_values(cat({a.t(), b.t()}, 0), {0, 3, 1, 4, 2, 5, 6, 8, 7, 9});  // non-contiguous inputs
  std::string msg = error_message<ShapeError>([&] { cat({a, b}, 0); });
  EXPECT_THAT(msg, HasSubstr("cat"));
  EXPECT_THAT(msg, HasSubstr("(2, 3)"));
  EXPECT_THAT(msg, HasSubstr("(2, 2)"));
  EXPECT_THROW(cat({a, arange(3)}, 0), ShapeError);
  EXPECT_THROW(cat({}, 0), ValueError);

  Tensor s0 = stack({tensor({1, 2}), tensor({3, 4}), tensor({5, 6})});
  EXPECT_EQ(s0.shape(), (Shape{3, 2}));
  expect_values(s0, {1, 2, 3, 4, 5, 6});
  Tensor s1 = stack({tensor({1, 2}), tensor({3, 4}), tensor({5, 6})}, -1);
  EXPECT_EQ(s1.shape(), (Shape{2, 3}));
  expect_values(s1, {1, 3, 5, 2, 4, 6});
  EXPECT_THAT(error_message<ShapeError>([] { stack({tensor({1, 2}), tensor({1})}); }), HasSubstr("stack"));

  Tensor r = arange(10);
  std::vector<Tensor> parts = split(r, 4);
  ASSERT_EQ(parts.size(), 3u);
  expect_values(parts[0], {0, 1, 2, 3});
  expect_values(parts[2], {8, 9});
  EXPECT_TRUE(parts[1].array().shares_storage(r.array()));  // views
  std::vector<Tensor> ch = chunk(r, 3);  // torch.chunk(arange(10), 3): sizes 4, 4, 2
  ASSERT_EQ(ch.size(), 3u);
  EXPECT_EQ(ch[0].numel(), 4);
  EXPECT_EQ(ch[1].numel(), 4);
  EXPECT_EQ(ch[2].numel(), 2);
  std::vector<Tensor> cc = chunk(arange(12).reshape({2, 6}), 3, 1);
  ASSERT_EQ(cc.size(), 3u);
  EXPECT_EQ(cc[1].shape(), (Shape{2, 2}));
  expect_values(cc[1], {2, 3, 8, 9});
}

TEST(TensorIndexing, TrilTriuWithOffsets) {
  Tensor m = arange(1, 13).reshape({3, 4});  // [[1..4], [5..8], [9..12]]
  expect_values(tril(m), {1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 11, 0});
  expect_values(tril(m, 1), {1, 2, 0, 0, 5, 6, 7, 0, 9, 10, 11, 12});
  expect_values(tril(m, -1), {0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0});
  expect_values(triu(m), {1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 11, 12});
  expect_values(triu(m, 1), {0, 2, 3, 4, 0, 0, 7, 8, 0, 0, 0, 12});
  expect_values(triu(m, -1), {1, 2, 3, 4, 5, 6, 7, 8, 0, 10, 11, 12});
  // a batch, and a transposed input: mt = [[1, 5, 9], [2, 6, 10], [3, 7, 11], [4, 8, 12]]
  expect_values(tril(m.t()), {1, 0, 0, 2, 6, 0, 3, 7, 11, 4, 8, 12});
  Tensor b = tril(ones({2, 2, 2}));
  expect_values(b, {1, 0, 1, 1, 1, 0, 1, 1});
  EXPECT_EQ(triu(ones({2, 2}, {.dtype = DType::Bool})).to_vector<int>(), (std::vector<int>{1, 1, 0, 1}));
  EXPECT_THAT(error_message<ShapeError>([] { tril(ones({3})); }), HasSubstr("tril"));
}

TEST(TensorIndexing, PadPositiveNegativeAndSeveralDims) {
  Tensor x = tensor({1, 2, 3});
  expect_values(pad(x, {1, 2}, 9), {9, 1, 2, 3, 9, 9});
  expect_values(pad(x, {-1, 1}), {2, 3, 0});  // negative padding crops
  expect_values(pad(x, {0, -2}), {1});
  Tensor m = arange(6).reshape({2, 3});  // [[0, 1, 2], [3, 4, 5]]
  // F.pad(m, (1, 0, 0, 1)): one column on the left, one row at the bottom
  Tensor p = pad(m, {1, 0, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{3, 4}));
  expect_values(p, {0, 0, 1, 2, 0, 3, 4, 5, 0, 0, 0, 0});
  // F.pad(m, (-1, 1, 1, -1)): crop the first column, add one on the right; add a row on top, crop the last
  Tensor q = pad(m, {-1, 1, 1, -1}, -7);
  EXPECT_EQ(q.shape(), (Shape{2, 3}));
  expect_values(q, {-7, -7, -7, 1, 2, -7});
  // only the last two dims of a 3-D tensor
  Tensor c = pad(arange(8).reshape({2, 2, 2}), {1, 1, 1, 1});
  EXPECT_EQ(c.shape(), (Shape{2, 4, 4}));
  EXPECT_EQ(sum(c).item(), 28);
  EXPECT_EQ(c.select(0, 1).select(0, 1).select(0, 1).item(), 4);  // x[1][0][0]
  EXPECT_EQ(c.select(0, 1).select(0, 2).select(0, 2).item(), 7);  // x[1][1][1]
  EXPECT_EQ(c.select(0, 1).select(0, 0).select(0, 1).item(), 0);  // border
  EXPECT_EQ(pad(m, {}).shape(), (Shape{2, 3}));
  EXPECT_THROW(pad(x, {1}), ShapeError);           // odd count
  EXPECT_THROW(pad(x, {1, 1, 1, 1}), ShapeError);  // more dims than the input
  EXPECT_THROW(pad(x, {-2, -2}), ShapeError);      // negative size
}

TEST(TensorSoftmax, RowsSumToOneAndLargeInputsAreStable) {
  // torch.softmax / log_softmax of [1, 2, 3] in float64
  expect_values(softmax(f64({1, 2, 3}), 0), {0.09003057317038045, 0.2447284710547976, 0.6652409557748218}, 1e-15);
  expect_values(log_softmax(f64({1, 2, 3}), 0), {-2.4076059644443806, -1.4076059644443804, -0.4076059644443804}, 1e-14);
  Generator g(21);
  Tensor s = softmax(randn({5, 7}, {}, &g) * 10.0, 1);
  expect_values(sum(s, {1}), std::vector<double>(5, 1), 1e-6);
  expect_values(softmax(tensor({1000, 1000, 1000}), 0), {1.0 / 3, 1.0 / 3, 1.0 / 3}, 1e-6);
  expect_values(softmax(tensor({1000, 0}), 0), {1, 0}, 1e-7);
  expect_values(log_softmax(tensor({1000, 0}), 0), {0, -1000}, 1e-3);
  expect_values(log_softmax(tensor({-1000, -1000}), 0), {-M_LN2, -M_LN2}, 1e-6);
  expect_values(softmax(tensor({0, -kInf}), 0), {1, 0});
  EXPECT_EQ(softmax(tensor({1, 2}, {.dtype = DType::Float64}), 0).dtype(), DType::Float64);
  EXPECT_THAT(error_message<DTypeError>([] { softmax(i64({1, 2}), 0); }), HasSubstr("softmax"));
  EXPECT_THAT(error_message<IndexError>([] { softmax(zeros({2, 3}), 2); }), HasSubstr("softmax"));
}

TEST(TensorSoftmax, DimOtherThanLast) {
  // torch.softmax(torch.tensor([[1., 2, 3], [1, 4, 0]]), 0): columns {1,1}, {2,4}, {3,0}
  Tensor x = f64({1, 2, 3, 1, 4, 0}).reshape({2, 3});
  expect_values(softmax(x, 0), {0.5, 0.11920292202211755, 0.9525741268224334, 0.5, 0.8807970779778823, 0.04742587317756679}, 1e-15);
  // the same through a transposed view, along its last dim
  Tensor y = softmax(x.t(), 1);
  expect_values(y, {0.5, 0.5, 0.11920292202211755, 0.8807970779778823, 0.9525741268224334, 0.04742587317756679}, 1e-15);
  // a 3-D tensor along the middle dim: every (a, c) column sums to 1 and log_softmax = log(softmax)
  Generator g(22);
  Tensor z = randn({2, 3, 4}, {.dtype = DType::Float64}, &g);
  expect_values(sum(softmax(z, 1), {1}), std::vector<double>(8, 1), 1e-12);
  expect_values(log_softmax(z, -2), values(log(softmax(z, 1))), 1e-12);
}

// =====================================================================================================
// printing
// =====================================================================================================

TEST(TensorPrint, FormatsLikePyTorchPlusShapeAndDtype) {
  // The values are formatted as PyTorch prints them (4 decimals, "1." for integral floats, a common
  // width); dgm always appends shape and dtype, and spells booleans the C++ way (true/false).
  EXPECT_EQ(str(tensor({1.5, 2, -3})), "tensor([ 1.5000,  2.0000, -3.0000], shape=(3,), dtype=float32)");
  EXPECT_EQ(str(tensor({1, 2, 3})), "tensor([1., 2., 3.], shape=(3,), dtype=float32)");
  EXPECT_EQ(str(tensor({0.1, 0.25}, {.dtype = DType::Float64})), "tensor([0.1000, 0.2500], shape=(2,), dtype=float64)");
  EXPECT_EQ(str(i64({1, -2})), "tensor([ 1, -2], shape=(2,), dtype=int64)");
  // int64 values are exact beyond 2^53: print(torch.tensor([2**63 - 1, -3])), print(torch.tensor([2**53 + 1]))
  EXPECT_EQ(str(from_vector<int64_t>({INT64_MAX, -3}, {2})),
            "tensor([9223372036854775807,                  -3], shape=(2,), dtype=int64)");
  EXPECT_EQ(str(from_vector<int64_t>({(int64_t{1} << 53) + 1}, {})), "tensor(9007199254740993, shape=(), dtype=int64)");
  EXPECT_EQ(str(boolean({1, 0})), "tensor([ true, false], shape=(2,), dtype=bool)");
  EXPECT_EQ(str(scalar_tensor(3.5)), "tensor(3.5000, shape=(), dtype=float32)");
  EXPECT_EQ(str(tensor({1, kNaN, kInf})), "tensor([1., nan, inf], shape=(3,), dtype=float32)");
  EXPECT_EQ(str(zeros({0})), "tensor([], shape=(0,), dtype=float32)");
  EXPECT_EQ(str(tensor({-0.5, 0})), "tensor([-0.5000,  0.0000], shape=(2,), dtype=float32)");
  // the common width comes from the nonzero finite values: print(torch.tensor([0., 1000.])), ([nan, 1.5])
  EXPECT_EQ(str(tensor({0, 1000})), "tensor([   0., 1000.], shape=(2,), dtype=float32)");
  EXPECT_EQ(str(tensor({kNaN, 1.5})), "tensor([   nan, 1.5000], shape=(2,), dtype=float32)");
  EXPECT_EQ(str(tensor({-kInf, 0})), "tensor([-inf, 0.], shape=(2,), dtype=float32)");
}

TEST(TensorPrint, NestedDimsAndScientificNotation) {
  EXPECT_EQ(str(tensor({{1, 2}, {3, 4}})), "tensor([[1., 2.],\n        [3., 4.]], shape=(2, 2), dtype=float32)");
  EXPECT_EQ(str(arange(6).reshape({2, 3}).t()),
            "tensor([[0., 3.],\n        [1., 4.],\n        [2., 5.]], shape=(3, 2), dtype=float32)");
  // print(torch.arange(8.).reshape(2, 2, 2)): one blank line between 2-D blocks
  EXPECT_EQ(str(arange(8).reshape({2, 2, 2})),
            "tensor([[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n         [6., 7.]]], shape=(2, 2, 2), dtype=float32)");
  // print(torch.arange(2.).reshape(2, 1, 1, 1)): two blank lines between 3-D blocks
  EXPECT_EQ(str(arange(2).reshape({2, 1, 1, 1})), "tensor([[[[0.]]],\n\n\n        [[[1.]]]], shape=(2, 1, 1, 1), dtype=float32)");
  // PyTorch switches to scientific notation when max/min of the nonzero |values| exceeds 1000,
  // the max exceeds 1e8, or (non-integral values) the min is below 1e-4
  EXPECT_EQ(str(tensor({1, 10000})), "tensor([1.0000e+00, 1.0000e+04], shape=(2,), dtype=float32)");
  EXPECT_EQ(str(tensor({1.5, 2000})), "tensor([1.5000e+00, 2.0000e+03], shape=(2,), dtype=float32)");
  EXPECT_EQ(str(tensor({1.5, 200})), "tensor([  1.5000, 200.0000], shape=(2,), dtype=float32)");
  EXPECT_EQ(str(f64({1e-5, 1})), "tensor([1.0000e-05, 1.0000e+00], shape=(2,), dtype=float64)");
  EXPECT_EQ(str(f64({1e9, 1})), "tensor([1.0000e+09, 1.0000e+00], shape=(2,), dtype=float64)");
  // more than 1000 elements are summarised: print(torch.arange(2000))
  EXPECT_EQ(str(arange(2000, {.dtype = DType::Int64})),
            "tensor([   0,    1,    2,  ..., 1997, 1998, 1999], shape=(2000,), dtype=int64)");
  // print(torch.arange(2000).reshape(1000, 2))
  EXPECT_EQ(str(arange(2000, {.dtype = DType::Int64}).reshape({1000, 2})),
            "tensor([[   0,    1],\n        [   2,    3],\n        [   4,    5],\n        ...,\n"
            "        [1994, 1995],\n        [1996, 1997],\n        [1998, 1999]], shape=(1000, 2), dtype=int64)");
}

TEST(TensorPrint, ShowsRequiresGradAndGradFn) {
  Tensor leaf = tensor({1, 2}, {.requires_grad = true});
  EXPECT_EQ(str(leaf), "tensor([1., 2.], shape=(2,), dtype=float32, requires_grad=true)");
  std::string y = str(leaf * 2.0);
  EXPECT_THAT(y, HasSubstr("tensor([2., 4.]"));
  EXPECT_THAT(y, HasSubstr("grad_fn=<mul>"));
  EXPECT_THAT(y, ::testing::Not(HasSubstr("requires_grad")));
  EXPECT_THAT(str(leaf.detach()), ::testing::Not(HasSubstr("requires_grad")));
  EXPECT_EQ(str(Tensor()), "tensor(undefined)");
}

// =====================================================================================================
// errors: typed, and the message names the op and the shapes / dtypes
// =====================================================================================================

TEST(TensorErrors, BroadcastMismatch) {
  std::string msg = error_message<ShapeError>([] { zeros({2, 3}) + zeros({4}); });
  EXPECT_THAT(msg, HasSubstr("add"));
  EXPECT_THAT(msg, HasSubstr("(2, 3)"));
  EXPECT_THAT(msg, HasSubstr("(4,)"));
  msg = error_message<ShapeError>([] { maximum(zeros({2, 3}), zeros({3, 2})); });
  EXPECT_THAT(msg, HasSubstr("maximum"));
  EXPECT_THAT(error_message<ShapeError>([] { zeros({2}) < zeros({3}); }), HasSubstr("lt"));
  EXPECT_THAT(error_message<ShapeError>([] { where(boolean({1, 0}), zeros({3}), zeros({1})); }), HasSubstr("where"));
}

TEST(TensorErrors, DimOutOfRange) {
  std::string msg = error_message<IndexError>([] { zeros({2, 3}).transpose(0, 2); });
  EXPECT_THAT(msg, HasSubstr("transpose"));
  EXPECT_THAT(msg, HasSubstr("dim 2"));
  EXPECT_THAT(error_message<IndexError>([] { zeros({2, 3}).size(-3); }), HasSubstr("size"));
  EXPECT_THAT(error_message<IndexError>([] { cat({zeros({2}), zeros({2})}, 1); }), HasSubstr("cat"));
  EXPECT_THAT(error_message<IndexError>([] { cumsum(zeros({2}), 1); }), HasSubstr("cumsum"));
  EXPECT_THAT(error_message<IndexError>([] { gather(zeros({2}), 1, i64({0})); }), HasSubstr("gather"));
}

TEST(TensorErrors, FloatOnlyOpsOnIntegers) {
  std::string msg = error_message<DTypeError>([] { exp(i64({1, 2})); });
  EXPECT_THAT(msg, HasSubstr("exp"));
  EXPECT_THAT(msg, HasSubstr("int64"));
  for (auto op : {+[](const Tensor& t) { return log(t); }, +[](const Tensor& t) { return sqrt(t); },
                  +[](const Tensor& t) { return sigmoid(t); }, +[](const Tensor& t) { return tanh(t); },
                  +[](const Tensor& t) { return gelu(t); }, +[](const Tensor& t) { return pow(t, 2.0); }})
    EXPECT_THROW(op(i64({1})), DTypeError);
  EXPECT_THAT(error_message<DTypeError>([] { neg(boolean({1})); }), HasSubstr("bool"));
  EXPECT_THAT(error_message<DTypeError>([] { tensor({1}).data<double>(); }), HasSubstr("float32"));
  EXPECT_THAT(error_message<DTypeError>([] { i64({1}).requires_grad_(); }), HasSubstr("int64"));
  EXPECT_THAT(error_message<DTypeError>([] { rand({2}, {.dtype = DType::Int64}); }), HasSubstr("rand"));
}

TEST(TensorErrors, ItemNeedsOneElement) {
  std::string msg = error_message<ShapeError>([] { zeros({2, 3}).item(); });
  EXPECT_THAT(msg, HasSubstr("item"));
  EXPECT_THAT(msg, HasSubstr("(2, 3)"));
  EXPECT_EQ(ones({1, 1}).item(), 1);
}

TEST(TensorErrors, IndexingOnScalarsIsAnErrorNotACrash) {
  Tensor s = scalar_tensor(5);
  EXPECT_THROW(index_select(s, 0, i64({0})), IndexError);
  EXPECT_THROW(gather(s, 0, from_vector<int64_t>({0}, {})), IndexError);
  EXPECT_THROW(cat({s, s}, 0), ShapeError);  // torch: zero-dimensional tensors cannot be concatenated
  expect_values(stack({s, s}), {5, 5});
}

// parallel_for wakes a thread per half grain of items at most (16 cores are not woken for 8192
// values), below the grain none, and covers every index exactly once whatever the team. (3 threads,
// as the other thread-count tests: a team of 8 leaves LLVM's libomp leaking its thread data under
// LeakSanitizer.)
TEST(TensorLoops, SmallLoopsWakeFewThreads) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(3);
  const int64_t g = cpu::kParallelGrain;
  EXPECT_EQ(cpu::team_for(g - 1, g), 1);
  EXPECT_EQ(cpu::team_for(g, g), 2);  // 2 of the 3
  EXPECT_EQ(cpu::team_for(3 * g / 2 - 1, g), 2);
  EXPECT_EQ(cpu::team_for(3 * g / 2, g), 3);
  EXPECT_EQ(cpu::team_for(100 * g, g), 3);
  EXPECT_EQ(cpu::team_for(2, 1), 2);  // a grain of 1: one item per thread at least
  for (int64_t n : {g - 1, g, 2 * g + 3, 9 * g}) {
    std::vector<int> hits(static_cast<size_t>(n), 0);
    std::atomic<int> most{0};
    cpu::parallel_for(n, [&](int64_t b, int64_t e) {
      int t = omp_get_num_threads(), m = most.load();
      while (t > m && !most.compare_exchange_weak(m, t)) {
      }
      for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
    });
    EXPECT_LE(most.load(), cpu::team_for(n, g)) << n;
    EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), n) << n;
  }
  omp_set_num_threads(before);
}

// A loop that asks for more ranges per thread (attention's heads) gets one item a range when the
// items are each worth a thread; the default stays at 4 ranges a thread. Every index comes once.
TEST(TensorLoops, HeavyItemsGoOneToARange) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(3);
  for (int64_t per_thread : {int64_t{4}, int64_t{64}}) {
    const int64_t n = 50;
    std::vector<int> hits(static_cast<size_t>(n), 0);
    std::atomic<int> ranges{0};
    cpu::parallel_for(n, [&](int64_t b, int64_t e) {
      ++ranges;
      for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
    }, 1, per_thread);
    EXPECT_EQ(ranges.load(), per_thread == 4 ? 12 : 50);
    EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), n);
  }
  omp_set_num_threads(before);
}

// zeros is split across threads from 256 KiB on; every byte is zeroed, also where the allocator
// hands back a block that held other values (the caching allocator reuses the freed one).
TEST(TensorLoops, ZerosClearsEveryByteOnAnyTeam) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(3);
  for (int64_t n : {int64_t{1}, int64_t{1} << 16, (int64_t{1} << 20) + 5}) {
    { Array dirty = Array::full({n}, 7.0, DType::Float32); }
    Array z = Array::zeros({n}, DType::Float32);
    const float* p = z.data<float>();
    EXPECT_EQ(std::count(p, p + n, 0.0f), n) << n;
  }
  omp_set_num_threads(before);
}

// combine_chunks_in_order folds each output's chunks in chunk order, from chunk 0, and stores every
// output once: a non-commutative combine (a * 10 + b on small integers spells the order as digits)
// shows both, on 3 threads and with enough outputs that the loop is split.
TEST(TensorLoops, CombineChunksInOrder) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(3);
  const int64_t outer = 3, chunks = 4, width = 5000;
  std::vector<int64_t> parts(static_cast<size_t>(outer * chunks * width));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < chunks; ++c)
      for (int64_t i = 0; i < width; ++i) parts[static_cast<size_t>((o * chunks + c) * width + i)] = (o + c + i) % 7 + 1;
  std::vector<int64_t> out(static_cast<size_t>(outer * width), -1), stores(out.size(), 0);
  cpu::combine_chunks_in_order(parts.data(), outer, chunks, width, [](int64_t a, int64_t b) { return a * 10 + b; },
                               [&](int64_t j, int64_t v) { out[static_cast<size_t>(j)] = v, ++stores[static_cast<size_t>(j)]; });
  omp_set_num_threads(before);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < width; ++i) {
      int64_t want = 0;
      for (int64_t c = 0; c < chunks; ++c) want = want * 10 + (o + c + i) % 7 + 1;
      ASSERT_EQ(out[static_cast<size_t>(o * width + i)], want) << "output (" << o << ", " << i << ")";
      ASSERT_EQ(stores[static_cast<size_t>(o * width + i)], 1);
    }
}

// for_each_row walks tiles of rows along the last outer dim (for_each_tile_ref), cut where the
// threads' ranges of rows begin and end: every row of a (5, 37, 1001, 3) broadcast comes exactly
// once with both operands' offsets right, on 3 threads (ranges that start mid-dim) and on 1.
TEST(TensorLoops, RowsComeOnceWithTheirOffsets) {
  const Shape shape{5, 37, 1001, 3};
  const std::array<Strides, 2> st{Strides{0, 3, 0, 1}, Strides{37 * 1001 * 3, 1001 * 3, 3, 1}};  // (1, 37, 1, 3) against a fresh output
  for (int threads : {1, 3}) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<int> seen(static_cast<size_t>(numel_of(shape)), 0);
    std::vector<int64_t> src(seen.size(), -1);
    cpu::for_each_row<2>(shape, st, [&](const std::array<int64_t, 2>& o, int64_t n, const std::array<int64_t, 2>& s) {
      for (int64_t i = 0; i < n; ++i) {
        ++seen[static_cast<size_t>(o[1] + i * s[1])];
        src[static_cast<size_t>(o[1] + i * s[1])] = o[0] + i * s[0];
      }
    });
    omp_set_num_threads(before);
    ASSERT_EQ(std::count(seen.begin(), seen.end(), 1), numel_of(shape)) << threads << " threads";
    for (int64_t a = 0; a < 5; ++a)
      for (int64_t b = 0; b < 37; ++b)
        for (int64_t c = 0; c < 1001; ++c)
          for (int64_t d = 0; d < 3; ++d)
            ASSERT_EQ(src[static_cast<size_t>(((a * 37 + b) * 1001 + c) * 3 + d)], b * 3 + d) << threads << " threads";
  }
}

// A contiguous elementwise op is one long row; it is split across threads within the row
// (tensor/loops.h). Every element must come out the same whatever the thread count, for long and
// short rows, broadcast operands and a non-contiguous input.
TEST(TensorElementwise, SameBitsForAnyThreadCount) {
  Generator gen(21);
  Tensor x = randn({3, 41, 1013}, {}, &gen) * 3.0, y = randn({41, 1}, {}, &gen), big = randn({100003}, {}, &gen);
  auto run = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<Tensor> out{elu(x), sigmoid(x), exp(big), x * y, x + 1.0, tanh(x.transpose(0, 2)), big * big, x.to(DType::Float64)};
    omp_set_num_threads(before);
    return out;
  };
  auto one = run(1), two = run(2), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) {
    std::vector<double> a = one[i].to(DType::Float64).to_vector<double>();
    EXPECT_EQ(a, two[i].to(DType::Float64).to_vector<double>()) << "output " << i << " differs between 1 and 2 threads";
    EXPECT_EQ(a, three[i].to(DType::Float64).to_vector<double>()) << "output " << i << " differs between 1 and 3 threads";
  }
}
