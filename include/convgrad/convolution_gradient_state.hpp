// SPDX-License-Identifier: Apache-2.0
// What a forward convolution records for its gradient, and where the weight and bias gradients
// accumulate. MPS: `MPSCNNConvolutionGradientState`.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "convgrad/convolution_descriptor.hpp"
#include "convgrad/device.hpp"
#include "convgrad/padding.hpp"

namespace convgrad {

class Convolution;
class ConvolutionTranspose;
class ConvolutionTransposeGradientState;

/// MPS: `MPSCNNConvolutionWeightsLayout`; only OHWI exists.
enum class WeightsLayout : std::uint8_t { ohwi = 0 };

/// Created by `Convolution::encode` (or `Convolution::result_state`). The weight and bias
/// gradients are float32, zero when the state is created, and every gradient encode that uses
/// the state *adds* to them: one state serves a whole batch and holds the sum (not the mean) over
/// its images. Use a new state for each batch. A handle: copies share the buffers.
///
/// Read the buffers only after the command buffer that wrote them has completed (`wait()`).
///
/// The buffers live in the memory of the producing kernel's device. On the CPU the span
/// accessors return the values themselves; on a CUDA device they throw Unsupported naming the
/// device (a host span cannot address device memory), and `read_gradient_for_weights()` /
/// `read_gradient_for_biases()` (host copies) or the `_view()` accessors (device TensorViews for
/// kernels) reach them; those work on every device (docs/api.md, "States on a CUDA device").
class ConvolutionGradientState {
 public:
  /// An empty handle; encodes reject it.
  ConvolutionGradientState() = default;
  bool valid() const noexcept { return impl_ != nullptr; }

  /// dL/dW, `[output][kernel_height][kernel_width][input / groups]`, as a host span; Unsupported
  /// on a CUDA device.
  std::span<const float> gradient_for_weights() const;
  std::span<float> gradient_for_weights();
  /// dL/db, `[output]`; empty when the convolution has no bias. Unsupported on a CUDA device.
  std::span<const float> gradient_for_biases() const;
  std::span<float> gradient_for_biases();
  /// The device whose memory holds the buffers.
  const Device& device() const;
  /// Blocking host copies of dL/dW and dL/db, on any device.
  std::vector<float> read_gradient_for_weights() const;
  std::vector<float> read_gradient_for_biases() const;
  /// The buffers where they live: `{output, kernel_height, kernel_width, input / groups}` and
  /// `{output, 1, 1, 1}` (an empty view without bias).
  TensorView gradient_for_weights_view() const;
  TensorView gradient_for_biases_view() const;
  WeightsLayout gradient_for_weights_layout() const noexcept { return WeightsLayout::ohwi; }

  /// The forward convolution that produced the state. Throws InvalidArgument for a state made by
  /// a `ConvolutionTranspose` (MPS: that child state's `convolution` may be nil).
  const Convolution& convolution() const;
  /// The descriptor of the layer that produced the state.
  const ConvolutionDescriptor& descriptor() const;
  /// Whether a `ConvolutionTranspose` produced the state (MPS: an
  /// `MPSCNNConvolutionTransposeGradientState`); only its gradient accepts such a state.
  bool from_transpose() const noexcept;
  /// Size of the forward source (MPS `MPSImageSizeEncodingState`): the data gradient's size.
  std::int64_t source_width() const;
  std::int64_t source_height() const;
  /// Size of the forward result: the incoming gradient's size.
  std::int64_t destination_width() const;
  std::int64_t destination_height() const;
  /// The forward geometry: explicit pads and the MPS centre-tap offset. For a transpose's state,
  /// the geometry of the convolution whose data gradient the transpose computes.
  const ConvolutionGeometry& geometry() const;

 private:
  friend class Convolution;
  friend class ConvolutionTranspose;
  friend class ConvolutionTransposeGradientState;
  struct Impl;
  explicit ConvolutionGradientState(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace convgrad
