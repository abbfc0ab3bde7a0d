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

std::span<const float> ConvolutionGradientState::gradient_for_weights() const {
  return require(impl_, "ConvolutionGradientState::gradient_for_weights").weight_gradient;
}
std::span<float> ConvolutionGradientState::gradient_for_weights() {
  return require(impl_, "ConvolutionGradientState::gradient_for_weights").weight_gradient;
}
std::span<const float> ConvolutionGradientState::gradient_for_biases() const {
  return require(impl_, "ConvolutionGradientState::gradient_for_biases").bias_gradient;
}
std::span<float> ConvolutionGradientState::gradient_for_biases() {
  return require(impl_, "ConvolutionGradientState::gradient_for_biases").bias_gradient;
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
