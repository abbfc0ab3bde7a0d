// SPDX-License-Identifier: Apache-2.0
// Optimizers that turn a layer's gradients into new weights. MPS: `MPSNNOptimizerDescriptor`,
// `MPSNNOptimizer`, `MPSNNOptimizerStochasticGradientDescent`, `MPSNNOptimizerRMSProp`,
// `MPSNNOptimizerAdam` (mps-reference.md §9).
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>

#include "convgrad/command_buffer.hpp"
#include "convgrad/convolution_gradient_state.hpp"
#include "convgrad/device.hpp"
#include "convgrad/weights_and_biases_state.hpp"

namespace convgrad {

/// MPS: `MPSNNRegularizationType`, same values.
enum class RegularizationType : std::uint8_t { none = 0, l1 = 1, l2 = 2 };

/// How every incoming gradient g of a variable w is preprocessed before the update rule:
///
///     g' = gradient_rescale * clip(g) + regularization(w)
///
/// `clip` clamps to [gradient_clip_min, gradient_clip_max] when `apply_gradient_clipping`, and is
/// the identity otherwise; MPS applies it *before* the rescale. `regularization(w)` is 0 for
/// `none`, `regularization_scale * w` for `l2` (weight decay) and
/// `regularization_scale * sign(w)` for `l1` (the subgradient, sign(0) = 0; MPS's header only says
/// "1 scaled with regularizationScale", which is undocumented beyond that). Defaults as MPS.
struct OptimizerDescriptor {
  float learning_rate = 0.001f;
  float gradient_rescale = 1.0f;
  bool apply_gradient_clipping = false;
  /// MPS leaves the bounds' defaults undocumented; infinite bounds make clipping a no-op.
  float gradient_clip_max = std::numeric_limits<float>::infinity();
  float gradient_clip_min = -std::numeric_limits<float>::infinity();
  RegularizationType regularization_type = RegularizationType::none;
  /// Ignored when `regularization_type` is none.
  float regularization_scale = 0.0f;

  /// Throws InvalidArgument (prefixed by `where`) for a non-finite rate, rescale or scale, a
  /// regularization type out of range, or clip bounds that are NaN or min > max.
  void validate(const char* where) const;
};

/// Per-variable optimizer memory of one layer (momentum, velocity, sum of squares, maximum
/// velocity): float32 `[weights]` and `[biases]` shaped like the layer's weights state. MPS passes
/// `[MPSVector]` arrays `[weights, biases]`. Construct it with `(device, descriptor)` to get zeros
/// (MPS: "the user zeroes m and v at the start"). A handle: copies share the buffers.
using OptimizerStateVectors = ConvolutionWeightsAndBiasesState;

/// The base of the optimizers (MPS: `MPSNNOptimizer`; use a subclass). Each optimizer's update
/// runs as work on the command buffer it is encoded on, in encoding order; the values are read
/// when the work runs, so a gradient encoded earlier on the same buffer is seen complete.
///
/// Every convolution encode updates the weights and, when the layer has them, the biases (MPS: a
/// one-element state array leaves the biases alone; here, give the layer no bias instead).
/// `result_state` may be `source_state` itself (in-place, as Apple's sample does); the optimizer
/// vectors must be distinct buffers.
class Optimizer {
 public:
  virtual ~Optimizer() = default;

  const Device& device() const noexcept { return device_; }
  const OptimizerDescriptor& descriptor() const noexcept { return descriptor_; }
  float learning_rate() const noexcept { return descriptor_.learning_rate; }
  /// MPS `setLearningRate:`; encodes made afterwards use the new rate. Throws InvalidArgument
  /// for a non-finite value.
  void set_learning_rate(float learning_rate);
  float gradient_rescale() const noexcept { return descriptor_.gradient_rescale; }
  bool apply_gradient_clipping() const noexcept { return descriptor_.apply_gradient_clipping; }
  float gradient_clip_max() const noexcept { return descriptor_.gradient_clip_max; }
  float gradient_clip_min() const noexcept { return descriptor_.gradient_clip_min; }
  RegularizationType regularization_type() const noexcept {
    return descriptor_.regularization_type;
  }
  float regularization_scale() const noexcept { return descriptor_.regularization_scale; }

 protected:
  Optimizer(const Device& device, const OptimizerDescriptor& descriptor, const char* where);

 private:
  Device device_;
  OptimizerDescriptor descriptor_;
};

/// MPS `MPSNNOptimizerStochasticGradientDescent`. With g the preprocessed gradient, lr the
/// learning rate and mu the momentum scale:
///   without momentum vectors:            w -= lr * g
///   momentum (use_nesterov_momentum off): m = mu * m + lr * g;  w -= m
///   Nesterov momentum:                    m = mu * m + g;       w -= lr * (g + mu * m)
class StochasticGradientDescent : public Optimizer {
 public:
  /// MPS `init(device:learningRate:)`: no momentum, other settings default.
  StochasticGradientDescent(const Device& device, float learning_rate);
  /// MPS `init(device:momentumScale:useNesterovMomentum:optimizerDescriptor:)`. Throws
  /// InvalidArgument for a momentum scale that is negative or not finite.
  StochasticGradientDescent(const Device& device, float momentum_scale, bool use_nesterov_momentum,
                            const OptimizerDescriptor& descriptor);

  float momentum_scale() const noexcept { return momentum_scale_; }
  bool use_nesterov_momentum() const noexcept { return use_nesterov_; }

  /// The convolution form without momentum: `result_state = source_state - lr * g'`.
  void encode(CommandBuffer& command_buffer, const ConvolutionGradientState& gradient_state,
              const ConvolutionWeightsAndBiasesState& source_state,
              ConvolutionWeightsAndBiasesState& result_state) const;
  /// The convolution form with momentum vectors, updated in place.
  void encode(CommandBuffer& command_buffer, const ConvolutionGradientState& gradient_state,
              const ConvolutionWeightsAndBiasesState& source_state,
              const OptimizerStateVectors& momentum,
              ConvolutionWeightsAndBiasesState& result_state) const;
  /// MPS's vector form. `momentum` may be empty (no momentum); every non-empty span must have
  /// `values.size()` elements. The memory must stay valid until the command buffer completes.
  void encode(CommandBuffer& command_buffer, std::span<const float> gradient,
              std::span<const float> values, std::span<float> momentum,
              std::span<float> result) const;

  /// Checkpoints (docs/archive.md, "Optimizer archives"): the momentum vectors and the settings,
  /// so that training resumes exactly. `load_state` fills `momentum` (any device), which must
  /// have the archived descriptor; FormatError for a bad or mismatched archive.
  void save_state(const std::string& path, const OptimizerStateVectors& momentum) const;
  void load_state(const std::string& path, OptimizerStateVectors& momentum) const;

 private:
  float momentum_scale_ = 0.0f;
  bool use_nesterov_ = false;
};

/// MPS `MPSNNOptimizerRMSProp`: s = decay * s + (1 - decay) * g^2;  w -= lr * g / (sqrt(s) + eps).
class RMSProp : public Optimizer {
 public:
  /// MPS `init(device:learningRate:)`: decay 0.9, epsilon 1e-8.
  RMSProp(const Device& device, float learning_rate);
  /// MPS `init(device:decay:epsilon:optimizerDescriptor:)`. Throws InvalidArgument for a decay
  /// outside [0, 1] or a negative or non-finite epsilon.
  RMSProp(const Device& device, double decay, float epsilon, const OptimizerDescriptor& descriptor);

  double decay() const noexcept { return decay_; }
  float epsilon() const noexcept { return epsilon_; }

  void encode(CommandBuffer& command_buffer, const ConvolutionGradientState& gradient_state,
              const ConvolutionWeightsAndBiasesState& source_state,
              const OptimizerStateVectors& sum_of_squares,
              ConvolutionWeightsAndBiasesState& result_state) const;
  /// MPS's vector form; every span has `values.size()` elements and stays valid until the
  /// command buffer completes.
  void encode(CommandBuffer& command_buffer, std::span<const float> gradient,
              std::span<const float> values, std::span<float> sum_of_squares,
              std::span<float> result) const;

  /// Checkpoints of the sum-of-squares vectors (see StochasticGradientDescent::save_state).
  void save_state(const std::string& path, const OptimizerStateVectors& sum_of_squares) const;
  void load_state(const std::string& path, OptimizerStateVectors& sum_of_squares) const;

 private:
  double decay_ = 0.9;
  float epsilon_ = 1e-8f;
};

/// MPS `MPSNNOptimizerAdam`. Each encode advances `time_step` by one (t), then
///   lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
///   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
///   w -= lr_t * m / (sqrt(v) + eps)
/// With AMSGrad, `vmax = max(vmax, v)` replaces v in the denominator.
class Adam : public Optimizer {
 public:
  /// MPS `init(device:learningRate:)`: beta1 0.9, beta2 0.999, epsilon 1e-8, time step 0.
  Adam(const Device& device, float learning_rate);
  /// MPS `init(device:beta1:beta2:epsilon:timeStep:optimizerDescriptor:)`. Throws
  /// InvalidArgument for betas outside [0, 1), a negative or non-finite epsilon or a negative
  /// time step.
  Adam(const Device& device, double beta1, double beta2, float epsilon, std::int64_t time_step,
       const OptimizerDescriptor& descriptor);

  double beta1() const noexcept { return beta1_; }
  double beta2() const noexcept { return beta2_; }
  float epsilon() const noexcept { return epsilon_; }
  /// The number of updates encoded so far (plus the initial value); read-write as in MPS.
  std::int64_t time_step() const noexcept { return time_step_; }
  void set_time_step(std::int64_t time_step);
  /// AMSGrad (MPS macOS 10.15+): the encodes then need the maximum-velocity vectors.
  bool amsgrad() const noexcept { return amsgrad_; }
  void set_amsgrad(bool amsgrad) noexcept { amsgrad_ = amsgrad; }

  /// Plain Adam (`amsgrad()` must be false).
  void encode(CommandBuffer& command_buffer, const ConvolutionGradientState& gradient_state,
              const ConvolutionWeightsAndBiasesState& source_state,
              const OptimizerStateVectors& momentum, const OptimizerStateVectors& velocity,
              ConvolutionWeightsAndBiasesState& result_state);
  /// AMSGrad (`amsgrad()` must be true).
  void encode(CommandBuffer& command_buffer, const ConvolutionGradientState& gradient_state,
              const ConvolutionWeightsAndBiasesState& source_state,
              const OptimizerStateVectors& momentum, const OptimizerStateVectors& velocity,
              const OptimizerStateVectors& maximum_velocity,
              ConvolutionWeightsAndBiasesState& result_state);
  /// MPS's vector form; `maximum_velocity` is empty unless `amsgrad()`. Every span has
  /// `values.size()` elements and stays valid until the command buffer completes.
  void encode(CommandBuffer& command_buffer, std::span<const float> gradient,
              std::span<const float> values, std::span<float> momentum, std::span<float> velocity,
              std::span<float> maximum_velocity, std::span<float> result);

  /// Checkpoints: the moment vectors (and the maximum velocity with AMSGrad, which
  /// `maximum_velocity` must then point to) and the time step, which `load_state` restores, so
  /// that the next update's bias correction continues where the saved run stopped.
  void save_state(const std::string& path, const OptimizerStateVectors& momentum,
                  const OptimizerStateVectors& velocity,
                  const OptimizerStateVectors* maximum_velocity = nullptr) const;
  void load_state(const std::string& path, OptimizerStateVectors& momentum,
                  OptimizerStateVectors& velocity,
                  OptimizerStateVectors* maximum_velocity = nullptr);

 private:
  double beta1_ = 0.9, beta2_ = 0.999;
  float epsilon_ = 1e-8f;
  std::int64_t time_step_ = 0;
  bool amsgrad_ = false;
};

}  // namespace convgrad
