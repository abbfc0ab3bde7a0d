// SPDX-License-Identifier: Apache-2.0
#include "convgrad/convolution_data_source.hpp"

#include <string>

#include "convgrad/device.hpp"
#include "convgrad/errors.hpp"
#include "convgrad/weights_and_biases_state.hpp"

namespace convgrad {

std::optional<ConvolutionWeightsAndBiasesState> ConvolutionDataSource::update(
    CommandBuffer&, const ConvolutionGradientState&, const ConvolutionWeightsAndBiasesState&) {
  return std::nullopt;
}

bool ConvolutionDataSource::update(const ConvolutionGradientState&,
                                   const ConvolutionWeightsAndBiasesState&) {
  return false;
}

std::shared_ptr<ConvolutionDataSource> ConvolutionDataSource::copy(const Device&) const {
  return nullptr;
}

MemoryConvolutionDataSource::MemoryConvolutionDataSource(const ConvolutionDescriptor& descriptor,
                                                         std::vector<float> weights,
                                                         std::vector<float> biases,
                                                         std::string label, DataType data_type)
    : descriptor_(descriptor), data_type_(data_type), label_(std::move(label)) {
  const char* where = "MemoryConvolutionDataSource";
  descriptor_.validate(where);
  if (static_cast<std::int64_t>(weights.size()) != descriptor_.weight_count()) {
    throw InvalidArgument(where, "weights.size()", std::to_string(weights.size()),
                          "must equal output * kernel_height * kernel_width * input / groups = " +
                              std::to_string(descriptor_.weight_count()),
                          descriptor_.to_string());
  }
  if (!biases.empty() &&
      static_cast<std::int64_t>(biases.size()) != descriptor_.output_feature_channels()) {
    throw InvalidArgument(where, "biases.size()", std::to_string(biases.size()),
                          "must be 0 or the output feature channels (" +
                              std::to_string(descriptor_.output_feature_channels()) + ")",
                          descriptor_.to_string());
  }
  weights_.resize(weights.size() * size_of(data_type_));
  for (std::size_t i = 0; i < weights.size(); ++i) {
    store_from_float(weights_.data(), data_type_, static_cast<std::int64_t>(i), weights[i]);
  }
  biases_ = std::move(biases);
}

const void* MemoryConvolutionDataSource::weights() { return weights_.data(); }

const float* MemoryConvolutionDataSource::bias_terms() {
  return biases_.empty() ? nullptr : biases_.data();
}

bool MemoryConvolutionDataSource::load() {
  ++loads_;
  return true;
}

void MemoryConvolutionDataSource::purge() { ++purges_; }

std::shared_ptr<ConvolutionDataSource> MemoryConvolutionDataSource::copy(const Device&) const {
  auto copied = std::make_shared<MemoryConvolutionDataSource>(*this);
  copied->loads_ = copied->purges_ = 0;
  return copied;
}

void MemoryConvolutionDataSource::set_weights_and_biases(std::span<const float> weights,
                                                         std::span<const float> biases) {
  const char* where = "MemoryConvolutionDataSource::set_weights_and_biases";
  if (static_cast<std::int64_t>(weights.size()) != descriptor_.weight_count()) {
    throw InvalidArgument(where, "weights.size()", std::to_string(weights.size()),
                          "must equal " + std::to_string(descriptor_.weight_count()));
  }
  if (biases.size() != biases_.size()) {
    throw InvalidArgument(where, "biases.size()", std::to_string(biases.size()),
                          "must equal " + std::to_string(biases_.size()));
  }
  for (std::size_t i = 0; i < weights.size(); ++i) {
    store_from_float(weights_.data(), data_type_, static_cast<std::int64_t>(i), weights[i]);
  }
  biases_.assign(biases.begin(), biases.end());
}

std::vector<float> MemoryConvolutionDataSource::weight_values() const {
  std::vector<float> values(weights_.size() / size_of(data_type_));
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i] = load_as_float(weights_.data(), data_type_, static_cast<std::int64_t>(i));
  }
  return values;
}

}  // namespace convgrad
