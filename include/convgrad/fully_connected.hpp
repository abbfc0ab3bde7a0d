// SPDX-License-Identifier: Apache-2.0
// Fully connected layers as convolutions whose kernel covers the whole source image.
// MPS: `MPSCNNFullyConnected`, `MPSCNNFullyConnectedGradient` (mps-reference.md §8.1).
#pragma once

#include <memory>

#include "convgrad/convolution.hpp"
#include "convgrad/convolution_gradient.hpp"

namespace convgrad {

/// y[n][o] = b[o] + sum over (h, w, i) of W[o][h][w][i] * x[n][h][w][i]: a convolution with
/// kernel_height x kernel_width = the source size, a 1 x 1 result, stride 1, dilation 1, groups 1.
/// Weights are OHWI `[outputs][kernel_height][kernel_width][inputs]` (MPS's class comment writes
/// W before H; every normative layout statement says OHWI, and so do we), i.e. the matrix
/// `outputs x (height * width * inputs)` of the source flattened as NHWC.
///
/// A `Convolution` whose geometry is fixed: the padding policy is valid-only and the offset the
/// kernel centre `(kernel_width / 2, kernel_height / 2)`, whatever `set_offset` said (MPS ignores
/// the offset of a fully connected layer; `offset().z` still selects the first source image).
/// Every encode throws InvalidArgument naming `source_image.width` / `.height` unless the source
/// is exactly the kernel's size, and, for the encodes into a destination, naming
/// `destination_image.width` / `.height` unless the destination is 1 x 1. Its gradient states are
/// ordinary `ConvolutionGradientState`s for `FullyConnectedGradient` (or `ConvolutionGradient`).
/// Called through a `Convolution&`, the base encodes run unchecked (they are not virtual).
class FullyConnected : public Convolution {
 public:
  /// MPS `init(device:weights:)`. Throws InvalidArgument naming the descriptor field for a
  /// depthwise or sub-pixel descriptor, a stride, dilation or group count other than 1, and for
  /// everything `Convolution` refuses.
  FullyConnected(const Device& device, std::shared_ptr<ConvolutionDataSource> data_source);

  ImageDescriptor destination_image_descriptor(const Image& source);
  Image encode(CommandBuffer& command_buffer, const Image& source);
  Image encode(CommandBuffer& command_buffer, const Image& source,
               ConvolutionGradientState& destination_state);
  void encode(CommandBuffer& command_buffer, const Image& source, const Image& destination);
  void encode(CommandBuffer& command_buffer, const Image& source, const Image& destination,
              ConvolutionGradientState& destination_state);
  ImageBatch encode_batch(CommandBuffer& command_buffer, const ImageBatch& sources,
                          ConvolutionGradientState& destination_state);
  ConvolutionGradientState result_state(const Image& source, const Image& destination);

 private:
  // The geometry is the layer's definition, not a setting.
  using Convolution::set_offset;
  using Convolution::set_padding;
  void fix_geometry(const Image& source, const Image* destination, const char* where);
};

/// MPS `MPSCNNFullyConnectedGradient : MPSCNNConvolutionGradient`: the convolution gradient with
/// the fully connected rules on its descriptor; it also refuses a state whose forward source was
/// not exactly the kernel's size (`gradient_state`). dL/dx is sized like the source, dL/dW and
/// dL/db are summed over the batch into the state, as for any convolution.
class FullyConnectedGradient : public ConvolutionGradient {
 public:
  /// MPS `init(device:weights:)`; the same descriptor rules as `FullyConnected`.
  FullyConnectedGradient(const Device& device, std::shared_ptr<ConvolutionDataSource> weights);

 protected:
  void check_state(const ConvolutionGradientState& gradient_state,
                   const char* where) const override;
};

}  // namespace convgrad
