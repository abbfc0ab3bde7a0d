// SPDX-License-Identifier: Apache-2.0
// The convolution gradient: turns the state's forward geometry and the kernel offsets into a
// dgrad and a wgrad problem, validates both, and enqueues them as gradient_option asks.
#include "convgrad/convolution_gradient.hpp"

#include <string>

#include "api/layer_support.hpp"
#include "api/state_impl.hpp"
#include "convgrad/errors.hpp"
#include "convgrad/functional.hpp"

namespace convgrad {
namespace {

std::string str(std::int64_t v) { return std::to_string(v); }

bool has(GradientOption option, GradientOption part) {
  return (static_cast<std::uint32_t>(option) & static_cast<std::uint32_t>(part)) != 0;
}

// Descriptors agree on everything the gradient depends on (the label and bias flag aside, which
// check_state compares on its own).
bool same_geometry(const ConvolutionDescriptor& a, const ConvolutionDescriptor& b) {
  return a.kernel_width() == b.kernel_width() && a.kernel_height() == b.kernel_height() &&
         a.input_feature_channels() == b.input_feature_channels() &&
         a.output_feature_channels() == b.output_feature_channels() &&
         a.stride_in_pixels_x() == b.stride_in_pixels_x() &&
         a.stride_in_pixels_y() == b.stride_in_pixels_y() &&
         a.dilation_rate_x() == b.dilation_rate_x() && a.dilation_rate_y() == b.dilation_rate_y() &&
         a.groups() == b.groups() && a.kind() == b.kind() &&
         a.bias_enabled() == b.bias_enabled();
}

}  // namespace

ConvolutionGradient::ConvolutionGradient(const Device& device,
                                         std::shared_ptr<ConvolutionDataSource> weights)
    : ConvolutionGradient(device, std::move(weights), "ConvolutionGradient") {}

ConvolutionGradient::ConvolutionGradient(const Device& device,
                                         std::shared_ptr<ConvolutionDataSource> weights,
                                         const char* where)
    : GradientKernel(device), data_source_(std::move(weights)) {
  if (data_source_ != nullptr) {
    const ConvolutionDescriptor& d = data_source_->descriptor();
    if (d.kind() == ConvolutionKind::sub_pixel) {
      throw InvalidArgument(where, "descriptor.sub_pixel_scale_factor",
                            str(d.sub_pixel_scale_factor()),
                            "sub-pixel convolutions have no gradient (as in MPS)", d.to_string());
    }
  }
  weights_ = api::on_device(device, api::load_kernel_weights(data_source_.get(), where));
  descriptor_ = data_source_->descriptor();
  set_label(data_source_->label());
}

std::int64_t ConvolutionGradient::source_gradient_feature_channels() const noexcept {
  return descriptor_.output_feature_channels();
}

std::int64_t ConvolutionGradient::source_image_feature_channels() const noexcept {
  return descriptor_.input_feature_channels();
}

std::int64_t ConvolutionGradient::expected_gradient_channels() const {
  return source_gradient_feature_channels();
}

std::int64_t ConvolutionGradient::expected_image_channels() const {
  return source_image_feature_channels();
}

void ConvolutionGradient::set_gradient_option(GradientOption option) {
  const auto bits = static_cast<std::uint32_t>(option);
  if (bits < 1 || bits > 3) {
    throw InvalidArgument("ConvolutionGradient::set_gradient_option", "gradient_option",
                          str(bits), "must be gradient_with_data (1), "
                                     "gradient_with_weights_and_bias (2) or all (3)");
  }
  gradient_option_ = option;
}

void ConvolutionGradient::check_state(const ConvolutionGradientState& state,
                                      const char* where) const {
  if (!state.valid()) {
    throw InvalidArgument(where, "gradient_state", "empty",
                          "pass the state that the forward convolution's encode produced");
  }
  if (state.from_transpose()) {
    throw InvalidArgument(where, "gradient_state", "from a ConvolutionTranspose",
                          "a transpose's state goes to ConvolutionTransposeGradient");
  }
  if (!same_geometry(state.descriptor(), descriptor_)) {
    throw InvalidArgument(where, "gradient_state",
                          "from a " + state.descriptor().to_string() + " convolution",
                          "the state must come from a convolution of this kernel's descriptor (" +
                              descriptor_.to_string() + ")");
  }
}

std::function<void()> ConvolutionGradient::prepare_work(const Resolved& r,
                                                        const ConvolutionGradientState& state,
                                                        const char* where) {
  const ConvolutionDescriptor& d = descriptor_;
  const std::int64_t n = r.source_gradient.number_of_images();
  const std::int64_t h = state.source_height(), w = state.source_width();
  const std::int64_t p = state.destination_height(), q = state.destination_width();

  // Data gradient: MPS places the kernel at primaryOffset * stride + kernelOffset in the
  // zero-inserted gradient; undoing kernelOffset = -o + (kd even) gives the forward offset o that
  // these values stand for, and o gives the top/left pads as in the forward pass.
  const std::int64_t kdh = d.dilated_kernel_height(), kdw = d.dilated_kernel_width();
  const std::int64_t data_offset_y =
      -(r.primary.y * d.stride_in_pixels_y() + r.kernel_offset_y) + ((kdh & 1) == 0 ? 1 : 0);
  const std::int64_t data_offset_x =
      -(r.primary.x * d.stride_in_pixels_x() + r.kernel_offset_x) + ((kdw & 1) == 0 ? 1 : 0);
  // Weight gradient: the first window starts at secondaryOffset = o - (kd >> 1) = -pad.
  const std::int64_t weight_pad_top = -r.secondary.y, weight_pad_left = -r.secondary.x;

  const bool data = has(gradient_option_, GradientOption::gradient_with_data);
  const bool weights = has(gradient_option_, GradientOption::gradient_with_weights_and_bias);
  const SharedKernelWeights kernel = weights_;
  RunOptions options;
  options.backend = device().backend();

  ConvProblem data_problem, weight_problem;
  if (data) {
    data_problem = api::layer_problem(d, n, h, w, p, q, (kdh >> 1) - data_offset_y,
                                      (kdw >> 1) - data_offset_x, r.destination.data_type(),
                                      r.source_gradient.data_type(), false, where);
    validate(data_problem, Direction::dgrad, r.destination.view(), api::weight_view(*kernel, d),
             {}, r.source_gradient.view(), where);
  }
  TensorView dw, db;
  if (weights) {
    // Views of the state's buffers wherever they live: the device's own memory on a CUDA device.
    dw = state.gradient_for_weights_view();
    db = state.gradient_for_biases_view();
    weight_problem = api::layer_problem(d, n, h, w, p, q, weight_pad_top, weight_pad_left,
                                        r.source_image.data_type(), r.source_gradient.data_type(),
                                        !db.empty(), where);
    validate(weight_problem, Direction::wgrad, r.source_image.view(), dw, db,
             r.source_gradient.view(), where);
  }
  options.accumulate = true;  // the state sums over every image encoded into it
  return [=, dy = r.source_gradient, x = r.source_image, dx = r.destination, state = state] {
    RunOptions data_options = options;
    data_options.accumulate = false;
    if (data) dgrad(data_problem, dy.view(), api::weight_view(*kernel, d), dx.view(), data_options);
    if (weights) wgrad(weight_problem, x.view(), dy.view(), dw, db, options);
  };
}

void ConvolutionGradient::reload_weights_and_biases_from_data_source() {
  weights_ = api::on_device(
      device(), api::load_kernel_weights(
                    data_source_.get(),
                    "ConvolutionGradient::reload_weights_and_biases_from_data_source",
                    &descriptor_));
}

void ConvolutionGradient::reload_weights_and_biases(
    CommandBuffer& command_buffer, const ConvolutionWeightsAndBiasesState& state) {
  weights_ = api::reload_from_state(device(), command_buffer, state, descriptor_, *weights_,
                                    "ConvolutionGradient::reload_weights_and_biases");
}

}  // namespace convgrad
