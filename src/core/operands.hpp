// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "convgrad/tensor_view.hpp"

namespace convgrad::core {

/// The four tensors of a convolution. In dgrad `x` holds dx and `y` holds dy; in wgrad `w` holds
/// dw and `b` holds db. An empty `b` means no bias.
struct Operands {
  TensorView x, w, b, y;
};

}  // namespace convgrad::core
