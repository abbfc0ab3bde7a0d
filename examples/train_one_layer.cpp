// SPDX-License-Identifier: Apache-2.0
// Training one convolution layer the MPS way (mps-reference.md §9.3-9.4): the data source owns
// its weights and an Adam optimizer, its GPU-style update hook encodes the update on the command
// buffer, and both kernels reload the new weights from the returned state. The task is a
// synthetic regression: learn what a hidden "teacher" layer computes. Exits non-zero unless the
// loss falls to a tenth.
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "convgrad/convgrad.hpp"

namespace {
using namespace convgrad;

std::vector<float> uniform(std::mt19937& rng, std::int64_t count, float range) {
  std::uniform_real_distribution<float> dist(-range, range);
  std::vector<float> values(static_cast<std::size_t>(count));
  for (float& v : values) v = dist(rng);
  return values;
}

// As Apple's sample's ConvDataSource: weights, biases, Adam's moments and the optimizer itself.
class AdamDataSource : public ConvolutionDataSource {
 public:
  AdamDataSource(const Device& device, const ConvolutionDescriptor& descriptor,
                 const std::vector<float>& weights, const std::vector<float>& biases)
      : descriptor_(descriptor),
        state_(device, descriptor, weights, biases),
        momentum_(device, descriptor),
        velocity_(device, descriptor),
        adam_(device, /*learning_rate=*/0.01f) {}

  DataType data_type() const override { return DataType::float32; }
  const ConvolutionDescriptor& descriptor() const override { return descriptor_; }
  const void* weights() override { return state_.weights().data(); }
  const float* bias_terms() override { return state_.biases().data(); }
  bool load() override { return true; }
  void purge() override {}
  std::string label() const override { return "conv"; }

  std::optional<ConvolutionWeightsAndBiasesState> update(
      CommandBuffer& command_buffer, const ConvolutionGradientState& gradient_state,
      const ConvolutionWeightsAndBiasesState& source_state) override {
    adam_.encode(command_buffer, gradient_state, source_state, momentum_, velocity_, state_);
    return state_;
  }
  std::int64_t time_step() const { return adam_.time_step(); }

 private:
  ConvolutionDescriptor descriptor_;
  ConvolutionWeightsAndBiasesState state_;
  OptimizerStateVectors momentum_, velocity_;
  Adam adam_;
};

}  // namespace

int main() {
  const Device device = Device::cpu();
  CommandQueue queue = device.new_command_queue();
  std::mt19937 rng(7);

  // 3x3, 4 -> 8 channels, same padding; batches of 8 images of 12x12.
  const ConvolutionDescriptor descriptor(3, 3, 4, 8);
  const std::int64_t batch = 8, size = 12;
  auto teacher_source = std::make_shared<MemoryConvolutionDataSource>(
      descriptor, uniform(rng, descriptor.weight_count(), 0.5f), uniform(rng, 8, 0.5f));
  Convolution teacher(device, teacher_source);
  auto source = std::make_shared<AdamDataSource>(device, descriptor,
                                                 uniform(rng, descriptor.weight_count(), 0.2f),
                                                 std::vector<float>(8, 0.1f));
  Convolution convolution(device, source);
  ConvolutionGradient gradient(device, source);

  const ImageDescriptor input{size, size, 4, batch};
  const double scale = 1.0 / static_cast<double>(batch);  // MPS's sample: loss weight 1/batch
  double first = 0.0, last = 0.0;
  const int steps = 150;
  for (int step = 0; step < steps; ++step) {
    Image x(device, input);
    x.write(uniform(rng, batch * size * size * 4, 1.0f));
    CommandBuffer forward = queue.command_buffer();
    const Image target = teacher.encode(forward, x);
    ConvolutionGradientState state;  // a new state per batch
    const Image y = convolution.encode(forward, x, state);
    forward.commit();
    forward.wait();

    // L = 0.5 / batch * sum (y - t)^2, so dL/dy = (y - t) / batch.
    const std::vector<float> y_values = y.read(), t_values = target.read();
    std::vector<float> dy(y_values.size());
    double loss = 0.0;
    for (std::size_t i = 0; i < dy.size(); ++i) {
      const double diff = static_cast<double>(y_values[i]) - t_values[i];
      loss += 0.5 * scale * diff * diff;
      dy[i] = static_cast<float>(scale * diff);
    }
    Image incoming(device, y.descriptor());
    incoming.write(dy);

    CommandBuffer backward = queue.command_buffer();
    gradient.encode(backward, incoming, x, state);
    const std::optional<ConvolutionWeightsAndBiasesState> updated =
        source->update(backward, state, convolution.export_weights_and_biases(backward));
    if (updated) {
      convolution.reload_weights_and_biases(backward, *updated);
      gradient.reload_weights_and_biases(backward, *updated);
    }
    backward.commit();
    backward.wait();

    if (step == 0) first = loss;
    last = loss;
    if (step % 25 == 0 || step == steps - 1) {
      std::printf("step %3d  loss %10.4f\n", step, loss);
    }
  }
  std::printf("loss %.4f -> %.4f after %lld Adam steps\n", first, last,
              static_cast<long long>(source->time_step()));
  return last < 0.1 * first ? 0 : 1;
}
