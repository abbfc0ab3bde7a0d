// SPDX-License-Identifier: Apache-2.0
#include "cuda/queue.hpp"

#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <vector>

#include "cuda/check.hpp"
#include "cuda/stream.hpp"

namespace convgrad::cuda {
namespace {

// The previous device is restored with the binding: the worker thread may run buffers of
// queues on other devices next.
struct Binding {
  Binding(cudaStream_t stream, int previous_device) : binding(stream), previous(previous_device) {}
  StreamBinding binding;
  int previous;
};

struct Pool {
  std::mutex mutex;
  std::map<int, std::vector<cudaStream_t>> free;  // by device ordinal
};

Pool& pool() {
  static Pool* instance = new Pool;  // never destroyed: streams may be released during exit
  return *instance;
}

}  // namespace

void* acquire_stream(int ordinal) {
  {
    Pool& p = pool();
    const std::lock_guard lock(p.mutex);
    std::vector<cudaStream_t>& streams = p.free[ordinal];
    if (!streams.empty()) {
      cudaStream_t stream = streams.back();
      streams.pop_back();
      return stream;
    }
  }
  int previous = 0;
  CONVGRAD_CUDA_CHECK(cudaGetDevice(&previous));
  if (previous != ordinal) CONVGRAD_CUDA_CHECK(cudaSetDevice(ordinal));
  cudaStream_t stream = nullptr;
  const cudaError_t status = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (previous != ordinal) cudaSetDevice(previous);
  CONVGRAD_CUDA_CHECK(status);
  return stream;
}

void release_stream(void* stream, int ordinal) noexcept {
  if (stream == nullptr) return;
  // A buffer's task always synchronizes before it ends; this wait only covers a failed start.
  if (cudaStreamSynchronize(static_cast<cudaStream_t>(stream)) != cudaSuccess) cudaGetLastError();
  Pool& p = pool();
  const std::lock_guard lock(p.mutex);
  p.free[ordinal].push_back(static_cast<cudaStream_t>(stream));
}

void* bind_stream(void* stream, int ordinal) {
  int previous = 0;
  CONVGRAD_CUDA_CHECK(cudaGetDevice(&previous));
  if (previous != ordinal) CONVGRAD_CUDA_CHECK(cudaSetDevice(ordinal));
  return new Binding(static_cast<cudaStream_t>(stream), previous);
}

void unbind_stream(void* binding) noexcept {
  auto* b = static_cast<Binding*>(binding);
  const int previous = b->previous;
  delete b;
  cudaSetDevice(previous);
}

void synchronize_stream(void* stream) {
  CONVGRAD_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
}

void copy_device_to_device(void* destination, const void* source, std::size_t bytes) {
  if (bytes == 0) return;
  CONVGRAD_CUDA_CHECK(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDeviceToDevice,
                                      current_stream()));
  finish_launches();
}

}  // namespace convgrad::cuda
