// Grey-scale PNG output (and input, for tests) through stb_image_write / stb_image.
//
//   save_png_gray("digit.png", data.image(0), 28, 28);
//   save_image_grid("samples.png", samples, 64, 28, 28);          // 8x8 grid of 64 samples
//   save_image_grid("samples.png", binary, 64, 28, 28, 0, 2, 3, /*max_level=*/1);  // 0/1 pixels, 3x upscaled
//
// Every file is written atomically (tools::write_file_atomic: "<path>.tmp.<pid>", fsync, rename), so an interrupted run never
// leaves a half-written PNG behind. Errors: dgm::ValueError for bad arguments, dgm::IOError for files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dgm::tools {

// An 8-bit grey image, row-major: pixel (r, c) at pixels[r * width + c].
struct GrayImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;
};

// One grey image of width x height bytes.
void save_png_gray(const std::string& path, const uint8_t* pixels, int width, int height);
void save_png_gray(const std::string& path, const GrayImage& image);

// Arranges the first n images (each rows x cols, stored one after the other) in a grid:
//   grid_rows   rows of the grid; 0 picks a near-square grid (columns = ceil(sqrt(n)))
//   padding     pixels of light grey between images and around the border (before upscaling)
//   upscale     each pixel becomes an upscale x upscale block (nearest neighbour), so 28x28 digits
//               stay crisp when viewed large
//   max_level   (uint8 only) the value shown as white: 255 for grey levels, 1 for binarized 0/1 data
// Float images are taken as values in [0, 1]; values outside are clamped and NaN shows as black.
GrayImage make_image_grid(const std::vector<uint8_t>& images, int64_t n, int64_t rows, int64_t cols,
                          int grid_rows = 0, int padding = 2, int upscale = 1, int max_level = 255);
GrayImage make_image_grid(const std::vector<float>& images, int64_t n, int64_t rows, int64_t cols,
                          int grid_rows = 0, int padding = 2, int upscale = 1);

void save_image_grid(const std::string& path, const std::vector<uint8_t>& images, int64_t n, int64_t rows,
                     int64_t cols, int grid_rows = 0, int padding = 2, int upscale = 1, int max_level = 255);
void save_image_grid(const std::string& path, const std::vector<float>& images, int64_t n, int64_t rows,
                     int64_t cols, int grid_rows = 0, int padding = 2, int upscale = 1);

// Reads a PNG (or any format stb_image knows) and converts it to one grey channel.
// Throws dgm::IOError if the file cannot be read, dgm::FormatError if it cannot be decoded.
GrayImage read_png_gray(const std::string& path);

// The grey level of the padding lines in image grids.
constexpr uint8_t kGridPaddingLevel = 224;

}  // namespace dgm::tools
