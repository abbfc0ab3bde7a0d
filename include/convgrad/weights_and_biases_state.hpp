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
/// `[output]` (none when the descriptor has no bias), in the memory of the state's device. A
/// handle: copies share the buffers.
///
/// Where the values live decides how to reach them (docs/api.md, "States on a CUDA device"):
/// on the CPU, `weights()` and `biases()` are spans of the values themselves. On a CUDA device the
/// values are device memory, which a host span cannot address: the spans throw Unsupported
/// naming the device, and `read_weights()` / `write_weights()` (blocking copies) or
/// `weights_view()` (a device TensorView for kernels) are the way in. Those three work on every
/// device. Read or write only when no command buffer that uses the state is running.
class ConvolutionWeightsAndBiasesState {
 public:
  /// Zero-filled buffers sized for `descriptor` (MPS `init(device:cnnConvolutionDescriptor:)`).
  /// Throws DeviceError when the device has too little memory.
  ConvolutionWeightsAndBiasesState(const Device& device, const ConvolutionDescriptor& descriptor);
  /// Copies of `weights` and `biases`, which must be exactly sized (MPS `init(weights:biases:)`);
  /// throws InvalidArgument otherwise.
  ConvolutionWeightsAndBiasesState(const Device& device, const ConvolutionDescriptor& descriptor,
                                   std::span<const float> weights, std::span<const float> biases);

  /// Host spans of the values; Unsupported on a CUDA device (see above).
  std::span<float> weights();
  std::span<const float> weights() const;
  /// Empty when the descriptor has no bias.
  std::span<float> biases();
  std::span<const float> biases() const;

  std::size_t weight_count() const noexcept;
  /// 0 when the descriptor has no bias.
  std::size_t bias_count() const noexcept;
  /// Blocking copies to and from host memory, on any device. `write_*` throws InvalidArgument
  /// (`weights.size()`, `biases.size()`) unless given exactly the counts above.
  std::vector<float> read_weights() const;
  std::vector<float> read_biases() const;
  void write_weights(std::span<const float> weights);
  void write_biases(std::span<const float> biases);
  /// The values where they live: `{output, kernel_height, kernel_width, input / groups}` and
  /// `{output, 1, 1, 1}` (an empty view without bias), `device` telling where.
  TensorView weights_view() const noexcept;
  TensorView biases_view() const noexcept;

  const ConvolutionDescriptor& descriptor() const noexcept;
  const Device& device() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace convgrad
