// Parameter initialisation, as torch.nn.init. Every function fills a tensor in place (no graph
// is recorded) from a seeded Generator, in row-major order, so the same seed gives the same
// parameters everywhere.
//
// fan_in / fan_out of a weight of shape (out, in, k1, k2, ...) are in * k1 * k2 * ... and
// out * k1 * k2 * ... (a Linear weight is (out, in), a Conv2d weight (out, in, k, k)).
#pragma once
#include <string>
#include <utility>

#include <dgm/autograd/tensor.h>
#include <dgm/tensor/random.h>

namespace dgm::nn::init {

std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& w);

void uniform_(Tensor& t, double low = 0, double high = 1, Generator& gen = default_generator());  // U[low, high)
void normal_(Tensor& t, double mean = 0, double std = 1, Generator& gen = default_generator());   // N(mean, std^2)
void constant_(Tensor& t, double value);
void zeros_(Tensor& t);
void ones_(Tensor& t);

// Recommended gain for a nonlinearity ("linear", "sigmoid", "tanh", "relu", "leaky_relu" with
// negative slope `param`), as torch.nn.init.calculate_gain.
double calculate_gain(const std::string& nonlinearity, double param = 0.01);

// Glorot: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)); N(0, gain^2 * 2 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& w, double gain = 1, Generator& gen = default_generator());
void xavier_normal_(Tensor& w, double gain = 1, Generator& gen = default_generator());

// He: std = gain / sqrt(fan), gain = calculate_gain(nonlinearity, a); fan = fan_in ("fan_in")
// or fan_out ("fan_out"). Uniform: U(-sqrt(3) std, sqrt(3) std).
void kaiming_uniform_(Tensor& w, double a = 0, const std::string& mode = "fan_in", const std::string& nonlinearity = "leaky_relu",
                      Generator& gen = default_generator());
void kaiming_normal_(Tensor& w, double a = 0, const std::string& mode = "fan_in", const std::string& nonlinearity = "leaky_relu",
                     Generator& gen = default_generator());

// PyTorch's defaults for layers with a weight (out, in, ...) and a bias (out):
//   weight: kaiming_uniform_(a = sqrt(5))  ==  U(-1/sqrt(fan_in), 1/sqrt(fan_in))
//   bias:   U(-1/sqrt(fan_in), 1/sqrt(fan_in))
// (used by Linear and Conv2d; Embedding uses normal_(0, 1)).
void default_linear_init_(Tensor& weight, Tensor* bias, Generator& gen = default_generator());

}  // namespace dgm::nn::init
