// SPDX-License-Identifier: Apache-2.0
// The optimizers' element-wise update rules on device memory: the same arithmetic as
// src/api/optimizer_math.cpp, operation for operation and in the same rounding (no contraction
// into fused multiply-adds), so that a CUDA update repeats the CPU's bits.
#pragma once

#include <cstdint>

namespace convgrad::cuda {

enum class UpdateRule : std::uint8_t { sgd, momentum, nesterov, rmsprop, adam, amsgrad };

/// Every scalar of one update, already in float as the CPU rule uses them.
struct UpdateStep {
  UpdateRule rule = UpdateRule::sgd;
  // g' = rescale * clip(g) + regularization(w); regularization 0 none, 1 L1, 2 L2.
  float rescale = 1.0f;
  bool clip = false;
  float clip_min = 0.0f, clip_max = 0.0f;
  std::uint8_t regularization = 0;
  float regularization_scale = 0.0f;
  float learning_rate = 0.0f;   // lr, or Adam's lr_t
  float momentum_scale = 0.0f;  // SGD
  float keep = 0.0f, take = 0.0f;  // RMSProp: decay, 1 - decay; Adam: beta1, 1 - beta1
  float keep2 = 0.0f, take2 = 0.0f;  // Adam: beta2, 1 - beta2
  float epsilon = 0.0f;
};

/// Updates `count` elements on the current stream (see stream.hpp). `v0`..`v2` are the rule's
/// vectors in the optimizer's order (momentum; sum of squares; momentum, velocity, maximum
/// velocity), null when unused. `result` may be `values`.
void optimizer_update(const UpdateStep& step, const float* gradient, const float* values,
                      float* v0, float* v1, float* v2, float* result, std::int64_t count);

}  // namespace convgrad::cuda
