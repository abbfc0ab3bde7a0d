// SPDX-License-Identifier: Apache-2.0
// FullyConnected and FullyConnectedGradient (MPSCNNFullyConnected, ...Gradient): checked against
// the matrix form written out here (y = W x + b over the NHWC-flattened source), against the
// `ref` backend, and against finite differences of a loss.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "api/api_support.hpp"

namespace convgrad {
namespace {

constexpr std::int64_t kN = 3, kH = 4, kW = 3, kIn = 5, kOut = 6;

// The matrix form: W is `kOut x (kH * kW * kIn)` in OHWI order, the source flattened NHWC.
struct Dense {
  std::vector<float> y, dx, dw, db;
};

Dense dense(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
            const std::vector<float>& dy) {
  const std::int64_t k = kH * kW * kIn;
  Dense r;
  r.y.assign(kN * kOut, 0.0f);
  r.dx.assign(kN * k, 0.0f);
  r.dw.assign(kOut * k, 0.0f);
  r.db.assign(kOut, 0.0f);
  for (std::int64_t n = 0; n < kN; ++n) {
    for (std::int64_t o = 0; o < kOut; ++o) {
      double acc = b[o];
      for (std::int64_t i = 0; i < k; ++i) acc += double{w[o * k + i]} * x[n * k + i];
      r.y[n * kOut + o] = static_cast<float>(acc);
      r.db[o] += dy[n * kOut + o];
      for (std::int64_t i = 0; i < k; ++i) {
        r.dx[n * k + i] += dy[n * kOut + o] * w[o * k + i];
        r.dw[o * k + i] += dy[n * kOut + o] * x[n * k + i];
      }
    }
  }
  return r;
}

struct Fc {
  explicit Fc(const Device& d = Device::cpu(), std::uint64_t salt = 3)
      : device(d), rng(test::make_rng(salt)), descriptor(kW, kH, kIn, kOut) {
    layer = apitest::make_layer(descriptor, rng);
    forward = std::make_unique<FullyConnected>(device, layer.source);
    gradient = std::make_unique<FullyConnectedGradient>(device, layer.source);
    x = apitest::random_image(device, kN, kH, kW, kIn, DataType::float32, rng, &x_values);
  }
  template <typename F>
  void run(F&& f) {
    CommandBuffer cb = queue.command_buffer();
    f(cb);
    cb.commit();
    cb.wait();
  }
  Device device;
  CommandQueue queue = device.new_command_queue();
  std::mt19937_64 rng;
  ConvolutionDescriptor descriptor;
  apitest::Layer layer;
  std::unique_ptr<FullyConnected> forward;
  std::unique_ptr<FullyConnectedGradient> gradient;
  Image x;
  std::vector<float> x_values;
};

TEST(FullyConnected, ForwardAndGradientMatchTheMatrixForm) {
  Fc fc;
  EXPECT_EQ(fc.forward->offset(), (Offset{kW / 2, kH / 2, 0}));
  ConvolutionGradientState state;
  Image y;
  fc.run([&](CommandBuffer& cb) { y = fc.forward->encode(cb, fc.x, state); });
  ASSERT_EQ(y.width(), 1);
  ASSERT_EQ(y.height(), 1);
  ASSERT_EQ(y.feature_channels(), kOut);
  ASSERT_EQ(y.number_of_images(), kN);
  std::vector<float> dy_values;
  const Image dy =
      apitest::random_image(fc.device, kN, 1, 1, kOut, DataType::float32, fc.rng, &dy_values);
  Image dx;
  fc.run([&](CommandBuffer& cb) { dx = fc.gradient->encode(cb, dy, fc.x, state); });
  const Dense want = dense(fc.x_values, fc.layer.weights, fc.layer.biases, dy_values);
  EXPECT_TRUE(apitest::close(y.read(), want.y, 1e-5));
  EXPECT_TRUE(apitest::close(dx.read(), want.dx, 1e-5));
  EXPECT_TRUE(apitest::close(
      {state.gradient_for_weights().begin(), state.gradient_for_weights().end()}, want.dw, 1e-5));
  EXPECT_TRUE(apitest::close(
      {state.gradient_for_biases().begin(), state.gradient_for_biases().end()}, want.db, 1e-5));

  // The same numbers as the convolution reference with valid padding.
  const ConvProblem p = apitest::layer_problem(fc.descriptor, kN, kH, kW, {});
  EXPECT_EQ(p.p, 1);
  EXPECT_TRUE(apitest::close(
      y.read(), apitest::ref_fprop(p, fc.x_values, fc.layer.weights, fc.layer.biases), 1e-5));
  EXPECT_TRUE(apitest::close(dx.read(), apitest::ref_dgrad(p, dy_values, fc.layer.weights), 1e-5));
}

TEST(FullyConnected, BatchOfImagesSharesOneState) {
  Fc fc;
  ImageBatch sources, gradients;
  std::vector<std::vector<float>> xs, dys;
  for (int i = 0; i < 3; ++i) {
    xs.emplace_back();
    dys.emplace_back();
    sources.push_back(
        apitest::random_image(fc.device, 1, kH, kW, kIn, DataType::float32, fc.rng, &xs.back()));
    gradients.push_back(
        apitest::random_image(fc.device, 1, 1, 1, kOut, DataType::float32, fc.rng, &dys.back()));
  }
  ConvolutionGradientState state;
  ImageBatch ys, dxs;
  fc.run([&](CommandBuffer& cb) {
    ys = fc.forward->encode_batch(cb, sources, state);
    dxs = fc.gradient->encode_batch(cb, gradients, sources, state);
  });
  const Dense want =
      dense(apitest::concat(xs), fc.layer.weights, fc.layer.biases, apitest::concat(dys));
  std::vector<std::vector<float>> got_y, got_dx;
  for (int i = 0; i < 3; ++i) {
    got_y.push_back(ys[i].read());
    got_dx.push_back(dxs[i].read());
  }
  EXPECT_TRUE(apitest::close(apitest::concat(got_y), want.y, 1e-5));
  EXPECT_TRUE(apitest::close(apitest::concat(got_dx), want.dx, 1e-5));
  EXPECT_TRUE(apitest::close(
      {state.gradient_for_weights().begin(), state.gradient_for_weights().end()}, want.dw, 1e-5));
}

TEST(FullyConnected, GradientsMatchFiniteDifferences) {
  // L = 0.5 * sum (y - t)^2 is quadratic in every single input, so central differences are exact
  // up to rounding; the reference device accumulates in double.
  Fc fc(Device::reference(), 5);
  std::vector<float> target = apitest::random_values(fc.rng, kN * kOut);
  const auto loss = [&](const Image& x) {
    Image y;
    fc.run([&](CommandBuffer& cb) { y = fc.forward->encode(cb, x); });
    double l = 0.0;
    const std::vector<float> v = y.read();
    for (std::size_t i = 0; i < v.size(); ++i) l += 0.5 * (v[i] - target[i]) * (v[i] - target[i]);
    return l;
  };
  ConvolutionGradientState state;
  Image y, dx;
  fc.run([&](CommandBuffer& cb) { y = fc.forward->encode(cb, fc.x, state); });
  std::vector<float> dy = y.read();
  for (std::size_t i = 0; i < dy.size(); ++i) dy[i] -= target[i];
  Image incoming(fc.device, y.descriptor());
  incoming.write(dy);
  fc.run([&](CommandBuffer& cb) { dx = fc.gradient->encode(cb, incoming, fc.x, state); });
  const std::vector<float> dx_values = dx.read();
  const double eps = 1e-2;
  for (std::size_t i = 0; i < fc.x_values.size(); i += 7) {
    std::vector<float> plus = fc.x_values, minus = fc.x_values;
    plus[i] += static_cast<float>(eps);
    minus[i] -= static_cast<float>(eps);
    Image xp(fc.device, fc.x.descriptor()), xm(fc.device, fc.x.descriptor());
    xp.write(plus);
    xm.write(minus);
    const double fd = (loss(xp) - loss(xm)) / (double{plus[i]} - minus[i]);
    EXPECT_NEAR(dx_values[i], fd, 1e-3 * (1 + std::abs(fd))) << "dL/dx[" << i << "]";
  }
  const std::span<const float> dw = state.gradient_for_weights();
  for (std::size_t i = 0; i < fc.layer.weights.size(); i += 11) {
    double sides[2];
    for (int side = 0; side < 2; ++side) {
      std::vector<float> w = fc.layer.weights;
      w[i] += static_cast<float>(side == 0 ? eps : -eps);
      fc.layer.source->set_weights_and_biases(w, fc.layer.biases);
      fc.forward->reload_weights_and_biases_from_data_source();
      sides[side] = loss(fc.x);
    }
    const double fd = (sides[0] - sides[1]) / (2 * eps);
    EXPECT_NEAR(dw[i], fd, 1e-3 * (1 + std::abs(fd))) << "dL/dW[" << i << "]";
  }
}

template <typename F>
void expect_invalid(F&& f, const std::string& parameter) {
  try {
    f();
    ADD_FAILURE() << "no InvalidArgument; expected one naming " << parameter;
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.parameter(), parameter) << e.what();
  }
}

TEST(FullyConnectedErrors, SizesAndDescriptorRules) {
  Fc fc;
  CommandBuffer cb = fc.queue.command_buffer();
  const Image wide(fc.device, ImageDescriptor{kW + 1, kH, kIn, 1});
  const Image tall(fc.device, ImageDescriptor{kW, kH + 2, kIn, 1});
  expect_invalid([&] { fc.forward->encode(cb, wide); }, "source_image.width");
  expect_invalid([&] { fc.forward->encode(cb, tall); }, "source_image.height");
  const Image two(fc.device, ImageDescriptor{2, 1, kOut, kN});
  expect_invalid([&] { fc.forward->encode(cb, fc.x, two); }, "destination_image.width");
  ConvolutionGradientState state;
  expect_invalid([&] { fc.forward->encode_batch(cb, {fc.x, wide}, state); }, "sources[1].width");
  EXPECT_FALSE(state.valid());

  // A convolution of the same descriptor over a larger image is not a fully connected pass.
  Convolution plain(fc.device, fc.layer.source);
  plain.set_padding(Padding::valid_only());
  const Image big(fc.device, ImageDescriptor{kW + 2, kH + 2, kIn, 1});
  Image y = plain.encode(cb, big, state);
  const Image dy(fc.device, y.descriptor());
  expect_invalid([&] { fc.gradient->encode(cb, dy, big, state); }, "gradient_state");
  cb.commit();
  cb.wait();

  std::mt19937_64 rng = test::make_rng(9);
  ConvolutionDescriptor strided(kW, kH, kIn, kOut);
  strided.set_stride_in_pixels_x(2);
  expect_invalid([&] { FullyConnected(fc.device, apitest::make_layer(strided, rng).source); },
                 "descriptor.stride_in_pixels_x");
  ConvolutionDescriptor grouped(kW, kH, 4, 4);
  grouped.set_groups(2);
  expect_invalid(
      [&] { FullyConnectedGradient(fc.device, apitest::make_layer(grouped, rng).source); },
      "descriptor.groups");
  DepthwiseConvolutionDescriptor depthwise(kW, kH, 4, 4);
  expect_invalid([&] { FullyConnected(fc.device, apitest::make_layer(depthwise, rng).source); },
                 "descriptor.kind");
}

}  // namespace
}  // namespace convgrad
