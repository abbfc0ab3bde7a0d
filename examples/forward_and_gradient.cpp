// SPDX-License-Identifier: Apache-2.0
// The MPS training step in C++: forward convolution, then the gradient kernel, which writes
// dL/dx and adds dL/dW and dL/db into the state the forward pass produced.
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

#include "convgrad/convgrad.hpp"

int main() {
  using namespace convgrad;
  const Device device = Device::cpu();
  CommandQueue queue = device.new_command_queue();

  // A 3x3 convolution from 8 to 16 channels, stride 2 (MPS default padding: same, centred).
  ConvolutionDescriptor descriptor(/*kernel_width=*/3, /*kernel_height=*/3,
                                   /*input_feature_channels=*/8, /*output_feature_channels=*/16);
  descriptor.set_stride_in_pixels_x(2);
  descriptor.set_stride_in_pixels_y(2);
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> weights(static_cast<std::size_t>(descriptor.weight_count()));
  for (float& v : weights) v = uniform(rng);
  std::vector<float> biases(16, 0.1f);
  auto data_source = std::make_shared<MemoryConvolutionDataSource>(descriptor, weights, biases,
                                                                   "conv1");

  Convolution convolution(device, data_source);
  ConvolutionGradient gradient(device, data_source);  // the same data source, as MPS asks

  Image source(device, ImageDescriptor{/*width=*/15, /*height=*/15, /*feature_channels=*/8,
                                       /*number_of_images=*/2});
  std::vector<float> pixels(static_cast<std::size_t>(2 * 15 * 15 * 8));
  for (float& v : pixels) v = uniform(rng);
  source.write(pixels);

  CommandBuffer forward = queue.command_buffer();
  ConvolutionGradientState state;
  Image result = convolution.encode(forward, source, state);
  forward.commit();
  forward.wait();
  std::printf("forward: %lldx%lld -> %lldx%lld, %lld channels\n",
              static_cast<long long>(source.height()), static_cast<long long>(source.width()),
              static_cast<long long>(result.height()), static_cast<long long>(result.width()),
              static_cast<long long>(result.feature_channels()));

  // Loss L = sum(y), so dL/dy is all ones.
  Image incoming(device, result.descriptor());
  incoming.write(std::vector<float>(static_cast<std::size_t>(2 * result.height() * result.width() * 16), 1.0f));
  CommandBuffer backward = queue.command_buffer();
  Image source_gradient = gradient.encode(backward, incoming, source, state);
  backward.commit();
  backward.wait();

  // With dL/dy = 1, dL/db[k] counts the output pixels of both images.
  const double expected_db = 2.0 * static_cast<double>(result.height() * result.width());
  const bool ok = std::abs(state.gradient_for_biases()[0] - expected_db) < 1e-3;
  std::printf("dL/dx: %lldx%lldx%lld; dL/db[0] = %.1f (expected %.1f)\n",
              static_cast<long long>(source_gradient.height()),
              static_cast<long long>(source_gradient.width()),
              static_cast<long long>(source_gradient.feature_channels()),
              static_cast<double>(state.gradient_for_biases()[0]), expected_db);
  return ok ? 0 : 1;
}
