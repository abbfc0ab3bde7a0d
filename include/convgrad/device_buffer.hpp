// SPDX-License-Identifier: Apache-2.0
// DeviceBuffer: raw memory on a Device, to place tensors where a backend reads them (GPU memory
// for the `cuda` backend) and to copy them in and out. MPS has no counterpart: its MTLBuffer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "convgrad/device.hpp"
#include "convgrad/dtype.hpp"
#include "convgrad/tensor_view.hpp"

namespace convgrad {

/// Owns `size()` bytes on a device; move-only, freed on destruction. On a CPU device it is host
/// memory; on a CUDA device it is device memory that only kernels and the copy calls touch.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  /// Throws DeviceError when the device cannot provide `bytes` ("cudaMalloc of N bytes failed:
  /// out of memory"); nothing is held then. The contents start undefined.
  DeviceBuffer(const Device& device, std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return data_ == nullptr; }
  DeviceKind kind() const noexcept { return kind_; }
  int ordinal() const noexcept { return ordinal_; }

  /// Blocking copies of `bytes` at byte `offset` of the buffer; InvalidArgument when the range
  /// leaves the buffer, DeviceError when the device fails. They wait for the calling thread's
  /// earlier work on the device.
  void copy_from_host(const void* source, std::size_t bytes, std::size_t offset = 0);
  void copy_to_host(void* destination, std::size_t bytes, std::size_t offset = 0) const;
  /// Sets every byte to `value` (0xFF makes every float32, float16 and bfloat16 element a NaN).
  void fill_bytes(unsigned char value);

  /// A view of elements of `type` starting `element_offset` elements in, with element `strides`;
  /// its extent is the rest of the buffer. InvalidArgument when the offset leaves the buffer.
  TensorView view(DataType type, const std::array<std::int64_t, 4>& dims,
                  const std::array<std::int64_t, 4>& strides,
                  std::int64_t element_offset = 0) const;
  /// A dense row-major `d0 x d1 x d2 x d3` view from the start of the buffer.
  TensorView dense_view(DataType type, std::int64_t d0, std::int64_t d1, std::int64_t d2,
                        std::int64_t d3) const;

 private:
  void reset() noexcept;
  void* data_ = nullptr;
  std::size_t size_ = 0;
  DeviceKind kind_ = DeviceKind::cpu;
  int ordinal_ = 0;
};

}  // namespace convgrad
