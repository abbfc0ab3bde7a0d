// SPDX-License-Identifier: Apache-2.0
// Weights and biases in device memory, the carrier of updates and reloads.
// MPS: `MPSCNNConvolutionWeightsAndBiasesState`.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "convgrad/convolution_descriptor.hpp"
#include "convgrad/device.hpp"

namespace convgrad {

/// float32 weights `[output][kernel_height][kernel_width][input / groups]` and float32 biases
/// `[output]` (none when the descriptor has no bias). A handle: copies share the buffers.
class ConvolutionWeightsAndBiasesState {
 public:
  /// Zero-filled buffers sized for `descriptor` (MPS `init(device:cnnConvolutionDescriptor:)`).
  ConvolutionWeightsAndBiasesState(const Device& device, const ConvolutionDescriptor& descriptor);
  /// Copies of `weights` and `biases`, which must be exactly sized (MPS `init(weights:biases:)`);
  /// throws InvalidArgument otherwise.
  ConvolutionWeightsAndBiasesState(const Device& device, const ConvolutionDescriptor& descriptor,
                                   std::span<const float> weights, std::span<const float> biases);

  std::span<float> weights() noexcept;
  std::span<const float> weights() const noexcept;
  /// Empty when the descriptor has no bias.
  std::span<float> biases() noexcept;
  std::span<const float> biases() const noexcept;
  const ConvolutionDescriptor& descriptor() const noexcept;
  const Device& device() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace convgrad
