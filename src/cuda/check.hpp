// SPDX-License-Identifier: Apache-2.0
// CONVGRAD_CUDA_CHECK: every CUDA runtime call of the backend goes through it, so that no error
// is dropped and each one reaches the caller as a DeviceError naming the call and its place.
#pragma once

#include <cuda_runtime.h>

namespace convgrad::cuda {

/// Throws DeviceError "CUDA error <name> (<text>) in `<statement>` at <file>:<line>".
[[noreturn]] void throw_cuda_error(cudaError_t status, const char* statement, const char* file,
                                   int line);

}  // namespace convgrad::cuda

#define CONVGRAD_CUDA_CHECK(expr)                                                           \
  do {                                                                                      \
    const cudaError_t convgrad_cuda_status_ = (expr);                                       \
    if (convgrad_cuda_status_ != cudaSuccess) {                                             \
      ::convgrad::cuda::throw_cuda_error(convgrad_cuda_status_, #expr, __FILE__, __LINE__); \
    }                                                                                       \
  } while (false)
