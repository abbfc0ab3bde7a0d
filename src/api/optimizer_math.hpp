// SPDX-License-Identifier: Apache-2.0
// The optimizers' element-wise update rules, one function each, on plain float spans. They run on
// the host today (inside the command buffer's work); a device version replaces these three
// functions and nothing else.
#pragma once

#include <span>

#include "convgrad/optimizer.hpp"

namespace convgrad::api {

/// The gradient preprocessing of an OptimizerDescriptor (clip, rescale, regularization).
struct GradientPreprocessing {
  float rescale = 1.0f;
  bool clip = false;
  float clip_min = 0.0f, clip_max = 0.0f;
  RegularizationType regularization = RegularizationType::none;
  float regularization_scale = 0.0f;
};

GradientPreprocessing preprocessing_of(const OptimizerDescriptor& descriptor);

/// Every span has `values.size()` elements except `momentum`, which may be empty (no momentum).
/// `result` may be `values` itself; element i is read completely before it is written.
void sgd_update(const GradientPreprocessing& pre, float learning_rate, float momentum_scale,
                bool nesterov, std::span<const float> gradient, std::span<const float> values,
                std::span<float> momentum, std::span<float> result);

void rmsprop_update(const GradientPreprocessing& pre, float learning_rate, double decay,
                    float epsilon, std::span<const float> gradient, std::span<const float> values,
                    std::span<float> sum_of_squares, std::span<float> result);

/// `step_learning_rate` is lr_t (the bias corrections already applied); `maximum_velocity` is
/// empty for plain Adam.
void adam_update(const GradientPreprocessing& pre, double step_learning_rate, double beta1,
                 double beta2, float epsilon, std::span<const float> gradient,
                 std::span<const float> values, std::span<float> momentum,
                 std::span<float> velocity, std::span<float> maximum_velocity,
                 std::span<float> result);

}  // namespace convgrad::api
