// Lecture 1, "Autoregressive modelling": the likelihood as a product of conditionals, sequential
// sampling, the MLP with a Markov context on 8-bit pixels, ImageGPT and PixelCNN in raster order.
//
//   log p(x | theta) = sum_{j=1}^{m} log p(x_j | x_{1:j-1}, theta)
//   sampling:  x_1 ~ p(x_1), x_2 ~ p(x_2 | x_1), ..., x_m ~ p(x_m | x_{1:m-1})   (sequential)
//   MLP, d = 2:  h_j = MLP(x_{j-1}, x_{j-2}),  p(x_j | x_{j-1}, x_{j-2}) = Categorical(softmax(h_j)),
//                or a discretised logistic mixture ("continuous distributions instead?")
//   causality:   p(x_j | x_{<j}) must not change when x_k, k >= j, changes
//
// The models come from models/ (mlp_ar, imagegpt, pixelcnn, the counting baselines); this file only
// measures them. Nothing here trains long: the MLP runs are a few hundred Adam steps, ImageGPT and
// PixelCNN are checked at their random initialisation (`dgm train` does the real training).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <dgm/autograd/tensor.h>

namespace dgm::lecture01 {

// ---- 1. the likelihood is a product of conditionals ------------------------------------------------

struct ConditionalsCheck {
  std::string model;             // "imagegpt", "pixelcnn", "mlp_ar categorical", ...
  std::string config;            // the JSON config it was built from
  int64_t images = 0;            // test digits checked (28x28)
  double log_prob = 0;           // log p(x) of the first digit, nats
  double max_sum_diff = 0;       // max over digits |log_prob(x) - sum_j log p(x_j | x_<j)|
  double max_norm_error = 0;     // max over digits and pixels |log sum_v p(x_j = v | x_<j)|
  // The same architecture on 3x3 images: sum over every image of exp(log_prob). Binary models: all
  // 512 images (exact, 1 up to float64 rounding). 8-bit models (256^9 images) cannot be enumerated:
  // NaN, and max_norm_error carries the claim instead.
  double total_prob_3x3 = 0;
  int64_t enumerated = 0;        // 512, or 0
};
// In float64 at random initialisation (seeded), on `images` binarized / 8-bit test digits.
std::vector<ConditionalsCheck> check_product_of_conditionals(uint64_t seed, int64_t images = 4,
                                                             const std::string& data = "");

// ---- 2. sampling is sequential ---------------------------------------------------------------------

struct SamplerComparison {
  std::string config;            // ImageGPT's config
  int64_t n = 0, image_size = 0;
  int64_t differing_pixels = 0;  // between the two samplers' images for the same seed
  bool same_draw_count = false;  // both consumed the generator equally (next numbers agree)
  double seconds_cached = 0, seconds_naive = 0;
  double speedup = 0;            // seconds_naive / seconds_cached
  std::vector<int64_t> samples;  // the cached sampler's n images, n * image_size^2 values in {0, 1}
};
// ImageGPT (random init, float32) sampled twice from Generator(seed): with the key/value cache, one
// new row of attention per pixel, and naively, one full forward of the whole sequence per pixel.
SamplerComparison compare_imagegpt_samplers(int64_t embed_dim, int64_t heads, int64_t layers, int64_t image_size, int64_t n,
                                            uint64_t seed);

// ---- 3. the MLP with a Markov context on 8-bit MNIST ---------------------------------------------

struct ByteMnist {
  Tensor train, test;  // (N, 784) int64 grey levels 0..255
};
ByteMnist load_byte_mnist(const std::string& data = "");

// The counting baselines of models/baselines.h on 8-bit data (exact MLE with add-one smoothing).
struct ByteBaselines {
  double independent_bits = 0, markov1_bits = 0;  // test bits/dim
};
// Test bits/dim on the first `test_images` test digits (0 = all).
ByteBaselines byte_baselines(const ByteMnist& data, int64_t test_images = 0);

struct MlpArRun {
  std::string head;                  // "categorical" or "logistic_mixture"
  std::string config;
  int64_t parameters = 0, steps = 0, batch = 0;
  double lr = 0;
  std::vector<double> train_bits;    // train bits/dim of each step's batch
  double test_bits_init = 0;         // test bits/dim before training (log2 256 = 8 for a uniform model)
  double test_bits = 0;              // after the steps
  double seconds = 0;                // training time (steps only)
  std::vector<int64_t> samples;      // n_samples images drawn after training, 784 values each
  std::vector<double> pixel_bits;    // -log2 p(x_j | x_{j-1}, x_{j-2}) of the first test digit, 784 values
};
// mlp_ar (context 2, `hidden` units, the given head) trained with Adam on batches of `batch` random
// train digits for `steps` steps; test bits/dim on the first `test_images` test digits (0 = all).
MlpArRun train_mlp_ar_short(const ByteMnist& data, const std::string& head, int64_t steps, int64_t batch, double lr,
                            uint64_t seed, int64_t hidden = 256, int64_t n_samples = 0, int64_t test_images = 0);

// ---- 4. ImageGPT and PixelCNN in raster order ------------------------------------------------------

struct CausalityCheck {
  std::string model, config;
  int64_t positions = 0;            // pixels j changed (one at a time, on a binarized test digit)
  double max_change_up_to_j = 0;    // max |change| of log p(x_i = v | x_<i) over i <= j: 0 exactly
  double max_change_after_j = 0;    // over i > j
  double mean_later_reached = 0;    // average number of pixels i > j whose conditional changed
  double mean_later_total = 0;      // average number of pixels after j
};
// imagegpt, pixelcnn and the 8-bit mlp_ar (context 2) at random init in float64, 28x28 digits;
// `positions` pixels spread over the image.
std::vector<CausalityCheck> check_causality(uint64_t seed, int64_t positions = 12, const std::string& data = "");

struct ReceptiveFields {
  int64_t size = 0;                // maps are size x size, the output pixel at (size/2, size/2)
  int64_t layers = 0, kernel_a = 0, kernel_b = 0;
  std::vector<double> mask_a;      // one mask-A layer alone (binary)
  std::vector<double> binary;      // the full stack: 1 where d logit / d x != 0
  std::vector<double> weighted;    // sum |d logit / d x| over a batch of random images
  int64_t preceding = 0;           // pixels before the centre in raster order within the stack's reach
  int64_t seen = 0;                // of those, how many the centre output depends on
  int64_t blind = 0;               // preceding but unseen: the blind spot (all above-right)
  int64_t seen_after = 0;          // pixels at or after the centre that it depends on: 0
};
// PixelCNN (random init, float64) with the default homework kernels: mask A kernel_a x kernel_a,
// `layers` mask-B kernel_b x kernel_b convolutions.
ReceptiveFields pixelcnn_receptive_fields(uint64_t seed, int64_t layers = 5, int64_t kernel_a = 7, int64_t kernel_b = 3,
                                          int64_t size = 21);

struct BinaryBaselines {
  double independent = 0, markov1 = 0;         // test nats/dim, counting with add-one smoothing
  double imagegpt_init = 0, pixelcnn_init = 0;  // test nats/dim of the models at random init
};
// The bar the binary autoregressive models must beat; `test_images` for the random-init models (0 = all).
BinaryBaselines binary_baselines(uint64_t seed, int64_t test_images = 200, const std::string& data = "");

}  // namespace dgm::lecture01
