// SPDX-License-Identifier: Apache-2.0
// The shape of a convolution layer. MPS: `MPSCNNConvolutionDescriptor` and its subclasses
// `MPSCNNDepthWiseConvolutionDescriptor` and `MPSCNNSubPixelConvolutionDescriptor`.
#pragma once

#include <cstdint>
#include <string>

namespace convgrad {

enum class ConvolutionKind : std::uint8_t { regular, depthwise, sub_pixel };

/// Kernel size, channel counts, strides, dilation, groups and whether a bias is added.
/// Defaults as MPS: 3 x 3 kernel, stride 1, dilation 1, groups 1; bias on.
/// Weights are laid out `[output][kernel_height][kernel_width][input / groups]` (OHWI).
class ConvolutionDescriptor {
 public:
  ConvolutionDescriptor() = default;
  /// MPS: `cnnConvolutionDescriptor(kernelWidth:kernelHeight:inputFeatureChannels:outputFeatureChannels:)`.
  ConvolutionDescriptor(std::int64_t kernel_width, std::int64_t kernel_height,
                        std::int64_t input_feature_channels, std::int64_t output_feature_channels);

  std::int64_t kernel_width() const noexcept { return kernel_width_; }
  std::int64_t kernel_height() const noexcept { return kernel_height_; }
  std::int64_t input_feature_channels() const noexcept { return input_channels_; }
  std::int64_t output_feature_channels() const noexcept { return output_channels_; }
  std::int64_t stride_in_pixels_x() const noexcept { return stride_x_; }
  std::int64_t stride_in_pixels_y() const noexcept { return stride_y_; }
  std::int64_t dilation_rate_x() const noexcept { return dilation_x_; }
  std::int64_t dilation_rate_y() const noexcept { return dilation_y_; }
  /// Regular: as set (default 1). Depthwise: the input channel count (one group per channel).
  std::int64_t groups() const noexcept;
  bool bias_enabled() const noexcept { return bias_enabled_; }
  ConvolutionKind kind() const noexcept { return kind_; }
  /// 0 for a regular convolution (as MPS); output / input channels for a depthwise one.
  std::int64_t channel_multiplier() const noexcept;
  /// 1 except for sub-pixel descriptors.
  std::int64_t sub_pixel_scale_factor() const noexcept { return sub_pixel_scale_; }

  void set_kernel_width(std::int64_t v) noexcept { kernel_width_ = v; }
  void set_kernel_height(std::int64_t v) noexcept { kernel_height_ = v; }
  void set_input_feature_channels(std::int64_t v) noexcept { input_channels_ = v; }
  void set_output_feature_channels(std::int64_t v) noexcept { output_channels_ = v; }
  void set_stride_in_pixels_x(std::int64_t v) noexcept { stride_x_ = v; }
  void set_stride_in_pixels_y(std::int64_t v) noexcept { stride_y_ = v; }
  void set_dilation_rate_x(std::int64_t v) noexcept { dilation_x_ = v; }
  void set_dilation_rate_y(std::int64_t v) noexcept { dilation_y_ = v; }
  /// For depthwise descriptors only 1 is valid (MPS); the grouping is implied.
  void set_groups(std::int64_t v) noexcept { groups_ = v; }
  void set_bias_enabled(bool v) noexcept { bias_enabled_ = v; }

  /// Dilated extents: (kernel - 1) * dilation + 1.
  std::int64_t dilated_kernel_width() const noexcept { return (kernel_width_ - 1) * dilation_x_ + 1; }
  std::int64_t dilated_kernel_height() const noexcept {
    return (kernel_height_ - 1) * dilation_y_ + 1;
  }
  /// Number of weights: output * kernel_height * kernel_width * input / groups.
  std::int64_t weight_count() const noexcept;

  /// Throws InvalidArgument (prefixed by `where`) when a field breaks a rule: sizes, strides and
  /// dilations at least 1, groups dividing both channel counts, a depthwise descriptor with
  /// groups != 1 or output channels not a multiple of input channels.
  void validate(const char* where) const;
  /// E.g. "3x3 16->32 stride 1x1 dilation 1x1 groups 1".
  std::string to_string() const;

  friend bool operator==(const ConvolutionDescriptor&, const ConvolutionDescriptor&) = default;

 protected:
  ConvolutionKind kind_ = ConvolutionKind::regular;
  std::int64_t sub_pixel_scale_ = 1;

 private:
  std::int64_t kernel_width_ = 3, kernel_height_ = 3;
  std::int64_t input_channels_ = 1, output_channels_ = 1;
  std::int64_t stride_x_ = 1, stride_y_ = 1;
  std::int64_t dilation_x_ = 1, dilation_y_ = 1;
  std::int64_t groups_ = 1;
  bool bias_enabled_ = true;
};

/// Each input channel convolved with its own `channel_multiplier` filters (output channels =
/// input channels * multiplier). Multipliers above 1 are supported (beyond MPS). Weights are
/// `[output][kernel_height][kernel_width]`, the same memory as OHWI with one input per group.
class DepthwiseConvolutionDescriptor : public ConvolutionDescriptor {
 public:
  DepthwiseConvolutionDescriptor(std::int64_t kernel_width, std::int64_t kernel_height,
                                 std::int64_t input_feature_channels,
                                 std::int64_t output_feature_channels)
      : ConvolutionDescriptor(kernel_width, kernel_height, input_feature_channels,
                              output_feature_channels) {
    kind_ = ConvolutionKind::depthwise;
  }
};

/// Sub-pixel upsampling. It exists so that descriptors read from MPS models are recognised; it
/// has no gradient (MPS neither), and creating a gradient kernel from one throws InvalidArgument.
class SubPixelConvolutionDescriptor : public ConvolutionDescriptor {
 public:
  SubPixelConvolutionDescriptor(std::int64_t kernel_width, std::int64_t kernel_height,
                                std::int64_t input_feature_channels,
                                std::int64_t output_feature_channels,
                                std::int64_t sub_pixel_scale_factor)
      : ConvolutionDescriptor(kernel_width, kernel_height, input_feature_channels,
                              output_feature_channels) {
    kind_ = ConvolutionKind::sub_pixel;
    sub_pixel_scale_ = sub_pixel_scale_factor;
  }
};

}  // namespace convgrad
