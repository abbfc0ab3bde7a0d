// SPDX-License-Identifier: Apache-2.0
#include "convgrad/convolution_descriptor.hpp"

#include <string>

#include "convgrad/errors.hpp"

namespace convgrad {
namespace {
std::string str(std::int64_t v) { return std::to_string(v); }
}  // namespace

ConvolutionDescriptor::ConvolutionDescriptor(std::int64_t kernel_width,
                                             std::int64_t kernel_height,
                                             std::int64_t input_feature_channels,
                                             std::int64_t output_feature_channels)
    : kernel_width_(kernel_width),
      kernel_height_(kernel_height),
      input_channels_(input_feature_channels),
      output_channels_(output_feature_channels) {}

std::int64_t ConvolutionDescriptor::groups() const noexcept {
  return kind_ == ConvolutionKind::depthwise ? input_channels_ : groups_;
}

std::int64_t ConvolutionDescriptor::channel_multiplier() const noexcept {
  if (kind_ != ConvolutionKind::depthwise || input_channels_ <= 0) return 0;
  return output_channels_ / input_channels_;
}

std::int64_t ConvolutionDescriptor::weight_count() const noexcept {
  const std::int64_t g = groups() > 0 ? groups() : 1;
  return output_channels_ * kernel_height_ * kernel_width_ * (input_channels_ / g);
}

void ConvolutionDescriptor::validate(const char* where) const {
  const std::string text = to_string();
  auto require = [&](bool ok, const char* parameter, std::int64_t value, const std::string& rule) {
    if (!ok) throw InvalidArgument(where, parameter, str(value), rule, text);
  };
  constexpr std::int64_t kLimit = std::int64_t{1} << 31;  // keeps every product below 2^63
  for (const auto& [name, value] :
       {std::pair{"descriptor.kernel_width", kernel_width_},
        std::pair{"descriptor.kernel_height", kernel_height_},
        std::pair{"descriptor.input_feature_channels", input_channels_},
        std::pair{"descriptor.output_feature_channels", output_channels_},
        std::pair{"descriptor.stride_in_pixels_x", stride_x_},
        std::pair{"descriptor.stride_in_pixels_y", stride_y_},
        std::pair{"descriptor.dilation_rate_x", dilation_x_},
        std::pair{"descriptor.dilation_rate_y", dilation_y_},
        std::pair{"descriptor.groups", groups_}}) {
    require(value >= 1, name, value, "must be at least 1");
    require(value < kLimit, name, value, "must be below 2^31");
  }
  require(dilated_kernel_width() < kLimit, "descriptor.dilation_rate_x", dilation_x_,
          "the dilated kernel width must be below 2^31");
  require(dilated_kernel_height() < kLimit, "descriptor.dilation_rate_y", dilation_y_,
          "the dilated kernel height must be below 2^31");
  std::int64_t count = 0;
  const std::int64_t per_group = input_channels_ / groups();
  require(!__builtin_mul_overflow(output_channels_ * kernel_height_, kernel_width_ * per_group,
                                  &count) &&
              count < (std::int64_t{1} << 62),
          "descriptor.output_feature_channels", output_channels_,
          "the weight count (output * kernel_height * kernel_width * input / groups) overflows");
  if (kind_ == ConvolutionKind::depthwise) {
    require(groups_ == 1, "descriptor.groups", groups_,
            "a depthwise descriptor groups by channel already; groups must be 1");
    require(output_channels_ % input_channels_ == 0, "descriptor.output_feature_channels",
            output_channels_,
            "a depthwise descriptor needs a multiple of the input channels (" +
                str(input_channels_) + ")");
    return;
  }
  require(input_channels_ % groups_ == 0, "descriptor.groups", groups_,
          "must divide the input feature channels (" + str(input_channels_) + ")");
  require(output_channels_ % groups_ == 0, "descriptor.groups", groups_,
          "must divide the output feature channels (" + str(output_channels_) + ")");
  if (kind_ == ConvolutionKind::sub_pixel) {
    require(sub_pixel_scale_ >= 1, "descriptor.sub_pixel_scale_factor", sub_pixel_scale_,
            "must be at least 1");
  }
}

std::string ConvolutionDescriptor::to_string() const {
  std::string kind = kind_ == ConvolutionKind::depthwise ? "depthwise "
                     : kind_ == ConvolutionKind::sub_pixel
                         ? "sub-pixel x" + str(sub_pixel_scale_) + " "
                         : "";
  return kind + str(kernel_height_) + "x" + str(kernel_width_) + " " + str(input_channels_) +
         "->" + str(output_channels_) + " stride " + str(stride_y_) + "x" + str(stride_x_) +
         " dilation " + str(dilation_y_) + "x" + str(dilation_x_) + " groups " + str(groups()) +
         (bias_enabled_ ? "" : " no-bias");
}

}  // namespace convgrad
