// SPDX-License-Identifier: Apache-2.0
#include "cuda/stream.hpp"

#include "cuda/check.hpp"

namespace convgrad::cuda {
namespace {

thread_local cudaStream_t bound_stream = cudaStreamPerThread;
thread_local bool bound = false;

}  // namespace

cudaStream_t current_stream() noexcept { return bound_stream; }

void finish_launches() {
  CONVGRAD_CUDA_CHECK(cudaGetLastError());
  if (!bound) CONVGRAD_CUDA_CHECK(cudaStreamSynchronize(bound_stream));
}

StreamBinding::StreamBinding(cudaStream_t stream) noexcept
    : previous_(bound_stream), previous_bound_(bound) {
  bound_stream = stream;
  bound = true;
}

StreamBinding::~StreamBinding() {
  bound_stream = previous_;
  bound = previous_bound_;
}

}  // namespace convgrad::cuda
