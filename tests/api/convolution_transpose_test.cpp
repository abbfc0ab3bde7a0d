// SPDX-License-Identifier: Apache-2.0
// ConvolutionTranspose and ConvolutionTransposeGradient (MPSCNNConvolutionTranspose, ...Gradient)
// against the definition of mps-reference.md §8.2 written out here as plain loops: insert
// stride - 1 zeros between the source pixels, then convolve with the weights as given, centred at
// `offset * stride + kernel_offset`; the gradients are that loop's adjoint and finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "api/api_support.hpp"

namespace convgrad {
namespace {

struct Shape {
  std::int64_t n, h, w;  // the transpose's source
  std::int64_t ho, wo;   // its result
  std::int64_t ty, tx;   // centre tap of the first result pixel in the zero-inserted source
};

// Calls visit(result index, weight index, source index) for every tap that lands on a source
// pixel (zeros inserted between them contribute nothing).
template <typename Visit>
void for_each_tap(const ConvolutionDescriptor& d, const Shape& s, Visit&& visit) {
  const std::int64_t in = d.input_feature_channels(), out = d.output_feature_channels();
  const std::int64_t groups = d.groups(), in_g = in / groups, out_g = out / groups;
  const std::int64_t sy = d.stride_in_pixels_y(), sx = d.stride_in_pixels_x();
  const std::int64_t zh = (s.h - 1) * sy + 1, zw = (s.w - 1) * sx + 1;
  for (std::int64_t n = 0; n < s.n; ++n)
    for (std::int64_t j = 0; j < s.ho; ++j)
      for (std::int64_t i = 0; i < s.wo; ++i)
        for (std::int64_t o = 0; o < out; ++o)
          for (std::int64_t q = 0; q < d.kernel_height(); ++q)
            for (std::int64_t p = 0; p < d.kernel_width(); ++p) {
              const std::int64_t zy =
                  s.ty + j - (d.dilated_kernel_height() >> 1) + d.dilation_rate_y() * q;
              const std::int64_t zx =
                  s.tx + i - (d.dilated_kernel_width() >> 1) + d.dilation_rate_x() * p;
              if (zy < 0 || zy >= zh || zx < 0 || zx >= zw || zy % sy != 0 || zx % sx != 0) {
                continue;
              }
              for (std::int64_t c = 0; c < in_g; ++c) {
                const std::int64_t ci = (o / out_g) * in_g + c;
                visit(((n * s.ho + j) * s.wo + i) * out + o,
                      ((o * d.kernel_height() + q) * d.kernel_width() + p) * in_g + c,
                      ((n * s.h + zy / sy) * s.w + zx / sx) * in + ci);
              }
            }
}

std::vector<float> forward_loop(const ConvolutionDescriptor& d, const Shape& s,
                                const std::vector<float>& x, const std::vector<float>& w,
                                const std::vector<float>& b) {
  const std::int64_t out = d.output_feature_channels();
  std::vector<double> y(static_cast<std::size_t>(s.n * s.ho * s.wo * out), 0.0);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = b.empty() ? 0.0 : b[i % out];
  for_each_tap(d, s, [&](std::int64_t yi, std::int64_t wi, std::int64_t xi) {
    y[yi] += double{w[wi]} * x[xi];
  });
  return {y.begin(), y.end()};
}

struct Adjoint {
  std::vector<float> dx, dw, db;
};

Adjoint adjoint_loop(const ConvolutionDescriptor& d, const Shape& s, const std::vector<float>& x,
                     const std::vector<float>& w, const std::vector<float>& dy) {
  std::vector<double> dx(x.size(), 0.0), dw(w.size(), 0.0), db(d.output_feature_channels(), 0.0);
  for_each_tap(d, s, [&](std::int64_t yi, std::int64_t wi, std::int64_t xi) {
    dx[xi] += double{dy[yi]} * w[wi];
    dw[wi] += double{dy[yi]} * x[xi];
  });
  for (std::size_t i = 0; i < dy.size(); ++i) db[i % db.size()] += dy[i];
  return {{dx.begin(), dx.end()}, {dw.begin(), dw.end()}, {db.begin(), db.end()}};
}

ConvolutionDescriptor transpose_descriptor(std::int64_t k, std::int64_t in, std::int64_t out,
                                           std::int64_t stride, std::int64_t dilation = 1,
                                           std::int64_t groups = 1, bool bias = true) {
  ConvolutionDescriptor d(k, k, in, out);
  d.set_stride_in_pixels_x(stride);
  d.set_stride_in_pixels_y(stride);
  d.set_dilation_rate_x(dilation);
  d.set_dilation_rate_y(dilation);
  d.set_groups(groups);
  d.set_bias_enabled(bias);
  return d;
}

struct Case {
  std::string name;
  ConvolutionDescriptor descriptor;
  Padding padding;
  std::int64_t n, h, w;
};

std::vector<Case> cases() {
  return {
      {"k3_s2_same", transpose_descriptor(3, 3, 2, 2), Padding(), 2, 4, 5},
      {"k4_s2_same_even", transpose_descriptor(4, 2, 3, 2), Padding(), 1, 3, 4},
      {"k3_s1_valid", transpose_descriptor(3, 2, 2, 1), Padding::valid_only(), 2, 4, 4},
      {"k3_s2_full", transpose_descriptor(3, 2, 3, 2), Padding::full(), 1, 4, 3},
      {"k2_s3_valid", transpose_descriptor(2, 3, 2, 3), Padding::valid_only(), 1, 3, 3},
      {"k3_s2_dilation2", transpose_descriptor(3, 2, 2, 2, 2), Padding(), 1, 4, 4},
      {"k3_s2_groups2_nobias", transpose_descriptor(3, 4, 6, 2, 1, 2, false), Padding(), 2, 3, 4},
      {"k3_s2_tf_same", transpose_descriptor(3, 2, 2, 2), Padding::tensorflow_same(), 1, 4, 4},
  };
}

// The result size and placement a padding policy gives, restated: the smallest source of the
// reversed convolution (style flipped: valid <-> full) and that convolution's data-gradient
// kernel offset, -o + (kd even), from apitest's own MPS padding arithmetic.
Shape policy_shape(const ConvolutionDescriptor& d, const Padding& padding, std::int64_t n,
                   std::int64_t h, std::int64_t w) {
  const auto bits = static_cast<std::uint32_t>(padding.method());
  const int style = (bits & 48u) == 0 ? -1 : (bits & 48u) == 16 ? 0 : 1;
  const std::int64_t kdh = d.dilated_kernel_height(), kdw = d.dilated_kernel_width();
  Shape s{n,
          h,
          w,
          (h - 1) * d.stride_in_pixels_y() + 1 - style * (kdh - 1),
          (w - 1) * d.stride_in_pixels_x() + 1 - style * (kdw - 1),
          0,
          0};
  const apitest::Pads pads = apitest::expected_pads(padding, s.ho, s.wo, kdh, kdw,
                                                    d.stride_in_pixels_y(), d.stride_in_pixels_x());
  s.ty = -((kdh >> 1) - pads.top) + ((kdh & 1) == 0 ? 1 : 0);
  s.tx = -((kdw >> 1) - pads.left) + ((kdw & 1) == 0 ? 1 : 0);
  return s;
}

class Transpose : public ::testing::TestWithParam<Case> {
 protected:
  template <typename F>
  void run(F&& f) {
    CommandBuffer cb = queue.command_buffer();
    f(cb);
    cb.commit();
    cb.wait();
  }
  Device device = Device::cpu();
  CommandQueue queue = device.new_command_queue();
};

TEST_P(Transpose, ForwardAndGradientsMatchTheDefinition) {
  const Case& c = GetParam();
  std::mt19937_64 rng = test::make_rng(21);
  const ConvolutionDescriptor& d = c.descriptor;
  const apitest::Layer layer = apitest::make_layer(d, rng);
  ConvolutionTranspose transpose(device, layer.source);
  ConvolutionTransposeGradient gradient(device, layer.source);
  transpose.set_padding(c.padding);
  std::vector<float> x_values;
  const Image x = apitest::random_image(device, c.n, c.h, c.w, d.input_feature_channels(),
                                        DataType::float32, rng, &x_values);
  const Shape s = policy_shape(d, c.padding, c.n, c.h, c.w);
  ConvolutionTransposeGradientState state;
  Image y;
  run([&](CommandBuffer& cb) { y = transpose.encode(cb, x, state); });
  ASSERT_EQ(y.height(), s.ho);
  ASSERT_EQ(y.width(), s.wo);
  EXPECT_EQ(transpose.kernel_offset_y(), s.ty);
  EXPECT_EQ(transpose.kernel_offset_x(), s.tx);
  EXPECT_TRUE(
      apitest::close(y.read(), forward_loop(d, s, x_values, layer.weights, layer.biases), 1e-5));
  ASSERT_TRUE(state.from_transpose());
  EXPECT_EQ(state.source_height(), c.h);
  EXPECT_EQ(state.destination_height(), s.ho);
  EXPECT_EQ(state.convolution_transpose().descriptor(), d);

  std::vector<float> dy_values;
  const Image dy = apitest::random_image(device, c.n, s.ho, s.wo, d.output_feature_channels(),
                                         DataType::float32, rng, &dy_values);
  Image dx;
  run([&](CommandBuffer& cb) { dx = gradient.encode(cb, dy, x, state); });
  const Adjoint want = adjoint_loop(d, s, x_values, layer.weights, dy_values);
  EXPECT_TRUE(apitest::close(dx.read(), want.dx, 1e-5));
  const std::span<const float> dw = state.gradient_for_weights();
  EXPECT_TRUE(apitest::close({dw.begin(), dw.end()}, want.dw, 1e-5));
  if (d.bias_enabled()) {
    const std::span<const float> db = state.gradient_for_biases();
    EXPECT_TRUE(apitest::close({db.begin(), db.end()}, want.db, 1e-5));
  } else {
    EXPECT_TRUE(state.gradient_for_biases().empty());
  }
}

TEST_P(Transpose, EncodeIntoADestinationUsesOffsetAndKernelOffset) {
  const Case& c = GetParam();
  std::mt19937_64 rng = test::make_rng(22);
  const ConvolutionDescriptor& d = c.descriptor;
  const apitest::Layer layer = apitest::make_layer(d, rng);
  ConvolutionTranspose transpose(device, layer.source);
  std::vector<float> x_values;
  const Image x = apitest::random_image(device, c.n, c.h, c.w, d.input_feature_channels(),
                                        DataType::float32, rng, &x_values);
  // One result row and column more than the policy's, shifted by offset * stride - 1.
  Shape s = policy_shape(d, c.padding, c.n, c.h, c.w);
  s.ho += 1;
  s.wo += 1;
  transpose.set_offset({1, 0, 0});
  transpose.set_kernel_offset_x(s.tx - d.stride_in_pixels_x() - 1);
  transpose.set_kernel_offset_y(s.ty - 1);
  s.tx -= 1;
  s.ty -= 1;
  Image y(device, ImageDescriptor{s.wo, s.ho, d.output_feature_channels(), c.n});
  apitest::fill(y, apitest::kNaN);
  run([&](CommandBuffer& cb) { transpose.encode(cb, x, y); });
  EXPECT_TRUE(
      apitest::close(y.read(), forward_loop(d, s, x_values, layer.weights, layer.biases), 1e-5));
}

INSTANTIATE_TEST_SUITE_P(ConvolutionTranspose, Transpose, ::testing::ValuesIn(cases()),
                         [](const auto& test_info) { return test_info.param.name; });

TEST(TransposeRelations, UndoesAConvolutionAsItsDataGradientDoes) {
  // MPS §8.2: the conv data gradient is the transpose with
  // W'[i][kH-1-h][kW-1-w][o] = W[o][h][w][i], placed by the convolution's state.
  const Device device = Device::cpu();
  CommandQueue queue = device.new_command_queue();
  std::mt19937_64 rng = test::make_rng(23);
  ConvolutionDescriptor cd(4, 3, 2, 3);  // kernel 4 wide, 3 high
  cd.set_stride_in_pixels_x(2);
  cd.set_stride_in_pixels_y(2);
  const apitest::Layer conv_layer = apitest::make_layer(cd, rng);
  Convolution convolution(device, conv_layer.source);
  ConvolutionGradient conv_gradient(device, conv_layer.source);
  ConvolutionDescriptor td(4, 3, 3, 2);
  td.set_stride_in_pixels_x(2);
  td.set_stride_in_pixels_y(2);
  td.set_bias_enabled(false);
  std::vector<float> rotated(conv_layer.weights.size());
  for (std::int64_t o = 0; o < 3; ++o)
    for (std::int64_t h = 0; h < 3; ++h)
      for (std::int64_t w = 0; w < 4; ++w)
        for (std::int64_t i = 0; i < 2; ++i)
          rotated[((i * 3 + (2 - h)) * 4 + (3 - w)) * 3 + o] =
              conv_layer.weights[((o * 3 + h) * 4 + w) * 2 + i];
  auto source = std::make_shared<MemoryConvolutionDataSource>(td, rotated);
  ConvolutionTranspose transpose(device, source);
  const Image x = apitest::random_image(device, 2, 7, 9, 2, DataType::float32, rng);
  ConvolutionGradientState state;
  CommandBuffer cb = queue.command_buffer();
  const Image y = convolution.encode(cb, x, state);
  const Image e =
      apitest::random_image(device, 2, y.height(), y.width(), 3, DataType::float32, rng);
  const Image dx = conv_gradient.encode(cb, e, x, state);
  const Image t = transpose.encode(cb, e, state);
  cb.commit();
  cb.wait();
  ASSERT_EQ(t.height(), 7);
  ASSERT_EQ(t.width(), 9);
  EXPECT_TRUE(apitest::close(t.read(), dx.read(), 1e-5));
}

TEST(TransposeRelations, GradientsMatchFiniteDifferences) {
  const Device device = Device::reference();
  CommandQueue queue = device.new_command_queue();
  std::mt19937_64 rng = test::make_rng(24);
  const ConvolutionDescriptor d = transpose_descriptor(3, 2, 3, 2);
  apitest::Layer layer = apitest::make_layer(d, rng);
  ConvolutionTranspose transpose(device, layer.source);
  ConvolutionTransposeGradient gradient(device, layer.source);
  std::vector<float> x_values;
  const Image x = apitest::random_image(device, 1, 3, 4, 2, DataType::float32, rng, &x_values);
  const auto run = [&](auto&& f) {
    CommandBuffer cb = queue.command_buffer();
    f(cb);
    cb.commit();
    cb.wait();
  };
  Image y;
  ConvolutionTransposeGradientState state;
  run([&](CommandBuffer& cb) { y = transpose.encode(cb, x, state); });
  const std::vector<float> target = apitest::random_values(
      rng, y.number_of_images() * y.height() * y.width() * y.feature_channels());
  const auto loss = [&](const Image& source) {
    Image out;
    run([&](CommandBuffer& cb) { out = transpose.encode(cb, source); });
    double l = 0.0;
    const std::vector<float> v = out.read();
    for (std::size_t i = 0; i < v.size(); ++i) l += 0.5 * (v[i] - target[i]) * (v[i] - target[i]);
    return l;
  };
  std::vector<float> dy = y.read();
  for (std::size_t i = 0; i < dy.size(); ++i) dy[i] -= target[i];
  Image incoming(device, y.descriptor());
  incoming.write(dy);
  Image dx;
  run([&](CommandBuffer& cb) { dx = gradient.encode(cb, incoming, x, state); });
  const std::vector<float> dx_values = dx.read();
  const float eps = 1e-2f;
  for (std::size_t i = 0; i < x_values.size(); i += 3) {
    std::vector<float> plus = x_values, minus = x_values;
    plus[i] += eps;
    minus[i] -= eps;
    Image xp(device, x.descriptor()), xm(device, x.descriptor());
    xp.write(plus);
    xm.write(minus);
    const double fd = (loss(xp) - loss(xm)) / (double{plus[i]} - minus[i]);
    EXPECT_NEAR(dx_values[i], fd, 1e-3 * (1 + std::abs(fd))) << "dL/dx[" << i << "]";
  }
  const std::span<const float> dw = state.gradient_for_weights();
  const std::span<const float> db = state.gradient_for_biases();
  for (std::size_t i = 0; i < layer.weights.size() + layer.biases.size(); i += 5) {
    const bool is_bias = i >= layer.weights.size();
    double sides[2];
    for (int side = 0; side < 2; ++side) {
      std::vector<float> w = layer.weights, b = layer.biases;
      float& v = is_bias ? b[i - w.size()] : w[i];
      v += side == 0 ? eps : -eps;
      layer.source->set_weights_and_biases(w, b);
      transpose.reload_weights_and_biases_from_data_source();
      sides[side] = loss(x);
    }
    const double fd = (sides[0] - sides[1]) / (2.0 * eps);
    const float got = is_bias ? db[i - layer.weights.size()] : dw[i];
    EXPECT_NEAR(got, fd, 1e-3 * (1 + std::abs(fd))) << (is_bias ? "dL/db" : "dL/dW") << i;
  }
}

TEST(TransposeRelations, ReloadFromStateReachesForwardAndGradient) {
  const Device device = Device::cpu();
  CommandQueue queue = device.new_command_queue();
  std::mt19937_64 rng = test::make_rng(25);
  const ConvolutionDescriptor d = transpose_descriptor(3, 2, 2, 2);
  const apitest::Layer layer = apitest::make_layer(d, rng);
  ConvolutionTranspose transpose(device, layer.source);
  ConvolutionTransposeGradient gradient(device, layer.source);
  const std::vector<float> w2 = apitest::random_values(rng, d.weight_count());
  const std::vector<float> b2 = apitest::random_values(rng, 2);
  const ConvolutionWeightsAndBiasesState fresh(device, d, w2, b2);
  std::vector<float> x_values, dy_values;
  const Image x = apitest::random_image(device, 1, 3, 3, 2, DataType::float32, rng, &x_values);
  const Shape s = policy_shape(d, Padding(), 1, 3, 3);
  const Image dy =
      apitest::random_image(device, 1, s.ho, s.wo, 2, DataType::float32, rng, &dy_values);
  CommandBuffer cb = queue.command_buffer();
  transpose.reload_weights_and_biases(cb, fresh);
  gradient.reload_weights_and_biases(cb, fresh);
  ConvolutionTransposeGradientState state;
  const Image y = transpose.encode(cb, x, state);
  const Image dx = gradient.encode(cb, dy, x, state);
  cb.commit();
  cb.wait();
  EXPECT_TRUE(apitest::close(y.read(), forward_loop(d, s, x_values, w2, b2), 1e-5));
  EXPECT_TRUE(apitest::close(dx.read(), adjoint_loop(d, s, x_values, w2, dy_values).dx, 1e-5));
  EXPECT_EQ(apitest::bits_of(transpose.kernel_weights()->weights), apitest::bits_of(w2));
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

TEST(TransposeErrors, StatesPlacementsAndDescriptors) {
  const Device device = Device::cpu();
  CommandQueue queue = device.new_command_queue();
  std::mt19937_64 rng = test::make_rng(26);
  const ConvolutionDescriptor d = transpose_descriptor(3, 2, 2, 2);
  const apitest::Layer layer = apitest::make_layer(d, rng);
  ConvolutionTranspose transpose(device, layer.source);
  ConvolutionTransposeGradient gradient(device, layer.source);
  ConvolutionGradient conv_gradient(device, layer.source);
  Convolution convolution(device, layer.source);
  const Image x = apitest::random_image(device, 1, 4, 4, 2, DataType::float32, rng);
  CommandBuffer cb = queue.command_buffer();
  ConvolutionGradientState conv_state;
  const Image conv_y = convolution.encode(cb, x, conv_state);
  ConvolutionTransposeGradientState state;
  const Image y = transpose.encode(cb, x, state);
  const Image dy(device, y.descriptor());
  expect_invalid([&] { gradient.encode(cb, conv_y, x, conv_state); }, "gradient_state");
  expect_invalid([&] { conv_gradient.encode(cb, dy, x, state); }, "gradient_state");
  expect_invalid([&] { state.convolution(); }, "state");
  // A transpose from 2 to 2 channels cannot reverse a 3-channel convolution.
  const apitest::Layer other = apitest::make_layer(transpose_descriptor(3, 2, 3, 2), rng);
  ConvolutionTranspose wide(device, other.source);
  expect_invalid([&] { wide.encode(cb, conv_y, conv_state); }, "convolution_state");
  expect_invalid([&] { transpose.encode(cb, y, conv_state); }, "source_image.size");
  // A kernel centred past the first source pixel leaves it outside every window.
  transpose.set_kernel_offset_y(5);
  const Image out(device, y.descriptor());
  expect_invalid([&] { transpose.encode(cb, x, out); }, "offset.y * stride + kernel_offset_y");
  transpose.set_kernel_offset_y(0);
  const Image small(device, ImageDescriptor{y.width(), y.height(), 3, 1});
  expect_invalid([&] { transpose.encode(cb, x, small); }, "destination_image.feature_channels");
  cb.commit();
  cb.wait();
  DepthwiseConvolutionDescriptor depthwise(3, 3, 2, 2);
  expect_invalid([&] { ConvolutionTranspose(device, apitest::make_layer(depthwise, rng).source); },
                 "descriptor.kind");
}

}  // namespace
}  // namespace convgrad
