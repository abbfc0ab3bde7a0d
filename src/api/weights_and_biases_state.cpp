// SPDX-License-Identifier: Apache-2.0
#include "convgrad/weights_and_biases_state.hpp"

#include <string>

#include "convgrad/errors.hpp"

namespace convgrad {

struct ConvolutionWeightsAndBiasesState::Impl {
  Device device;
  ConvolutionDescriptor descriptor;
  std::vector<float> weights;
  std::vector<float> biases;
};

ConvolutionWeightsAndBiasesState::ConvolutionWeightsAndBiasesState(
    const Device& device, const ConvolutionDescriptor& descriptor) {
  descriptor.validate("ConvolutionWeightsAndBiasesState");
  impl_ = std::make_shared<Impl>(Impl{
      device, descriptor, std::vector<float>(static_cast<std::size_t>(descriptor.weight_count())),
      std::vector<float>(descriptor.bias_enabled()
                             ? static_cast<std::size_t>(descriptor.output_feature_channels())
                             : 0)});
}

ConvolutionWeightsAndBiasesState::ConvolutionWeightsAndBiasesState(
    const Device& device, const ConvolutionDescriptor& descriptor, std::span<const float> weights,
    std::span<const float> biases)
    : ConvolutionWeightsAndBiasesState(device, descriptor) {
  const char* where = "ConvolutionWeightsAndBiasesState";
  if (weights.size() != impl_->weights.size()) {
    throw InvalidArgument(where, "weights.size()", std::to_string(weights.size()),
                          "must equal output * kernel_height * kernel_width * input / groups = " +
                              std::to_string(impl_->weights.size()),
                          descriptor.to_string());
  }
  if (biases.size() != impl_->biases.size()) {
    throw InvalidArgument(where, "biases.size()", std::to_string(biases.size()),
                          "must equal " + std::to_string(impl_->biases.size()) +
                              (descriptor.bias_enabled() ? " (output feature channels)"
                                                         : " (the descriptor has no bias)"),
                          descriptor.to_string());
  }
  impl_->weights.assign(weights.begin(), weights.end());
  impl_->biases.assign(biases.begin(), biases.end());
}

std::span<float> ConvolutionWeightsAndBiasesState::weights() noexcept { return impl_->weights; }
std::span<const float> ConvolutionWeightsAndBiasesState::weights() const noexcept {
  return impl_->weights;
}
std::span<float> ConvolutionWeightsAndBiasesState::biases() noexcept { return impl_->biases; }
std::span<const float> ConvolutionWeightsAndBiasesState::biases() const noexcept {
  return impl_->biases;
}
const ConvolutionDescriptor& ConvolutionWeightsAndBiasesState::descriptor() const noexcept {
  return impl_->descriptor;
}
const Device& ConvolutionWeightsAndBiasesState::device() const noexcept { return impl_->device; }

}  // namespace convgrad
