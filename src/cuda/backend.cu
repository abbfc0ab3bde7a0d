// SPDX-License-Identifier: Apache-2.0
// The CUDA backend: it detects a device at run time. The tensor-core and depthwise kernels of
// issue #4 will populate the kernel list; until then it offers none and says so.
#include <cuda_runtime.h>

#include <string>

#include "cuda/backend.hpp"

namespace convgrad::cuda {
namespace {
bool device_present(std::string* reason) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    if (reason) {
      *reason = status != cudaSuccess
                    ? std::string("no CUDA device: ") + cudaGetErrorString(status)
                    : std::string("no CUDA device found");
    }
    return false;
  }
  return true;
}
std::span<const core::KernelInfo> no_kernels() { return {}; }
}  // namespace

const core::BackendEntry& backend() {
  static const core::BackendEntry entry{"cuda", DeviceKind::cuda, device_present, no_kernels};
  return entry;
}

}  // namespace convgrad::cuda
