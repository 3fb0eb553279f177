// Lecture 2, first half: the change of variables and the Jacobian, which every flow rests on.
//
//   change of variables   p(x) = p(f(x)) |det J_f(x)|,   J_f = dz/dx
//   inverse function      J_{f^-1}(f(x)) = J_f(x)^{-1},   log|det J_{f^-1}| = -log|det J_f|
//   composition           log|det J_{f_K o ... o f_1}| = sum_k log|det J_{f_k}(x_{k-1})|
//   structures            permutation: |det| = 1;  elementwise: sum_j log|f_j'(x_j)|;
//                         triangular: sum_j log|J_jj|  (O(m), not the O(m^3) of a dense determinant)
//   linear flows          z = W x, W = P L (U + diag s) or Q R; det W cannot change sign along a
//                         continuous path of invertible matrices
//
// Every function returns numbers (tests/test_lecture02.cpp checks them); jacobians_chapter.cpp
// prints them and draws the figures.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dgm::lecture02 {

// ---- change of variables ---------------------------------------------------------------------------

// A 1-D density pushed through a map z = f(x) of x ~ N(0, 1): the change-of-variables density
// (f^{-1} and its derivative from autograd) against the closed form, and a histogram of pushed samples
// against it by a chi-square statistic.
struct PushForward1d {
  std::string name;            // "z = 2x + 1", "z = exp(x)", ...
  std::vector<double> z;       // grid
  std::vector<double> cov;     // p(f^{-1}(z)) |d f^{-1}/dz|, by autograd
  std::vector<double> closed;  // the closed form (N(b, a^2), log-normal, ...)
  double max_abs_diff = 0;     // max over the grid |cov - closed|
  double integral = 0;         // trapezoid integral of cov over the grid (~ 1)
  std::vector<double> samples; // f(x_i), x_i ~ N(0, 1)
  double chi2 = 0;             // sum over bins (observed - expected)^2 / expected
  int64_t dof = 0;             // bins used - 1
};
std::vector<PushForward1d> push_forward_1d(int64_t n_samples, uint64_t seed);

// A 2-D density pushed through one of the seminar's flows (planar w = (5, 0), u = (1, 1), b = 0;
// radial z0 = 0, alpha = 1, beta = 5) or a coupling map: p(z) = N(f^{-1}(z); 0, I) |det J_{f^-1}(z)| on
// a grid, which integrates to 1.
struct PushForward2d {
  std::string name;
  int64_t n = 0;                  // grid points per axis
  double lo = 0, hi = 0;          // the square [lo, hi]^2
  std::vector<double> density;    // (n * n), iy * n + ix, iy = 0 at the bottom
  double integral = 0;            // midpoint rule over the square (~ 1)
  std::vector<double> sx, sy;     // f(x_i), x_i ~ N(0, I): a scatter of the pushed samples
  double mass_in_square = 0;      // fraction of the samples inside the square (the integral's target)
};
std::vector<PushForward2d> push_forward_2d(int64_t grid, int64_t n_samples, uint64_t seed);

// ---- the inverse function theorem --------------------------------------------------------------------

// The lecture's JacobianDemo: the unit square mapped by J = [[a, b], [0, 1]]. The image's area (the
// shoelace formula on the mapped corners) equals |det J| = |a|, and p(z) = p(x) / |det J|.
struct SquareMap {
  std::string name;
  double a = 1, b = 0;
  std::vector<double> cx, cy;  // the mapped corners, closed
  double area = 0, det = 0;
};
std::vector<SquareMap> jacobian_demo();

// For invertible flows at random points (float64): J_f(x) J_{f^-1}(f(x)) = I, and the log-dets add to 0.
struct InverseCheck {
  std::string name;
  double max_identity_error = 0;   // max |J_f J_{f^-1} - I| over points and entries
  double max_logdet_sum = 0;       // max |log|det J_f(x)| + log|det J_{f^-1}(f(x))||
  double max_roundtrip = 0;        // max |f^{-1}(f(x)) - x|
  double max_layer_vs_slogdet = 0; // max |the layer's log-det - slogdet(J_f)|
};
std::vector<InverseCheck> inverse_function_checks(int64_t points, uint64_t seed);

// ---- composition ---------------------------------------------------------------------------------------

// A 2-D flow of K layers (LinearLU, planar, radial, couplings, ActNorm) in float64: the sum of the
// layers' log-dets, the sequence's log-det and slogdet of the composed Jacobian agree; the density
// integrates to 1; the intermediate stages x_k of N(0, I) samples for the figure.
struct CompositionCheck {
  std::vector<std::string> layers;
  double max_sum_vs_sequence = 0;  // |sum_k logdet_k - FlowSequence log-det|
  double max_sum_vs_slogdet = 0;   // |sum_k logdet_k - slogdet(J_{f_K o ... o f_1})|
  double max_roundtrip = 0;        // |f^{-1}(f(x)) - x|
  double integral = 0;             // of p(x) = N(f(x)) |det J_f(x)| on [lo, hi]^2
  double mass_in_square = 0;       // the fraction of the generated samples inside [lo, hi]^2 (the integral's target)
  int64_t grid = 0;
  double lo = 0, hi = 0;
  std::vector<double> density;     // (grid * grid)
  std::vector<std::vector<double>> stage_x, stage_y;  // the generative pass x_K = z, ..., x_0, for samples z ~ N(0, I)
};
CompositionCheck composition_check(int64_t grid, int64_t n_samples, uint64_t seed);

// ---- Jacobian structures -------------------------------------------------------------------------------

struct StructureCheck {
  std::string name;              // "permutation", "elementwise", "triangular (autoregressive)"
  int64_t dim = 0;
  double analytic = 0;           // the structure's formula
  double slogdet = 0;            // slogdet of the dense autograd Jacobian
  std::vector<double> pattern;   // |J| (dim * dim), for the figure
};
std::vector<StructureCheck> structure_checks(int64_t dim, uint64_t seed);

// The cost of a log-det: dense slogdet (LU, O(m^3)) against the diagonal sum of a triangular matrix (O(m)).
struct DetTiming {
  std::vector<int64_t> dims;
  std::vector<double> dense_ms, triangular_ms;
  std::vector<double> max_diff;  // |slogdet - sum log|diag|| for the same triangular matrix
};
DetTiming det_timing(const std::vector<int64_t>& dims, uint64_t seed);

// ---- linear flows ----------------------------------------------------------------------------------------

// LU and QR flows: the factor formula against slogdet of the rebuilt W, the inverse by triangular
// solves, and training that keeps sign(det W) fixed.
struct LinearFlowCheck {
  std::string name;  // "LU", "QR"
  int64_t dim = 0;
  double logdet_formula = 0, logdet_dense = 0;
  double max_roundtrip = 0;
  std::vector<double> det_during_training;  // det W after each step of fitting a correlated Gaussian
  double initial_nll = 0, final_nll = 0;    // per example, nats
  double exact_nll = 0;                     // the entropy of the target Gaussian (the best possible)
};
std::vector<LinearFlowCheck> linear_flow_checks(int64_t dim, int64_t steps, uint64_t seed);

// det W(t) on the straight path W(t) = (1 - t) W0 + t W1 from det W0 > 0 to det W1 < 0: it must
// cross 0, where W(t) is not invertible (no continuous parameterisation covers both signs).
struct SignPath {
  std::vector<double> t, det;
  double crossing = 0;  // the t where det changes sign (linear interpolation between grid points)
  double min_abs_det = 0;
};
SignPath sign_path(int64_t dim, int64_t points, uint64_t seed);

}  // namespace dgm::lecture02
