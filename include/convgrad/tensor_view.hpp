// SPDX-License-Identifier: Apache-2.0
// TensorView: a pointer, a data type, four dimensions and four element strides. It is how
// images, weights, biases and gradients reach the backends without copies.
#pragma once

#include <array>
#include <cstdint>

#include "convgrad/dtype.hpp"

namespace convgrad {

/// Where the memory of a view lives.
enum class DeviceKind : std::uint8_t { cpu, cuda };

/// Images are `{N, H, W, C}`, weights `{K, R, S, C/groups}`, biases `{K, 1, 1, 1}`.
/// `strides` are in elements and may describe channel windows and batch slices of a larger
/// tensor. `extent` is the number of elements addressable from `data` (the allocation's tail);
/// validation refuses a view that reaches past it.
struct TensorView {
  void* data = nullptr;
  DataType type = DataType::float32;
  std::array<std::int64_t, 4> dims{0, 0, 0, 0};
  std::array<std::int64_t, 4> strides{0, 0, 0, 0};
  std::int64_t extent = 0;
  DeviceKind device = DeviceKind::cpu;

  bool empty() const noexcept { return data == nullptr; }
  /// Element offset of index (i0, i1, i2, i3).
  std::int64_t offset(std::int64_t i0, std::int64_t i1, std::int64_t i2,
                      std::int64_t i3) const noexcept {
    return i0 * strides[0] + i1 * strides[1] + i2 * strides[2] + i3 * strides[3];
  }
};

/// A dense row-major view of `d0 x d1 x d2 x d3` elements.
TensorView dense_view(void* data, DataType type, std::int64_t d0, std::int64_t d1,
                      std::int64_t d2, std::int64_t d3, DeviceKind device = DeviceKind::cpu);
/// A dense float32 bias view of `k` elements.
TensorView bias_view(float* data, std::int64_t k, DeviceKind device = DeviceKind::cpu);

}  // namespace convgrad
