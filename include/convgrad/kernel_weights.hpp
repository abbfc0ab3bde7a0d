// SPDX-License-Identifier: Apache-2.0
// The weights a kernel holds, shared by the kernel and the work it has encoded.
#pragma once

#include <memory>
#include <vector>

namespace convgrad {

/// float32 copies of a layer's weights (OHWI) and biases (empty: no bias). Kernels replace the
/// whole object on reload instead of writing into it, so work encoded earlier keeps the values it
/// was encoded with.
struct KernelWeights {
  std::vector<float> weights;
  std::vector<float> biases;
};

using SharedKernelWeights = std::shared_ptr<const KernelWeights>;

}  // namespace convgrad
