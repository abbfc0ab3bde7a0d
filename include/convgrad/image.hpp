// SPDX-License-Identifier: Apache-2.0
// Image: an NHWC tensor of N images (MPS: `MPSImage` with `numberOfImages`, `MPSImageBatch`).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "convgrad/device.hpp"
#include "convgrad/dtype.hpp"
#include "convgrad/tensor_view.hpp"

namespace convgrad {

/// MPS: `MPSImageDescriptor`. Defaults as MPS: 1 x 1 x 1 channel, one image.
struct ImageDescriptor {
  std::int64_t width = 1;
  std::int64_t height = 1;
  std::int64_t feature_channels = 1;
  std::int64_t number_of_images = 1;
  DataType data_type = DataType::float32;
  friend bool operator==(const ImageDescriptor&, const ImageDescriptor&) = default;
};

/// N images of H x W pixels with C feature channels, stored NHWC (channels last; unlike MPS,
/// channels are not padded to multiples of 4). A handle: copies share the pixels. Views made by
/// `channels()` and `images()` share them too, so a kernel can read or write a channel window or a
/// batch slice of a larger image without a copy (MPS's feature-channel offsets and batches).
class Image {
 public:
  /// An empty handle.
  Image() = default;
  /// New storage on `device`, filled with zeros.
  Image(const Device& device, const ImageDescriptor& descriptor);

  bool valid() const noexcept { return storage_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }
  const Device& device() const;
  std::int64_t width() const noexcept { return dims_[2]; }
  std::int64_t height() const noexcept { return dims_[1]; }
  std::int64_t feature_channels() const noexcept { return dims_[3]; }
  std::int64_t number_of_images() const noexcept { return dims_[0]; }
  DataType data_type() const noexcept { return type_; }
  ImageDescriptor descriptor() const;

  /// Channels [first, first + count) of every pixel. Throws InvalidArgument when out of range.
  Image channels(std::int64_t first, std::int64_t count) const;
  /// Images [first, first + count). Throws InvalidArgument when out of range.
  Image images(std::int64_t first, std::int64_t count) const;
  /// Whether both handles use the same storage (views included).
  bool shares_storage_with(const Image& other) const noexcept {
    return storage_ != nullptr && storage_ == other.storage_;
  }

  /// Writes logical NHWC float values (converted to the storage type). `values.size()` must be
  /// N*H*W*C. MPS: `writeBytes` with `HeightxWidthxFeatureChannels`.
  void write(std::span<const float> values);
  /// Reads logical NHWC values as float. MPS: `readBytes`.
  std::vector<float> read() const;
  /// The view that kernels receive.
  TensorView view() const;

 private:
  struct Storage;
  std::shared_ptr<Storage> storage_;
  std::int64_t offset_ = 0;  // elements from the storage's start to pixel (0, 0, 0, 0)
  std::array<std::int64_t, 4> dims_{0, 0, 0, 0};
  std::array<std::int64_t, 4> strides_{0, 0, 0, 0};
  DataType type_ = DataType::float32;
};

/// MPS: `MPSImageBatch`.
using ImageBatch = std::vector<Image>;

}  // namespace convgrad
