// SPDX-License-Identifier: Apache-2.0
// Built against an installed convgrad: one gradient step through the public headers only.
#include <cstdio>
#include <memory>
#include <vector>

#include "convgrad/convgrad.hpp"

int main() {
  using namespace convgrad;
  const Device device = Device::cpu();
  CommandQueue queue = device.new_command_queue();
  ConvolutionDescriptor descriptor(3, 3, 2, 4);
  auto source = std::make_shared<MemoryConvolutionDataSource>(
      descriptor, std::vector<float>(static_cast<std::size_t>(descriptor.weight_count()), 0.5f),
      std::vector<float>(4, 0.0f));
  Convolution convolution(device, source);
  ConvolutionGradient gradient(device, source);
  Image x(device, ImageDescriptor{5, 5, 2, 1});
  x.write(std::vector<float>(50, 1.0f));
  CommandBuffer cb = queue.command_buffer();
  ConvolutionGradientState state;
  Image y = convolution.encode(cb, x, state);
  Image dy(device, y.descriptor());
  dy.write(std::vector<float>(100, 1.0f));
  Image dx = gradient.encode(cb, dy, x, state);
  cb.commit();
  cb.wait();
  // Centre pixel of a 5x5 SAME 3x3 convolution: 9 taps x 4 outputs x 0.5.
  const float centre = dx.read()[(2 * 5 + 2) * 2];
  std::printf("installed convgrad: dx centre = %.1f (expected 18.0)\n", centre);
  return centre == 18.0f ? 0 : 1;
}
