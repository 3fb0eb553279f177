// PNG output through stb (Debian's libstb-dev headers). This is the one file that compiles the stb
// implementations; STB_*_STATIC keeps them private to it, so another file that also compiles stb
// cannot clash with these symbols at link time.
#include <dgm/tools/image.h>

#include <algorithm>
#include <cmath>

#include <dgm/tools/files.h>
#include <dgm/tensor/errors.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace dgm::tools {

namespace {

void check_size(const std::string& where, int64_t width, int64_t height) {
  // 16384 pixels a side is far beyond any sample grid; larger is almost surely a wrong argument.
  if (width < 1 || height < 1 || width > 16384 || height > 16384)
    throw ValueError(cat(where, ": image size ", width, "x", height, " is outside 1..16384 per side"));
}

// Shared layout of make_image_grid for uint8 and float input; `level(i)` gives pixel i as 0..255.
template <class LevelOf>
GrayImage build_grid(const char* what, size_t available, int64_t n, int64_t rows, int64_t cols, int grid_rows,
                     int padding, int upscale, LevelOf level) {
  if (n < 1) throw ValueError(cat(what, ": n = ", n, "; need at least one image"));
  if (rows < 1 || cols < 1) throw ValueError(cat(what, ": image size ", rows, "x", cols, " must be at least 1x1"));
  if (padding < 0) throw ValueError(cat(what, ": padding ", padding, " must be >= 0"));
  if (upscale < 1) throw ValueError(cat(what, ": upscale ", upscale, " must be >= 1"));
  if (grid_rows < 0) throw ValueError(cat(what, ": grid_rows ", grid_rows, " must be >= 0 (0 = automatic)"));
  const int64_t per_image = rows * cols;
  if (static_cast<int64_t>(available) < n * per_image)
    throw ValueError(cat(what, ": ", n, " images of ", rows, "x", cols, " need ", n * per_image,
                         " values but only ", available, " were given"));

  int64_t grid_cols;
  if (grid_rows == 0) {
    grid_cols = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
    grid_rows = static_cast<int>((n + grid_cols - 1) / grid_cols);
  } else {
    grid_cols = (n + grid_rows - 1) / grid_rows;
  }

  // Padding around every tile and the border; everything then scaled by `upscale`.
  const int64_t width = (grid_cols * (cols + padding) + padding) * upscale;
  const int64_t height = (grid_rows * (rows + padding) + padding) * upscale;
  check_size(what, width, height);

  GrayImage grid;
  grid.width = static_cast<int>(width);
  grid.height = static_cast<int>(height);
  grid.pixels.assign(static_cast<size_t>(width * height), kGridPaddingLevel);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t top = (padding + (k / grid_cols) * (rows + padding)) * upscale;
    const int64_t left = (padding + (k % grid_cols) * (cols + padding)) * upscale;
    for (int64_t r = 0; r < rows * upscale; ++r) {
      uint8_t* out_row = grid.pixels.data() + (top + r) * width + left;
      for (int64_t c = 0; c < cols * upscale; ++c)
        out_row[c] = level(static_cast<size_t>(k * per_image + (r / upscale) * cols + c / upscale));
    }
  }
  return grid;
}

void append_to_vector(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* bytes = static_cast<const uint8_t*>(data);
  out->insert(out->end(), bytes, bytes + size);
}

}  // namespace

void save_png_gray(const std::string& path, const uint8_t* pixels, int width, int height) {
  check_size(path, width, height);
  if (!pixels) throw ValueError(cat(path, ": save_png_gray got a null pixel pointer"));
  // Encode in memory, then write atomically: stbi_write_png would write the final file directly.
  std::vector<uint8_t> png;
  if (!stbi_write_png_to_func(append_to_vector, &png, width, height, 1, pixels, width))
    throw IOError(cat(path, ": PNG encoding of a ", width, "x", height, " image failed"));
  tools::write_file_atomic(path, png.data(), png.size());
}

void save_png_gray(const std::string& path, const GrayImage& image) {
  if (image.pixels.size() != static_cast<size_t>(image.width) * static_cast<size_t>(image.height))
    throw ValueError(cat(path, ": GrayImage of ", image.width, "x", image.height, " has ", image.pixels.size(),
                         " pixels, expected ", int64_t(image.width) * image.height));
  save_png_gray(path, image.pixels.data(), image.width, image.height);
}

GrayImage make_image_grid(const std::vector<uint8_t>& images, int64_t n, int64_t rows, int64_t cols, int grid_rows,
                          int padding, int upscale, int max_level) {
  if (max_level < 1 || max_level > 255)
    throw ValueError(cat("make_image_grid: max_level ", max_level, " is outside 1..255 (255 for grey levels, 1 for 0/1)"));
  return build_grid("make_image_grid", images.size(), n, rows, cols, grid_rows, padding, upscale, [&](size_t i) {
    int v = std::min<int>(images[i], max_level);
    return static_cast<uint8_t>((v * 255 + max_level / 2) / max_level);
  });
}

GrayImage make_image_grid(const std::vector<float>& images, int64_t n, int64_t rows, int64_t cols, int grid_rows,
                          int padding, int upscale) {
  return build_grid("make_image_grid", images.size(), n, rows, cols, grid_rows, padding, upscale, [&](size_t i) {
    float v = images[i];
    if (!(v > 0.0f)) return uint8_t{0};  // also catches NaN
    if (v >= 1.0f) return uint8_t{255};
    return static_cast<uint8_t>(std::lround(v * 255.0f));
  });
}

void save_image_grid(const std::string& path, const std::vector<uint8_t>& images, int64_t n, int64_t rows,
                     int64_t cols, int grid_rows, int padding, int upscale, int max_level) {
  save_png_gray(path, make_image_grid(images, n, rows, cols, grid_rows, padding, upscale, max_level));
}

void save_image_grid(const std::string& path, const std::vector<float>& images, int64_t n, int64_t rows,
                     int64_t cols, int grid_rows, int padding, int upscale) {
  save_png_gray(path, make_image_grid(images, n, rows, cols, grid_rows, padding, upscale));
}

GrayImage read_png_gray(const std::string& path) {
  std::vector<uint8_t> bytes = tools::read_file_bytes(path);
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) throw FormatError(cat(path, ": file too large for stb_image"));
  int width = 0, height = 0, channels_in_file = 0;
  uint8_t* decoded = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &width, &height,
                                           &channels_in_file, /*desired_channels=*/1);
  if (!decoded) throw FormatError(cat(path, ": cannot decode image (stb_image: ", stbi_failure_reason(), ")"));
  GrayImage image;
  image.width = width;
  image.height = height;
  image.pixels.assign(decoded, decoded + static_cast<size_t>(width) * static_cast<size_t>(height));
  stbi_image_free(decoded);
  return image;
}

}  // namespace dgm::tools
