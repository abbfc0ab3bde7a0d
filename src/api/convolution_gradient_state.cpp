// SPDX-License-Identifier: Apache-2.0
#include "convgrad/convolution_gradient_state.hpp"

#include "api/state_impl.hpp"
#include "convgrad/errors.hpp"

namespace convgrad {
namespace {
template <typename Impl>
Impl& require(const std::shared_ptr<Impl>& impl, const char* where) {
  if (!impl) throw InvalidArgument(where, "state", "empty", "the state was never created");
  return *impl;
}
}  // namespace

namespace {
constexpr const char* kWeightsAlternative =
    "read_gradient_for_weights() or gradient_for_weights_view()";
constexpr const char* kBiasesAlternative =
    "read_gradient_for_biases() or gradient_for_biases_view()";
}  // namespace

std::span<const float> ConvolutionGradientState::gradient_for_weights() const {
  const char* where = "ConvolutionGradientState::gradient_for_weights";
  const Impl& impl = require(impl_, where);
  return impl.weight_gradient.host(impl.device, where, kWeightsAlternative);
}
std::span<float> ConvolutionGradientState::gradient_for_weights() {
  const char* where = "ConvolutionGradientState::gradient_for_weights";
  const Impl& impl = require(impl_, where);
  return impl.weight_gradient.host(impl.device, where, kWeightsAlternative);
}
std::span<const float> ConvolutionGradientState::gradient_for_biases() const {
  const char* where = "ConvolutionGradientState::gradient_for_biases";
  const Impl& impl = require(impl_, where);
  return impl.bias_gradient.host(impl.device, where, kBiasesAlternative);
}
std::span<float> ConvolutionGradientState::gradient_for_biases() {
  const char* where = "ConvolutionGradientState::gradient_for_biases";
  const Impl& impl = require(impl_, where);
  return impl.bias_gradient.host(impl.device, where, kBiasesAlternative);
}
const Device& ConvolutionGradientState::device() const {
  return require(impl_, "ConvolutionGradientState::device").device;
}
std::vector<float> ConvolutionGradientState::read_gradient_for_weights() const {
  return require(impl_, "ConvolutionGradientState::read_gradient_for_weights")
      .weight_gradient.read();
}
std::vector<float> ConvolutionGradientState::read_gradient_for_biases() const {
  const Impl& impl = require(impl_, "ConvolutionGradientState::read_gradient_for_biases");
  return impl.bias_gradient.empty() ? std::vector<float>() : impl.bias_gradient.read();
}
TensorView ConvolutionGradientState::gradient_for_weights_view() const {
  const Impl& impl = require(impl_, "ConvolutionGradientState::gradient_for_weights_view");
  const ConvolutionDescriptor& d = impl.descriptor;
  return impl.weight_gradient.view(d.output_feature_channels(), d.kernel_height(),
                                   d.kernel_width(), d.input_feature_channels() / d.groups());
}
TensorView ConvolutionGradientState::gradient_for_biases_view() const {
  const Impl& impl = require(impl_, "ConvolutionGradientState::gradient_for_biases_view");
  if (impl.bias_gradient.empty()) return {};
  return impl.bias_gradient.view(static_cast<std::int64_t>(impl.bias_gradient.size()));
}
const Convolution& ConvolutionGradientState::convolution() const {
  const char* where = "ConvolutionGradientState::convolution";
  const Impl& impl = require(impl_, where);
  if (impl.convolution == nullptr) {
    throw InvalidArgument(where, "state", "from a ConvolutionTranspose",
                          "a transpose's state has no forward convolution (see "
                          "ConvolutionTransposeGradientState::convolution_transpose())");
  }
  return *impl.convolution;
}
const ConvolutionDescriptor& ConvolutionGradientState::descriptor() const {
  return require(impl_, "ConvolutionGradientState::descriptor").descriptor;
}
bool ConvolutionGradientState::from_transpose() const noexcept {
  return impl_ != nullptr && impl_->transpose != nullptr;
}
std::int64_t ConvolutionGradientState::source_width() const {
  return require(impl_, "ConvolutionGradientState::source_width").source_width;
}
std::int64_t ConvolutionGradientState::source_height() const {
  return require(impl_, "ConvolutionGradientState::source_height").source_height;
}
std::int64_t ConvolutionGradientState::destination_width() const {
  return require(impl_, "ConvolutionGradientState::destination_width").geometry.output_width;
}
std::int64_t ConvolutionGradientState::destination_height() const {
  return require(impl_, "ConvolutionGradientState::destination_height").geometry.output_height;
}
const ConvolutionGeometry& ConvolutionGradientState::geometry() const {
  return require(impl_, "ConvolutionGradientState::geometry").geometry;
}

}  // namespace convgrad
