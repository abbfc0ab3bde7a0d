// SPDX-License-Identifier: Apache-2.0
// The transposed ("fractionally strided") convolution and its gradient.
// MPS: `MPSCNNConvolutionTranspose`, `MPSCNNConvolutionTransposeGradientState`,
// `MPSCNNConvolutionTransposeGradient` (mps-reference.md §8.2).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "convgrad/command_buffer.hpp"
#include "convgrad/convolution.hpp"
#include "convgrad/convolution_data_source.hpp"
#include "convgrad/convolution_gradient.hpp"
#include "convgrad/convolution_gradient_state.hpp"
#include "convgrad/gradient_kernel.hpp"
#include "convgrad/image.hpp"
#include "convgrad/kernel_weights.hpp"
#include "convgrad/padding.hpp"
#include "convgrad/weights_and_biases_state.hpp"

namespace convgrad {

/// Made by `ConvolutionTranspose`'s training encodes, consumed by `ConvolutionTransposeGradient`.
/// Its `gradient_for_weights()` is laid out like the transpose's weights (below), its
/// `gradient_for_biases()` has one value per transpose output channel; both are zeroed at
/// creation and summed into, as for a convolution. `source_width/height()` are the transpose's
/// source size, `destination_width/height()` its result size.
class ConvolutionTransposeGradientState : public ConvolutionGradientState {
 public:
  ConvolutionTransposeGradientState() = default;
  /// MPS `convolutionTranspose`: a snapshot of the transpose at its encode.
  const ConvolutionTranspose& convolution_transpose() const;

 private:
  friend class ConvolutionTranspose;
  explicit ConvolutionTransposeGradientState(ConvolutionGradientState state)
      : ConvolutionGradientState(std::move(state)) {}
};

/// The transposed convolution, defined as MPS defines it. With the descriptor's
/// `input_feature_channels` I (the transpose's source channels), `output_feature_channels` O (its
/// result channels), groups G, kernel kH x kW, strides sy, sx, dilations dy, dx and dilated
/// extents kdh = (kH - 1) * dy + 1, kdw = (kW - 1) * dx + 1:
///
///  1. insert s - 1 zeros between the source pixels: Z[s*y][s*x] = X[y][x], size (H - 1) * s + 1;
///  2. run an ordinary stride-1 convolution over Z (zero outside it) with the weights *as given*,
///     no 180-degree rotation:
///       Y[j][i][o] = b[o] + sum over (q, p, c) of W[o][q][p][c] *
///                    Z[ty + j - (kdh >> 1) + dy*q][tx + i - (kdw >> 1) + dx*p][g*I/G + c]
///     with g = o / (O / G). W is OHWI `[O][kH][kW][I / G]` (float32, like a convolution's), b
///     has O values, and (tx, ty) is the position in Z of the centre tap of the first result
///     pixel: `offset * stride + kernel_offset` per axis (MPS).
///
/// This is exactly the data gradient of the convolution from O to I channels with the same
/// kernel, stride, dilation and groups whose weights are W rotated by 180 degrees with I and O
/// swapped; that is how it runs (dgrad), and its gradient runs that convolution's fprop (data)
/// and wgrad (weights). Depthwise and sub-pixel descriptors are refused.
///
/// Result size and placement. The encodes that return their result use the padding policy as
/// the policy of the convolution this transpose reverses: the result is the smallest size from
/// which that convolution produces the source ((H - 1) * s + kd for valid-only, (H - 1) * s + 1
/// for same, (H - 1) * s + 2 - kd for full: MPS's "valid <-> full"), and the kernel offsets are
/// that convolution's data-gradient offsets, `-o + (kd even ? 1 : 0)` for its offset o, with
/// `offset()` x and y set to 0. The encode given a `ConvolutionGradientState` reverses that
/// convolution exactly (its source size and offset). The encodes into a destination use
/// `offset()` and `kernel_offset_x/y()` as set. Every placement must let the first and the last
/// source pixel of each axis reach some result pixel (InvalidArgument naming
/// `offset.y * stride + kernel_offset_y` or the x one otherwise).
///
/// Bias and weights run on the command buffer's device; the bias is added by a host loop today.
class ConvolutionTranspose {
 public:
  /// MPS `init(device:weights:)`. Throws InvalidArgument for an invalid, depthwise or sub-pixel
  /// descriptor, a failed load or missing weights.
  ConvolutionTranspose(const Device& device, std::shared_ptr<ConvolutionDataSource> data_source);

  const Device& device() const noexcept { return device_; }
  const ConvolutionDescriptor& descriptor() const noexcept { return descriptor_; }
  std::shared_ptr<ConvolutionDataSource> data_source() const noexcept { return data_source_; }
  /// Channels of the transpose's source (the descriptor's input channels).
  std::int64_t input_feature_channels() const noexcept {
    return descriptor_.input_feature_channels();
  }
  /// Channels of the transpose's result.
  std::int64_t output_feature_channels() const noexcept {
    return descriptor_.output_feature_channels();
  }
  std::int64_t groups() const noexcept { return descriptor_.groups(); }
  const std::string& label() const noexcept { return label_; }
  void set_label(std::string label) { label_ = std::move(label); }

  const Padding& padding() const noexcept { return padding_; }
  void set_padding(const Padding& padding) { padding_ = padding; }
  /// In source pixels; `z` is the first source image.
  const Offset& offset() const noexcept { return offset_; }
  void set_offset(const Offset& offset) noexcept { offset_ = offset; }
  /// In pixels of the zero-inserted source.
  std::int64_t kernel_offset_x() const noexcept { return kernel_offset_x_; }
  std::int64_t kernel_offset_y() const noexcept { return kernel_offset_y_; }
  void set_kernel_offset_x(std::int64_t value) noexcept { kernel_offset_x_ = value; }
  void set_kernel_offset_y(std::int64_t value) noexcept { kernel_offset_y_ = value; }

  /// Applies the padding policy to `source`: sets `offset()` x, y to 0 and the kernel offsets,
  /// and returns the result's size.
  ImageDescriptor destination_image_descriptor(const Image& source);

  Image encode(CommandBuffer& command_buffer, const Image& source);
  /// The same, and creates `destination_state` for the gradient pass.
  Image encode(CommandBuffer& command_buffer, const Image& source,
               ConvolutionTransposeGradientState& destination_state);
  /// Reverses the convolution that produced `convolution_state` (MPS's auto-encoder form): the
  /// result has that convolution's source size and the kernel offsets undo its offset. The
  /// convolution must have this layer's kernel, stride, dilation and groups with the channel
  /// counts swapped, and `source` its result's size (InvalidArgument naming `convolution_state`
  /// or `source_image.size` otherwise).
  Image encode(CommandBuffer& command_buffer, const Image& source,
               const ConvolutionGradientState& convolution_state);
  /// Writes into `destination`, placed by `offset()` and the kernel offsets.
  void encode(CommandBuffer& command_buffer, const Image& source, const Image& destination);
  void encode(CommandBuffer& command_buffer, const Image& source, const Image& destination,
              ConvolutionTransposeGradientState& destination_state);

  /// A copy of the current weights and biases, laid out as the data source gives them.
  ConvolutionWeightsAndBiasesState export_weights_and_biases(CommandBuffer& command_buffer) const;
  void reload_weights_and_biases_from_data_source();
  void reload_weights_and_biases(CommandBuffer& command_buffer,
                                 const ConvolutionWeightsAndBiasesState& state);

  /// The weights the next encode uses, laid out as the data source gives them.
  const SharedKernelWeights& kernel_weights() const noexcept { return weights_; }

 private:
  struct Placement;
  Placement placement_for(const Image& source, std::int64_t height, std::int64_t width,
                          std::int64_t kernel_offset_y, std::int64_t kernel_offset_x,
                          const char* where) const;
  Placement policy_placement(const Image& source, const char* where) const;
  void encode_with(CommandBuffer& command_buffer, const Image& source, const Image& destination,
                   const Placement& placement, ConvolutionTransposeGradientState* state,
                   const char* where);
  /// The encodes into a given destination, placed by offset() and the kernel offsets.
  void encode_given(CommandBuffer& command_buffer, const Image& source, const Image& destination,
                    ConvolutionTransposeGradientState* state);

  Device device_;
  std::shared_ptr<ConvolutionDataSource> data_source_;
  ConvolutionDescriptor descriptor_;
  SharedKernelWeights weights_;   // as given (OHWI of the transpose)
  SharedKernelWeights reversed_;  // rotated, I/O swapped: the convolution the transpose reverses
  std::string label_;
  Padding padding_;
  Offset offset_;
  std::int64_t kernel_offset_x_ = 0, kernel_offset_y_ = 0;
};

/// MPS `MPSCNNConvolutionTransposeGradient`: from dL/dY of a transpose (the primary source) and
/// the transpose's source X (the secondary source), dL/dX into the destination (X's size and
/// channels) and dL/dW, dL/db added into the `ConvolutionTransposeGradientState`. The geometry
/// comes from the state; the kernel offsets default to the transpose's (setting them moves both
/// the data and the weight gradient windows); `secondary_offset` x and y are not used.
class ConvolutionTransposeGradient : public GradientKernel {
 public:
  /// MPS `init(device:weights:)`: the transpose's data source. Same rules as the transpose.
  ConvolutionTransposeGradient(const Device& device,
                               std::shared_ptr<ConvolutionDataSource> weights);

  /// Channels of dL/dY = the transpose's output channels.
  std::int64_t source_gradient_feature_channels() const noexcept {
    return descriptor_.output_feature_channels();
  }
  /// Channels of X = the transpose's input channels.
  std::int64_t source_image_feature_channels() const noexcept {
    return descriptor_.input_feature_channels();
  }
  std::int64_t groups() const noexcept { return descriptor_.groups(); }
  std::shared_ptr<ConvolutionDataSource> data_source() const noexcept { return data_source_; }
  const ConvolutionDescriptor& descriptor() const noexcept { return descriptor_; }
  GradientOption gradient_option() const noexcept { return gradient_option_; }
  void set_gradient_option(GradientOption option);

  void reload_weights_and_biases_from_data_source();
  void reload_weights_and_biases(CommandBuffer& command_buffer,
                                 const ConvolutionWeightsAndBiasesState& state);

 protected:
  std::function<void()> prepare_work(const Resolved& resolved,
                                     const ConvolutionGradientState& gradient_state,
                                     const char* where) override;
  std::int64_t expected_gradient_channels() const override;
  std::int64_t expected_image_channels() const override;
  void check_state(const ConvolutionGradientState& gradient_state,
                   const char* where) const override;

 private:
  std::shared_ptr<ConvolutionDataSource> data_source_;
  ConvolutionDescriptor descriptor_;
  SharedKernelWeights reversed_;  // the reversed convolution's weights
  GradientOption gradient_option_ = GradientOption::all;
};

}  // namespace convgrad
