// SPDX-License-Identifier: Apache-2.0
// The optimizers (MPSNNOptimizer and subclasses): every update is compared with a step computed
// here, in double, from the formulas of mps-reference.md §9 (not from the library's code), over
// several steps so that momentum, velocity and the Adam time step evolve.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "api/api_support.hpp"

namespace convgrad {
namespace {

// --- The rules, restated -------------------------------------------------------------------

struct Pre {
  double rescale = 1.0;
  bool clip = false;
  double lo = 0.0, hi = 0.0;
  RegularizationType regularization = RegularizationType::none;
  double scale = 0.0;
};

// MPS: clip (before rescaling), rescale, then add the regularization term.
double preprocessed(const Pre& p, double g, double w) {
  if (p.clip) g = std::min(std::max(g, p.lo), p.hi);
  g *= p.rescale;
  if (p.regularization == RegularizationType::l2) g += p.scale * w;
  if (p.regularization == RegularizationType::l1) g += p.scale * ((w > 0) - (w < 0));
  return g;
}

struct Variable {
  std::vector<double> w, m, v, vmax;
};

Variable variable(const std::vector<float>& w) {
  Variable x;
  x.w.assign(w.begin(), w.end());
  x.m.assign(w.size(), 0.0);
  x.v.assign(w.size(), 0.0);
  x.vmax.assign(w.size(), 0.0);
  return x;
}

void sgd(Variable& x, const std::vector<float>& g, const Pre& p, double lr, double mu,
         bool momentum, bool nesterov) {
  for (std::size_t i = 0; i < x.w.size(); ++i) {
    const double gi = preprocessed(p, g[i], x.w[i]);
    if (!momentum) {
      x.w[i] -= lr * gi;
    } else if (nesterov) {
      x.m[i] = mu * x.m[i] + gi;
      x.w[i] -= lr * (gi + mu * x.m[i]);
    } else {
      x.m[i] = mu * x.m[i] + lr * gi;
      x.w[i] -= x.m[i];
    }
  }
}

void rmsprop(Variable& x, const std::vector<float>& g, const Pre& p, double lr, double decay,
             double eps) {
  for (std::size_t i = 0; i < x.w.size(); ++i) {
    const double gi = preprocessed(p, g[i], x.w[i]);
    x.m[i] = decay * x.m[i] + (1 - decay) * gi * gi;
    x.w[i] -= lr * gi / (std::sqrt(x.m[i]) + eps);
  }
}

void adam(Variable& x, const std::vector<float>& g, const Pre& p, double lr, double b1, double b2,
          double eps, int t, bool amsgrad) {
  const double lr_t = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
  for (std::size_t i = 0; i < x.w.size(); ++i) {
    const double gi = preprocessed(p, g[i], x.w[i]);
    x.m[i] = b1 * x.m[i] + (1 - b1) * gi;
    x.v[i] = b2 * x.v[i] + (1 - b2) * gi * gi;
    x.vmax[i] = std::max(x.vmax[i], x.v[i]);
    x.w[i] -= lr_t * x.m[i] / (std::sqrt(amsgrad ? x.vmax[i] : x.v[i]) + eps);
  }
}

::testing::AssertionResult near(std::span<const float> got, const std::vector<double>& want,
                                double tol = 2e-6) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  }
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!(std::abs(got[i] - want[i]) <= tol * (1.0 + std::abs(want[i])))) {
      return ::testing::AssertionFailure()
             << "element " << i << ": " << got[i] << " != " << want[i];
    }
  }
  return ::testing::AssertionSuccess();
}

// --- A layer whose gradient state the test fills by hand -------------------------------------

class Bench {
 public:
  explicit Bench(bool bias = true, std::uint64_t salt = 1)
      : rng(test::make_rng(salt)), descriptor(2, 2, 1, 2) {
    descriptor.set_bias_enabled(bias);
    layer = apitest::make_layer(descriptor, rng);
    convolution = std::make_unique<Convolution>(device, layer.source);
    const Image x(device, ImageDescriptor{3, 3, 1, 1});
    const Image y(device, ImageDescriptor{3, 3, 2, 1});
    state = convolution->result_state(x, y);
    weights = std::make_unique<ConvolutionWeightsAndBiasesState>(device, descriptor, layer.weights,
                                                                 layer.biases);
  }

  // New random gradients in the state; returns them (weights, biases).
  std::pair<std::vector<float>, std::vector<float>> new_gradients(float scale = 1.0f) {
    std::vector<float> gw = apitest::random_values(rng, descriptor.weight_count(), -scale, scale);
    std::vector<float> gb;
    if (descriptor.bias_enabled()) gb = apitest::random_values(rng, 2, -scale, scale);
    std::copy(gw.begin(), gw.end(), state.gradient_for_weights().begin());
    std::copy(gb.begin(), gb.end(), state.gradient_for_biases().begin());
    return {gw, gb};
  }

  void run(const std::function<void(CommandBuffer&)>& encode) {
    CommandBuffer buffer = queue.command_buffer();
    encode(buffer);
    buffer.commit();
    buffer.wait();
  }

  OptimizerStateVectors zeros() const { return OptimizerStateVectors(device, descriptor); }

  std::mt19937_64 rng;
  Device device = Device::cpu();
  CommandQueue queue = device.new_command_queue();
  ConvolutionDescriptor descriptor;
  apitest::Layer layer;
  std::unique_ptr<Convolution> convolution;
  ConvolutionGradientState state;
  std::unique_ptr<ConvolutionWeightsAndBiasesState> weights;
};

TEST(Optimizer, DescriptorDefaultsAreMps) {
  const OptimizerDescriptor d;
  EXPECT_FLOAT_EQ(d.learning_rate, 0.001f);
  EXPECT_FLOAT_EQ(d.gradient_rescale, 1.0f);
  EXPECT_FALSE(d.apply_gradient_clipping);
  EXPECT_EQ(d.regularization_type, RegularizationType::none);
  EXPECT_FLOAT_EQ(d.regularization_scale, 0.0f);
  const Device device = Device::cpu();
  const StochasticGradientDescent sgd(device, 0.01f);
  EXPECT_FLOAT_EQ(sgd.learning_rate(), 0.01f);
  EXPECT_FLOAT_EQ(sgd.momentum_scale(), 0.0f);
  EXPECT_FALSE(sgd.use_nesterov_momentum());
  const RMSProp rms(device, 0.01f);
  EXPECT_DOUBLE_EQ(rms.decay(), 0.9);
  EXPECT_FLOAT_EQ(rms.epsilon(), 1e-8f);
  const Adam adam(device, 0.01f);
  EXPECT_DOUBLE_EQ(adam.beta1(), 0.9);
  EXPECT_DOUBLE_EQ(adam.beta2(), 0.999);
  EXPECT_FLOAT_EQ(adam.epsilon(), 1e-8f);
  EXPECT_EQ(adam.time_step(), 0);
  EXPECT_FALSE(adam.amsgrad());
}

TEST(Optimizer, SgdWithoutMomentumInPlace) {
  Bench b;
  StochasticGradientDescent sgd(b.device, 0.1f);
  Variable w = variable(b.layer.weights), bias = variable(b.layer.biases);
  for (int step = 0; step < 3; ++step) {
    const auto [gw, gb] = b.new_gradients();
    b.run([&](CommandBuffer& cb) { sgd.encode(cb, b.state, *b.weights, *b.weights); });
    ::convgrad::sgd(w, gw, {}, 0.1, 0, false, false);
    ::convgrad::sgd(bias, gb, {}, 0.1, 0, false, false);
    EXPECT_TRUE(near(b.weights->weights(), w.w)) << "step " << step;
    EXPECT_TRUE(near(b.weights->biases(), bias.w)) << "step " << step;
  }
}

TEST(Optimizer, SgdMomentumEvolves) {
  Bench b;
  OptimizerDescriptor d;
  d.learning_rate = 0.05f;
  StochasticGradientDescent sgd(b.device, 0.9f, false, d);
  OptimizerStateVectors momentum = b.zeros();
  Variable w = variable(b.layer.weights), bias = variable(b.layer.biases);
  for (int step = 0; step < 4; ++step) {
    const auto [gw, gb] = b.new_gradients();
    b.run([&](CommandBuffer& cb) { sgd.encode(cb, b.state, *b.weights, momentum, *b.weights); });
    ::convgrad::sgd(w, gw, {}, 0.05, 0.9, true, false);
    ::convgrad::sgd(bias, gb, {}, 0.05, 0.9, true, false);
    EXPECT_TRUE(near(b.weights->weights(), w.w)) << "step " << step;
    EXPECT_TRUE(near(b.weights->biases(), bias.w)) << "step " << step;
    EXPECT_TRUE(near(momentum.weights(), w.m)) << "step " << step;
    EXPECT_TRUE(near(momentum.biases(), bias.m)) << "step " << step;
  }
}

TEST(Optimizer, SgdNesterovMomentum) {
  Bench b;
  OptimizerDescriptor d;
  d.learning_rate = 0.05f;
  StochasticGradientDescent sgd(b.device, 0.8f, true, d);
  EXPECT_TRUE(sgd.use_nesterov_momentum());
  OptimizerStateVectors momentum = b.zeros();
  Variable w = variable(b.layer.weights), bias = variable(b.layer.biases);
  for (int step = 0; step < 4; ++step) {
    const auto [gw, gb] = b.new_gradients();
    b.run([&](CommandBuffer& cb) { sgd.encode(cb, b.state, *b.weights, momentum, *b.weights); });
    ::convgrad::sgd(w, gw, {}, 0.05, 0.8, true, true);
    ::convgrad::sgd(bias, gb, {}, 0.05, 0.8, true, true);
    EXPECT_TRUE(near(b.weights->weights(), w.w)) << "step " << step;
    EXPECT_TRUE(near(b.weights->biases(), bias.w)) << "step " << step;
    EXPECT_TRUE(near(momentum.weights(), w.m)) << "step " << step;
  }
}

TEST(Optimizer, RmsPropSumOfSquaresEvolves) {
  Bench b;
  OptimizerDescriptor d;
  d.learning_rate = 0.01f;
  RMSProp rms(b.device, 0.8, 1e-6f, d);
  OptimizerStateVectors squares = b.zeros();
  Variable w = variable(b.layer.weights), bias = variable(b.layer.biases);
  for (int step = 0; step < 4; ++step) {
    const auto [gw, gb] = b.new_gradients();
    b.run([&](CommandBuffer& cb) { rms.encode(cb, b.state, *b.weights, squares, *b.weights); });
    rmsprop(w, gw, {}, 0.01, 0.8, 1e-6);
    rmsprop(bias, gb, {}, 0.01, 0.8, 1e-6);
    EXPECT_TRUE(near(b.weights->weights(), w.w)) << "step " << step;
    EXPECT_TRUE(near(b.weights->biases(), bias.w)) << "step " << step;
    EXPECT_TRUE(near(squares.weights(), w.m)) << "step " << step;
  }
}

TEST(Optimizer, AdamTimeStepAdvancesOncePerEncode) {
  Bench b;
  OptimizerDescriptor d;
  d.learning_rate = 0.01f;
  Adam optimizer(b.device, 0.9, 0.99, 1e-7f, 0, d);
  OptimizerStateVectors m = b.zeros(), v = b.zeros();
  Variable w = variable(b.layer.weights), bias = variable(b.layer.biases);
  for (int step = 1; step <= 4; ++step) {
    const auto [gw, gb] = b.new_gradients();
    b.run([&](CommandBuffer& cb) { optimizer.encode(cb, b.state, *b.weights, m, v, *b.weights); });
    EXPECT_EQ(optimizer.time_step(), step);  // weights and biases: one step, not two
    adam(w, gw, {}, 0.01, 0.9, 0.99, 1e-7, step, false);
    adam(bias, gb, {}, 0.01, 0.9, 0.99, 1e-7, step, false);
    EXPECT_TRUE(near(b.weights->weights(), w.w)) << "step " << step;
    EXPECT_TRUE(near(b.weights->biases(), bias.w)) << "step " << step;
    EXPECT_TRUE(near(m.weights(), w.m)) << "step " << step;
    EXPECT_TRUE(near(v.weights(), w.v, 1e-5)) << "step " << step;
    EXPECT_TRUE(near(v.biases(), bias.v, 1e-5)) << "step " << step;
  }
  // The time step is read-write; the next encode uses t + 1 from the value set.
  optimizer.set_time_step(10);
  const auto [gw, gb] = b.new_gradients();
  b.run([&](CommandBuffer& cb) { optimizer.encode(cb, b.state, *b.weights, m, v, *b.weights); });
  adam(w, gw, {}, 0.01, 0.9, 0.99, 1e-7, 11, false);
  EXPECT_EQ(optimizer.time_step(), 11);
  EXPECT_TRUE(near(b.weights->weights(), w.w));
}

TEST(Optimizer, AdamAmsGradKeepsTheLargestVelocity) {
  Bench b;
  OptimizerDescriptor d;
  d.learning_rate = 0.01f;
  Adam optimizer(b.device, 0.9, 0.9, 1e-8f, 0, d);
  optimizer.set_amsgrad(true);
  OptimizerStateVectors m = b.zeros(), v = b.zeros(), vmax = b.zeros();
  Variable w = variable(b.layer.weights), bias = variable(b.layer.biases);
  // Large gradients first, then small ones: v falls below its maximum, which AMSGrad keeps.
  const float scales[] = {4.0f, 0.1f, 0.1f, 0.05f};
  bool maximum_used = false;
  for (int step = 1; step <= 4; ++step) {
    const auto [gw, gb] = b.new_gradients(scales[step - 1]);
    b.run([&](CommandBuffer& cb) {
      optimizer.encode(cb, b.state, *b.weights, m, v, vmax, *b.weights);
    });
    adam(w, gw, {}, 0.01, 0.9, 0.9, 1e-8, step, true);
    adam(bias, gb, {}, 0.01, 0.9, 0.9, 1e-8, step, true);
    EXPECT_TRUE(near(b.weights->weights(), w.w, 1e-5)) << "step " << step;
    EXPECT_TRUE(near(b.weights->biases(), bias.w, 1e-5)) << "step " << step;
    EXPECT_TRUE(near(vmax.weights(), w.vmax, 1e-5)) << "step " << step;
    for (std::size_t i = 0; i < w.v.size(); ++i) maximum_used = maximum_used || w.vmax[i] > w.v[i];
  }
  EXPECT_TRUE(maximum_used) << "the test never made v fall below its maximum";
}

TEST(Optimizer, ClippingComesBeforeRescaleThenL2) {
  Bench b;
  OptimizerDescriptor d;
  d.learning_rate = 0.1f;
  d.gradient_rescale = 4.0f;
  d.apply_gradient_clipping = true;
  d.gradient_clip_min = -0.25f;
  d.gradient_clip_max = 0.5f;
  d.regularization_type = RegularizationType::l2;
  d.regularization_scale = 0.01f;
  StochasticGradientDescent sgd(b.device, 0.5f, false, d);
  OptimizerStateVectors momentum = b.zeros();
  const Pre pre{4.0, true, -0.25, 0.5, RegularizationType::l2, 0.01};
  Variable w = variable(b.layer.weights), bias = variable(b.layer.biases);
  for (int step = 0; step < 3; ++step) {
    const auto [gw, gb] = b.new_gradients(2.0f);  // many values beyond the clip bounds
    b.run([&](CommandBuffer& cb) { sgd.encode(cb, b.state, *b.weights, momentum, *b.weights); });
    ::convgrad::sgd(w, gw, pre, 0.1, 0.5, true, false);
    ::convgrad::sgd(bias, gb, pre, 0.1, 0.5, true, false);
    EXPECT_TRUE(near(b.weights->weights(), w.w)) << "step " << step;
    EXPECT_TRUE(near(b.weights->biases(), bias.w)) << "step " << step;
  }
}

TEST(Optimizer, OneElementShowsTheOrderOfClipAndRescale) {
  // g = 2, clip to [-1, 1], rescale 3, L2 0.5 on w = 1: 3 * clip(2) + 0.5 * 1 = 3.5 (clipping
  // after the rescale would give 1 + 0.5).
  const Device device = Device::cpu();
  CommandQueue queue = device.new_command_queue();
  OptimizerDescriptor d;
  d.learning_rate = 1.0f;
  d.gradient_rescale = 3.0f;
  d.apply_gradient_clipping = true;
  d.gradient_clip_min = -1.0f;
  d.gradient_clip_max = 1.0f;
  d.regularization_type = RegularizationType::l2;
  d.regularization_scale = 0.5f;
  const StochasticGradientDescent sgd(device, 0.0f, false, d);
  std::vector<float> g{2.0f}, w{1.0f}, out{0.0f};
  CommandBuffer cb = queue.command_buffer();
  sgd.encode(cb, g, w, {}, out);
  cb.commit();
  cb.wait();
  EXPECT_FLOAT_EQ(out[0], 1.0f - 3.5f);
}

TEST(Optimizer, L1AddsScaleTimesSignOfTheValue) {
  Bench b;
  OptimizerDescriptor d;
  d.learning_rate = 0.1f;
  d.regularization_type = RegularizationType::l1;
  d.regularization_scale = 0.2f;
  StochasticGradientDescent sgd(b.device, 0.0f, false, d);
  const auto [gw, gb] = b.new_gradients();
  Variable w = variable(b.layer.weights), bias = variable(b.layer.biases);
  b.run([&](CommandBuffer& cb) { sgd.encode(cb, b.state, *b.weights, *b.weights); });
  const Pre pre{1.0, false, 0, 0, RegularizationType::l1, 0.2};
  ::convgrad::sgd(w, gw, pre, 0.1, 0, false, false);
  ::convgrad::sgd(bias, gb, pre, 0.1, 0, false, false);
  EXPECT_TRUE(near(b.weights->weights(), w.w));
  EXPECT_TRUE(near(b.weights->biases(), bias.w));
}

TEST(Optimizer, SeparateResultLeavesTheSourceAlone) {
  Bench b;
  StochasticGradientDescent sgd(b.device, 0.1f);
  ConvolutionWeightsAndBiasesState result(b.device, b.descriptor);
  const auto [gw, gb] = b.new_gradients();
  b.run([&](CommandBuffer& cb) { sgd.encode(cb, b.state, *b.weights, result); });
  Variable w = variable(b.layer.weights);
  ::convgrad::sgd(w, gw, {}, 0.1, 0, false, false);
  EXPECT_TRUE(near(result.weights(), w.w));
  EXPECT_EQ(apitest::bits_of(b.weights->weights()), apitest::bits_of(b.layer.weights));
}

TEST(Optimizer, LayerWithoutBiasUpdatesTheWeightsOnly) {
  Bench b(/*bias=*/false);
  Adam optimizer(b.device, 0.01f);
  OptimizerStateVectors m = b.zeros(), v = b.zeros();
  EXPECT_TRUE(m.biases().empty());
  const auto [gw, gb] = b.new_gradients();
  b.run([&](CommandBuffer& cb) { optimizer.encode(cb, b.state, *b.weights, m, v, *b.weights); });
  Variable w = variable(b.layer.weights);
  adam(w, gw, {}, 0.01, 0.9, 0.999, 1e-8, 1, false);
  EXPECT_TRUE(near(b.weights->weights(), w.w));
}

TEST(Optimizer, VectorFormsMatchTheRules) {
  const Device device = Device::cpu();
  CommandQueue queue = device.new_command_queue();
  std::mt19937_64 rng = test::make_rng(7);
  const std::vector<float> w0 = apitest::random_values(rng, 5);
  const std::vector<float> g = apitest::random_values(rng, 5);
  std::vector<float> out(5), m(5, 0.0f), v(5, 0.0f), s(5, 0.0f);
  const StochasticGradientDescent sgd(device, 0.9f, true, OptimizerDescriptor{});
  const RMSProp rms(device, 0.5, 1e-8f, OptimizerDescriptor{});
  Adam optimizer(device, 0.01f);
  CommandBuffer cb = queue.command_buffer();
  sgd.encode(cb, g, w0, m, out);
  std::vector<float> out_rms(5), out_adam(5), m_adam(5, 0.0f);
  rms.encode(cb, g, w0, s, out_rms);
  optimizer.encode(cb, g, w0, m_adam, v, {}, out_adam);
  cb.commit();
  cb.wait();
  Variable a = variable(w0), r = variable(w0), c = variable(w0);
  ::convgrad::sgd(a, g, {}, 0.001, 0.9, true, true);
  rmsprop(r, g, {}, 0.001, 0.5, 1e-8);
  adam(c, g, {}, 0.01, 0.9, 0.999, 1e-8, 1, false);
  EXPECT_TRUE(near(out, a.w));
  EXPECT_TRUE(near(out_rms, r.w));
  EXPECT_TRUE(near(out_adam, c.w));
  EXPECT_EQ(optimizer.time_step(), 1);
}

TEST(Optimizer, LearningRateChangesApplyToLaterEncodes) {
  Bench b;
  StochasticGradientDescent sgd(b.device, 0.1f);
  sgd.set_learning_rate(0.5f);
  EXPECT_FLOAT_EQ(sgd.learning_rate(), 0.5f);
  const auto [gw, gb] = b.new_gradients();
  b.run([&](CommandBuffer& cb) { sgd.encode(cb, b.state, *b.weights, *b.weights); });
  Variable w = variable(b.layer.weights);
  ::convgrad::sgd(w, gw, {}, 0.5, 0, false, false);
  EXPECT_TRUE(near(b.weights->weights(), w.w));
}

// --- Refusals --------------------------------------------------------------------------------

template <typename F>
void expect_invalid(F&& f, const std::string& parameter) {
  try {
    f();
    ADD_FAILURE() << "no InvalidArgument; expected one naming " << parameter;
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.parameter(), parameter) << e.what();
  }
}

TEST(OptimizerErrors, DescriptorAndParameterRules) {
  const Device device = Device::cpu();
  OptimizerDescriptor d;
  d.apply_gradient_clipping = true;
  d.gradient_clip_min = 1.0f;
  d.gradient_clip_max = -1.0f;
  expect_invalid([&] { StochasticGradientDescent(device, 0.0f, false, d); }, "gradient_clip_min");
  d = {};
  d.learning_rate = std::numeric_limits<float>::infinity();
  expect_invalid([&] { RMSProp(device, 0.9, 1e-8f, d); }, "learning_rate");
  expect_invalid([&] { StochasticGradientDescent(device, -0.5f, false, {}); }, "momentum_scale");
  expect_invalid([&] { RMSProp(device, 1.5, 1e-8f, {}); }, "decay");
  expect_invalid([&] { Adam(device, 1.0, 0.999, 1e-8f, 0, {}); }, "beta1");
  expect_invalid([&] { Adam(device, 0.9, 0.999, -1.0f, 0, {}); }, "epsilon");
  expect_invalid([&] { Adam(device, 0.9, 0.999, 1e-8f, -1, {}); }, "time_step");
  StochasticGradientDescent sgd(device, 0.1f);
  expect_invalid([&] { sgd.set_learning_rate(std::nanf("")); }, "learning_rate");
  EXPECT_FLOAT_EQ(sgd.learning_rate(), 0.1f);
}

TEST(OptimizerErrors, StatesMustMatchTheGradientAndNothingIsEncoded) {
  Bench b;
  b.new_gradients();
  StochasticGradientDescent sgd(b.device, 0.9f, false, {});
  ConvolutionDescriptor other(3, 3, 1, 2);
  ConvolutionWeightsAndBiasesState wrong(b.device, other);
  OptimizerStateVectors momentum = b.zeros();
  CommandBuffer cb = b.queue.command_buffer();
  expect_invalid([&] { sgd.encode(cb, b.state, wrong, *b.weights); },
                 "source_state.weights().size()");
  expect_invalid([&] { sgd.encode(cb, b.state, *b.weights, wrong); },
                 "result_state.weights().size()");
  OptimizerStateVectors bad_momentum(b.device, other);
  expect_invalid([&] { sgd.encode(cb, b.state, *b.weights, bad_momentum, *b.weights); },
                 "momentum.weights().size()");
  expect_invalid([&] { sgd.encode(cb, ConvolutionGradientState(), *b.weights, *b.weights); },
                 "gradient_state");
  // A momentum vector that is the result would mix two quantities.
  expect_invalid([&] { sgd.encode(cb, b.state, *b.weights, *b.weights, *b.weights); }, "momentum");
  Adam optimizer(b.device, 0.01f);
  OptimizerStateVectors v = b.zeros();
  expect_invalid([&] { optimizer.encode(cb, b.state, *b.weights, momentum, v, v, *b.weights); },
                 "amsgrad");
  expect_invalid([&] { optimizer.encode(cb, b.state, *b.weights, momentum, momentum, *b.weights); },
                 "velocity");
  EXPECT_EQ(optimizer.time_step(), 0);  // refused encodes do not count
  cb.commit();
  cb.wait();
  EXPECT_EQ(apitest::bits_of(b.weights->weights()), apitest::bits_of(b.layer.weights));
  EXPECT_EQ(apitest::bits_of(momentum.weights()),
            apitest::bits_of(std::vector<float>(momentum.weights().size(), 0.0f)));
}

TEST(OptimizerErrors, VectorSizesAndOverlaps) {
  const Device device = Device::cpu();
  CommandQueue queue = device.new_command_queue();
  const StochasticGradientDescent sgd(device, 0.9f, false, {});
  std::vector<float> g(4), w(4), m(4), out(4), shorter(3);
  CommandBuffer cb = queue.command_buffer();
  expect_invalid([&] { sgd.encode(cb, shorter, w, m, out); }, "gradient.size()");
  expect_invalid([&] { sgd.encode(cb, g, w, m, shorter); }, "result.size()");
  expect_invalid([&] { sgd.encode(cb, g, w, shorter, out); }, "momentum.size()");
  expect_invalid([&] { sgd.encode(cb, g, w, out, out); }, "momentum");
  std::vector<float> big(5);
  expect_invalid(
      [&] { sgd.encode(cb, g, std::span<float>(big).first(4), m, std::span<float>(big).last(4)); },
      "result");
  sgd.encode(cb, g, w, m, w);  // in place is fine
  cb.commit();
  cb.wait();
}

}  // namespace
}  // namespace convgrad
