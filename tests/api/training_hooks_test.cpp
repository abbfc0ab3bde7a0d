// SPDX-License-Identifier: Apache-2.0
// The training loop of mps-reference.md §9.4 through the data source's update hooks: a layer
// learns a regression target with SGD, and after every update both the forward convolution and
// the gradient kernel must compute with the new weights (compared with the `ref` backend run on
// the weights the test expects), whether the update went through the GPU-style hook and
// `reload_weights_and_biases(command_buffer, state)` or the CPU-style hook and
// `reload_weights_and_biases_from_data_source()`.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "api/api_support.hpp"

namespace convgrad {
namespace {

constexpr float kRate = 0.002f;
constexpr float kMomentum = 0.5f;

// A data source that trains itself, as in Apple's sample: its weights live in a weights state,
// which both hooks update with SGD + momentum.
class TrainedSource : public ConvolutionDataSource {
 public:
  TrainedSource(const Device& device, const ConvolutionDescriptor& descriptor,
                const std::vector<float>& weights, const std::vector<float>& biases)
      : descriptor_(descriptor),
        state_(device, descriptor, weights, biases),
        momentum_(device, descriptor),
        sgd_(device, kMomentum, false, rate()) {}

  DataType data_type() const override { return DataType::float32; }
  const ConvolutionDescriptor& descriptor() const override { return descriptor_; }
  const void* weights() override { return state_.weights().data(); }
  const float* bias_terms() override { return state_.biases().data(); }
  bool load() override { return true; }
  void purge() override {}
  std::string label() const override { return "trained"; }

  std::optional<ConvolutionWeightsAndBiasesState> update(
      CommandBuffer& command_buffer, const ConvolutionGradientState& gradient_state,
      const ConvolutionWeightsAndBiasesState& source_state) override {
    sgd_.encode(command_buffer, gradient_state, source_state, momentum_, state_);
    ++gpu_updates;
    return state_;
  }
  // Runs after the gradient pass completed: the update is computed now, into our own weights.
  bool update(const ConvolutionGradientState& gradient_state,
              const ConvolutionWeightsAndBiasesState& source_state) override {
    CommandQueue queue = state_.device().new_command_queue();
    CommandBuffer command_buffer = queue.command_buffer();
    sgd_.encode(command_buffer, gradient_state, source_state, momentum_, state_);
    command_buffer.commit();
    command_buffer.wait();
    ++cpu_updates;
    return true;
  }

  const ConvolutionWeightsAndBiasesState& state() const { return state_; }
  int gpu_updates = 0, cpu_updates = 0;

 private:
  static OptimizerDescriptor rate() {
    OptimizerDescriptor d;
    d.learning_rate = kRate;
    return d;
  }
  ConvolutionDescriptor descriptor_;
  ConvolutionWeightsAndBiasesState state_;
  OptimizerStateVectors momentum_;
  StochasticGradientDescent sgd_;
};

std::vector<float> values(std::span<const float> v) { return {v.begin(), v.end()}; }

enum class Hook { gpu, cpu };

void train(Hook hook) {
  std::mt19937_64 rng = test::make_rng(hook == Hook::gpu ? 11 : 12);
  const Device device = Device::cpu();
  CommandQueue queue = device.new_command_queue();
  ConvolutionDescriptor descriptor(3, 3, 2, 3);
  const std::int64_t n = 2, h = 6, w = 6;
  const apitest::Pads pads = apitest::expected_pads(Padding(), h, w, 3, 3, 1, 1);
  const ConvProblem problem = apitest::layer_problem(descriptor, n, h, w, pads);

  // The target is what a "teacher" layer computes; the student starts elsewhere.
  const apitest::Layer teacher = apitest::make_layer(descriptor, rng);
  std::vector<float> x_values;
  const Image x = apitest::random_image(device, n, h, w, 2, DataType::float32, rng, &x_values);
  const std::vector<float> target =
      apitest::ref_fprop(problem, x_values, teacher.weights, teacher.biases);
  std::vector<float> weights = apitest::random_values(rng, descriptor.weight_count());
  std::vector<float> biases = apitest::random_values(rng, 3);
  auto source = std::make_shared<TrainedSource>(device, descriptor, weights, biases);
  Convolution convolution(device, source);
  ConvolutionGradient gradient(device, source);

  std::vector<double> momentum_w(weights.size(), 0.0), momentum_b(biases.size(), 0.0);
  std::vector<float> previous_weights, previous_biases;
  std::vector<double> losses;
  const int steps = 40;
  for (int step = 0; step < steps; ++step) {
    // Forward: must use the weights of the last update.
    ConvolutionGradientState state;
    Image y;
    CommandBuffer forward = queue.command_buffer();
    y = convolution.encode(forward, x, state);
    forward.commit();
    forward.wait();
    const std::vector<float> y_values = y.read();
    ASSERT_TRUE(
        apitest::close(y_values, apitest::ref_fprop(problem, x_values, weights, biases), 1e-5))
        << "forward at step " << step;
    if (step > 0) {
      EXPECT_GT(
          test::relative_error(
              y_values, apitest::ref_fprop(problem, x_values, previous_weights, previous_biases)),
          1e-6)
          << "the update changed nothing the forward pass could see at step " << step;
    }

    // Loss 0.5 * sum (y - t)^2, so dL/dy = y - t.
    double loss = 0.0;
    std::vector<float> dy(y_values.size());
    for (std::size_t i = 0; i < dy.size(); ++i) {
      dy[i] = y_values[i] - target[i];
      loss += 0.5 * static_cast<double>(dy[i]) * dy[i];
    }
    losses.push_back(loss);
    Image incoming(device, y.descriptor());
    incoming.write(dy);

    // Backward and update on one command buffer.
    CommandBuffer backward = queue.command_buffer();
    Image dx = gradient.encode(backward, incoming, x, state);
    if (hook == Hook::gpu) {
      const std::optional<ConvolutionWeightsAndBiasesState> updated =
          source->update(backward, state, source->state());
      ASSERT_TRUE(updated.has_value());
      convolution.reload_weights_and_biases(backward, *updated);
      gradient.reload_weights_and_biases(backward, *updated);
      backward.commit();
      backward.wait();
    } else {
      const ConvolutionWeightsAndBiasesState used = convolution.export_weights_and_biases(backward);
      backward.commit();
      backward.wait();
      ASSERT_TRUE(source->update(state, used));
      convolution.reload_weights_and_biases_from_data_source();
      gradient.reload_weights_and_biases_from_data_source();
    }
    // The gradient kernel used the same (current) weights as the forward pass.
    ASSERT_TRUE(apitest::close(dx.read(), apitest::ref_dgrad(problem, dy, weights), 1e-5))
        << "data gradient at step " << step;

    // The update: SGD with momentum on the reference gradients, in double.
    const apitest::WeightGradients g = apitest::ref_wgrad(problem, x_values, dy);
    std::vector<double> expected_w(weights.size()), expected_b(biases.size());
    for (std::size_t i = 0; i < weights.size(); ++i) {
      momentum_w[i] = kMomentum * momentum_w[i] + static_cast<double>(kRate) * g.dw[i];
      expected_w[i] = weights[i] - momentum_w[i];
    }
    for (std::size_t i = 0; i < biases.size(); ++i) {
      momentum_b[i] = kMomentum * momentum_b[i] + static_cast<double>(kRate) * g.db[i];
      expected_b[i] = biases[i] - momentum_b[i];
    }
    const std::vector<float> new_weights = values(source->state().weights());
    const std::vector<float> new_biases = values(source->state().biases());
    for (std::size_t i = 0; i < weights.size(); ++i) {
      ASSERT_NEAR(new_weights[i], expected_w[i], 1e-5 * (1 + std::abs(expected_w[i])))
          << "weight " << i << " at step " << step;
    }
    for (std::size_t i = 0; i < biases.size(); ++i) {
      ASSERT_NEAR(new_biases[i], expected_b[i], 1e-5 * (1 + std::abs(expected_b[i])))
          << "bias " << i << " at step " << step;
    }
    // Both kernels now hold exactly the state's values.
    EXPECT_EQ(apitest::bits_of(convolution.kernel_weights()->weights),
              apitest::bits_of(new_weights));
    EXPECT_EQ(apitest::bits_of(gradient.kernel_weights()->weights), apitest::bits_of(new_weights));
    EXPECT_EQ(apitest::bits_of(gradient.kernel_weights()->biases), apitest::bits_of(new_biases));
    previous_weights = weights;
    previous_biases = biases;
    weights = new_weights;
    biases = new_biases;
  }
  EXPECT_EQ(hook == Hook::gpu ? source->gpu_updates : source->cpu_updates, steps);
  EXPECT_LT(losses.back(), 0.25 * losses.front())
      << "loss " << losses.front() << " -> " << losses.back();
}

TEST(TrainingHooks, GpuHookAndReloadFromStateReachBothKernels) { train(Hook::gpu); }

TEST(TrainingHooks, CpuHookAndReloadFromDataSourceReachBothKernels) { train(Hook::cpu); }

}  // namespace
}  // namespace convgrad
