// SPDX-License-Identifier: Apache-2.0
#include "convgrad/weights_and_biases_state.hpp"

#include <string>

#include "api/device_floats.hpp"
#include "convgrad/errors.hpp"

namespace convgrad {

struct ConvolutionWeightsAndBiasesState::Impl {
  Device device;
  ConvolutionDescriptor descriptor;
  api::DeviceFloats weights;
  api::DeviceFloats biases;
};

namespace {

void require_count(std::size_t got, std::size_t want, const char* parameter, const char* what,
                   const char* where, const ConvolutionDescriptor& descriptor) {
  if (got != want) {
    throw InvalidArgument(where, parameter, std::to_string(got),
                          "must equal " + std::string(what) + " = " + std::to_string(want),
                          descriptor.to_string());
  }
}

constexpr const char* kWeightCount = "output * kernel_height * kernel_width * input / groups";

const char* bias_rule(const ConvolutionDescriptor& d) {
  return d.bias_enabled() ? "the output feature channels" : "0 (the descriptor has no bias)";
}

}  // namespace

ConvolutionWeightsAndBiasesState::ConvolutionWeightsAndBiasesState(
    const Device& device, const ConvolutionDescriptor& descriptor) {
  descriptor.validate("ConvolutionWeightsAndBiasesState");
  impl_ = std::make_shared<Impl>(Impl{
      device, descriptor,
      api::DeviceFloats(device, static_cast<std::size_t>(descriptor.weight_count())),
      api::DeviceFloats(device, descriptor.bias_enabled()
                                    ? static_cast<std::size_t>(
                                          descriptor.output_feature_channels())
                                    : 0)});
}

ConvolutionWeightsAndBiasesState::ConvolutionWeightsAndBiasesState(
    const Device& device, const ConvolutionDescriptor& descriptor, std::span<const float> weights,
    std::span<const float> biases)
    : ConvolutionWeightsAndBiasesState(device, descriptor) {
  const char* where = "ConvolutionWeightsAndBiasesState";
  require_count(weights.size(), impl_->weights.size(), "weights.size()", kWeightCount, where,
                descriptor);
  require_count(biases.size(), impl_->biases.size(), "biases.size()", bias_rule(descriptor), where,
                descriptor);
  impl_->weights.write(weights);
  if (!biases.empty()) impl_->biases.write(biases);
}

std::span<float> ConvolutionWeightsAndBiasesState::weights() {
  return impl_->weights.host(impl_->device, "ConvolutionWeightsAndBiasesState::weights",
                             "read_weights(), write_weights() or weights_view()");
}
std::span<const float> ConvolutionWeightsAndBiasesState::weights() const {
  return impl_->weights.host(impl_->device, "ConvolutionWeightsAndBiasesState::weights",
                             "read_weights(), write_weights() or weights_view()");
}
std::span<float> ConvolutionWeightsAndBiasesState::biases() {
  return impl_->biases.host(impl_->device, "ConvolutionWeightsAndBiasesState::biases",
                            "read_biases(), write_biases() or biases_view()");
}
std::span<const float> ConvolutionWeightsAndBiasesState::biases() const {
  return impl_->biases.host(impl_->device, "ConvolutionWeightsAndBiasesState::biases",
                            "read_biases(), write_biases() or biases_view()");
}

std::size_t ConvolutionWeightsAndBiasesState::weight_count() const noexcept {
  return impl_->weights.size();
}
std::size_t ConvolutionWeightsAndBiasesState::bias_count() const noexcept {
  return impl_->biases.size();
}
std::vector<float> ConvolutionWeightsAndBiasesState::read_weights() const {
  return impl_->weights.read();
}
std::vector<float> ConvolutionWeightsAndBiasesState::read_biases() const {
  return impl_->biases.empty() ? std::vector<float>() : impl_->biases.read();
}
void ConvolutionWeightsAndBiasesState::write_weights(std::span<const float> weights) {
  require_count(weights.size(), impl_->weights.size(), "weights.size()", kWeightCount,
                "ConvolutionWeightsAndBiasesState::write_weights", impl_->descriptor);
  impl_->weights.write(weights);
}
void ConvolutionWeightsAndBiasesState::write_biases(std::span<const float> biases) {
  require_count(biases.size(), impl_->biases.size(), "biases.size()", bias_rule(impl_->descriptor),
                "ConvolutionWeightsAndBiasesState::write_biases", impl_->descriptor);
  if (!biases.empty()) impl_->biases.write(biases);
}
TensorView ConvolutionWeightsAndBiasesState::weights_view() const noexcept {
  const ConvolutionDescriptor& d = impl_->descriptor;
  return impl_->weights.view(d.output_feature_channels(), d.kernel_height(), d.kernel_width(),
                             d.input_feature_channels() / d.groups());
}
TensorView ConvolutionWeightsAndBiasesState::biases_view() const noexcept {
  if (impl_->biases.empty()) return {};
  return impl_->biases.view(static_cast<std::int64_t>(impl_->biases.size()));
}
const ConvolutionDescriptor& ConvolutionWeightsAndBiasesState::descriptor() const noexcept {
  return impl_->descriptor;
}
const Device& ConvolutionWeightsAndBiasesState::device() const noexcept { return impl_->device; }

}  // namespace convgrad
