// SPDX-License-Identifier: Apache-2.0
// The base of gradient kernels: two sources (the incoming gradient and the forward source), the
// state of the forward pass, one result (the gradient with respect to the forward source).
// MPS: `MPSCNNGradientKernel` (and the parts of `MPSCNNBinaryKernel` it uses).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>

#include "convgrad/command_buffer.hpp"
#include "convgrad/convolution.hpp"
#include "convgrad/convolution_gradient_state.hpp"
#include "convgrad/image.hpp"
#include "convgrad/padding.hpp"

namespace convgrad {

/// The primary source is the incoming gradient (dL/dy), the secondary source the forward source
/// image (x), the destination the gradient with respect to x.
///
/// Geometry. Every offset defaults to "automatic": each encode derives it from the gradient state
/// (as MPS's encodes that return their result do), so the encode into a given destination needs no
/// manual set-up (MPS's pitfall). Setting an offset fixes it for later encodes until
/// `reset_offsets()`; the getters return the values the last encode used.
class GradientKernel {
 public:
  virtual ~GradientKernel() = default;

  const Device& device() const noexcept { return device_; }
  const std::string& label() const noexcept { return label_; }
  void set_label(std::string label) { label_ = std::move(label); }

  /// Where the first incoming-gradient pixel sits; `z` is its first image. x and y must be 0
  /// (the incoming gradient is the whole forward result).
  Offset primary_offset() const noexcept { return primary_offset_; }
  void set_primary_offset(const Offset& offset);
  /// Weight gradient: origin of the first window in the source image, MPS's
  /// `forward offset - (dilated kernel >> 1)`, i.e. minus the top/left pads; `z` is the first
  /// source image.
  Offset secondary_offset() const noexcept { return secondary_offset_; }
  void set_secondary_offset(const Offset& offset);
  /// Data gradient: kernel position in the zero-inserted gradient frame, MPS's
  /// `-forward offset + (dilated kernel even ? 1 : 0)`.
  std::int64_t kernel_offset_x() const noexcept { return kernel_offset_x_; }
  std::int64_t kernel_offset_y() const noexcept { return kernel_offset_y_; }
  void set_kernel_offset_x(std::int64_t value);
  void set_kernel_offset_y(std::int64_t value);
  /// Returns every offset to automatic.
  void reset_offsets() noexcept;

  /// First channel of the destination written (any value; MPS requires multiples of 4).
  std::int64_t destination_feature_channel_offset() const noexcept { return destination_offset_; }
  void set_destination_feature_channel_offset(std::int64_t v) noexcept { destination_offset_ = v; }
  /// First channel read from the incoming gradient, and the most channels read from it.
  std::int64_t primary_source_feature_channel_offset() const noexcept { return primary_offset_c_; }
  void set_primary_source_feature_channel_offset(std::int64_t v) noexcept { primary_offset_c_ = v; }
  std::int64_t primary_source_feature_channel_max_count() const noexcept { return primary_max_c_; }
  void set_primary_source_feature_channel_max_count(std::int64_t v) noexcept { primary_max_c_ = v; }
  /// First channel read from the source image, and the most channels read from it.
  std::int64_t secondary_source_feature_channel_offset() const noexcept {
    return secondary_offset_c_;
  }
  void set_secondary_source_feature_channel_offset(std::int64_t v) noexcept {
    secondary_offset_c_ = v;
  }
  std::int64_t secondary_source_feature_channel_max_count() const noexcept {
    return secondary_max_c_;
  }
  void set_secondary_source_feature_channel_max_count(std::int64_t v) noexcept {
    secondary_max_c_ = v;
  }
  /// Kept for MPS parity; the result of a gradient encode is always sized like the forward source
  /// (from the state), whatever the policy.
  const Padding& padding() const noexcept { return padding_; }
  void set_padding(const Padding& padding) { padding_ = padding; }

  /// Result descriptor for the left-hand-side encode: the forward source's size, the source
  /// image's data type, `destination_feature_channel_offset + source image channels` channels.
  /// Also sets the automatic offsets from the state (MPS workflow step 5a).
  ImageDescriptor destination_image_descriptor(const Image& source_gradient,
                                               const Image& source_image,
                                               const ConvolutionGradientState& gradient_state);

  /// Computes the gradients and returns dL/d(source image) in a new image.
  Image encode(CommandBuffer& command_buffer, const Image& source_gradient,
               const Image& source_image, const ConvolutionGradientState& gradient_state);
  /// Computes the gradients, writing dL/d(source image) into `destination_gradient`.
  void encode(CommandBuffer& command_buffer, const Image& source_gradient,
              const Image& source_image, const ConvolutionGradientState& gradient_state,
              const Image& destination_gradient);
  /// One state for the whole batch: its weight gradients become the sum over every image.
  ImageBatch encode_batch(CommandBuffer& command_buffer, const ImageBatch& source_gradients,
                          const ImageBatch& source_images,
                          const ConvolutionGradientState& gradient_state);
  void encode_batch(CommandBuffer& command_buffer, const ImageBatch& source_gradients,
                    const ImageBatch& source_images,
                    const ConvolutionGradientState& gradient_state,
                    const ImageBatch& destination_gradients);

 protected:
  explicit GradientKernel(const Device& device) : device_(device) {}

  /// Everything an encode resolved: the offsets to use and the image windows.
  struct Resolved {
    Offset primary, secondary;
    std::int64_t kernel_offset_x = 0, kernel_offset_y = 0;
    Image source_gradient, source_image, destination;  // channel and batch windows applied
  };
  /// Validates everything (throwing InvalidArgument) and returns the work to enqueue. Nothing is
  /// written when it throws; batches prepare every entry before enqueueing any.
  virtual std::function<void()> prepare_work(const Resolved& resolved,
                                             const ConvolutionGradientState& gradient_state,
                                             const char* where) = 0;
  /// Channels of the incoming gradient and of the source image the subclass expects.
  virtual std::int64_t expected_gradient_channels() const = 0;
  virtual std::int64_t expected_image_channels() const = 0;
  /// Checks that `gradient_state` came from a forward pass this kernel can differentiate.
  virtual void check_state(const ConvolutionGradientState& gradient_state,
                           const char* where) const = 0;

 private:
  Resolved resolve(const Image& source_gradient, const Image& source_image,
                   const ConvolutionGradientState& gradient_state,
                   const Image* destination, const char* where);
  void remember(const Resolved& resolved) noexcept;

  Device device_;
  std::string label_;
  Offset primary_offset_, secondary_offset_;
  std::int64_t kernel_offset_x_ = 0, kernel_offset_y_ = 0;
  bool primary_set_ = false, secondary_set_ = false;
  bool kernel_x_set_ = false, kernel_y_set_ = false;
  std::int64_t destination_offset_ = 0;
  std::int64_t primary_offset_c_ = 0, secondary_offset_c_ = 0;
  std::int64_t primary_max_c_ = std::numeric_limits<std::int64_t>::max();
  std::int64_t secondary_max_c_ = std::numeric_limits<std::int64_t>::max();
  Padding padding_;
};

}  // namespace convgrad
