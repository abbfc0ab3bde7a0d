// SPDX-License-Identifier: Apache-2.0
// The optimizers: parameter checks, the convolution and vector encodes, and the hand-off of each
// update to its element-wise rule (api/optimizer_math.hpp) as work on the command buffer.
#include "convgrad/optimizer.hpp"

#include <array>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "api/optimizer_math.hpp"
#include "convgrad/errors.hpp"
#include "dispatch/device_work.hpp"

namespace convgrad {
namespace {

std::string str(double v) {
  std::string s = std::to_string(v);
  return s;
}
std::string count(std::size_t v) { return std::to_string(v); }

void require_finite(float value, const char* where, const char* name) {
  if (!std::isfinite(value)) {
    throw InvalidArgument(where, name, str(value), "must be finite");
  }
}

bool overlaps(std::span<const float> a, std::span<const float> b) {
  if (a.empty() || b.empty()) return false;
  return a.data() < b.data() + b.size() && b.data() < a.data() + a.size();
}

// The update of one variable (weights or biases) given the optimizer vectors in the order the
// optimizer declares them; unused vectors are empty.
using Step = std::function<void(std::span<const float> gradient, std::span<const float> values,
                                std::array<std::span<float>, 3> vectors, std::span<float> result)>;

// The same update as a device rule: what a CUDA device runs in place of `Step`.
using DeviceStep = dispatch::UpdateStep;

DeviceStep device_step(const api::GradientPreprocessing& pre, dispatch::UpdateRule rule,
                       float learning_rate) {
  DeviceStep step;
  step.rule = rule;
  step.rescale = pre.rescale;
  step.clip = pre.clip;
  step.clip_min = pre.clip_min;
  step.clip_max = pre.clip_max;
  step.regularization = static_cast<std::uint8_t>(pre.regularization);
  step.regularization_scale = pre.regularization_scale;
  step.learning_rate = learning_rate;
  return step;
}

// A state's buffer wherever it lives, for the size and overlap checks and the device rule.
struct Floats {
  float* data = nullptr;
  std::size_t size = 0;
};
Floats floats(const TensorView& view) {
  if (view.empty()) return {};
  return {static_cast<float*>(view.data),
          static_cast<std::size_t>(view.dims[0] * view.dims[1] * view.dims[2] * view.dims[3])};
}
std::span<float> host_span(const Floats& f) { return {f.data, f.size}; }
bool overlaps(const Floats& a, const Floats& b) {
  return overlaps(std::span<const float>(a.data, a.size), std::span<const float>(b.data, b.size));
}

struct NamedVectors {
  std::array<const char*, 3> names{};
  std::array<const OptimizerStateVectors*, 3> vectors{};
};

void require_device(const Device& state_device, const Device& device, const std::string& name,
                    const char* where) {
  if (state_device.kind() != device.kind()) {
    throw InvalidArgument(where, name + ".device", state_device.name(),
                          "must be the optimizer's device " + device.name());
  }
}

void require_shape(const ConvolutionWeightsAndBiasesState& state, std::size_t weights,
                   std::size_t biases, const std::string& name, const char* where) {
  if (state.weight_count() != weights) {
    throw InvalidArgument(where, name + ".weights().size()", count(state.weight_count()),
                          "must equal the gradient state's weight count (" + count(weights) + ")",
                          state.descriptor().to_string());
  }
  if (state.bias_count() != biases) {
    throw InvalidArgument(where, name + ".biases().size()", count(state.bias_count()),
                          "must equal the gradient state's bias count (" + count(biases) + ")",
                          state.descriptor().to_string());
  }
}

// The convolution form shared by every optimizer: checks every state against the gradient
// state, then enqueues the update of the weights and, when present, the biases: `step` on the
// CPU, `on_device` (the same arithmetic, src/cuda/optimizer.cu) on a CUDA device, where every
// buffer lives in device memory.
void encode_layer(CommandBuffer& command_buffer, const Device& device,
                  const ConvolutionGradientState& gradient_state,
                  const ConvolutionWeightsAndBiasesState& source_state, const NamedVectors& named,
                  ConvolutionWeightsAndBiasesState& result_state, Step step,
                  const DeviceStep& on_device, const char* where) {
  if (!gradient_state.valid()) {
    throw InvalidArgument(where, "gradient_state", "empty",
                          "pass the state that the forward convolution's encode produced");
  }
  const Floats gradient_weights = floats(gradient_state.gradient_for_weights_view());
  const Floats gradient_biases = floats(gradient_state.gradient_for_biases_view());
  const std::size_t weights = gradient_weights.size;
  const std::size_t biases = gradient_biases.size;
  require_device(gradient_state.device(), device, "gradient_state", where);
  require_device(source_state.device(), device, "source_state", where);
  require_device(result_state.device(), device, "result_state", where);
  require_shape(source_state, weights, biases, "source_state", where);
  require_shape(result_state, weights, biases, "result_state", where);
  const std::array<Floats, 4> states{
      floats(source_state.weights_view()), floats(source_state.biases_view()),
      floats(result_state.weights_view()), floats(result_state.biases_view())};
  std::array<std::optional<OptimizerStateVectors>, 3> vectors;
  for (std::size_t i = 0; i < named.vectors.size(); ++i) {
    if (named.vectors[i] == nullptr) continue;
    const OptimizerStateVectors& v = *named.vectors[i];
    const std::string name = named.names[i];
    require_device(v.device(), device, name, where);
    require_shape(v, weights, biases, name, where);
    // The rule reads and writes a vector element by element, next to the values and the result:
    // sharing a buffer with either (or with another vector) would mix two quantities.
    const Floats mine[2] = {floats(v.weights_view()), floats(v.biases_view())};
    const auto clash = [&](const Floats& other) {
      return overlaps(mine[0], other) || overlaps(mine[1], other);
    };
    bool shared = false;
    for (const Floats& other : states) shared = shared || clash(other);
    for (std::size_t j = 0; j < i; ++j) {
      if (vectors[j]) {
        shared = shared || clash(floats(vectors[j]->weights_view())) ||
                 clash(floats(vectors[j]->biases_view()));
      }
    }
    if (shared) {
      throw InvalidArgument(where, name, "shares a buffer",
                            "optimizer vectors must not share storage with the weights states "
                            "or with each other");
    }
    vectors[i] = v;
  }
  const bool device_rule = device.kind() != DeviceKind::cpu;
  command_buffer.enqueue([gradient = gradient_state, source = source_state, result = result_state,
                          vectors, step = std::move(step), on_device, device_rule]() mutable {
    std::array<Floats, 3> w{}, b{};
    for (std::size_t i = 0; i < vectors.size(); ++i) {
      if (!vectors[i]) continue;
      w[i] = floats(vectors[i]->weights_view());
      b[i] = floats(vectors[i]->biases_view());
    }
    const auto update = [&](const Floats& g, const Floats& values, const std::array<Floats, 3>& v,
                            const Floats& out) {
      if (out.size == 0) return;
      if (device_rule) {
        dispatch::optimizer_update(on_device, g.data, values.data, v[0].data, v[1].data,
                                   v[2].data, out.data, static_cast<std::int64_t>(out.size));
      } else {
        step(host_span(g), host_span(values), {host_span(v[0]), host_span(v[1]), host_span(v[2])},
             host_span(out));
      }
    };
    update(floats(gradient.gradient_for_weights_view()), floats(source.weights_view()), w,
           floats(result.weights_view()));
    update(floats(gradient.gradient_for_biases_view()), floats(source.biases_view()), b,
           floats(result.biases_view()));
  });
}

// The vector form: sizes and overlaps, then the same enqueue.
void encode_vectors(CommandBuffer& command_buffer, std::span<const float> gradient,
                    std::span<const float> values, std::array<std::span<float>, 3> vectors,
                    std::array<const char*, 3> names, std::array<bool, 3> required,
                    std::span<float> result, Step step, const char* where) {
  const std::size_t n = values.size();
  if (gradient.size() != n) {
    throw InvalidArgument(where, "gradient.size()", count(gradient.size()),
                          "must equal values.size() (" + count(n) + ")");
  }
  if (result.size() != n) {
    throw InvalidArgument(where, "result.size()", count(result.size()),
                          "must equal values.size() (" + count(n) + ")");
  }
  // The result may be the values themselves, but not a shifted window of them.
  if (overlaps(result, values) && result.data() != values.data()) {
    throw InvalidArgument(where, "result", "partly overlaps values",
                          "must be values itself or separate storage");
  }
  for (std::size_t i = 0; i < vectors.size(); ++i) {
    if (names[i] == nullptr) continue;
    if (vectors[i].empty() && !required[i]) continue;
    if (vectors[i].size() != n) {
      throw InvalidArgument(where, std::string(names[i]) + ".size()", count(vectors[i].size()),
                            "must equal values.size() (" + count(n) + ")");
    }
    bool shared = overlaps(vectors[i], gradient) || overlaps(vectors[i], values) ||
                  overlaps(vectors[i], result);
    for (std::size_t j = 0; j < i; ++j) shared = shared || overlaps(vectors[i], vectors[j]);
    if (shared) {
      throw InvalidArgument(where, names[i], "shares storage",
                            "must not overlap the gradient, the values, the result or another "
                            "optimizer vector");
    }
  }
  command_buffer.enqueue([=, step = std::move(step)] { step(gradient, values, vectors, result); });
}

}  // namespace

void OptimizerDescriptor::validate(const char* where) const {
  require_finite(learning_rate, where, "learning_rate");
  require_finite(gradient_rescale, where, "gradient_rescale");
  require_finite(regularization_scale, where, "regularization_scale");
  const auto type = static_cast<unsigned>(regularization_type);
  if (type > 2) {
    throw InvalidArgument(where, "regularization_type", std::to_string(type),
                          "must be none (0), l1 (1) or l2 (2)");
  }
  if (apply_gradient_clipping) {
    if (std::isnan(gradient_clip_min) || std::isnan(gradient_clip_max)) {
      throw InvalidArgument(
          where, std::isnan(gradient_clip_min) ? "gradient_clip_min" : "gradient_clip_max", "nan",
          "clip bounds must be numbers");
    }
    if (gradient_clip_min > gradient_clip_max) {
      throw InvalidArgument(where, "gradient_clip_min", str(gradient_clip_min),
                            "must not exceed gradient_clip_max (" + str(gradient_clip_max) + ")");
    }
  }
}

Optimizer::Optimizer(const Device& device, const OptimizerDescriptor& descriptor, const char* where)
    : device_(device), descriptor_(descriptor) {
  descriptor_.validate(where);
}

void Optimizer::set_learning_rate(float learning_rate) {
  require_finite(learning_rate, "Optimizer::set_learning_rate", "learning_rate");
  descriptor_.learning_rate = learning_rate;
}

// ---------------------------------------------------------------------------------------------

namespace {
OptimizerDescriptor with_rate(float learning_rate) {
  OptimizerDescriptor d;
  d.learning_rate = learning_rate;
  return d;
}
}  // namespace

StochasticGradientDescent::StochasticGradientDescent(const Device& device, float learning_rate)
    : StochasticGradientDescent(device, 0.0f, false, with_rate(learning_rate)) {}

StochasticGradientDescent::StochasticGradientDescent(const Device& device, float momentum_scale,
                                                     bool use_nesterov_momentum,
                                                     const OptimizerDescriptor& descriptor)
    : Optimizer(device, descriptor, "StochasticGradientDescent"),
      momentum_scale_(momentum_scale),
      use_nesterov_(use_nesterov_momentum) {
  if (!std::isfinite(momentum_scale) || momentum_scale < 0.0f) {
    throw InvalidArgument("StochasticGradientDescent", "momentum_scale", str(momentum_scale),
                          "must be finite and not negative");
  }
}

namespace {
Step sgd_step(const api::GradientPreprocessing& pre, float lr, float mu, bool nesterov) {
  return [=](std::span<const float> g, std::span<const float> w, std::array<std::span<float>, 3> v,
             std::span<float> out) { api::sgd_update(pre, lr, mu, nesterov, g, w, v[0], out); };
}
}  // namespace

void StochasticGradientDescent::encode(CommandBuffer& command_buffer,
                                       const ConvolutionGradientState& gradient_state,
                                       const ConvolutionWeightsAndBiasesState& source_state,
                                       ConvolutionWeightsAndBiasesState& result_state) const {
  const api::GradientPreprocessing pre = api::preprocessing_of(descriptor());
  encode_layer(command_buffer, device(), gradient_state, source_state, {}, result_state,
               sgd_step(pre, learning_rate(), momentum_scale_, use_nesterov_),
               device_step(pre, dispatch::UpdateRule::sgd, learning_rate()),
               "StochasticGradientDescent::encode");
}

void StochasticGradientDescent::encode(CommandBuffer& command_buffer,
                                       const ConvolutionGradientState& gradient_state,
                                       const ConvolutionWeightsAndBiasesState& source_state,
                                       const OptimizerStateVectors& momentum,
                                       ConvolutionWeightsAndBiasesState& result_state) const {
  const api::GradientPreprocessing pre = api::preprocessing_of(descriptor());
  DeviceStep on_device = device_step(
      pre, use_nesterov_ ? dispatch::UpdateRule::nesterov : dispatch::UpdateRule::momentum,
      learning_rate());
  on_device.momentum_scale = momentum_scale_;
  encode_layer(command_buffer, device(), gradient_state, source_state,
               NamedVectors{{"momentum"}, {&momentum}}, result_state,
               sgd_step(pre, learning_rate(), momentum_scale_, use_nesterov_), on_device,
               "StochasticGradientDescent::encode");
}

void StochasticGradientDescent::encode(CommandBuffer& command_buffer,
                                       std::span<const float> gradient,
                                       std::span<const float> values, std::span<float> momentum,
                                       std::span<float> result) const {
  encode_vectors(command_buffer, gradient, values, {momentum}, {"momentum"}, {false}, result,
                 sgd_step(api::preprocessing_of(descriptor()), learning_rate(), momentum_scale_,
                          use_nesterov_),
                 "StochasticGradientDescent::encode");
}

// ---------------------------------------------------------------------------------------------

RMSProp::RMSProp(const Device& device, float learning_rate)
    : RMSProp(device, 0.9, 1e-8f, with_rate(learning_rate)) {}

RMSProp::RMSProp(const Device& device, double decay, float epsilon,
                 const OptimizerDescriptor& descriptor)
    : Optimizer(device, descriptor, "RMSProp"), decay_(decay), epsilon_(epsilon) {
  if (!(decay >= 0.0 && decay <= 1.0)) {
    throw InvalidArgument("RMSProp", "decay", str(decay), "must be in [0, 1]");
  }
  if (!std::isfinite(epsilon) || epsilon < 0.0f) {
    throw InvalidArgument("RMSProp", "epsilon", str(epsilon), "must be finite and not negative");
  }
}

namespace {
Step rmsprop_step(const api::GradientPreprocessing& pre, float lr, double decay, float epsilon) {
  return
      [=](std::span<const float> g, std::span<const float> w, std::array<std::span<float>, 3> v,
          std::span<float> out) { api::rmsprop_update(pre, lr, decay, epsilon, g, w, v[0], out); };
}
}  // namespace

void RMSProp::encode(CommandBuffer& command_buffer, const ConvolutionGradientState& gradient_state,
                     const ConvolutionWeightsAndBiasesState& source_state,
                     const OptimizerStateVectors& sum_of_squares,
                     ConvolutionWeightsAndBiasesState& result_state) const {
  const api::GradientPreprocessing pre = api::preprocessing_of(descriptor());
  DeviceStep on_device = device_step(pre, dispatch::UpdateRule::rmsprop, learning_rate());
  on_device.keep = static_cast<float>(decay_);
  on_device.take = static_cast<float>(1.0 - decay_);
  on_device.epsilon = epsilon_;
  encode_layer(command_buffer, device(), gradient_state, source_state,
               NamedVectors{{"sum_of_squares"}, {&sum_of_squares}}, result_state,
               rmsprop_step(pre, learning_rate(), decay_, epsilon_), on_device,
               "RMSProp::encode");
}

void RMSProp::encode(CommandBuffer& command_buffer, std::span<const float> gradient,
                     std::span<const float> values, std::span<float> sum_of_squares,
                     std::span<float> result) const {
  encode_vectors(
      command_buffer, gradient, values, {sum_of_squares}, {"sum_of_squares"}, {true}, result,
      rmsprop_step(api::preprocessing_of(descriptor()), learning_rate(), decay_, epsilon_),
      "RMSProp::encode");
}

// ---------------------------------------------------------------------------------------------

Adam::Adam(const Device& device, float learning_rate)
    : Adam(device, 0.9, 0.999, 1e-8f, 0, with_rate(learning_rate)) {}

Adam::Adam(const Device& device, double beta1, double beta2, float epsilon, std::int64_t time_step,
           const OptimizerDescriptor& descriptor)
    : Optimizer(device, descriptor, "Adam"), beta1_(beta1), beta2_(beta2), epsilon_(epsilon) {
  if (!(beta1 >= 0.0 && beta1 < 1.0)) {
    throw InvalidArgument("Adam", "beta1", str(beta1), "must be in [0, 1)");
  }
  if (!(beta2 >= 0.0 && beta2 < 1.0)) {
    throw InvalidArgument("Adam", "beta2", str(beta2), "must be in [0, 1)");
  }
  if (!std::isfinite(epsilon) || epsilon < 0.0f) {
    throw InvalidArgument("Adam", "epsilon", str(epsilon), "must be finite and not negative");
  }
  set_time_step(time_step);
}

void Adam::set_time_step(std::int64_t time_step) {
  if (time_step < 0) {
    throw InvalidArgument("Adam::set_time_step", "time_step", std::to_string(time_step),
                          "must not be negative");
  }
  time_step_ = time_step;
}

namespace {
Step adam_step(const api::GradientPreprocessing& pre, double lr_t, double beta1, double beta2,
               float epsilon) {
  return [=](std::span<const float> g, std::span<const float> w, std::array<std::span<float>, 3> v,
             std::span<float> out) {
    api::adam_update(pre, lr_t, beta1, beta2, epsilon, g, w, v[0], v[1], v[2], out);
  };
}

DeviceStep adam_device_step(const api::GradientPreprocessing& pre, dispatch::UpdateRule rule,
                            double lr_t, double beta1, double beta2, float epsilon) {
  DeviceStep step = device_step(pre, rule, static_cast<float>(lr_t));
  step.keep = static_cast<float>(beta1);
  step.take = static_cast<float>(1.0 - beta1);
  step.keep2 = static_cast<float>(beta2);
  step.take2 = static_cast<float>(1.0 - beta2);
  step.epsilon = epsilon;
  return step;
}

// lr_t for update number t (1-based), in double: 1 - beta^t loses digits in float for small t.
double adam_rate(double lr, double beta1, double beta2, std::int64_t t) {
  const auto power = static_cast<double>(t);
  return lr * std::sqrt(1.0 - std::pow(beta2, power)) / (1.0 - std::pow(beta1, power));
}

void require_amsgrad(bool amsgrad, bool wanted, const char* where) {
  if (amsgrad != wanted) {
    throw InvalidArgument(where, "amsgrad", amsgrad ? "true" : "false",
                          amsgrad ? "AMSGrad needs the maximum_velocity vectors"
                                  : "maximum_velocity vectors are used only with "
                                    "set_amsgrad(true)");
  }
}
}  // namespace

void Adam::encode(CommandBuffer& command_buffer, const ConvolutionGradientState& gradient_state,
                  const ConvolutionWeightsAndBiasesState& source_state,
                  const OptimizerStateVectors& momentum, const OptimizerStateVectors& velocity,
                  ConvolutionWeightsAndBiasesState& result_state) {
  const char* where = "Adam::encode";
  require_amsgrad(amsgrad_, false, where);
  const std::int64_t t = time_step_ + 1;
  const api::GradientPreprocessing pre = api::preprocessing_of(descriptor());
  const double rate = adam_rate(learning_rate(), beta1_, beta2_, t);
  encode_layer(command_buffer, device(), gradient_state, source_state,
               NamedVectors{{"momentum", "velocity"}, {&momentum, &velocity}}, result_state,
               adam_step(pre, rate, beta1_, beta2_, epsilon_),
               adam_device_step(pre, dispatch::UpdateRule::adam, rate, beta1_, beta2_, epsilon_),
               where);
  time_step_ = t;  // only once the update is enqueued
}

void Adam::encode(CommandBuffer& command_buffer, const ConvolutionGradientState& gradient_state,
                  const ConvolutionWeightsAndBiasesState& source_state,
                  const OptimizerStateVectors& momentum, const OptimizerStateVectors& velocity,
                  const OptimizerStateVectors& maximum_velocity,
                  ConvolutionWeightsAndBiasesState& result_state) {
  const char* where = "Adam::encode";
  require_amsgrad(amsgrad_, true, where);
  const std::int64_t t = time_step_ + 1;
  const api::GradientPreprocessing pre = api::preprocessing_of(descriptor());
  const double rate = adam_rate(learning_rate(), beta1_, beta2_, t);
  encode_layer(command_buffer, device(), gradient_state, source_state,
               NamedVectors{{"momentum", "velocity", "maximum_velocity"},
                            {&momentum, &velocity, &maximum_velocity}},
               result_state, adam_step(pre, rate, beta1_, beta2_, epsilon_),
               adam_device_step(pre, dispatch::UpdateRule::amsgrad, rate, beta1_, beta2_,
                                epsilon_),
               where);
  time_step_ = t;
}

void Adam::encode(CommandBuffer& command_buffer, std::span<const float> gradient,
                  std::span<const float> values, std::span<float> momentum,
                  std::span<float> velocity, std::span<float> maximum_velocity,
                  std::span<float> result) {
  const char* where = "Adam::encode";
  require_amsgrad(amsgrad_, !maximum_velocity.empty(), where);
  const std::int64_t t = time_step_ + 1;
  encode_vectors(command_buffer, gradient, values, {momentum, velocity, maximum_velocity},
                 {"momentum", "velocity", amsgrad_ ? "maximum_velocity" : nullptr},
                 {true, true, amsgrad_}, result,
                 adam_step(api::preprocessing_of(descriptor()),
                           adam_rate(learning_rate(), beta1_, beta2_, t), beta1_, beta2_, epsilon_),
                 where);
  time_step_ = t;
}

}  // namespace convgrad
