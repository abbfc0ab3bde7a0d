// SPDX-License-Identifier: Apache-2.0
#include "convgrad/image.hpp"

#include <string>

#include "convgrad/device_buffer.hpp"
#include "convgrad/errors.hpp"
#include "core/validate.hpp"

namespace convgrad {

// Host bytes on a CPU device; a DeviceBuffer elsewhere, which only kernels and copies touch.
struct Image::Storage {
  Device device;
  std::vector<std::byte> bytes;
  DeviceBuffer buffer;

  bool on_host() const noexcept { return device.kind() == DeviceKind::cpu; }
  std::byte* data() noexcept {
    return on_host() ? bytes.data() : static_cast<std::byte*>(buffer.data());
  }
  std::size_t size() const noexcept { return on_host() ? bytes.size() : buffer.size(); }
  // read() and write() convert on the host: a device image goes through a host copy of its
  // whole storage, since a channel or batch window is not contiguous there.
  std::vector<std::byte> download() const {
    std::vector<std::byte> copy(buffer.size());
    buffer.copy_to_host(copy.data(), copy.size());
    return copy;
  }
};

namespace {
std::string str(std::int64_t v) { return std::to_string(v); }
}  // namespace

Image::Image(const Device& device, const ImageDescriptor& d) : type_(d.data_type) {
  const char* where = "Image";
  const std::pair<const char*, std::int64_t> sizes[] = {{"number_of_images", d.number_of_images},
                                                        {"height", d.height},
                                                        {"width", d.width},
                                                        {"feature_channels", d.feature_channels}};
  std::int64_t count = 1;
  for (const auto& [name, value] : sizes) {
    if (value < 1) throw InvalidArgument(where, name, str(value), "must be at least 1");
    count = core::checked_mul(count, value, where, "number_of_images*height*width*channels", {});
  }
  core::checked_mul(count, static_cast<std::int64_t>(size_of(d.data_type)), where, "bytes", {});
  const std::size_t bytes = static_cast<std::size_t>(count) * size_of(type_);
  if (device.kind() == DeviceKind::cpu) {
    storage_ = std::make_shared<Storage>(Storage{device, std::vector<std::byte>(bytes), {}});
  } else {
    storage_ = std::make_shared<Storage>(Storage{device, {}, DeviceBuffer(device, bytes)});
    storage_->buffer.fill_bytes(0);
  }
  dims_ = {d.number_of_images, d.height, d.width, d.feature_channels};
  strides_ = {d.height * d.width * d.feature_channels, d.width * d.feature_channels,
              d.feature_channels, 1};
}

const Device& Image::device() const {
  if (!storage_) throw InvalidArgument("Image::device", "image", "empty", "the image is empty");
  return storage_->device;
}

ImageDescriptor Image::descriptor() const {
  return {width(), height(), feature_channels(), number_of_images(), type_};
}

Image Image::channels(std::int64_t first, std::int64_t count) const {
  if (first < 0 || first >= feature_channels()) {
    throw InvalidArgument("Image::channels", "first", str(first),
                          "must be in [0, " + str(feature_channels()) + ")");
  }
  if (count < 1 || count > feature_channels() - first) {
    throw InvalidArgument("Image::channels", "count", str(count),
                          "must be in [1, " + str(feature_channels() - first) + "]");
  }
  Image view = *this;
  view.offset_ += first * strides_[3];
  view.dims_[3] = count;
  return view;
}

Image Image::images(std::int64_t first, std::int64_t count) const {
  if (first < 0 || first >= number_of_images()) {
    throw InvalidArgument("Image::images", "first", str(first),
                          "must be in [0, " + str(number_of_images()) + ")");
  }
  if (count < 1 || count > number_of_images() - first) {
    throw InvalidArgument("Image::images", "count", str(count),
                          "must be in [1, " + str(number_of_images() - first) + "]");
  }
  Image view = *this;
  view.offset_ += first * strides_[0];
  view.dims_[0] = count;
  return view;
}

TensorView Image::view() const {
  TensorView v;
  if (!storage_) return v;
  v.type = type_;
  v.data = storage_->data() + static_cast<std::size_t>(offset_) * size_of(type_);
  v.dims = dims_;
  v.strides = strides_;
  v.extent = static_cast<std::int64_t>(storage_->size() / size_of(type_)) - offset_;
  v.device = storage_->device.kind();
  return v;
}

void Image::write(std::span<const float> values) {
  const std::int64_t count = dims_[0] * dims_[1] * dims_[2] * dims_[3];
  if (!storage_ || static_cast<std::int64_t>(values.size()) != count) {
    throw InvalidArgument("Image::write", "values.size()",
                          str(static_cast<std::int64_t>(values.size())),
                          "must equal N*H*W*C = " + str(count));
  }
  TensorView v = view();
  std::vector<std::byte> staging;
  if (!storage_->on_host()) {
    staging = storage_->download();
    v.data = staging.data() + static_cast<std::size_t>(offset_) * size_of(type_);
  }
  std::int64_t i = 0;
  for (std::int64_t n = 0; n < dims_[0]; ++n)
    for (std::int64_t h = 0; h < dims_[1]; ++h)
      for (std::int64_t w = 0; w < dims_[2]; ++w)
        for (std::int64_t c = 0; c < dims_[3]; ++c)
          store_from_float(v.data, type_, v.offset(n, h, w, c),
                           values[static_cast<std::size_t>(i++)]);
  if (!storage_->on_host()) storage_->buffer.copy_from_host(staging.data(), staging.size());
}

std::vector<float> Image::read() const {
  std::vector<float> values;
  if (!storage_) return values;
  values.reserve(static_cast<std::size_t>(dims_[0] * dims_[1] * dims_[2] * dims_[3]));
  TensorView v = view();
  std::vector<std::byte> staging;
  if (!storage_->on_host()) {
    staging = storage_->download();
    v.data = staging.data() + static_cast<std::size_t>(offset_) * size_of(type_);
  }
  for (std::int64_t n = 0; n < dims_[0]; ++n)
    for (std::int64_t h = 0; h < dims_[1]; ++h)
      for (std::int64_t w = 0; w < dims_[2]; ++w)
        for (std::int64_t c = 0; c < dims_[3]; ++c)
          values.push_back(load_as_float(v.data, type_, v.offset(n, h, w, c)));
  return values;
}

}  // namespace convgrad
