// SPDX-License-Identifier: Apache-2.0
// GPU test helpers: the skip rule (no CUDA device: skipped with the reason, never passed) and
// device copies of the host test tensors.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <string>

#include "convgrad/device.hpp"
#include "convgrad/device_buffer.hpp"
#include "convgrad/functional.hpp"
#include "support/oracle_support.hpp"

namespace convgrad::test {

/// Empty when the cuda backend can run here; otherwise why not ("no CUDA device: ...").
inline std::string cuda_unavailable() {
  for (const BackendInfo& info : list_backends()) {
    if (info.name == "cuda") return info.available ? std::string() : info.reason;
  }
  return "no CUDA device: the cuda backend is not compiled in";
}

/// The first statement of every GPU test: CI has no GPU and must show these as skipped.
#define CONVGRAD_REQUIRE_CUDA()                                                             \
  do {                                                                                      \
    if (const std::string reason = ::convgrad::test::cuda_unavailable(); !reason.empty()) { \
      GTEST_SKIP() << reason;                                                               \
    }                                                                                       \
  } while (false)

/// The bytes of a StridedTensor's view (from its first element to the end of its extent, slack
/// included) on the GPU, with the same strides. Downloading copies them back over the host
/// buffer, so the host side can check every viewed element and everything around it.
class DeviceMirror {
 public:
  explicit DeviceMirror(const StridedTensor& host)
      : bytes_(static_cast<std::size_t>(host.view().extent) * size_of(host.view().type)),
        buffer_(Device::cuda(), bytes_) {
    buffer_.copy_from_host(host.view().data, bytes_);
    view_ = host.view();
    view_.data = buffer_.data();
    view_.device = DeviceKind::cuda;
  }
  const TensorView& view() const { return view_; }
  /// 0xFF bytes: NaN in float32, float16 and bfloat16 alike.
  void poison() { buffer_.fill_bytes(0xFF); }
  void download(StridedTensor& host) const { buffer_.copy_to_host(host.view().data, bytes_); }

 private:
  std::size_t bytes_;
  DeviceBuffer buffer_;
  TensorView view_;
};

}  // namespace convgrad::test
