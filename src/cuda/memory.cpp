// SPDX-License-Identifier: Apache-2.0
#include "cuda/memory.hpp"

#include <cuda_runtime.h>

#include <string>

#include "convgrad/errors.hpp"
#include "cuda/check.hpp"
#include "cuda/stream.hpp"

namespace convgrad::cuda {

void throw_cuda_error(cudaError_t status, const char* statement, const char* file, int line) {
  // A failed call leaves its code as the thread's last error; clear it so that the next launch
  // check does not report this failure a second time. Sticky errors (a faulted context) stay.
  cudaGetLastError();
  std::string message = "CUDA error ";
  message.append(cudaGetErrorName(status)).append(" (").append(cudaGetErrorString(status));
  message.append(") in `").append(statement).append("` at ").append(file).append(":");
  message.append(std::to_string(line));
  throw DeviceError(message);
}

namespace {

// Makes `ordinal` current for one call and restores the caller's device afterwards, so that
// allocating on another device does not move the caller's later work there.
class DeviceGuard {
 public:
  explicit DeviceGuard(int ordinal) {
    CONVGRAD_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != ordinal) CONVGRAD_CUDA_CHECK(cudaSetDevice(ordinal));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace

void* allocate(std::size_t bytes, int ordinal) {
  DeviceGuard guard(ordinal);
  void* pointer = nullptr;
  const cudaError_t status = cudaMalloc(&pointer, bytes == 0 ? 1 : bytes);
  if (status != cudaSuccess) {
    cudaGetLastError();  // an out-of-memory code must not surface at the next kernel launch
    std::string message = "cudaMalloc of ";
    message.append(std::to_string(bytes)).append(" bytes failed: ");
    message.append(cudaGetErrorString(status));
    message.append(" (device ").append(std::to_string(ordinal)).append(")");
    throw DeviceError(message);
  }
  return pointer;
}

void release(void* pointer) noexcept {
  if (pointer != nullptr) cudaFree(pointer);
}

// The kernels run on the per-thread default stream; these copies use it too, so that they are
// ordered after the work that produced the data without a device-wide synchronization.
void copy_to_device(void* device_destination, const void* host_source, std::size_t bytes) {
  CONVGRAD_CUDA_CHECK(cudaMemcpyAsync(device_destination, host_source, bytes,
                                      cudaMemcpyHostToDevice, current_stream()));
  CONVGRAD_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
}

void copy_to_host(void* host_destination, const void* device_source, std::size_t bytes) {
  CONVGRAD_CUDA_CHECK(cudaMemcpyAsync(host_destination, device_source, bytes,
                                      cudaMemcpyDeviceToHost, current_stream()));
  CONVGRAD_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
}

void fill_bytes(void* device_destination, unsigned char value, std::size_t bytes) {
  CONVGRAD_CUDA_CHECK(cudaMemsetAsync(device_destination, value, bytes, current_stream()));
  CONVGRAD_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
}

}  // namespace convgrad::cuda
