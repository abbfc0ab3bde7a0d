// SPDX-License-Identifier: Apache-2.0
#include "api/device_floats.hpp"

#include <string>

#include "convgrad/errors.hpp"
#include "dispatch/device_work.hpp"

namespace convgrad::api {

DeviceFloats::DeviceFloats(const Device& device, std::size_t count)
    : buffer_(device, count * sizeof(float)), count_(count) {
  buffer_.fill_bytes(0);
}

std::span<float> DeviceFloats::host(const Device& device, const char* where,
                                    const char* alternative) const {
  if (!on_host()) {
    std::string message = where;
    message.append(": the values live in the memory of ").append(device.name());
    message.append(", which a host span cannot address; use ").append(alternative);
    throw Unsupported(message);
  }
  return {data(), count_};
}

std::vector<float> DeviceFloats::read() const {
  std::vector<float> values(count_);
  buffer_.copy_to_host(values.data(), count_ * sizeof(float));
  return values;
}

void DeviceFloats::write(std::span<const float> values) {
  buffer_.copy_from_host(values.data(), values.size() * sizeof(float));
}

void DeviceFloats::copy_from(const DeviceFloats& other) {
  if (other.kind() == kind()) {
    dispatch::copy_within(kind(), data(), other.data(), count_ * sizeof(float));
  } else if (on_host()) {
    other.buffer_.copy_to_host(data(), count_ * sizeof(float));
  } else {
    buffer_.copy_from_host(other.data(), count_ * sizeof(float));
  }
}

TensorView DeviceFloats::view(std::int64_t d0, std::int64_t d1, std::int64_t d2,
                              std::int64_t d3) const {
  return dense_view(data(), DataType::float32, d0, d1, d2, d3, kind());
}

}  // namespace convgrad::api
