// SPDX-License-Identifier: Apache-2.0
// The CUDA backend: it detects a device at run time and lists its kernels, fastest first and the
// always-correct generic direct kernels last (issue #4 adds the tensor-core ones in front).
#include <cuda_runtime.h>

#include <array>
#include <string>
#include <vector>

#include "cuda/backend.hpp"
#include "cuda/direct.hpp"
#include "cuda/depthwise.hpp"
#include "cuda/few_channel.hpp"
#include "cuda/grouped.hpp"
#include "cuda/grouped_tc.hpp"
#include "cuda/wgrad_split.hpp"
#if CONVGRAD_WITH_CUTLASS
#include "cuda/tc/tensor_core.hpp"
#endif

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

constexpr std::array<core::KernelInfo, 21> kernel_list{{
    // Depthwise, grouped and few-channel kernels, then the generic split wgrad (issue #4).
    {"cuda.fprop.depthwise3x3.simt.vec", Direction::fprop, depthwise3x3_rejects,
     depthwise3x3_fprop},
    {"cuda.dgrad.depthwise3x3.simt.vec", Direction::dgrad, depthwise3x3_rejects,
     depthwise3x3_dgrad},
    {"cuda.wgrad.depthwise3x3.simt.vec", Direction::wgrad, depthwise3x3_rejects,
     depthwise3x3_wgrad},
    {"cuda.fprop.depthwise.simt.any", Direction::fprop, depthwise_rejects, depthwise_fprop},
    {"cuda.dgrad.depthwise.simt.any", Direction::dgrad, depthwise_rejects, depthwise_dgrad},
    {"cuda.wgrad.depthwise.simt.any", Direction::wgrad, depthwise_rejects, depthwise_wgrad},
    // Grouped on the tensor cores (16-bit storage, channels per group a multiple of 8).
    {"cuda.fprop.grouped.tc.bf16", Direction::fprop, grouped_tc_rejects_fprop_bf16,
     grouped_tc_fprop},
    {"cuda.fprop.grouped.tc.f16", Direction::fprop, grouped_tc_rejects_fprop_f16,
     grouped_tc_fprop},
    {"cuda.dgrad.grouped.tc.bf16", Direction::dgrad, grouped_tc_rejects_dgrad_bf16,
     grouped_tc_dgrad},
    {"cuda.dgrad.grouped.tc.f16", Direction::dgrad, grouped_tc_rejects_dgrad_f16,
     grouped_tc_dgrad},
    {"cuda.wgrad.grouped.tc.bf16", Direction::wgrad, grouped_tc_rejects_wgrad_bf16,
     grouped_tc_wgrad},
    {"cuda.wgrad.grouped.tc.f16", Direction::wgrad, grouped_tc_rejects_wgrad_f16,
     grouped_tc_wgrad},
    {"cuda.fprop.grouped.simt.any", Direction::fprop, grouped_rejects_fprop, grouped_fprop},
    {"cuda.dgrad.grouped.simt.any", Direction::dgrad, grouped_rejects_dgrad, grouped_dgrad},
    {"cuda.wgrad.grouped.simt.any", Direction::wgrad, grouped_rejects_wgrad, grouped_wgrad},
    {"cuda.fprop.few_channel.simt.any", Direction::fprop, few_channel_rejects_fprop,
     few_channel_fprop},
    {"cuda.dgrad.few_channel.simt.any", Direction::dgrad, few_channel_rejects_dgrad,
     few_channel_dgrad},
    {"cuda.wgrad.split.simt.any", Direction::wgrad, wgrad_split_rejects, wgrad_split},
    {"cuda.fprop.direct.any.any", Direction::fprop, accepts_all, fprop_direct},
    {"cuda.dgrad.direct.any.any", Direction::dgrad, accepts_all, dgrad_direct},
    {"cuda.wgrad.direct.any.any", Direction::wgrad, accepts_all, wgrad_direct},
}};

std::span<const core::KernelInfo> kernels() {
  static const std::vector<core::KernelInfo> list = [] {
    std::vector<core::KernelInfo> all;
#if CONVGRAD_WITH_CUTLASS
    const std::span<const core::KernelInfo> tensor_core = tc::kernels();
    all.insert(all.end(), tensor_core.begin(), tensor_core.end());
#endif
    all.insert(all.end(), kernel_list.begin(), kernel_list.end());
    return all;
  }();
  return list;
}

}  // namespace

const core::BackendEntry& backend() {
  static const core::BackendEntry entry{"cuda", DeviceKind::cuda, device_present, kernels};
  return entry;
}

}  // namespace convgrad::cuda
