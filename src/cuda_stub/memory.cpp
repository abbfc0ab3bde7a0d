// SPDX-License-Identifier: Apache-2.0
// Device memory in a build without CUDA: every request says why it cannot be served.
#include "cuda/memory.hpp"

#include "convgrad/errors.hpp"

namespace convgrad::cuda {
namespace {
[[noreturn]] void no_cuda() {
  throw Unsupported("convgrad was built without CUDA (nvcc not found at configure time)");
}
}  // namespace

void* allocate(std::size_t, int) { no_cuda(); }
void release(void*) noexcept {}
void copy_to_device(void*, const void*, std::size_t) { no_cuda(); }
void copy_to_host(void*, const void*, std::size_t) { no_cuda(); }
void fill_bytes(void*, unsigned char, std::size_t) { no_cuda(); }

}  // namespace convgrad::cuda
