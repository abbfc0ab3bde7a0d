// SPDX-License-Identifier: Apache-2.0
// The convolution gradient kernel. MPS: `MPSCNNConvolutionGradient`.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "convgrad/convolution_data_source.hpp"
#include "convgrad/gradient_kernel.hpp"
#include "convgrad/kernel_weights.hpp"
#include "convgrad/weights_and_biases_state.hpp"

namespace convgrad {

/// MPS: `MPSCNNConvolutionGradientOption`, same values.
enum class GradientOption : std::uint32_t {
  gradient_with_data = 1,              ///< only dL/d(source image)
  gradient_with_weights_and_bias = 2,  ///< only dL/dW and dL/db, into the state
  all = 3,                             ///< both (default)
};

/// Computes, for one forward `Convolution`, the gradient with respect to its source image
/// (written to the destination) and with respect to its weights and biases (added into the
/// `ConvolutionGradientState`). Outputs excluded by `gradient_option()` are left untouched.
class ConvolutionGradient : public GradientKernel {
 public:
  /// MPS `init(device:weights:)`. `weights` should be the data source of the forward
  /// convolution (or one returning identical data). Throws InvalidArgument for a sub-pixel or
  /// otherwise invalid descriptor, a failed `load()` or missing weights.
  ConvolutionGradient(const Device& device, std::shared_ptr<ConvolutionDataSource> weights);

  /// MPS `init(coder:device:)`: restores a kernel saved by `save()`. When the archive holds no
  /// weights (`serialize_weights_and_biases() == false` at save time), `data_source` supplies them
  /// and must match the archived descriptor. Throws FormatError for a bad archive.
  static ConvolutionGradient load(const std::string& path, const Device& device,
                                  std::shared_ptr<ConvolutionDataSource> data_source = nullptr);
  static ConvolutionGradient deserialize(std::span<const std::byte> bytes, const Device& device,
                                         std::shared_ptr<ConvolutionDataSource> data_source =
                                             nullptr);
  /// Descriptor, options and label; weights and biases too when `serialize_weights_and_biases()`.
  void save(const std::string& path) const;
  std::vector<std::byte> serialize() const;

  /// Channels of the incoming gradient = the forward output channels.
  std::int64_t source_gradient_feature_channels() const noexcept;
  /// Channels of the forward source = channels of the data gradient.
  std::int64_t source_image_feature_channels() const noexcept;
  std::int64_t groups() const noexcept { return descriptor_.groups(); }
  /// 0 for a regular convolution; outputs per input channel for a depthwise one.
  std::int64_t channel_multiplier() const noexcept { return descriptor_.channel_multiplier(); }
  std::shared_ptr<ConvolutionDataSource> data_source() const noexcept { return data_source_; }
  const ConvolutionDescriptor& descriptor() const noexcept { return descriptor_; }

  GradientOption gradient_option() const noexcept { return gradient_option_; }
  void set_gradient_option(GradientOption option);
  /// Whether `save()` stores the weights and biases. Default false, as MPS.
  bool serialize_weights_and_biases() const noexcept { return serialize_weights_; }
  void set_serialize_weights_and_biases(bool value) noexcept { serialize_weights_ = value; }

  /// Re-reads the data source now (load, copy, purge). Work already encoded keeps the old values.
  void reload_weights_and_biases_from_data_source();
  /// Takes the weights and biases of `state` when the command buffer reaches this point; work
  /// encoded after this call on the same queue uses them.
  void reload_weights_and_biases(CommandBuffer& command_buffer,
                                 const ConvolutionWeightsAndBiasesState& state);

  /// The weights the next encode will use.
  const SharedKernelWeights& kernel_weights() const noexcept { return weights_; }

 protected:
  std::function<void()> prepare_work(const Resolved& resolved,
                                     const ConvolutionGradientState& gradient_state,
                                     const char* where) override;
  std::int64_t expected_gradient_channels() const override;
  std::int64_t expected_image_channels() const override;
  void check_state(const ConvolutionGradientState& gradient_state,
                   const char* where) const override;

 private:
  ConvolutionGradient(const Device& device, std::shared_ptr<ConvolutionDataSource> weights,
                      const char* where);

  std::shared_ptr<ConvolutionDataSource> data_source_;
  ConvolutionDescriptor descriptor_;
  SharedKernelWeights weights_;
  GradientOption gradient_option_ = GradientOption::all;
  bool serialize_weights_ = false;
};

}  // namespace convgrad
