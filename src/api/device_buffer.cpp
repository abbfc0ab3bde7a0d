// SPDX-License-Identifier: Apache-2.0
#include "convgrad/device_buffer.hpp"

#include <string>
#include <utility>

#include "convgrad/errors.hpp"
#include "dispatch/memory.hpp"

namespace convgrad {
namespace {

void check_range(const char* where, std::size_t bytes, std::size_t offset, std::size_t size) {
  if (offset > size || bytes > size - offset) {
    std::string rule = "offset + bytes must not exceed the buffer's ";
    rule.append(std::to_string(size)).append(" bytes (offset ").append(std::to_string(offset));
    rule.append(")");
    throw InvalidArgument(where, "bytes", std::to_string(bytes), rule);
  }
}

}  // namespace

DeviceBuffer::DeviceBuffer(const Device& device, std::size_t bytes)
    : data_(dispatch::allocate(device.kind(), device.ordinal(), bytes)),
      size_(bytes),
      kind_(device.kind()),
      ordinal_(device.ordinal()) {}

DeviceBuffer::~DeviceBuffer() { reset(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      kind_(other.kind_),
      ordinal_(other.ordinal_) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    kind_ = other.kind_;
    ordinal_ = other.ordinal_;
  }
  return *this;
}

void DeviceBuffer::reset() noexcept {
  dispatch::release(kind_, data_);
  data_ = nullptr;
  size_ = 0;
}

void DeviceBuffer::copy_from_host(const void* source, std::size_t bytes, std::size_t offset) {
  check_range("DeviceBuffer::copy_from_host", bytes, offset, size_);
  if (bytes == 0) return;
  dispatch::copy_to_device(kind_, static_cast<std::byte*>(data_) + offset, source, bytes);
}

void DeviceBuffer::copy_to_host(void* destination, std::size_t bytes, std::size_t offset) const {
  check_range("DeviceBuffer::copy_to_host", bytes, offset, size_);
  if (bytes == 0) return;
  dispatch::copy_to_host(kind_, destination, static_cast<const std::byte*>(data_) + offset, bytes);
}

void DeviceBuffer::fill_bytes(unsigned char value) {
  if (size_ == 0) return;
  dispatch::fill_bytes(kind_, data_, value, size_);
}

TensorView DeviceBuffer::view(DataType type, const std::array<std::int64_t, 4>& dims,
                              const std::array<std::int64_t, 4>& strides,
                              std::int64_t element_offset) const {
  const auto elements = static_cast<std::int64_t>(size_ / size_of(type));
  if (element_offset < 0 || element_offset > elements) {
    throw InvalidArgument("DeviceBuffer::view", "element_offset", std::to_string(element_offset),
                          "must be in [0, " + std::to_string(elements) + "]");
  }
  TensorView result;
  result.data =
      static_cast<std::byte*>(data_) + static_cast<std::size_t>(element_offset) * size_of(type);
  result.type = type;
  result.dims = dims;
  result.strides = strides;
  result.extent = elements - element_offset;
  result.device = kind_;
  return result;
}

TensorView DeviceBuffer::dense_view(DataType type, std::int64_t d0, std::int64_t d1,
                                    std::int64_t d2, std::int64_t d3) const {
  return view(type, {d0, d1, d2, d3}, {d1 * d2 * d3, d2 * d3, d3, 1});
}

}  // namespace convgrad
