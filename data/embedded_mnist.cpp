// The embedded digits (data/mnist10k/*.gz) compiled into dgm_data, so an installed or moved dgm
// finds them without any folder: the assembler's .incbin copies each file's bytes into read-only
// data at build time (CMake passes the folder as DGM_MNIST10K_DIR and rebuilds this file when one
// of them changes). The library holds the bytes, not the path.
#include <dgm/data/mnist.h>
#include <dgm/tensor/errors.h>

#ifndef DGM_MNIST10K_DIR
#error "DGM_MNIST10K_DIR must name the data/mnist10k folder (CMakeLists.txt sets it)"
#endif

#if defined(__APPLE__)  // Mach-O: read-only data section, C names carry a leading underscore
#define DGM_RODATA ".section __TEXT,__const\n"
#define DGM_DONE ".text\n"
#define DGM_SYM(name) "_" name
#else  // ELF (Linux, WSL, any CPU)
#define DGM_RODATA ".pushsection .rodata\n"
#define DGM_DONE ".popsection\n"
#define DGM_SYM(name) name
#endif

#define DGM_INCBIN(name, file)                                                              \
  asm(DGM_RODATA ".global " DGM_SYM(name) "\n.balign 16\n" DGM_SYM(name) ":\n.incbin \"" \
      DGM_MNIST10K_DIR "/" file "\"\n.global " DGM_SYM(name "_end") "\n" DGM_SYM(name "_end") ":\n" DGM_DONE)

DGM_INCBIN("dgm_mnist10k_train_images", "train-images-idx3-ubyte.gz");
DGM_INCBIN("dgm_mnist10k_train_labels", "train-labels-idx1-ubyte.gz");
DGM_INCBIN("dgm_mnist10k_test_images", "test-images-idx3-ubyte.gz");
DGM_INCBIN("dgm_mnist10k_test_labels", "test-labels-idx1-ubyte.gz");

extern "C" {
extern const unsigned char dgm_mnist10k_train_images[], dgm_mnist10k_train_images_end[];
extern const unsigned char dgm_mnist10k_train_labels[], dgm_mnist10k_train_labels_end[];
extern const unsigned char dgm_mnist10k_test_images[], dgm_mnist10k_test_images_end[];
extern const unsigned char dgm_mnist10k_test_labels[], dgm_mnist10k_test_labels_end[];
}

namespace dgm::data {

std::span<const uint8_t> embedded_mnist_file(Split split, const std::string& kind) {
  auto span = [](const unsigned char* begin, const unsigned char* end) {
    return std::span<const uint8_t>(begin, static_cast<size_t>(end - begin));
  };
  const bool train = split == Split::Train;
  if (kind == "images")
    return train ? span(dgm_mnist10k_train_images, dgm_mnist10k_train_images_end)
                 : span(dgm_mnist10k_test_images, dgm_mnist10k_test_images_end);
  if (kind == "labels")
    return train ? span(dgm_mnist10k_train_labels, dgm_mnist10k_train_labels_end)
                 : span(dgm_mnist10k_test_labels, dgm_mnist10k_test_labels_end);
  throw ValueError(cat("embedded_mnist_file: kind \"", kind, "\" is not \"images\" or \"labels\""));
}

}  // namespace dgm::data
