// SPDX-License-Identifier: Apache-2.0
// Conversions between strided views of any storage type and dense float32 buffers: the packing
// step that lets one kernel serve every data type and every view.
#pragma once

#include <vector>

#include "convgrad/tensor_view.hpp"

namespace convgrad::cpu {

/// Dense float32 copy of `view` (row-major over its four dims).
std::vector<float> pack_dense(const TensorView& view);
/// Writes a dense float32 buffer into `view`, rounding to its type.
void unpack_dense(const std::vector<float>& dense, const TensorView& view);

}  // namespace convgrad::cpu
