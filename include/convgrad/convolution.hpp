// SPDX-License-Identifier: Apache-2.0
// The forward convolution. MPS: `MPSCNNConvolution`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "convgrad/command_buffer.hpp"
#include "convgrad/convolution_data_source.hpp"
#include "convgrad/convolution_gradient_state.hpp"
#include "convgrad/image.hpp"
#include "convgrad/kernel_weights.hpp"
#include "convgrad/padding.hpp"
#include "convgrad/weights_and_biases_state.hpp"

namespace convgrad {

/// MPS: `MPSOffset`. `z` selects the first image of a source.
struct Offset {
  std::int64_t x = 0, y = 0, z = 0;
  friend bool operator==(const Offset&, const Offset&) = default;
};

/// y = conv(x, w) + b over NHWC images, with the weights of a data source. The encodes that
/// take a `ConvolutionGradientState&` also record what the gradient pass needs.
class Convolution {
 public:
  /// Loads the weights from `data_source` (load, copy, purge). Throws InvalidArgument for an
  /// invalid descriptor, a failed load or missing weights; Unsupported for sub-pixel descriptors.
  Convolution(const Device& device, std::shared_ptr<ConvolutionDataSource> data_source);

  const Device& device() const noexcept { return device_; }
  const ConvolutionDescriptor& descriptor() const noexcept { return descriptor_; }
  std::shared_ptr<ConvolutionDataSource> data_source() const noexcept { return data_source_; }
  std::int64_t input_feature_channels() const noexcept;
  std::int64_t output_feature_channels() const noexcept;
  std::int64_t groups() const noexcept { return descriptor_.groups(); }
  const std::string& label() const noexcept { return label_; }
  void set_label(std::string label) { label_ = std::move(label); }

  /// Used by the encodes that return their result (and by `destination_image_descriptor`).
  const Padding& padding() const noexcept { return padding_; }
  void set_padding(const Padding& padding) { padding_ = padding; }
  /// MPS `offset`: source position of the centre tap of the first output pixel; `z` is the first
  /// source image. Used by the encodes into a given destination; the padding policy sets it.
  const Offset& offset() const noexcept { return offset_; }
  void set_offset(const Offset& offset) noexcept { offset_ = offset; }
  std::int64_t source_feature_channel_offset() const noexcept { return source_channel_offset_; }
  void set_source_feature_channel_offset(std::int64_t v) noexcept { source_channel_offset_ = v; }
  std::int64_t destination_feature_channel_offset() const noexcept {
    return destination_channel_offset_;
  }
  void set_destination_feature_channel_offset(std::int64_t v) noexcept {
    destination_channel_offset_ = v;
  }

  /// Applies the padding policy to `source`: sets `offset()` and returns the result's size.
  ImageDescriptor destination_image_descriptor(const Image& source);

  /// Returns a new result image sized by the padding policy.
  Image encode(CommandBuffer& command_buffer, const Image& source);
  /// The same, and creates `destination_state` for the gradient pass.
  Image encode(CommandBuffer& command_buffer, const Image& source,
               ConvolutionGradientState& destination_state);
  /// Writes into `destination` with the windows placed by `offset()`.
  void encode(CommandBuffer& command_buffer, const Image& source, const Image& destination);
  void encode(CommandBuffer& command_buffer, const Image& source, const Image& destination,
              ConvolutionGradientState& destination_state);
  /// One state for the whole batch (MPS returns the same state object for every image).
  ImageBatch encode_batch(CommandBuffer& command_buffer, const ImageBatch& sources,
                          ConvolutionGradientState& destination_state);

  /// A fresh state for `source` -> `destination` with zeroed gradients (MPS `resultState`).
  ConvolutionGradientState result_state(const Image& source, const Image& destination) const;

  /// A copy of the current weights and biases (MPS `exportWeightsAndBiases`).
  ConvolutionWeightsAndBiasesState export_weights_and_biases(CommandBuffer& command_buffer) const;
  /// Re-reads the data source now (load, copy, purge). Work already encoded keeps the old values.
  void reload_weights_and_biases_from_data_source();
  /// Takes the weights and biases of `state` when the command buffer reaches this point; work
  /// encoded after this call on the same queue uses them.
  void reload_weights_and_biases(CommandBuffer& command_buffer,
                                 const ConvolutionWeightsAndBiasesState& state);

  /// Archive with descriptor, padding, label, weights and biases (docs/archive.md).
  void save(const std::string& path) const;
  std::vector<std::byte> serialize() const;
  static Convolution load(const std::string& path, const Device& device);
  static Convolution deserialize(std::span<const std::byte> bytes, const Device& device);

  /// The weights the next encode will use.
  const SharedKernelWeights& kernel_weights() const noexcept { return weights_; }

 private:
  Image encode_returning(CommandBuffer& command_buffer, const Image& source,
                         ConvolutionGradientState* state);
  void encode_given(CommandBuffer& command_buffer, const Image& source, const Image& destination,
                    ConvolutionGradientState* state);
  ConvolutionGeometry geometry_for(const Image& source, const Image& destination,
                                   const char* where) const;
  void encode_into(CommandBuffer& command_buffer, const Image& source, const Image& destination,
                   const ConvolutionGeometry& geometry, ConvolutionGradientState* state,
                   const char* where);
  /// Checks everything and returns the work without enqueueing it, so that a batch can check
  /// every image before encoding any.
  std::function<void()> prepare_into(const Image& source, const Image& destination,
                                     const ConvolutionGeometry& geometry, const char* where) const;

  Device device_;
  std::shared_ptr<ConvolutionDataSource> data_source_;
  ConvolutionDescriptor descriptor_;
  SharedKernelWeights weights_;
  std::string label_;
  Padding padding_;
  Offset offset_;
  std::int64_t source_channel_offset_ = 0;
  std::int64_t destination_channel_offset_ = 0;
};

}  // namespace convgrad
