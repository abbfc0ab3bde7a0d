// SPDX-License-Identifier: Apache-2.0
// Where a convolution's weights come from. MPS: the `MPSCNNConvolutionDataSource` protocol.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "convgrad/convolution_descriptor.hpp"
#include "convgrad/dtype.hpp"

namespace convgrad {

class CommandBuffer;
class ConvolutionGradientState;
class ConvolutionWeightsAndBiasesState;
class Device;

/// Implemented by the application. Kernels call `load()` before reading `weights()` and
/// `bias_terms()` and `purge()` afterwards, at construction and at every
/// `reload_weights_and_biases_from_data_source()`; they copy what they read.
class ConvolutionDataSource {
 public:
  virtual ~ConvolutionDataSource() = default;

  /// Element type of `weights()`: float32, float16 or bfloat16.
  virtual DataType data_type() const = 0;
  virtual const ConvolutionDescriptor& descriptor() const = 0;
  /// `descriptor().weight_count()` elements, OHWI. Valid between `load()` and `purge()`.
  virtual const void* weights() = 0;
  /// `output_feature_channels` float32 values, or nullptr for no bias.
  virtual const float* bias_terms() = 0;
  /// Makes the data available; returning false makes kernel construction fail.
  virtual bool load() = 0;
  /// The data is no longer needed; balances each `load()`.
  virtual void purge() = 0;
  virtual std::string label() const = 0;

  /// GPU-style update hook (MPS `update(with:gradientState:sourceState:)`): encode an optimizer on
  /// `command_buffer` and return the state that holds the new weights, or nullopt for no update.
  virtual std::optional<ConvolutionWeightsAndBiasesState> update(
      CommandBuffer& command_buffer, const ConvolutionGradientState& gradient_state,
      const ConvolutionWeightsAndBiasesState& source_state);
  /// CPU-style update hook (MPS `update(with:sourceState:)`): update your own copy of the weights
  /// from `gradient_state` and `source_state`, after the work has completed. Return false when
  /// there was no update.
  virtual bool update(const ConvolutionGradientState& gradient_state,
                      const ConvolutionWeightsAndBiasesState& source_state);
  /// MPS `copy(with:device:)`: a copy for another kernel or device; nullptr if not copyable.
  virtual std::shared_ptr<ConvolutionDataSource> copy(const Device& device) const;
};

/// A ready data source holding its weights in memory (float32, float16 or bfloat16).
/// Counts its loads and purges, which lets callers check that they balance.
class MemoryConvolutionDataSource : public ConvolutionDataSource {
 public:
  /// `weights` must hold `descriptor.weight_count()` values, `biases` either none or
  /// `output_feature_channels`. Throws InvalidArgument otherwise.
  MemoryConvolutionDataSource(const ConvolutionDescriptor& descriptor, std::vector<float> weights,
                              std::vector<float> biases = {}, std::string label = {},
                              DataType data_type = DataType::float32);

  DataType data_type() const override { return data_type_; }
  const ConvolutionDescriptor& descriptor() const override { return descriptor_; }
  const void* weights() override;
  const float* bias_terms() override;
  bool load() override;
  void purge() override;
  std::string label() const override { return label_; }
  std::shared_ptr<ConvolutionDataSource> copy(const Device& device) const override;

  /// Replaces the weights and biases (same sizes as before); kernels see them after
  /// `reload_weights_and_biases_from_data_source()`.
  void set_weights_and_biases(std::span<const float> weights, std::span<const float> biases);
  /// The weights as float32 values (rounded to the data type).
  std::vector<float> weight_values() const;
  std::span<const float> bias_values() const noexcept { return biases_; }
  int load_count() const noexcept { return loads_; }
  int purge_count() const noexcept { return purges_; }
  bool loaded() const noexcept { return loads_ > purges_; }

 private:
  ConvolutionDescriptor descriptor_;
  DataType data_type_;
  std::vector<std::byte> weights_;  // in data_type_
  std::vector<float> biases_;
  std::string label_;
  int loads_ = 0;
  int purges_ = 0;
};

}  // namespace convgrad
