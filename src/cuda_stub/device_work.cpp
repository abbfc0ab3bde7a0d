// SPDX-License-Identifier: Apache-2.0
// Streams, optimizer updates and layers in a build without CUDA: no CUDA device can exist, so
// nothing reaches these but a caller that skipped Device::cuda(); each says why it cannot serve.
#include "convgrad/errors.hpp"
#include "cuda/layers.hpp"
#include "cuda/optimizer.hpp"
#include "cuda/queue.hpp"

namespace convgrad::cuda {
namespace {
[[noreturn]] void no_cuda() {
  throw Unsupported("convgrad was built without CUDA (nvcc not found at configure time)");
}
}  // namespace

void* acquire_stream(int) { no_cuda(); }
void release_stream(void*, int) noexcept {}
void* bind_stream(void*, int) { no_cuda(); }
void unbind_stream(void*) noexcept {}
void synchronize_stream(void*) { no_cuda(); }
void copy_device_to_device(void*, const void*, std::size_t) { no_cuda(); }

void optimizer_update(const UpdateStep&, const float*, const float*, float*, float*, float*,
                      float*, std::int64_t) {
  no_cuda();
}

void relu_forward(const TensorView&, const TensorView&) { no_cuda(); }
void relu_backward(const TensorView&, const TensorView&, const TensorView&) { no_cuda(); }
void max_pool_forward(const TensorView&, const TensorView&) { no_cuda(); }
void max_pool_backward(const TensorView&, const TensorView&, const TensorView&) { no_cuda(); }
void softmax_cross_entropy(const TensorView&, const std::int32_t*, double*, float*,
                           const TensorView&) {
  no_cuda();
}
void reverse_weights(const float*, float*, const ReverseShape&, bool, bool) { no_cuda(); }
void add_channel_bias(const TensorView&, const float*) { no_cuda(); }
void accumulate_channel_sums(const TensorView&, float*) { no_cuda(); }

}  // namespace convgrad::cuda
