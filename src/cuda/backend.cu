// SPDX-License-Identifier: Apache-2.0
// The CUDA backend: it detects a device at run time and lists its kernels, fastest first and the
// always-correct generic direct kernels last (issue #4 adds the tensor-core ones in front).
#include <cuda_runtime.h>

#include <array>
#include <string>

#include "cuda/backend.hpp"
#include "cuda/direct.hpp"

namespace convgrad::cuda {
namespace {

// The library carries sm_90a code only (cmake/cuda.cmake), which no other architecture runs:
// say so here rather than fail at the first launch with "no kernel image is available".
bool device_present(std::string* reason) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    cudaGetLastError();  // not a sticky error: keep it from surfacing at a later check
    if (reason) {
      *reason = status != cudaSuccess ? std::string("no CUDA device: ") + cudaGetErrorString(status)
                                      : std::string("no CUDA device found");
    }
    return false;
  }
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) != cudaSuccess) {
    cudaGetLastError();
    if (reason) *reason = "no CUDA device: its compute capability could not be read";
    return false;
  }
  if (major != 9 || minor != 0) {
    if (reason) {
      *reason = "no CUDA device of compute capability 9.0: device 0 is " + std::to_string(major) +
                "." + std::to_string(minor) + " and this build carries sm_90a code only";
    }
    return false;
  }
  return true;
}

std::optional<std::string> accepts_all(const ConvProblem&) { return std::nullopt; }

constexpr std::array<core::KernelInfo, 3> kernel_list{{
    {"cuda.fprop.direct.any.any", Direction::fprop, accepts_all, fprop_direct},
    {"cuda.dgrad.direct.any.any", Direction::dgrad, accepts_all, dgrad_direct},
    {"cuda.wgrad.direct.any.any", Direction::wgrad, accepts_all, wgrad_direct},
}};

std::span<const core::KernelInfo> kernels() { return kernel_list; }

}  // namespace

const core::BackendEntry& backend() {
  static const core::BackendEntry entry{"cuda", DeviceKind::cuda, device_present, kernels};
  return entry;
}

}  // namespace convgrad::cuda
