// Small helpers the lecture 2 claims share (float64 throughout: the checks compare to rounding error).
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include <dgm/autograd/tensor.h>
#include <dgm/nn/flows.h>

namespace dgm::lecture02 {

std::vector<double> values(const Tensor& t);                          // any tensor -> its float64 values, row-major
Tensor from_doubles(const std::vector<double>& v, const Shape& shape);  // float64
void set_values(Tensor& parameter, const std::vector<double>& v);     // replaces a parameter's data
void perturb_parameters(nn::Module& m, double scale, Generator& gen);  // p += scale N(0, 1): a generic, non-identity layer
double log_normal_2d(double x, double y);                            // log N((x, y); 0, I)
std::vector<double> grid_points(double lo, double hi, int64_t n);     // n cell midpoints of [lo, hi]
Tensor grid_tensor(double lo, double hi, int64_t n);                  // (n * n, 2): (x_ix, y_iy) at row iy * n + ix
double elapsed_ms(const std::function<void()>& f, int repeats);      // mean wall time of f after one warm-up call

// The seminar's example flows: planar w = (5, 0), u = (1, 1), b = 0 (u is made invertible by the
// u^ projection: w^T u = 5 > -1 moves it to u^ = (0.80, 1)); radial z0 = 0, alpha = 1, beta = 5.
std::shared_ptr<nn::PlanarFlow> seminar_planar();
std::shared_ptr<nn::RadialFlow> seminar_radial();

}  // namespace dgm::lecture02
