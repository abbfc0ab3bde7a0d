// SPDX-License-Identifier: Apache-2.0
// The inside of a gradient state, shared by the forward convolution that fills its geometry and
// the gradient kernels that add into its buffers.
#pragma once

#include <memory>
#include <vector>

#include "api/device_floats.hpp"
#include "convgrad/convolution.hpp"
#include "convgrad/convolution_gradient_state.hpp"

namespace convgrad {

class ConvolutionTranspose;

struct ConvolutionGradientState::Impl {
  std::shared_ptr<const Convolution> convolution;  // snapshot taken at the forward encode
  // Set instead of `convolution` when a ConvolutionTranspose made the state. `geometry` then
  // describes the convolution whose data gradient the transpose computes (its source is the
  // transpose's result), so that the automatic kernel offsets come out as the transpose's.
  std::shared_ptr<const ConvolutionTranspose> transpose;
  ConvolutionDescriptor descriptor;  // the producing layer's
  ConvolutionGeometry geometry;
  std::int64_t source_height = 0, source_width = 0;
  Device device = Device::cpu();  // the producing kernel's; it holds the buffers
  api::DeviceFloats weight_gradient;
  api::DeviceFloats bias_gradient;  // empty without bias

  /// Zeroed buffers for `descriptor` on `device`.
  void allocate_gradients(const Device& on, const ConvolutionDescriptor& d) {
    device = on;
    weight_gradient = api::DeviceFloats(on, static_cast<std::size_t>(d.weight_count()));
    bias_gradient = api::DeviceFloats(
        on, d.bias_enabled() ? static_cast<std::size_t>(d.output_feature_channels()) : 0);
  }
};

}  // namespace convgrad
