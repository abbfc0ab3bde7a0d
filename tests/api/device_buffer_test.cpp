// SPDX-License-Identifier: Apache-2.0
// DeviceBuffer on the CPU: the same calls as on a GPU, host memory behind them, so code that
// places tensors with it runs on either device. The CUDA side is in tests/gpu/.
#include "convgrad/device_buffer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "convgrad/errors.hpp"
#include "convgrad/functional.hpp"

namespace convgrad {
namespace {

TEST(DeviceBuffer, HostBufferCopiesAndFills) {
  DeviceBuffer buffer(Device::cpu(), 64);
  EXPECT_EQ(buffer.kind(), DeviceKind::cpu);
  EXPECT_EQ(buffer.size(), 64u);
  std::vector<unsigned char> in(64), out(64, 0);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<unsigned char>(3 * i + 1);
  buffer.copy_from_host(in.data(), in.size());
  buffer.copy_to_host(out.data(), out.size());
  EXPECT_EQ(in, out);
  EXPECT_THROW(buffer.copy_from_host(in.data(), 1, 64), InvalidArgument);
  EXPECT_THROW(buffer.copy_to_host(out.data(), 65), InvalidArgument);
  buffer.fill_bytes(0xFF);
  float value = 0.0f;
  buffer.copy_to_host(&value, sizeof value, 8);
  EXPECT_TRUE(std::isnan(value));
}

TEST(DeviceBuffer, ViewsCarryTheDeviceAndExtent) {
  DeviceBuffer buffer(Device::cpu(), 100 * sizeof(float));
  const TensorView dense = buffer.dense_view(DataType::float32, 2, 3, 4, 2);
  EXPECT_EQ(dense.data, buffer.data());
  EXPECT_EQ(dense.strides, (std::array<std::int64_t, 4>{24, 8, 2, 1}));
  EXPECT_EQ(dense.extent, 100);
  EXPECT_EQ(dense.device, DeviceKind::cpu);
  const TensorView offset = buffer.view(DataType::float16, {1, 1, 1, 4}, {4, 4, 4, 1}, 10);
  EXPECT_EQ(offset.extent, 190);
  EXPECT_EQ(static_cast<std::byte*>(offset.data) - static_cast<std::byte*>(buffer.data()), 20);
  EXPECT_THROW(buffer.view(DataType::float32, {1, 1, 1, 1}, {1, 1, 1, 1}, 101), InvalidArgument);
}

TEST(DeviceBuffer, MovesOwnership) {
  DeviceBuffer a(Device::cpu(), 16);
  void* data = a.data();
  DeviceBuffer b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the moved-from state
  EXPECT_EQ(b.data(), data);
  DeviceBuffer c(Device::cpu(), 8);
  c = std::move(b);
  EXPECT_EQ(c.data(), data);
  EXPECT_EQ(c.size(), 16u);
}

TEST(DeviceBuffer, RunsTheCpuBackendOnItsViews) {
  ConvProblem p = make_problem(1, 3, 3, 1, 1, 1, 1);
  p.with_bias = false;
  DeviceBuffer x(Device::cpu(), 9 * sizeof(float)), w(Device::cpu(), sizeof(float)),
      y(Device::cpu(), 9 * sizeof(float));
  std::vector<float> values{1, 2, 3, 4, 5, 6, 7, 8, 9};
  const float two = 2.0f;
  x.copy_from_host(values.data(), 9 * sizeof(float));
  w.copy_from_host(&two, sizeof two);
  fprop(p, x.dense_view(DataType::float32, 1, 3, 3, 1), w.dense_view(DataType::float32, 1, 1, 1, 1),
        {}, y.dense_view(DataType::float32, 1, 3, 3, 1));
  std::vector<float> out(9);
  y.copy_to_host(out.data(), 9 * sizeof(float));
  for (std::size_t i = 0; i < 9; ++i) EXPECT_EQ(out[i], 2 * values[i]);
}

}  // namespace
}  // namespace convgrad
