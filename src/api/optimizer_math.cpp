// SPDX-License-Identifier: Apache-2.0
#include "api/optimizer_math.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace convgrad::api {
namespace {

// g' = rescale * clip(g) + regularization(w): MPS clips before it rescales (OPT:84-98).
inline float preprocess(const GradientPreprocessing& pre, float g, float w) {
  if (pre.clip) g = std::clamp(g, pre.clip_min, pre.clip_max);
  g *= pre.rescale;
  switch (pre.regularization) {
    case RegularizationType::l2:
      g += pre.regularization_scale * w;
      break;
    case RegularizationType::l1:
      g += pre.regularization_scale * static_cast<float>((w > 0.0f) - (w < 0.0f));
      break;
    case RegularizationType::none:
      break;
  }
  return g;
}

}  // namespace

GradientPreprocessing preprocessing_of(const OptimizerDescriptor& d) {
  GradientPreprocessing pre;
  pre.rescale = d.gradient_rescale;
  pre.clip = d.apply_gradient_clipping;
  pre.clip_min = d.gradient_clip_min;
  pre.clip_max = d.gradient_clip_max;
  pre.regularization = d.regularization_type;
  pre.regularization_scale = d.regularization_scale;
  return pre;
}

void sgd_update(const GradientPreprocessing& pre, float lr, float mu, bool nesterov,
                std::span<const float> gradient, std::span<const float> values,
                std::span<float> momentum, std::span<float> result) {
  const std::size_t count = values.size();
  for (std::size_t i = 0; i < count; ++i) {
    const float w = values[i];
    const float g = preprocess(pre, gradient[i], w);
    if (momentum.empty()) {
      result[i] = w - lr * g;
    } else if (nesterov) {
      const float m = mu * momentum[i] + g;
      momentum[i] = m;
      result[i] = w - lr * (g + mu * m);
    } else {
      const float m = mu * momentum[i] + lr * g;
      momentum[i] = m;
      result[i] = w - m;
    }
  }
}

void rmsprop_update(const GradientPreprocessing& pre, float lr, double decay, float epsilon,
                    std::span<const float> gradient, std::span<const float> values,
                    std::span<float> sum_of_squares, std::span<float> result) {
  const auto keep = static_cast<float>(decay);
  const auto take = static_cast<float>(1.0 - decay);
  const std::size_t count = values.size();
  for (std::size_t i = 0; i < count; ++i) {
    const float w = values[i];
    const float g = preprocess(pre, gradient[i], w);
    const float s = keep * sum_of_squares[i] + take * g * g;
    sum_of_squares[i] = s;
    result[i] = w - lr * g / (std::sqrt(s) + epsilon);
  }
}

void adam_update(const GradientPreprocessing& pre, double step_learning_rate, double beta1,
                 double beta2, float epsilon, std::span<const float> gradient,
                 std::span<const float> values, std::span<float> momentum,
                 std::span<float> velocity, std::span<float> maximum_velocity,
                 std::span<float> result) {
  const auto lr_t = static_cast<float>(step_learning_rate);
  const auto b1 = static_cast<float>(beta1), c1 = static_cast<float>(1.0 - beta1);
  const auto b2 = static_cast<float>(beta2), c2 = static_cast<float>(1.0 - beta2);
  const bool amsgrad = !maximum_velocity.empty();
  const std::size_t count = values.size();
  for (std::size_t i = 0; i < count; ++i) {
    const float w = values[i];
    const float g = preprocess(pre, gradient[i], w);
    const float m = b1 * momentum[i] + c1 * g;
    const float v = b2 * velocity[i] + c2 * g * g;
    momentum[i] = m;
    velocity[i] = v;
    float denominator = v;
    if (amsgrad) {
      denominator = std::max(maximum_velocity[i], v);
      maximum_velocity[i] = denominator;
    }
    result[i] = w - lr_t * m / (std::sqrt(denominator) + epsilon);
  }
}

}  // namespace convgrad::api
