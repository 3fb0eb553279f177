// Lecture 2, second half: flow families and how to fit them.
//
//   Gaussian AR flow   x_j = sigma_j(x_<j) z_j + mu_j(x_<j)  (MAF: density in one pass, sampling in m)
//                      IAF conditions on z_<j instead: sampling in one pass, density in m
//                      log|det dz/dx| = -sum_j log sigma_j
//   coupling (RealNVP) x_1 = z_1,  x_2 = z_2 * sigma(z_1) + mu(z_1);  log|det dz/dx| = -sum_j log sigma_j(x_1)
//   seminar 2          planar  g(z) = z + u h(w^T z + b),  det J = 1 + h'(w^T z + b) w^T u
//                      radial  g(z) = z + beta h(alpha, r)(z - z0)
//                      reverse KL  E_{p(z)}[log p(z) - log|det J_g(z)| + U(g(z))] = KL(p_x || pi) - log Z
//                      forward KL  -E_pi[log p(f(x)) + log|det J_f(x)|] = KL(pi || p_x) + H(pi)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dgm::lecture02 {

// ---- Gaussian autoregressive flows ---------------------------------------------------------------------

// The lecture's AutoregressiveFlowDemo: mu_j = sum_{i<j} x_i, sigma_j = 1. Sampling is sequential,
// one coordinate per step; the density is one parallel step z = x - (exclusive cumsum of x).
struct ToyArFlow {
  std::vector<double> z, x;                  // z = (-1, 0.5, 1, -0.5) -> x = (-1, -0.5, -0.5, -2.5)
  std::vector<std::vector<double>> steps;    // x after each sequential step (unknowns as NaN)
  std::vector<double> z_back;                // one parallel pass back
  double log_det = 0;
};
ToyArFlow toy_autoregressive();

// A MAF and an IAF layer with MADE conditioners (float64, random weights).
struct ArFlowCheck {
  std::string name;               // "MAF", "IAF"
  int64_t dim = 0;
  double max_above_diagonal = 0;  // max |J_ij|, j > i: exactly 0 (the masks)
  double max_logdet_vs_diag = 0;  // |log-det - sum_j log|J_jj||
  double max_roundtrip = 0;       // |f(f^{-1}(z)) - z|
  std::vector<double> pattern;    // |J| (dim * dim) of one example
};
std::vector<ArFlowCheck> ar_flow_checks(int64_t dim, uint64_t seed);

// Wall time of the one-pass and the sequential direction as the dimension grows.
struct ArTiming {
  std::vector<int64_t> dims;
  int64_t batch = 0;
  std::vector<double> maf_density_ms, maf_sample_ms, iaf_sample_ms, iaf_density_ms;
};
ArTiming ar_timing(const std::vector<int64_t>& dims, int64_t batch, uint64_t seed);

// ---- coupling layers ------------------------------------------------------------------------------------

// The lecture's CouplingDemo: 180 points of N(0, 0.65^2 I) by Box-Muller from the LCG
// s <- (1664525 s + 1013904223) mod 2^32, seed 2026, u = (s + 0.5) / 2^32 (two uniforms a point);
// layer 1 moves x2 given x1, layer 2 moves x1 given x2, sigma(t) = e^{0.4 lambda tanh t},
// mu(t) = 0.8 lambda tanh t; the generative log-det of a layer is 0.4 lambda tanh(cond).
struct CouplingDemo {
  double lambda = 1;
  std::vector<std::vector<double>> stage_x, stage_y;  // base, after layer 1, after layer 2
  double max_logdet_vs_slogdet = 0;                   // both layers, every point
  double max_roundtrip = 0;
  double max_identity_at_zero = 0;                    // |layer(x) - x| at lambda = 0
};
std::vector<double> lcg_gaussian_cloud(int64_t points, uint64_t seed = 2026, double std = 0.65);  // (x0, y0, x1, y1, ...)
CouplingDemo coupling_demo(double lambda);

// nn::AffineCoupling on an image with checkerboard and channel masks (float64, random weights).
struct ImageCouplingCheck {
  std::string name;
  double max_logdet_vs_slogdet = 0;
  double max_roundtrip = 0;
  double max_kept_change = 0;  // |z - x| on the kept (mask = 1) coordinates: exactly 0
};
std::vector<ImageCouplingCheck> image_coupling_checks(uint64_t seed);

// ---- seminar 2: planar and radial flows, reverse and forward KL ---------------------------------------------

// The seminar's targets pi = e^{-U} / Z: "U1".."U4" and "ring", and "two modes"
// (0.5 N((-2.5, 0), 0.6^2 I) + 0.5 N((2.5, 0), 0.6^2 I)) for mode covering vs mode seeking.
double potential(const std::string& target, double z1, double z2);
double target_box(const std::string& target);  // the square [-b, b]^2 it lives in
struct TargetGrid {
  std::string name;
  int64_t n = 0;
  double lo = 0, hi = 0;
  std::vector<double> density;  // normalised on the grid, iy * n + ix
  double log_z = 0;             // log of the grid integral of e^{-U}
};
TargetGrid target_grid(const std::string& target, int64_t n);

struct FitOptions {
  std::string flow = "planar";  // "planar" or "radial"
  int64_t layers = 32;
  int64_t steps = 1000;
  int64_t batch = 256;
  double lr = 5e-3;
  int64_t grid = 100;          // for the model's density and the KLs
  int64_t n_data = 10000;      // forward KL: samples of pi
  uint64_t seed = 0;
};
struct FlowFit {
  std::string target, flow, objective;  // objective: "reverse KL" or "forward KL"
  std::vector<double> loss;             // per step
  std::vector<double> sx, sy;           // 2000 samples of the fitted model
  TargetGrid model;                     // the model's density on the target's grid (not renormalised)
  double kl_forward = 0, kl_reverse = 0;  // KL(pi || p), KL(p || pi) on the grid
  double kl_reverse_mc = 0;             // reverse KL fits: the final loss + log Z (Monte Carlo, 4096 samples)
  double model_mass = 0;                // the model's mass inside the grid's square
  double mass_gap = 0;                  // the model's mass with |x1| < 1.25 (between the "two modes")
  double mass_right = 0;                // with x1 > 0
  double seconds = 0;
};
// Reverse KL: g: z -> x with z ~ N(0, I); needs U, not samples.
FlowFit fit_reverse_kl(const std::string& target, const FitOptions& options);
// Forward KL (MLE): f: x -> z on n_data samples of pi (drawn from its grid); needs samples, not U.
FlowFit fit_forward_kl(const std::string& target, const FitOptions& options);

}  // namespace dgm::lecture02
