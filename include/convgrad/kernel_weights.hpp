// SPDX-License-Identifier: Apache-2.0
// The weights a kernel holds, shared by the kernel and the work it has encoded.
#pragma once

#include <memory>
#include <vector>

#include "convgrad/device_buffer.hpp"

namespace convgrad {

/// float32 copies of a layer's weights (OHWI) and biases (empty: no bias). Kernels replace the
/// whole object on reload instead of writing into it, so work encoded earlier keeps the values it
/// was encoded with.
///
/// On the CPU the values are the two vectors. A kernel on a CUDA device holds them in device
/// memory instead, uploaded once at creation and at every reload: `device_weights` and
/// `device_biases` (empty without bias), and the vectors are empty.
struct KernelWeights {
  std::vector<float> weights;
  std::vector<float> biases;
  DeviceBuffer device_weights;
  DeviceBuffer device_biases;

  bool on_device() const noexcept { return !device_weights.empty(); }
};

using SharedKernelWeights = std::shared_ptr<const KernelWeights>;

}  // namespace convgrad
