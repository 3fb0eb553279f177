// GEMM against a naive reference accumulated in double, over shapes that hit every path of
// tensor/gemm.cpp: tiny loops, vector-matrix rows, edge tiles, several K blocks, threads, and
// operands of every layout (row-major, transposed, column stride 2) and alpha/beta combination.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <dgm/tensor/errors.h>
#include <dgm/tensor/gemm.h>

namespace {

using dgm::cpu::gemm;
using dgm::cpu::gemm_batched;
using dgm::cpu::reset_l3_shared;
using dgm::cpu::set_l3_shared;

// How a matrix sits in memory. Strided = row-major with column stride 2 and 3 padding elements
// after each row: a view like x[:, ::2]. The gaps hold a sentinel that must never be read (NaN in
// inputs, which would poison the result) nor written (a finite marker in C).
enum class Layout { RowMajor, ColMajor, Strided };
const char* layout_name(Layout l) { return l == Layout::RowMajor ? "row" : l == Layout::ColMajor ? "col" : "strided"; }

template <class T>
struct Matrix {
  int64_t rows = 0, cols = 0, rs = 0, cs = 0;
  std::vector<T> storage;
  T& at(int64_t i, int64_t j) { return storage[size_t(i * rs + j * cs)]; }
  T at(int64_t i, int64_t j) const { return storage[size_t(i * rs + j * cs)]; }
  T* data() { return storage.data(); }
};

template <class T>
Matrix<T> make_matrix(int64_t rows, int64_t cols, Layout layout, std::mt19937& rng, T gap_value) {
  Matrix<T> m;
  m.rows = rows, m.cols = cols;
  size_t size = 0;
  switch (layout) {
    case Layout::RowMajor: m.rs = cols, m.cs = 1, size = size_t(rows * cols); break;
    case Layout::ColMajor: m.rs = 1, m.cs = rows, size = size_t(rows * cols); break;
    case Layout::Strided: m.rs = 2 * cols + 3, m.cs = 2, size = size_t(rows * m.rs); break;
  }
  m.storage.assign(std::max<size_t>(size, 1), gap_value);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) m.at(i, j) = T(dist(rng));
  return m;
}

template <class T>
constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();
template <class T>
constexpr T kMarker = T(12345);  // C's gaps: must survive unchanged

// Checks C_after == alpha * A @ B + beta * C_before elementwise, to within rounding: the error of
// a K-term float sum grows like sqrt(K) * eps times the sum of |terms| (a few eps more for the
// alpha and beta products). beta == 0 ignores C_before (it may hold NaN).
template <class T>
void expect_product(const Matrix<T>& A, const Matrix<T>& B, const Matrix<T>& C_before, const Matrix<T>& C_after, T alpha, T beta,
                    const std::string& what) {
  const int64_t M = A.rows, K = A.cols, N = B.cols;
  const double tol = 4.0 * (std::sqrt(double(K)) + 2.0) * double(std::numeric_limits<T>::epsilon());
  int failures = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double sum = 0, magnitude = 0;
      for (int64_t k = 0; k < K; ++k) {
        double term = double(A.at(i, k)) * double(B.at(k, j));
        sum += term;
        magnitude += std::abs(term);
      }
      double expected = double(alpha) * sum, scale = std::abs(double(alpha)) * magnitude;
      if (beta != T(0)) {
        expected += double(beta) * double(C_before.at(i, j));
        scale += std::abs(double(beta) * double(C_before.at(i, j)));
      }
      double got = double(C_after.at(i, j));
      if (!(std::abs(got - expected) <= tol * scale + std::numeric_limits<T>::min()) && failures++ < 5)
        ADD_FAILURE() << what << ": C(" << i << "," << j << ") = " << got << ", expected " << expected << " (tolerance "
                      << tol * scale << ")";
    }
  // Nothing outside C's elements was written.
  std::vector<bool> is_element(C_after.storage.size(), false);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) is_element[size_t(i * C_after.rs + j * C_after.cs)] = true;
  for (size_t p = 0; p < C_after.storage.size(); ++p)
    if (!is_element[p] && C_after.storage[p] != C_before.storage[p] && failures++ < 5)
      ADD_FAILURE() << what << ": wrote outside C at storage offset " << p;
}

// Runs one gemm on fresh random operands and checks it. C starts as NaN when beta == 0.
template <class T>
void check_gemm(int64_t M, int64_t N, int64_t K, T alpha, T beta, Layout la = Layout::RowMajor, Layout lb = Layout::RowMajor,
                Layout lc = Layout::RowMajor, uint32_t seed = 0) {
  std::mt19937 rng(seed + uint32_t(M * 131 + N * 17 + K));
  Matrix<T> A = make_matrix<T>(M, K, la, rng, kNaN<T>);
  Matrix<T> B = make_matrix<T>(K, N, lb, rng, kNaN<T>);
  Matrix<T> C = make_matrix<T>(M, N, lc, rng, kMarker<T>);
  if (beta == T(0))
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C.at(i, j) = kNaN<T>;
  Matrix<T> C_before = C;
  gemm(M, N, K, alpha, A.data(), A.rs, A.cs, B.data(), B.rs, B.cs, beta, C.data(), C.rs, C.cs);
  std::string what = "gemm M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) + " alpha=" +
                     std::to_string(alpha) + " beta=" + std::to_string(beta) + " A " + layout_name(la) + ", B " +
                     layout_name(lb) + ", C " + layout_name(lc);
  expect_product(A, B, C_before, C, alpha, beta, what);
}

template <class T>
class GemmTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(GemmTest, Types);

// Sizes around the tile sizes (MR = 4, 6 or 8, NR = 8, 12, 16 or 32 with NEON, AVX2 or AVX-512),
// primes, and 1 (vector products).
TYPED_TEST(GemmTest, ShapeSweepRowMajor) {
  using T = TypeParam;
  const int64_t sizes[] = {1, 2, 3, 5, 7, 8, 9, 11, 12, 13, 16, 17, 24, 25, 31, 32, 33, 47, 65};
  for (int64_t M : sizes)
    for (int64_t N : sizes)
      for (int64_t K : {int64_t(1), int64_t(4), int64_t(19), int64_t(64)}) check_gemm<T>(M, N, K, T(1), T(0));
}

// Every combination of operand layouts, on an edge-tile shape and on a multi-tile one.
TYPED_TEST(GemmTest, AllLayouts) {
  using T = TypeParam;
  const Layout layouts[] = {Layout::RowMajor, Layout::ColMajor, Layout::Strided};
  for (Layout la : layouts)
    for (Layout lb : layouts)
      for (Layout lc : layouts) {
        check_gemm<T>(13, 35, 21, T(1), T(0), la, lb, lc);
        check_gemm<T>(50, 70, 45, T(0.5), T(-1.5), la, lb, lc);
        check_gemm<T>(1, 40, 30, T(1), T(1), la, lb, lc);  // vector @ matrix
        check_gemm<T>(40, 1, 30, T(1), T(1), la, lb, lc);  // matrix @ vector
      }
}

TYPED_TEST(GemmTest, AlphaBeta) {
  using T = TypeParam;
  const std::pair<double, double> ab[] = {{1, 0}, {2.5, 0}, {1, 1}, {-0.5, 2}, {1, -1}, {0.25, 0.75}};
  for (auto [alpha, beta] : ab)
    for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{7, 9, 5}, {37, 45, 70}, {100, 90, 400}})
      check_gemm<T>(M, N, K, T(alpha), T(beta), Layout::RowMajor, Layout::ColMajor);
}

// K = 0 or alpha = 0: C = beta * C and A, B are never read (here they are NaN).
TYPED_TEST(GemmTest, EmptyKAndZeroAlpha) {
  using T = TypeParam;
  for (auto [K, alpha, beta] : {std::tuple<int64_t, double, double>{0, 1, 0}, {0, 1, 0.5}, {0, 2, 1}, {5, 0, 0}, {5, 0, 3}}) {
    const int64_t M = 20, N = 35;
    std::vector<T> A(size_t(M * K + 1), kNaN<T>), B(size_t(K * N + 1), kNaN<T>), C(size_t(M * N));
    for (size_t p = 0; p < C.size(); ++p) C[p] = beta == 0 ? kNaN<T> : T(p % 7);
    std::vector<T> C_before = C;
    gemm(M, N, K, T(alpha), A.data(), K, 1, B.data(), N, 1, T(beta), C.data(), N, 1);
    for (size_t p = 0; p < C.size(); ++p) EXPECT_EQ(C[p], beta == 0 ? T(0) : T(beta) * C_before[p]) << "K=" << K << " p=" << p;
  }
  // M or N = 0: nothing happens.
  T c = T(7);
  gemm(0, 1, 3, T(1), &c, 1, 1, &c, 1, 1, T(0), &c, 1, 1);
  gemm(1, 0, 3, T(1), &c, 1, 1, &c, 1, 1, T(0), &c, 1, 1);
  EXPECT_EQ(c, T(7));
}

// Stride 0 (an expanded view: every row of A, or every column of B, is the same memory).
TYPED_TEST(GemmTest, ZeroStrideOperands) {
  using T = TypeParam;
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{9, 40, 20}, {70, 33, 90}}) {
    std::mt19937 rng(3);
    Matrix<T> row = make_matrix<T>(1, K, Layout::RowMajor, rng, T(0));  // A = row expanded to M rows
    Matrix<T> col = make_matrix<T>(K, 1, Layout::RowMajor, rng, T(0));  // B = col expanded to N columns
    Matrix<T> A = row, B = col;
    A.rows = M, A.rs = 0;
    B.cols = N, B.cs = 0;
    Matrix<T> C = make_matrix<T>(M, N, Layout::RowMajor, rng, T(0)), C_before = C;
    gemm(M, N, K, T(1), A.data(), A.rs, A.cs, B.data(), B.rs, B.cs, T(0.5), C.data(), C.rs, C.cs);
    expect_product(A, B, C_before, C, T(1), T(0.5), "zero strides M=" + std::to_string(M));
  }
}

// Shapes that cross the cache blocks (K > KC, N > NC on some machines) and take the threaded paths.
TYPED_TEST(GemmTest, LargeAndThreaded) {
  using T = TypeParam;
  check_gemm<T>(250, 67, 530, T(1), T(0));
  check_gemm<T>(130, 150, 70, T(1), T(0.5), Layout::ColMajor, Layout::RowMajor);
  check_gemm<T>(97, 301, 129, T(-1), T(1), Layout::RowMajor, Layout::ColMajor, Layout::ColMajor);
  check_gemm<T>(15, 3100, 9, T(1), T(0));                                       // N > NC
  check_gemm<T>(64, 96, 2000, T(1), T(0), Layout::ColMajor, Layout::RowMajor);  // weight-gradient shape
  check_gemm<T>(2000, 40, 33, T(1), T(0), Layout::Strided, Layout::Strided, Layout::Strided);
  check_gemm<T>(1, 300, 2000, T(1), T(0), Layout::RowMajor, Layout::ColMajor);  // long vector @ W^T
  check_gemm<T>(3100, 37, 45, T(1), T(0.5), Layout::RowMajor, Layout::ColMajor);  // tall: row blocks shared out
}

// Deep products (K >= 16 KC blocks and >= 8 x M, N: weight gradients) are cut along K into slices
// whose partial products are added in order (on a machine with more than one core).
TYPED_TEST(GemmTest, DeepProductsCutAlongK) {
  using T = TypeParam;
  check_gemm<T>(70, 45, 9000, T(1), T(0), Layout::ColMajor, Layout::RowMajor);  // x^T dy, C NaN before
  check_gemm<T>(37, 50, 9001, T(-0.5), T(0.5), Layout::Strided, Layout::ColMajor, Layout::ColMajor);
  check_gemm<T>(6, 300, 9000, T(2), T(1), Layout::RowMajor, Layout::Strided, Layout::Strided);
}

// Deep products with a column-major A and at most 64 columns read A in place with a shorter KC
// (gemm_blocked): whole row panels where A lies, a partial last one packed; sliced or not.
TYPED_TEST(GemmTest, DeepProductsWithFewColumnsReadAInPlace) {
  using T = TypeParam;
  check_gemm<T>(70, 64, 9000, T(1), T(0), Layout::ColMajor, Layout::RowMajor);  // a weight gradient: x^T dy
  check_gemm<T>(37, 16, 3001, T(-0.5), T(0.5), Layout::ColMajor, Layout::ColMajor);
  check_gemm<T>(5, 7, 2000, T(1), T(1), Layout::ColMajor, Layout::RowMajor, Layout::ColMajor);  // one partial panel
  check_gemm<T>(200, 64, 1500, T(1), T(0), Layout::ColMajor, Layout::Strided);
}

// The result must not depend on the thread count, bit for bit (reproducibility guarantee).
// All splits: rectangles of C, or (where the cores share an L3) row blocks against one B packed by
// all threads; for tall products row blocks taken by whichever thread is free, for deep ones slices
// of K. Both settings of the L3 report run, whatever this machine's says.
TYPED_TEST(GemmTest, SameBitsForAnyThreadCount) {
  using T = TypeParam;
  // tall products take row blocks, of one K block ({3300, 40, 70}) and of several ({3300, 40, 1100})
  for (const auto& [M, N, K] :
       {std::tuple<int64_t, int64_t, int64_t>{203, 177, 300}, {3300, 40, 70}, {3300, 40, 1100}, {48, 40, 9000}}) {
    std::mt19937 rng(7);
    Matrix<T> A = make_matrix<T>(M, K, Layout::RowMajor, rng, T(0)), B = make_matrix<T>(K, N, Layout::RowMajor, rng, T(0));
    std::vector<T> C[5];
    const int saved = omp_get_max_threads();
    for (int run = 0; run < 5; ++run) {  // 1 thread, then 2 and 3 with the L3 shared and not
      const int threads = run == 0 ? 1 : 2 + (run - 1) / 2;
      omp_set_num_threads(threads);
      set_l3_shared(run % 2 == 1);
      C[run].resize(size_t(M * N));
      gemm(M, N, K, T(1), A.data(), A.rs, A.cs, B.data(), B.rs, B.cs, T(0), C[run].data(), N, 1);
    }
    reset_l3_shared();
    omp_set_num_threads(saved);
    for (int run = 1; run < 5; ++run)
      EXPECT_EQ(C[0], C[run]) << M << "x" << N << "x" << K << ": 1 vs " << (2 + (run - 1) / 2) << " threads, L3 "
                              << (run % 2 == 1 ? "shared" : "not shared");
  }
}

// Products where the cores share an L3 pack B once with all threads; elsewhere each thread packs
// its own columns. Both give the reference's values.
TYPED_TEST(GemmTest, BothThreadSplitsOfACube) {
  using T = TypeParam;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  for (bool shared : {true, false}) {
    set_l3_shared(shared);
    check_gemm<T>(203, 177, 300, T(1), T(0));
    check_gemm<T>(260, 100, 530, T(0.5), T(1), Layout::RowMajor, Layout::ColMajor);
  }
  reset_l3_shared();
  omp_set_num_threads(saved);
}

// The L3 report's CPU lists (sysfs's shared_cpu_list): ranges and singles; anything else is no list
// and so no report (the safe thread split), never an exception or a loop over a claimed range.
TEST(GemmL3Report, CpuListCoversOnlyWhatItNames) {
  using dgm::cpu::cpu_list_covers;
  EXPECT_TRUE(cpu_list_covers("0-7,16-23", {0, 1, 7, 16, 23}));
  EXPECT_FALSE(cpu_list_covers("0-7,16-23", {0, 8}));
  EXPECT_TRUE(cpu_list_covers("3", {3}));
  EXPECT_FALSE(cpu_list_covers("3", {2, 3}));
  EXPECT_TRUE(cpu_list_covers("0,2,4-5", {0, 2, 4, 5}));
  EXPECT_FALSE(cpu_list_covers("0,2,4-5", {1}));
  EXPECT_TRUE(cpu_list_covers("0-999999999", {0, 4095}));  // a huge range is compared, not walked
  for (const char* bad : {"", ",", "0,", ",0", "-1", "0-", "-", "7-3", "0 - 1", " 0", "0\n", "+1", "1-+2", "0x1",
                          "0-1-2", "1234567890", "0,,1", "a", "0-b"})
    EXPECT_FALSE(cpu_list_covers(bad, {0})) << "'" << bad << "'";
  EXPECT_FALSE(cpu_list_covers(std::string_view("0\0-1", 4), {0}));
}

// Products run from inside someone else's parallel loop stay single-threaded and correct (each
// thread has its own packing buffers).
TYPED_TEST(GemmTest, InsideParallelRegion) {
  using T = TypeParam;
  bool ok[4] = {};
#pragma omp parallel for num_threads(2)
  for (int t = 0; t < 4; ++t) {
    std::mt19937 rng{static_cast<uint32_t>(t)};
    const int64_t M = 60 + t, N = 70, K = 80;
    Matrix<T> A = make_matrix<T>(M, K, Layout::RowMajor, rng, T(0)), B = make_matrix<T>(K, N, Layout::RowMajor, rng, T(0));
    std::vector<T> C(size_t(M * N)), R(size_t(M * N));
    gemm(M, N, K, T(1), A.data(), A.rs, A.cs, B.data(), B.rs, B.cs, T(0), C.data(), N, 1);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j)
        for (int64_t k = 0; k < K; ++k) R[size_t(i * N + j)] += A.at(i, k) * B.at(k, j);
    double worst = 0;
    for (size_t p = 0; p < C.size(); ++p) worst = std::max(worst, std::abs(double(C[p] - R[p])));
    ok[t] = worst <= 4.0 * (std::sqrt(double(K)) + 2.0) * std::numeric_limits<T>::epsilon() * double(K);
  }
  for (int t = 0; t < 4; ++t) EXPECT_TRUE(ok[t]) << "product " << t;
}

// Batched products: batch stride 0 broadcasts one matrix to all products; both the
// one-product-per-thread and the threads-inside-each-product paths.
template <class T>
void check_batched(int64_t batch, int64_t M, int64_t N, int64_t K, bool broadcast_A, bool broadcast_B, Layout la, Layout lb,
                   T alpha, T beta) {
  std::mt19937 rng(uint32_t(batch * 7 + M));
  std::vector<Matrix<T>> As, Bs, Cs;
  for (int64_t b = 0; b < batch; ++b) {
    As.push_back(make_matrix<T>(M, K, la, rng, kNaN<T>));
    Bs.push_back(make_matrix<T>(K, N, lb, rng, kNaN<T>));
    Cs.push_back(make_matrix<T>(M, N, Layout::RowMajor, rng, kMarker<T>));
  }
  if (broadcast_A) As.assign(size_t(batch), As[0]);
  if (broadcast_B) Bs.assign(size_t(batch), Bs[0]);
  // Lay the batch out as one array per operand: product b at offset b * stride.
  auto flatten = [](const std::vector<Matrix<T>>& ms, bool broadcast, int64_t& stride) {
    stride = broadcast ? 0 : int64_t(ms[0].storage.size());
    std::vector<T> flat;
    for (size_t b = 0; b < (broadcast ? 1 : ms.size()); ++b) flat.insert(flat.end(), ms[b].storage.begin(), ms[b].storage.end());
    return flat;
  };
  int64_t bsA, bsB, bsC;
  std::vector<T> a = flatten(As, broadcast_A, bsA), b = flatten(Bs, broadcast_B, bsB), c = flatten(Cs, false, bsC);
  gemm_batched(batch, M, N, K, alpha, a.data(), bsA, As[0].rs, As[0].cs, b.data(), bsB, Bs[0].rs, Bs[0].cs, beta, c.data(), bsC,
               Cs[0].rs, Cs[0].cs);
  for (int64_t p = 0; p < batch; ++p) {
    Matrix<T> after = Cs[size_t(p)];
    std::copy(c.begin() + p * bsC, c.begin() + (p + 1) * bsC, after.storage.begin());
    expect_product(As[size_t(p)], Bs[size_t(p)], Cs[size_t(p)], after, alpha, beta,
                   "gemm_batched product " + std::to_string(p) + " of " + std::to_string(batch) + " M=" + std::to_string(M) +
                       " N=" + std::to_string(N) + " K=" + std::to_string(K));
  }
}

TYPED_TEST(GemmTest, Batched) {
  using T = TypeParam;
  check_batched<T>(1, 5, 6, 7, false, false, Layout::RowMajor, Layout::RowMajor, T(1), T(0));
  check_batched<T>(4, 33, 20, 16, false, true, Layout::RowMajor, Layout::ColMajor, T(1), T(0));  // shared weight
  check_batched<T>(3, 17, 29, 40, true, false, Layout::ColMajor, Layout::RowMajor, T(2), T(1));  // shared A
  check_batched<T>(16, 49, 49, 16, false, false, Layout::RowMajor, Layout::ColMajor, T(1), T(0));  // q @ k^T, per thread
  check_batched<T>(3, 100, 120, 90, false, false, Layout::RowMajor, Layout::RowMajor, T(1), T(0));  // threads inside
  check_batched<T>(5, 3, 1, 8, false, false, Layout::Strided, Layout::Strided, T(1), T(0.5));       // tiny
  check_batched<T>(2, 20, 30, 0, false, false, Layout::RowMajor, Layout::RowMajor, T(1), T(0.5));   // K = 0
  T x = T(1);
  gemm_batched(0, 2, 2, 2, T(1), &x, 0, 1, 1, &x, 0, 1, 1, T(0), &x, 0, 1, 1);  // empty batch: no-op
  EXPECT_EQ(x, T(1));
}

TYPED_TEST(GemmTest, BadArgumentsThrow) {
  using T = TypeParam;
  T x[4] = {};
  EXPECT_THROW(gemm(-1, 2, 2, T(1), x, 2, 1, x, 2, 1, T(0), x, 2, 1), dgm::ValueError);
  // Two products written to the same C would race.
  EXPECT_THROW(gemm_batched(2, 2, 2, 2, T(1), x, 0, 2, 1, x, 0, 2, 1, T(0), x, 0, 2, 1), dgm::ValueError);
}

}  // namespace

// The epilogue (bias per column, then ReLU) equals the plain product followed by the same by hand,
// on every path: blocked and threaded (row-major C; A packed, and read in place against 7 panels of B),
// small products, a single row, a column-major C, a deep product.
// Each target gets its kernel: NEON on 64-bit ARM (where every build has it), AVX2 or AVX-512 in a
// native x86 build that has them, the portable one otherwise. A build whose SIMD detection broke
// would still pass every product test, at a fraction of the speed.
TEST(Gemm, KernelMatchesTheTarget) {
  const std::string isa = dgm::cpu::gemm_kernel_isa();
#if defined(__aarch64__)
  EXPECT_EQ(isa, "NEON");
#elif defined(__AVX512F__)
  EXPECT_EQ(isa, "AVX-512");
#elif defined(DGM_EMULATE_AVX512)
  EXPECT_EQ(isa, "AVX-512 emulated on AVX2");
#elif defined(__AVX2__) && defined(__FMA__)
  EXPECT_EQ(isa, "AVX2+FMA");
#else
  EXPECT_EQ(isa, "portable");
#endif
}

TEST(Gemm, EpilogueAddsTheBiasAndAppliesReluOnEveryPath) {
  std::mt19937 rng(21);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  struct Case {
    int64_t M, N, K;
    bool col_major_c;
  };
  for (Case c : {Case{300, 70, 40, false}, Case{2000, 256, 64, false}, Case{5000, 100, 64, false}, Case{3, 4, 5, false}, Case{1, 50, 20, false},
                 Case{90, 33, 17, true},
                 Case{40, 33, 9000, false}})
    for (bool relu : {false, true})
      for (bool with_bias : {false, true}) {
        std::vector<float> A(size_t(c.M * c.K)), B(size_t(c.K * c.N)), bias(size_t(c.N)), expected(size_t(c.M * c.N)), got(size_t(c.M * c.N));
        for (auto* v : {&A, &B, &bias})
          for (float& x : *v) x = dist(rng);
        const int64_t rs = c.col_major_c ? 1 : c.N, cs = c.col_major_c ? c.M : 1;
        gemm(c.M, c.N, c.K, 1.f, A.data(), c.K, 1, B.data(), c.N, 1, 0.f, expected.data(), rs, cs);
        for (int64_t i = 0; i < c.M; ++i)
          for (int64_t j = 0; j < c.N; ++j) {
            float& e = expected[size_t(i * rs + j * cs)];
            const float v = e + (with_bias ? bias[size_t(j)] : 0.f);
            e = relu && v < 0 ? 0.f : v;
          }
        gemm(c.M, c.N, c.K, 1.f, A.data(), c.K, 1, B.data(), c.N, 1, 0.f, got.data(), rs, cs,
             dgm::cpu::GemmEpilogue<float>{with_bias ? bias.data() : nullptr, relu});
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_EQ(got[i], expected[i]) << c.M << "x" << c.N << "x" << c.K << " relu " << relu << " bias " << with_bias << " at " << i;
      }
}

// The epilogue's ReLU keeps a NaN, as torch.relu does, whether the kernel finishes a whole tile in
// registers or an edge tile is finished after: a NaN in row 0 of A makes row 0 of C NaN.
TEST(Gemm, EpilogueReluKeepsNaN) {
  for (int64_t N : {int64_t(64), int64_t(13)}) {  // whole tiles, and edge tiles only
    const int64_t M = 24, K = 32;
    std::vector<float> A(size_t(M * K), 0.5f), B(size_t(K * N), -1.f), bias(size_t(N), 0.25f), C(size_t(M * N));
    A[3] = std::nanf("");
    gemm(M, N, K, 1.f, A.data(), K, 1, B.data(), N, 1, 0.f, C.data(), N, 1, dgm::cpu::GemmEpilogue<float>{bias.data(), true});
    for (int64_t j = 0; j < N; ++j) {
      EXPECT_TRUE(std::isnan(C[size_t(j)])) << "N " << N << " column " << j;
      EXPECT_EQ(C[size_t(N + j)], 0.f) << "N " << N << " column " << j;  // 0.5 * -1 * 32 + 0.25 < 0
    }
  }
}

// pack_panels (the GEMM's packing, which attention's register tiles use): every width, lines that
// run along k (the SIMD transposes) and lines across k (copies), whole and partial last panels
// (padded with zeros), against the definition dst[p*w*kc + k*w + r] = src[(p*w + r)*step + k*kstride].
template <class T>
void check_pack_panels() {
  for (int w : {4, 6, 8, 16, 32})
    for (int64_t n : {int64_t(1), int64_t(w), int64_t(2 * w + 3), int64_t(37)})
      for (int64_t kc : {int64_t(1), int64_t(7), int64_t(16), int64_t(29)})
        for (bool along_k : {true, false}) {
          // lines along k: line r is row r of an (n x kc) matrix with row stride kc + 5; across: column r
          const int64_t ld = (along_k ? kc : n) + 5;
          const int64_t step = along_k ? ld : 1, kstride = along_k ? 1 : ld;
          std::vector<T> src(size_t((along_k ? n : kc) * ld));
          for (size_t i = 0; i < src.size(); ++i) src[i] = T(int64_t(i) % 97 - 48) / T(8);
          const int64_t panels = (n + w - 1) / w;
          std::vector<T> dst(size_t(panels * w * kc), std::numeric_limits<T>::quiet_NaN());
          dgm::cpu::pack_panels(w, src.data(), step, kstride, n, kc, dst.data());
          for (int64_t p = 0; p < panels; ++p)
            for (int64_t k = 0; k < kc; ++k)
              for (int64_t r = 0; r < w; ++r) {
                const int64_t line = p * w + r;
                const T want = line < n ? src[size_t(line * step + k * kstride)] : T(0);
                ASSERT_EQ(dst[size_t(p * w * kc + k * w + r)], want)
                    << "width " << w << " n " << n << " kc " << kc << (along_k ? " along k" : " across k") << " panel " << p << " k " << k
                    << " line " << r;
              }
        }
}

TEST(Gemm, PackPanelsMatchesItsDefinition) {
  check_pack_panels<float>();
  check_pack_panels<double>();
  std::vector<float> buf(64);
  EXPECT_THROW(dgm::cpu::pack_panels(5, buf.data(), 1, 1, 2, 2, buf.data()), dgm::ValueError);
}
