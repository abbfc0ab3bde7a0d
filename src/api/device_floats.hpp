// SPDX-License-Identifier: Apache-2.0
// float32 values on a Device, the storage of gradient states and weights states: host memory for
// the CPU (where spans of it are handed out), device memory for CUDA (where only views, copies
// and kernels touch it).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "convgrad/device.hpp"
#include "convgrad/device_buffer.hpp"
#include "convgrad/tensor_view.hpp"

namespace convgrad::api {

class DeviceFloats {
 public:
  DeviceFloats() = default;
  /// `count` zeros on `device`. Throws DeviceError when the device has too little memory.
  DeviceFloats(const Device& device, std::size_t count);

  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  DeviceKind kind() const noexcept { return buffer_.kind(); }
  bool on_host() const noexcept { return buffer_.kind() == DeviceKind::cpu; }
  /// Host or device address of the first value (null when empty).
  float* data() const noexcept {
    return count_ == 0 ? nullptr : static_cast<float*>(buffer_.data());
  }
  /// The values as a host span; throws Unsupported naming `device`, `where` and `alternative`
  /// when they live on a device (a span would point at memory the host cannot read).
  std::span<float> host(const Device& device, const char* where, const char* alternative) const;
  /// Blocking copies of every value, out and in; `values` must hold size() of them.
  std::vector<float> read() const;
  void write(std::span<const float> values);
  /// Copies `other` (same size and device kind) in: complete on return outside a command
  /// buffer's work, ordered on its stream inside.
  void copy_from(const DeviceFloats& other);
  /// A dense `d0 x d1 x d2 x d3` view (d0 = size() for a vector).
  TensorView view(std::int64_t d0, std::int64_t d1 = 1, std::int64_t d2 = 1,
                  std::int64_t d3 = 1) const;

 private:
  DeviceBuffer buffer_;
  std::size_t count_ = 0;
};

}  // namespace convgrad::api
