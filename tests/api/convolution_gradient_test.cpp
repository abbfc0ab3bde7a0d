// SPDX-License-Identifier: Apache-2.0
// ConvolutionGradient (MPSCNNConvolutionGradient) and its GradientKernel base, member by member:
// every result is compared with the functional reference (`ref` backend) on a ConvProblem the
// test builds from its own restatement of MPS's geometry.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "api/api_support.hpp"

namespace convgrad {
namespace {

using apitest::close;
using apitest::kNaN;

std::vector<float> weight_gradient(const ConvolutionGradientState& state) {
  const std::span<const float> v = state.gradient_for_weights();
  return {v.begin(), v.end()};
}

std::vector<float> bias_gradient(const ConvolutionGradientState& state) {
  const std::span<const float> v = state.gradient_for_biases();
  return {v.begin(), v.end()};
}

std::vector<float> scaled(std::vector<float> v, float factor) {
  for (float& e : v) e *= factor;
  return v;
}

// A layer, its forward pass on a random source (state included) and the reference problem.
class Bench {
 public:
  Bench(const ConvolutionDescriptor& d, std::int64_t n, std::int64_t h, std::int64_t w,
        std::uint64_t salt, const Padding& padding = Padding(), DataType x_type = DataType::float32)
      : rng(test::make_rng(salt)),
        descriptor(d),
        layer(apitest::make_layer(d, rng)),
        convolution(device, layer.source),
        gradient(device, layer.source),
        queue(device.new_command_queue()) {
    convolution.set_padding(padding);
    x = apitest::random_image(device, n, h, w, d.input_feature_channels(), x_type, rng, &x_values);
    run([&](CommandBuffer& buffer) { y = convolution.encode(buffer, x, state); });
    pads =
        apitest::expected_pads(padding, h, w, d.dilated_kernel_height(), d.dilated_kernel_width(),
                               d.stride_in_pixels_y(), d.stride_in_pixels_x());
    problem = apitest::layer_problem(d, n, h, w, pads);
  }

  /// A random incoming gradient shaped like the forward result.
  Image incoming(DataType type, std::vector<float>* values) {
    return apitest::random_image(device, y.number_of_images(), y.height(), y.width(),
                                 y.feature_channels(), type, rng, values);
  }
  /// An image shaped like the forward source, NaN everywhere.
  Image poisoned_destination() const {
    Image image(device, x.descriptor());
    apitest::fill(image, kNaN);
    return image;
  }
  template <typename Encode>
  void run(Encode&& encode) {
    CommandBuffer buffer = queue.command_buffer();
    encode(buffer);
    buffer.commit();
    buffer.wait();
  }
  std::vector<float> ref_dx(const std::vector<float>& dy) const {
    return apitest::ref_dgrad(problem, dy, layer.weights);
  }
  apitest::WeightGradients ref_dw(const std::vector<float>& dy) const {
    return apitest::ref_wgrad(problem, x_values, dy);
  }
  // The automatic offsets MPS's rules give for this geometry (mps-reference.md §6.4).
  std::int64_t auto_kernel_offset_y() const {
    const std::int64_t kd = descriptor.dilated_kernel_height();
    return -((kd >> 1) - pads.top) + ((kd & 1) == 0 ? 1 : 0);
  }
  std::int64_t auto_kernel_offset_x() const {
    const std::int64_t kd = descriptor.dilated_kernel_width();
    return -((kd >> 1) - pads.left) + ((kd & 1) == 0 ? 1 : 0);
  }
  Offset auto_secondary_offset(std::int64_t z = 0) const { return {-pads.left, -pads.top, z}; }

  std::mt19937_64 rng;
  Device device = Device::cpu();
  ConvolutionDescriptor descriptor;
  apitest::Layer layer;
  Convolution convolution;
  ConvolutionGradient gradient;
  CommandQueue queue;
  Image x, y;
  std::vector<float> x_values;
  ConvolutionGradientState state;
  apitest::Pads pads;
  ConvProblem problem;
};

ConvolutionDescriptor conv(std::int64_t kh, std::int64_t kw, std::int64_t cin, std::int64_t cout,
                           std::int64_t sy = 1, std::int64_t sx = 1, std::int64_t dil_y = 1,
                           std::int64_t dil_x = 1, std::int64_t groups = 1, bool bias = true) {
  ConvolutionDescriptor d(kw, kh, cin, cout);
  d.set_stride_in_pixels_y(sy);
  d.set_stride_in_pixels_x(sx);
  d.set_dilation_rate_y(dil_y);
  d.set_dilation_rate_x(dil_x);
  d.set_groups(groups);
  d.set_bias_enabled(bias);
  return d;
}

ConvolutionDescriptor depthwise(std::int64_t k, std::int64_t c, std::int64_t multiplier,
                                std::int64_t stride = 1) {
  DepthwiseConvolutionDescriptor d(k, k, c, c * multiplier);
  d.set_stride_in_pixels_x(stride);
  d.set_stride_in_pixels_y(stride);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Geometry matrix: the encode that returns dx and the encode into a poisoned destination.

struct GeometryCase {
  std::string name;
  ConvolutionDescriptor descriptor;
  Padding padding;
  std::int64_t n, h, w;
  DataType x_type = DataType::float32, y_type = DataType::float32;
};

class GradientGeometry : public ::testing::TestWithParam<GeometryCase> {};

TEST_P(GradientGeometry, MatchesReference) {
  const GeometryCase& c = GetParam();
  Bench b(c.descriptor, c.n, c.h, c.w, std::hash<std::string>{}(c.name), c.padding, c.x_type);
  ASSERT_EQ(b.y.height(), b.problem.p);
  ASSERT_EQ(b.y.width(), b.problem.q);
  const double tol = std::max(apitest::tolerance(c.x_type), apitest::tolerance(c.y_type));
  std::vector<float> dy_values;
  const Image dy = b.incoming(c.y_type, &dy_values);

  Image dx;
  b.run([&](CommandBuffer& buffer) { dx = b.gradient.encode(buffer, dy, b.x, b.state); });
  EXPECT_EQ(dx.descriptor(), b.x.descriptor());
  EXPECT_FALSE(dx.shares_storage_with(b.x));
  EXPECT_TRUE(close(dx.read(), b.ref_dx(dy_values), tol));
  const apitest::WeightGradients want = b.ref_dw(dy_values);
  EXPECT_TRUE(close(weight_gradient(b.state), want.dw, tol));
  if (c.descriptor.bias_enabled()) {
    EXPECT_TRUE(close(bias_gradient(b.state), want.db, tol));
  } else {
    EXPECT_TRUE(bias_gradient(b.state).empty());
  }
  EXPECT_EQ(b.gradient.kernel_offset_y(), b.auto_kernel_offset_y());
  EXPECT_EQ(b.gradient.kernel_offset_x(), b.auto_kernel_offset_x());
  EXPECT_EQ(b.gradient.secondary_offset(), b.auto_secondary_offset());
  EXPECT_EQ(b.gradient.primary_offset(), (Offset{0, 0, 0}));

  // Into a given destination (data only, so the state is not added to twice): every element is
  // overwritten.
  b.gradient.set_gradient_option(GradientOption::gradient_with_data);
  const Image given = b.poisoned_destination();
  b.run([&](CommandBuffer& buffer) { b.gradient.encode(buffer, dy, b.x, b.state, given); });
  EXPECT_TRUE(close(given.read(), b.ref_dx(dy_values), tol));
  EXPECT_TRUE(close(weight_gradient(b.state), want.dw, tol));
}

std::vector<GeometryCase> geometry_cases() {
  using DT = DataType;
  std::vector<GeometryCase> cases = {
      {"basic_3x3", conv(3, 3, 3, 4), Padding(), 1, 7, 6},
      {"stride2_batch3", conv(3, 3, 3, 5, 2, 2), Padding(), 3, 9, 8},
      {"dilation2", conv(3, 3, 2, 3, 1, 1, 2, 2), Padding(), 1, 9, 10},
      {"stride2_dilation2_tf", conv(3, 3, 2, 4, 2, 2, 2, 2), Padding::tensorflow_same(), 2, 11, 10},
      {"non_square_3x5", conv(3, 5, 2, 3, 1, 2, 2, 1), Padding(), 1, 8, 11},
      {"groups2", conv(3, 3, 4, 6, 1, 1, 1, 1, 2), Padding(), 2, 6, 7},
      {"groups3_stride2_no_bias", conv(3, 3, 6, 3, 2, 2, 1, 1, 3, false), Padding(), 1, 7, 7},
      {"depthwise_m1", depthwise(3, 3, 1), Padding(), 1, 6, 6},
      {"depthwise_m2_stride2_batch3", depthwise(3, 3, 2, 2), Padding(), 3, 7, 8},
      {"depthwise_m3", depthwise(3, 2, 3), Padding::tensorflow_same(), 1, 5, 6},
      {"k1_stride3_tf_centred", conv(1, 1, 2, 2, 3, 3), Padding::tensorflow_same(), 1, 3, 3},
      {"f16", conv(3, 3, 3, 4, 2, 2), Padding(), 2, 7, 8, DT::float16, DT::float16},
      {"bf16", conv(3, 3, 3, 4, 1, 1, 2, 2), Padding(), 1, 8, 7, DT::bfloat16, DT::bfloat16},
      {"f16_image_f32_gradient", conv(3, 3, 2, 3), Padding::full(), 1, 5, 6, DT::float16,
       DT::float32},
      {"bf16_groups2_batch3", conv(2, 2, 4, 4, 1, 1, 1, 1, 2), Padding(), 3, 5, 5, DT::bfloat16,
       DT::bfloat16},
      {"larger_16x16", conv(3, 3, 8, 16), Padding(), 2, 16, 16},
  };
  // Even kernels with every padding policy.
  struct Kernel {
    const char* name;
    ConvolutionDescriptor d;
    Padding explicit_pads;
  };
  const Kernel kernels[] = {
      {"k2x2_s1", conv(2, 2, 2, 3), Padding::explicit_pads(1, 0, 0, 1)},
      {"k4x4_s2", conv(4, 4, 2, 3, 2, 2), Padding::explicit_pads(3, 1, 2, 0)},
      {"k2x2_s2_d2", conv(2, 2, 3, 2, 2, 2, 2, 2), Padding::explicit_pads(2, 1, 0, 2)},
  };
  using PM = PaddingMethod;
  for (const Kernel& k : kernels) {
    const std::pair<const char*, Padding> policies[] = {
        {"same_tl", Padding()},
        {"tf_same", Padding::tensorflow_same()},
        {"valid", Padding::valid_only()},
        {"full", Padding::full()},
        {"align_top_left", Padding(PM::size_same | PM::align_top_left)},
        {"align_bottom_right", Padding(PM::size_same | PM::align_bottom_right)},
        {"remainder_top_right", Padding(PM::size_same | PM::add_remainder_to_top_right)},
        {"remainder_bottom_left", Padding(PM::size_same | PM::add_remainder_to_bottom_left)},
        {"explicit", k.explicit_pads},
    };
    for (const auto& [name, padding] : policies) {
      cases.push_back({std::string(k.name) + "_" + name, k.d, padding, 1, 7, 8});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(ConvolutionGradient, GradientGeometry,
                         ::testing::ValuesIn(geometry_cases()),
                         [](const ::testing::TestParamInfo<GeometryCase>& param_info) {
                           return param_info.param.name;
                         });

// ---------------------------------------------------------------------------------------------
// Creation and the data source

// A data source whose failures are scripted, counting loads and purges.
class ScriptedSource : public ConvolutionDataSource {
 public:
  explicit ScriptedSource(const ConvolutionDescriptor& d)
      : descriptor_(d), weights_(static_cast<std::size_t>(d.weight_count()), 0.5f) {}
  DataType data_type() const override { return DataType::float32; }
  const ConvolutionDescriptor& descriptor() const override { return descriptor_; }
  const void* weights() override { return null_weights ? nullptr : weights_.data(); }
  const float* bias_terms() override { return nullptr; }
  bool load() override {
    ++loads;
    return load_result;
  }
  void purge() override { ++purges; }
  std::string label() const override { return "scripted"; }

  bool load_result = true;
  bool null_weights = false;
  int loads = 0, purges = 0;

 private:
  ConvolutionDescriptor descriptor_;
  std::vector<float> weights_;
};

TEST(ConvolutionGradientTest, CreatedFromADataSourceWithBalancedLoadAndPurge) {
  auto rng = test::make_rng(500);
  const apitest::Layer layer = apitest::make_layer(conv(3, 3, 2, 3), rng, "conv1");
  ConvolutionGradient gradient(Device::cpu(), layer.source);
  EXPECT_GE(layer.source->load_count(), 1);
  EXPECT_EQ(layer.source->load_count(), layer.source->purge_count());
  EXPECT_FALSE(layer.source->loaded());
  EXPECT_EQ(gradient.label(), "conv1");  // copied from the data source, as MPS
  gradient.set_label("renamed");
  EXPECT_EQ(gradient.label(), "renamed");
  EXPECT_EQ(gradient.device(), Device::cpu());
  EXPECT_EQ(gradient.kernel_weights()->weights, layer.weights);
  EXPECT_EQ(gradient.kernel_weights()->biases, layer.biases);
  const int loads = layer.source->load_count();
  gradient.reload_weights_and_biases_from_data_source();
  EXPECT_EQ(layer.source->load_count(), loads + 1);
  EXPECT_EQ(layer.source->purge_count(), loads + 1);
}

TEST(ConvolutionGradientTest, CreationFailuresThrowAndStayBalanced) {
  EXPECT_THROW((void)ConvolutionGradient(Device::cpu(), nullptr), InvalidArgument);

  auto failing = std::make_shared<ScriptedSource>(conv(3, 3, 1, 1));
  failing->load_result = false;
  try {
    ConvolutionGradient gradient(Device::cpu(), failing);
    ADD_FAILURE() << "a failed load() was accepted";
  } catch (const InvalidArgument& error) {
    EXPECT_EQ(error.parameter(), "data_source.load()");
  }
  EXPECT_EQ(failing->loads, 1);

  auto no_weights = std::make_shared<ScriptedSource>(conv(3, 3, 1, 1));
  no_weights->null_weights = true;
  EXPECT_THROW((void)ConvolutionGradient(Device::cpu(), no_weights), InvalidArgument);
  EXPECT_EQ(no_weights->loads, 1);
  EXPECT_EQ(no_weights->purges, 1);  // purged although the copy failed

  auto invalid = std::make_shared<ScriptedSource>(conv(3, 3, 4, 6, 1, 1, 1, 1, 4));
  EXPECT_THROW((void)ConvolutionGradient(Device::cpu(), invalid), InvalidArgument);
  EXPECT_EQ(invalid->loads, invalid->purges);

  // A null bias with the descriptor's bias on is a zero bias.
  auto scripted = std::make_shared<ScriptedSource>(conv(3, 3, 1, 2));
  ConvolutionGradient gradient(Device::cpu(), scripted);
  EXPECT_EQ(gradient.kernel_weights()->biases, std::vector<float>(2, 0.0f));
  EXPECT_EQ(gradient.label(), "scripted");
  EXPECT_EQ(scripted->loads, scripted->purges);
}

TEST(ConvolutionGradientTest, DataSourceIsTheSameObject) {
  auto rng = test::make_rng(501);
  const apitest::Layer layer = apitest::make_layer(conv(3, 3, 2, 2), rng);
  ConvolutionGradient gradient(Device::cpu(), layer.source);
  EXPECT_EQ(gradient.data_source().get(), layer.source.get());
  EXPECT_EQ(gradient.descriptor(), layer.source->descriptor());
}

TEST(ConvolutionGradientTest, ChannelMultiplier) {
  auto rng = test::make_rng(502);
  EXPECT_EQ(ConvolutionGradient(Device::cpu(), apitest::make_layer(conv(3, 3, 4, 4), rng).source)
                .channel_multiplier(),
            0);
  for (const std::int64_t m : {1, 2, 3}) {
    SCOPED_TRACE("multiplier " + std::to_string(m));
    Bench b(depthwise(3, 3, m, m == 2 ? 2 : 1), 2, 6, 7, 510 + static_cast<std::uint64_t>(m));
    EXPECT_EQ(b.gradient.channel_multiplier(), m);
    EXPECT_EQ(b.gradient.source_image_feature_channels(), 3);
    EXPECT_EQ(b.gradient.source_gradient_feature_channels(), 3 * m);
    std::vector<float> dy_values;
    const Image dy = b.incoming(DataType::float32, &dy_values);
    Image dx;
    b.run([&](CommandBuffer& buffer) { dx = b.gradient.encode(buffer, dy, b.x, b.state); });
    EXPECT_TRUE(close(dx.read(), b.ref_dx(dy_values), 1e-5));
    const apitest::WeightGradients want = b.ref_dw(dy_values);
    EXPECT_EQ(weight_gradient(b.state).size(), static_cast<std::size_t>(3 * m * 9));
    EXPECT_TRUE(close(weight_gradient(b.state), want.dw, 1e-5));
    EXPECT_TRUE(close(bias_gradient(b.state), want.db, 1e-5));
  }
}

TEST(ConvolutionGradientTest, GroupsComeFromTheDescriptor) {
  auto rng = test::make_rng(503);
  for (const std::int64_t g : {1, 2, 3, 6}) {
    const apitest::Layer layer = apitest::make_layer(conv(3, 3, 6, 12, 1, 1, 1, 1, g), rng);
    ConvolutionGradient gradient(Device::cpu(), layer.source);
    EXPECT_EQ(gradient.groups(), g);
    EXPECT_EQ(gradient.channel_multiplier(), 0);
  }
  // Grouped results: a state from a 2-group layer holds [C_out][kH][kW][C_in / 2].
  Bench b(conv(3, 3, 4, 6, 1, 1, 1, 1, 2), 1, 5, 5, 504);
  EXPECT_EQ(b.gradient.groups(), 2);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  Image dx;
  b.run([&](CommandBuffer& buffer) { dx = b.gradient.encode(buffer, dy, b.x, b.state); });
  EXPECT_EQ(weight_gradient(b.state).size(), static_cast<std::size_t>(6 * 9 * 2));
  EXPECT_TRUE(close(dx.read(), b.ref_dx(dy_values), 1e-5));
  EXPECT_TRUE(close(weight_gradient(b.state), b.ref_dw(dy_values).dw, 1e-5));
}

TEST(ConvolutionGradientTest, SerializeWeightsAndBiasesIsAFlagDefaultingToFalse) {
  auto rng = test::make_rng(505);
  ConvolutionGradient gradient(Device::cpu(), apitest::make_layer(conv(3, 3, 1, 1), rng).source);
  EXPECT_FALSE(gradient.serialize_weights_and_biases());
  gradient.set_serialize_weights_and_biases(true);
  EXPECT_TRUE(gradient.serialize_weights_and_biases());
  gradient.set_serialize_weights_and_biases(false);
  EXPECT_FALSE(gradient.serialize_weights_and_biases());
}

TEST(ConvolutionGradientTest, SourceChannelCountsAreTheForwardChannels) {
  Bench b(conv(3, 3, 5, 7), 1, 5, 6, 506);
  EXPECT_EQ(b.gradient.source_gradient_feature_channels(), 7);
  EXPECT_EQ(b.gradient.source_image_feature_channels(), 5);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  Image dx;
  b.run([&](CommandBuffer& buffer) { dx = b.gradient.encode(buffer, dy, b.x, b.state); });
  EXPECT_EQ(dx.feature_channels(), 5);
  // Images with other channel counts are refused before anything is written.
  const std::vector<float> before = weight_gradient(b.state);
  CommandBuffer buffer = b.queue.command_buffer();
  const Image dy6 =
      apitest::random_image(b.device, 1, b.y.height(), b.y.width(), 6, DataType::float32, b.rng);
  const Image x4 = apitest::random_image(b.device, 1, 5, 6, 4, DataType::float32, b.rng);
  EXPECT_THROW(b.gradient.encode(buffer, dy6, b.x, b.state), InvalidArgument);
  EXPECT_THROW(b.gradient.encode(buffer, dy, x4, b.state), InvalidArgument);
  buffer.commit();
  buffer.wait();
  EXPECT_EQ(apitest::bits_of(weight_gradient(b.state)), apitest::bits_of(before));
}

// ---------------------------------------------------------------------------------------------
// gradient_option

TEST(ConvolutionGradientTest, GradientOptionDefaultsToAllAndRejectsInvalidValues) {
  auto rng = test::make_rng(520);
  ConvolutionGradient gradient(Device::cpu(), apitest::make_layer(conv(3, 3, 1, 1), rng).source);
  EXPECT_EQ(gradient.gradient_option(), GradientOption::all);
  EXPECT_EQ(static_cast<int>(GradientOption::gradient_with_data), 1);
  EXPECT_EQ(static_cast<int>(GradientOption::gradient_with_weights_and_bias), 2);
  EXPECT_EQ(static_cast<int>(GradientOption::all), 3);
  gradient.set_gradient_option(GradientOption::gradient_with_weights_and_bias);
  EXPECT_EQ(gradient.gradient_option(), GradientOption::gradient_with_weights_and_bias);
  for (const std::uint32_t bad : {0u, 4u, 7u, 0xffffffffu}) {
    try {
      gradient.set_gradient_option(static_cast<GradientOption>(bad));
      ADD_FAILURE() << "gradient option " << bad << " accepted";
    } catch (const InvalidArgument& error) {
      EXPECT_EQ(error.parameter(), "gradient_option");
    }
    EXPECT_EQ(gradient.gradient_option(), GradientOption::gradient_with_weights_and_bias);
  }
}

TEST(ConvolutionGradientTest, DataOnlyLeavesTheStateBitIdentical) {
  Bench b(conv(3, 3, 3, 4, 2, 2), 2, 7, 6, 521);
  // A known non-zero pattern: a kernel that zeroes or adds to the buffers changes it.
  std::span<float> dw = b.state.gradient_for_weights();
  std::span<float> db = b.state.gradient_for_biases();
  for (std::size_t i = 0; i < dw.size(); ++i) dw[i] = 1.25f + 0.5f * static_cast<float>(i);
  for (std::size_t i = 0; i < db.size(); ++i) db[i] = -0.75f * static_cast<float>(i + 1);
  const std::vector<std::uint32_t> dw_bits = apitest::bits_of(weight_gradient(b.state));
  const std::vector<std::uint32_t> db_bits = apitest::bits_of(bias_gradient(b.state));
  b.gradient.set_gradient_option(GradientOption::gradient_with_data);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  Image dx;
  const Image given = b.poisoned_destination();
  b.run([&](CommandBuffer& buffer) {
    dx = b.gradient.encode(buffer, dy, b.x, b.state);
    b.gradient.encode(buffer, dy, b.x, b.state, given);
  });
  EXPECT_EQ(apitest::bits_of(weight_gradient(b.state)), dw_bits);
  EXPECT_EQ(apitest::bits_of(bias_gradient(b.state)), db_bits);
  EXPECT_TRUE(close(dx.read(), b.ref_dx(dy_values), 1e-5));
  EXPECT_TRUE(close(given.read(), b.ref_dx(dy_values), 1e-5));
}

TEST(ConvolutionGradientTest, WeightsOnlyLeavesTheDestinationBitIdentical) {
  for (const DataType type : {DataType::float32, DataType::float16}) {
    SCOPED_TRACE(std::string(to_string(type)));
    Bench b(conv(3, 3, 3, 4, 2, 1), 2, 7, 6, 522, Padding(), type);
    b.gradient.set_gradient_option(GradientOption::gradient_with_weights_and_bias);
    std::vector<float> dy_values;
    const Image dy = b.incoming(DataType::float32, &dy_values);
    const Image given = b.poisoned_destination();
    const std::vector<std::byte> before = apitest::raw_bytes(given);
    b.run([&](CommandBuffer& buffer) { b.gradient.encode(buffer, dy, b.x, b.state, given); });
    EXPECT_EQ(apitest::raw_bytes(given), before);
    const apitest::WeightGradients want = b.ref_dw(dy_values);
    const double tol = apitest::tolerance(type);
    EXPECT_TRUE(close(weight_gradient(b.state), want.dw, tol));
    EXPECT_TRUE(close(bias_gradient(b.state), want.db, tol));
    // The encode that returns its result still returns a source-sized image (untouched zeros),
    // and adds to the state a second time.
    Image returned;
    b.run([&](CommandBuffer& buffer) { returned = b.gradient.encode(buffer, dy, b.x, b.state); });
    EXPECT_EQ(returned.descriptor(), b.x.descriptor());
    for (float v : returned.read()) ASSERT_EQ(v, 0.0f);
    EXPECT_TRUE(close(weight_gradient(b.state), scaled(want.dw, 2.0f), tol));
    EXPECT_TRUE(close(bias_gradient(b.state), scaled(want.db, 2.0f), tol));
  }
}

// ---------------------------------------------------------------------------------------------
// Reloading weights

TEST(ConvolutionGradientTest, ReloadFromDataSourceAffectsOnlyLaterEncodes) {
  Bench b(conv(3, 3, 3, 4, 2, 2), 2, 6, 7, 530);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  const std::vector<float> old_dx = b.ref_dx(dy_values);
  const std::vector<float> new_w = apitest::random_values(b.rng, b.descriptor.weight_count());
  const std::vector<float> new_b = apitest::random_values(b.rng, 4);
  b.layer.source->set_weights_and_biases(new_w, new_b);
  const std::vector<float> new_dx = apitest::ref_dgrad(b.problem, dy_values, new_w);

  // Changed in the data source but not reloaded: the gradient still uses the old weights.
  Image before;
  b.run([&](CommandBuffer& buffer) { before = b.gradient.encode(buffer, dy, b.x, b.state); });
  EXPECT_TRUE(close(before.read(), old_dx, 1e-5));

  CommandBuffer early = b.queue.command_buffer();
  const Image encoded_early = b.gradient.encode(early, dy, b.x, b.state);
  const int loads = b.layer.source->load_count();
  b.gradient.reload_weights_and_biases_from_data_source();
  EXPECT_EQ(b.layer.source->load_count(), loads + 1);
  EXPECT_EQ(b.layer.source->load_count(), b.layer.source->purge_count());
  EXPECT_EQ(b.gradient.kernel_weights()->weights, new_w);
  CommandBuffer late = b.queue.command_buffer();
  const Image encoded_late = b.gradient.encode(late, dy, b.x, b.state);
  early.commit();  // committed after the reload, encoded before it
  late.commit();
  early.wait();
  late.wait();
  EXPECT_TRUE(close(encoded_early.read(), old_dx, 1e-5));
  EXPECT_TRUE(close(encoded_late.read(), new_dx, 1e-5));
  EXPECT_FALSE(close(encoded_late.read(), old_dx, 1e-3));
}

TEST(ConvolutionGradientTest, ReloadFromStateOnTheCommandBuffer) {
  Bench b(conv(3, 3, 2, 3), 1, 6, 5, 531);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  ConvolutionWeightsAndBiasesState next(b.device, b.descriptor,
                                        apitest::random_values(b.rng, b.descriptor.weight_count()),
                                        apitest::random_values(b.rng, 3));
  // Written after the reload is encoded, before the buffer runs: the reload reads the state when
  // the command buffer reaches it, so these are the weights later encodes see.
  const std::vector<float> late_w = apitest::random_values(b.rng, b.descriptor.weight_count());
  const std::vector<float> late_b = apitest::random_values(b.rng, 3);

  CommandBuffer buffer = b.queue.command_buffer();
  const Image y_old = b.convolution.encode(buffer, b.x);
  const Image dx_old = b.gradient.encode(buffer, dy, b.x, b.state);
  b.gradient.reload_weights_and_biases(buffer, next);
  b.convolution.reload_weights_and_biases(buffer, next);
  const Image dx_new = b.gradient.encode(buffer, dy, b.x, b.state);
  const Image y_new = b.convolution.encode(buffer, b.x);
  std::copy(late_w.begin(), late_w.end(), next.weights().begin());
  std::copy(late_b.begin(), late_b.end(), next.biases().begin());
  buffer.commit();
  buffer.wait();
  EXPECT_TRUE(close(dx_old.read(), b.ref_dx(dy_values), 1e-5));
  EXPECT_TRUE(close(dx_new.read(), apitest::ref_dgrad(b.problem, dy_values, late_w), 1e-5));
  EXPECT_TRUE(close(y_old.read(),
                    apitest::ref_fprop(b.problem, b.x_values, b.layer.weights, b.layer.biases),
                    1e-5));
  EXPECT_TRUE(close(y_new.read(), apitest::ref_fprop(b.problem, b.x_values, late_w, late_b), 1e-5));
  // Later command buffers keep the reloaded weights.
  Image dx_later;
  b.run([&](CommandBuffer& later) { dx_later = b.gradient.encode(later, dy, b.x, b.state); });
  EXPECT_TRUE(close(dx_later.read(), apitest::ref_dgrad(b.problem, dy_values, late_w), 1e-5));
  EXPECT_EQ(b.gradient.kernel_weights()->weights, late_w);

  // A state for another descriptor is refused.
  CommandBuffer other = b.queue.command_buffer();
  const ConvolutionWeightsAndBiasesState wrong(b.device, conv(3, 3, 2, 4));
  EXPECT_THROW(b.gradient.reload_weights_and_biases(other, wrong), InvalidArgument);
  EXPECT_THROW(b.convolution.reload_weights_and_biases(other, wrong), InvalidArgument);
}

TEST(ConvolutionGradientTest, WorkThatRunsBeforeAReloadUsesTheOldWeights) {
  // As on Metal, the reload happens when its command buffer runs: a buffer committed (and run)
  // before the reloading one still sees the old weights, never a half-made set.
  Bench b(conv(3, 3, 2, 3), 1, 6, 5, 532);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  const std::vector<float> new_w = apitest::random_values(b.rng, b.descriptor.weight_count());
  const std::vector<float> new_b = apitest::random_values(b.rng, 3);
  const ConvolutionWeightsAndBiasesState next(b.device, b.descriptor, new_w, new_b);
  CommandBuffer reloading = b.queue.command_buffer();
  b.gradient.reload_weights_and_biases(reloading, next);
  b.convolution.reload_weights_and_biases(reloading, next);
  Image dx_first, y_first;
  b.run([&](CommandBuffer& buffer) {
    dx_first = b.gradient.encode(buffer, dy, b.x, b.state);
    y_first = b.convolution.encode(buffer, b.x);
  });
  EXPECT_TRUE(close(dx_first.read(), b.ref_dx(dy_values), 1e-5));
  EXPECT_TRUE(close(y_first.read(),
                    apitest::ref_fprop(b.problem, b.x_values, b.layer.weights, b.layer.biases),
                    1e-5));
  reloading.commit();
  reloading.wait();
  Image dx_after, y_after;
  b.run([&](CommandBuffer& buffer) {
    dx_after = b.gradient.encode(buffer, dy, b.x, b.state);
    y_after = b.convolution.encode(buffer, b.x);
  });
  EXPECT_TRUE(close(dx_after.read(), apitest::ref_dgrad(b.problem, dy_values, new_w), 1e-5));
  EXPECT_TRUE(close(y_after.read(), apitest::ref_fprop(b.problem, b.x_values, new_w, new_b), 1e-5));
}

// ---------------------------------------------------------------------------------------------
// Batches and the shared state

TEST(ConvolutionGradientTest, EncodeBatchSumsWeightGradientsOverTheBatch) {
  auto rng = test::make_rng(540);
  const Device device = Device::cpu();
  const ConvolutionDescriptor d = conv(3, 3, 2, 3, 2, 2);
  const apitest::Layer layer = apitest::make_layer(d, rng);
  Convolution convolution(device, layer.source);
  ConvolutionGradient gradient(device, layer.source);
  CommandQueue queue = device.new_command_queue();
  ImageBatch xs, dys;
  std::vector<std::vector<float>> x_values(3), dy_values(3);
  for (std::size_t i = 0; i < 3; ++i) {
    xs.push_back(apitest::random_image(device, 1, 5, 6, 2, DataType::float32, rng, &x_values[i]));
  }
  CommandBuffer forward = queue.command_buffer();
  ConvolutionGradientState state;
  const ImageBatch ys = convolution.encode_batch(forward, xs, state);
  forward.commit();
  forward.wait();
  for (std::size_t i = 0; i < 3; ++i) {
    dys.push_back(apitest::random_image(device, 1, ys[i].height(), ys[i].width(), 3,
                                        DataType::float32, rng, &dy_values[i]));
  }
  const ConvProblem p = apitest::layer_problem(d, 3, 5, 6, {1, 1, 1, 0});
  ASSERT_EQ(p.p, ys[0].height());
  ASSERT_EQ(p.q, ys[0].width());
  const apitest::WeightGradients want =
      apitest::ref_wgrad(p, apitest::concat(x_values), apitest::concat(dy_values));
  const std::vector<float> want_dx =
      apitest::ref_dgrad(p, apitest::concat(dy_values), layer.weights);

  CommandBuffer backward = queue.command_buffer();
  const ImageBatch dxs = gradient.encode_batch(backward, dys, xs, state);
  backward.commit();
  backward.wait();
  ASSERT_EQ(dxs.size(), 3u);
  EXPECT_TRUE(close(apitest::concat({dxs[0].read(), dxs[1].read(), dxs[2].read()}), want_dx, 1e-5));
  EXPECT_TRUE(close(weight_gradient(state), want.dw, 1e-5));
  EXPECT_TRUE(close(bias_gradient(state), want.db, 1e-5));

  // Into given destinations, data only: the sum stays, every destination is written.
  gradient.set_gradient_option(GradientOption::gradient_with_data);
  ImageBatch given;
  for (int i = 0; i < 3; ++i) {
    given.emplace_back(device, xs[0].descriptor());
    apitest::fill(given.back(), kNaN);
  }
  CommandBuffer into = queue.command_buffer();
  gradient.encode_batch(into, dys, xs, state, given);
  into.commit();
  into.wait();
  EXPECT_TRUE(
      close(apitest::concat({given[0].read(), given[1].read(), given[2].read()}), want_dx, 1e-5));
  EXPECT_TRUE(close(weight_gradient(state), want.dw, 1e-5));

  // Repeated single encodes into one fresh state sum the same way.
  gradient.set_gradient_option(GradientOption::all);
  const ConvolutionGradientState fresh = convolution.result_state(xs[0], ys[0]);
  CommandBuffer singles = queue.command_buffer();
  for (std::size_t i = 0; i < 3; ++i) gradient.encode(singles, dys[i], xs[i], fresh);
  singles.commit();
  singles.wait();
  EXPECT_TRUE(close(weight_gradient(fresh), want.dw, 1e-5));
  EXPECT_TRUE(close(bias_gradient(fresh), want.db, 1e-5));
}

TEST(ConvolutionGradientTest, EncodeBatchValidatesEveryEntryBeforeWriting) {
  Bench b(conv(3, 3, 2, 3), 1, 5, 5, 541);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  const Image wrong = apitest::random_image(b.device, 1, 4, 5, 3, DataType::float32, b.rng);
  const Image given0 = b.poisoned_destination();
  const Image given1 = b.poisoned_destination();
  CommandBuffer buffer = b.queue.command_buffer();
  EXPECT_THROW(b.gradient.encode_batch(buffer, {dy, wrong}, {b.x, b.x}, b.state, {given0, given1}),
               InvalidArgument);
  EXPECT_THROW(b.gradient.encode_batch(buffer, {dy, dy}, {b.x}, b.state, {given0, given1}),
               InvalidArgument);
  EXPECT_THROW(b.gradient.encode_batch(buffer, {dy}, {b.x}, b.state, {given0, given1}),
               InvalidArgument);
  EXPECT_THROW(b.gradient.encode_batch(buffer, {}, {}, b.state, {}), InvalidArgument);
  EXPECT_THROW(b.gradient.encode_batch(buffer, {dy, dy}, {b.x}, b.state), InvalidArgument);
  buffer.commit();
  buffer.wait();
  for (float v : weight_gradient(b.state)) ASSERT_EQ(v, 0.0f);
  for (float v : given0.read()) ASSERT_TRUE(std::isnan(v));
  for (float v : given1.read()) ASSERT_TRUE(std::isnan(v));
}

// ---------------------------------------------------------------------------------------------
// Offsets

TEST(ConvolutionGradientTest, BatchOffsetsSelectImages) {
  Bench b(conv(3, 3, 2, 3, 2, 1), 3, 6, 5, 550);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  const std::int64_t x_image = 6 * 5 * 2, dy_image = b.y.height() * b.y.width() * 3;
  ConvProblem one = b.problem;
  one.n = 1;

  // Gradient image 2 with source image 1 into a one-image destination.
  b.gradient.set_primary_offset({0, 0, 2});
  b.gradient.set_secondary_offset(b.auto_secondary_offset(1));
  Image given(b.device, ImageDescriptor{5, 6, 2, 1, DataType::float32});
  apitest::fill(given, kNaN);
  b.run([&](CommandBuffer& buffer) { b.gradient.encode(buffer, dy, b.x, b.state, given); });
  EXPECT_EQ(b.gradient.primary_offset().z, 2);
  EXPECT_EQ(b.gradient.secondary_offset().z, 1);
  const std::vector<float> dy2 = apitest::slice(dy_values, dy_image, 2, 1);
  EXPECT_TRUE(close(given.read(), apitest::ref_dgrad(one, dy2, b.layer.weights), 1e-5));
  const apitest::WeightGradients want =
      apitest::ref_wgrad(one, apitest::slice(b.x_values, x_image, 1, 1), dy2);
  EXPECT_TRUE(close(weight_gradient(b.state), want.dw, 1e-5));
  EXPECT_TRUE(close(bias_gradient(b.state), want.db, 1e-5));

  // The encode that returns its result takes every gradient image from primary z on.
  const ConvolutionGradientState fresh = b.convolution.result_state(b.x, b.y);
  b.gradient.set_primary_offset({0, 0, 1});
  b.gradient.set_secondary_offset(b.auto_secondary_offset(0));
  Image dx;
  b.run([&](CommandBuffer& buffer) { dx = b.gradient.encode(buffer, dy, b.x, fresh); });
  ASSERT_EQ(dx.number_of_images(), 2);
  ConvProblem two = b.problem;
  two.n = 2;
  const std::vector<float> dy12 = apitest::slice(dy_values, dy_image, 1, 2);
  EXPECT_TRUE(close(dx.read(), apitest::ref_dgrad(two, dy12, b.layer.weights), 1e-5));
  EXPECT_TRUE(close(weight_gradient(fresh),
                    apitest::ref_wgrad(two, apitest::slice(b.x_values, x_image, 0, 2), dy12).dw,
                    1e-5));

  // Out of range or unsupported offsets are refused.
  CommandBuffer buffer = b.queue.command_buffer();
  b.gradient.set_primary_offset({0, 0, 3});
  EXPECT_THROW(b.gradient.encode(buffer, dy, b.x, b.state, given), InvalidArgument);
  b.gradient.set_primary_offset({0, 0, 0});
  b.gradient.set_secondary_offset(b.auto_secondary_offset(3));
  EXPECT_THROW(b.gradient.encode(buffer, dy, b.x, b.state, given), InvalidArgument);
  b.gradient.set_secondary_offset(b.auto_secondary_offset(1));
  const Image three(b.device, b.x.descriptor());
  EXPECT_THROW(b.gradient.encode(buffer, dy, b.x, b.state, three), InvalidArgument);
  EXPECT_THROW(b.gradient.set_primary_offset({1, 0, 0}), InvalidArgument);
  EXPECT_THROW(b.gradient.set_primary_offset({0, -1, 0}), InvalidArgument);
  EXPECT_THROW(b.gradient.set_primary_offset({0, 0, -1}), InvalidArgument);
  EXPECT_THROW(b.gradient.set_secondary_offset({0, 0, -1}), InvalidArgument);
}

TEST(ConvolutionGradientTest, ResetOffsetsKeepsTheBatchSelection) {
  // reset_offsets() returns x, y and the kernel offsets to automatic but keeps each z: the way to
  // pick a source image while the window origin stays automatic.
  Bench b(conv(3, 3, 2, 2, 1, 2), 3, 5, 6, 555);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  b.gradient.set_primary_offset({0, 0, 1});
  b.gradient.set_secondary_offset({7, -7, 2});
  b.gradient.set_kernel_offset_x(5);
  b.gradient.reset_offsets();
  Image given(b.device, ImageDescriptor{6, 5, 2, 1, DataType::float32});
  apitest::fill(given, kNaN);
  b.run([&](CommandBuffer& buffer) { b.gradient.encode(buffer, dy, b.x, b.state, given); });
  EXPECT_EQ(b.gradient.primary_offset(), (Offset{0, 0, 1}));
  EXPECT_EQ(b.gradient.secondary_offset(), b.auto_secondary_offset(2));
  EXPECT_EQ(b.gradient.kernel_offset_x(), b.auto_kernel_offset_x());
  ConvProblem one = b.problem;
  one.n = 1;
  const std::int64_t dy_image = b.y.height() * b.y.width() * 2;
  const std::vector<float> dy1 = apitest::slice(dy_values, dy_image, 1, 1);
  EXPECT_TRUE(close(given.read(), apitest::ref_dgrad(one, dy1, b.layer.weights), 1e-5));
  EXPECT_TRUE(close(weight_gradient(b.state),
                    apitest::ref_wgrad(one, apitest::slice(b.x_values, 5 * 6 * 2, 2, 1), dy1).dw,
                    1e-5));
}

TEST(ConvolutionGradientTest, UserKernelOffsetShiftsTheDataGradient) {
  struct Case {
    ConvolutionDescriptor d;
    std::int64_t h, w, ko_y, ko_x;
  };
  const Case cases[] = {
      {conv(3, 3, 2, 3), 6, 6, 1, -1},        // automatic 0, 0
      {conv(4, 4, 2, 2, 2, 2), 8, 9, 1, -1},  // even kernel: automatic 0 (with the +1)
      {conv(3, 2, 2, 2, 1, 2, 2, 1), 9, 8, -1, 1},
  };
  std::uint64_t salt = 560;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.d.to_string());
    Bench b(c.d, 2, c.h, c.w, salt++);
    std::vector<float> dy_values;
    const Image dy = b.incoming(DataType::float32, &dy_values);
    ASSERT_NE(c.ko_y, b.auto_kernel_offset_y());
    ASSERT_NE(c.ko_x, b.auto_kernel_offset_x());
    b.gradient.set_kernel_offset_y(c.ko_y);
    b.gradient.set_kernel_offset_x(c.ko_x);
    Image dx;
    b.run([&](CommandBuffer& buffer) { dx = b.gradient.encode(buffer, dy, b.x, b.state); });
    EXPECT_EQ(b.gradient.kernel_offset_y(), c.ko_y);
    EXPECT_EQ(b.gradient.kernel_offset_x(), c.ko_x);
    // The data gradient's pads for kernel offset ko: (kd >> 1) - (-ko + (kd even)); the bottom
    // and right pads follow from the (unchanged) gradient size.
    const std::int64_t kdh = c.d.dilated_kernel_height(), kdw = c.d.dilated_kernel_width();
    const std::int64_t top = (kdh >> 1) - (-c.ko_y + ((kdh & 1) == 0 ? 1 : 0));
    const std::int64_t left = (kdw >> 1) - (-c.ko_x + ((kdw & 1) == 0 ? 1 : 0));
    const std::int64_t bottom = (b.problem.p - 1) * b.problem.stride_h + kdh - c.h - top;
    const std::int64_t right = (b.problem.q - 1) * b.problem.stride_w + kdw - c.w - left;
    const ConvProblem shifted =
        apitest::layer_problem(c.d, 2, c.h, c.w, {top, left, bottom, right});
    ASSERT_EQ(shifted.p, b.problem.p);
    ASSERT_EQ(shifted.q, b.problem.q);
    const std::vector<float> want = apitest::ref_dgrad(shifted, dy_values, b.layer.weights);
    EXPECT_TRUE(close(dx.read(), want, 1e-5));
    EXPECT_FALSE(close(dx.read(), b.ref_dx(dy_values), 1e-3));  // really shifted
    // The weight gradient does not use the kernel offset.
    EXPECT_TRUE(close(weight_gradient(b.state), b.ref_dw(dy_values).dw, 1e-5));

    // Back to automatic.
    b.gradient.reset_offsets();
    Image again;
    b.run([&](CommandBuffer& buffer) { again = b.gradient.encode(buffer, dy, b.x, b.state); });
    EXPECT_EQ(b.gradient.kernel_offset_y(), b.auto_kernel_offset_y());
    EXPECT_EQ(b.gradient.kernel_offset_x(), b.auto_kernel_offset_x());
    EXPECT_TRUE(close(again.read(), b.ref_dx(dy_values), 1e-5));
  }
}

TEST(ConvolutionGradientTest, UserSecondaryOffsetShiftsTheWeightGradient) {
  Bench b(conv(3, 3, 2, 3), 1, 6, 6, 565);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  ASSERT_EQ(b.auto_secondary_offset(), (Offset{-1, -1, 0}));
  b.gradient.set_secondary_offset({0, -2, 0});  // window origin: pad top 2, pad left 0
  Image dx;
  b.run([&](CommandBuffer& buffer) { dx = b.gradient.encode(buffer, dy, b.x, b.state); });
  const ConvProblem shifted = apitest::layer_problem(b.descriptor, 1, 6, 6, {2, 0, 0, 2});
  ASSERT_EQ(shifted.p, b.problem.p);
  const apitest::WeightGradients want = apitest::ref_wgrad(shifted, b.x_values, dy_values);
  EXPECT_TRUE(close(weight_gradient(b.state), want.dw, 1e-5));
  EXPECT_FALSE(close(weight_gradient(b.state), b.ref_dw(dy_values).dw, 1e-3));
  EXPECT_TRUE(close(bias_gradient(b.state), want.db, 1e-5));  // bias ignores geometry
  EXPECT_TRUE(close(dx.read(), b.ref_dx(dy_values), 1e-5));   // data gradient unaffected
  EXPECT_EQ(b.gradient.secondary_offset(), (Offset{0, -2, 0}));
}

TEST(ConvolutionGradientTest, DestinationImageDescriptorSetsTheAutomaticOffsets) {
  Bench b(conv(4, 2, 3, 5, 2, 1), 2, 7, 6, 566, Padding::tensorflow_same(), DataType::float16);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  b.gradient.set_kernel_offset_x(9);
  b.gradient.set_kernel_offset_y(9);
  b.gradient.reset_offsets();
  b.gradient.set_destination_feature_channel_offset(2);
  const ImageDescriptor d = b.gradient.destination_image_descriptor(dy, b.x, b.state);
  EXPECT_EQ(d.width, 6);
  EXPECT_EQ(d.height, 7);
  EXPECT_EQ(d.feature_channels, 2 + 3);
  EXPECT_EQ(d.number_of_images, 2);
  EXPECT_EQ(d.data_type, DataType::float16);
  EXPECT_EQ(b.gradient.kernel_offset_y(), b.auto_kernel_offset_y());
  EXPECT_EQ(b.gradient.kernel_offset_x(), b.auto_kernel_offset_x());
  EXPECT_EQ(b.gradient.secondary_offset(), b.auto_secondary_offset());
}

// ---------------------------------------------------------------------------------------------
// Channel windows

TEST(ConvolutionGradientTest, DestinationChannelOffsetWritesOnlyItsWindow) {
  Bench b(conv(3, 3, 3, 4, 2, 2), 2, 5, 6, 570);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  const std::vector<float> want = b.ref_dx(dy_values);
  constexpr std::int64_t kOffset = 3, kChannels = 8;  // not a multiple of 4: beyond MPS
  Image big(b.device, ImageDescriptor{6, 5, kChannels, 2, DataType::float32});
  std::vector<float> pattern(static_cast<std::size_t>(2 * 5 * 6 * kChannels));
  for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = 1000.0f + static_cast<float>(i);
  big.write(pattern);
  b.gradient.set_destination_feature_channel_offset(kOffset);
  EXPECT_EQ(b.gradient.destination_feature_channel_offset(), kOffset);
  b.gradient.set_gradient_option(GradientOption::gradient_with_data);
  b.run([&](CommandBuffer& buffer) { b.gradient.encode(buffer, dy, b.x, b.state, big); });
  const std::vector<float> got = big.read();
  std::vector<float> window;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const std::int64_t c = static_cast<std::int64_t>(i) % kChannels;
    if (c >= kOffset && c < kOffset + 3) {
      window.push_back(got[i]);
    } else {
      ASSERT_EQ(std::bit_cast<std::uint32_t>(got[i]), std::bit_cast<std::uint32_t>(pattern[i]));
    }
  }
  EXPECT_TRUE(close(window, want, 1e-5));

  // The encode that returns its result makes room for the offset and leaves those channels 0.
  Image returned;
  b.run([&](CommandBuffer& buffer) { returned = b.gradient.encode(buffer, dy, b.x, b.state); });
  ASSERT_EQ(returned.feature_channels(), kOffset + 3);
  std::vector<float> returned_window;
  const std::vector<float> returned_values = returned.read();
  for (std::size_t i = 0; i < returned_values.size(); ++i) {
    const std::int64_t c = static_cast<std::int64_t>(i) % (kOffset + 3);
    if (c >= kOffset) {
      returned_window.push_back(returned_values[i]);
    } else {
      ASSERT_EQ(returned_values[i], 0.0f);
    }
  }
  EXPECT_TRUE(close(returned_window, want, 1e-5));

  Image small(b.device, ImageDescriptor{6, 5, kOffset + 2, 2, DataType::float32});
  CommandBuffer buffer = b.queue.command_buffer();
  EXPECT_THROW(b.gradient.encode(buffer, dy, b.x, b.state, small), InvalidArgument);
}

TEST(ConvolutionGradientTest, SourceChannelOffsetsAndMaxCountsReadWindows) {
  Bench b(conv(3, 3, 3, 4, 1, 2), 2, 5, 6, 571);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  // Embed dy in channels [2, 6) of a 9-channel image and x in [1, 4) of an 8-channel one; the
  // other channels hold values that would spoil any result that read them.
  auto embed = [&](const std::vector<float>& values, std::int64_t pixels, std::int64_t channels,
                   std::int64_t total, std::int64_t first, const Image& like) {
    std::vector<float> big = apitest::random_values(b.rng, pixels * total, 50.0f, 100.0f);
    for (std::int64_t p = 0; p < pixels; ++p) {
      for (std::int64_t c = 0; c < channels; ++c) {
        big[static_cast<std::size_t>(p * total + first + c)] =
            values[static_cast<std::size_t>(p * channels + c)];
      }
    }
    Image image(b.device, ImageDescriptor{like.width(), like.height(), total,
                                          like.number_of_images(), DataType::float32});
    image.write(big);
    return image;
  };
  const std::int64_t dy_pixels = 2 * b.y.height() * b.y.width();
  const Image dy_big = embed(dy_values, dy_pixels, 4, 9, 2, b.y);
  const Image x_big = embed(b.x_values, 2 * 5 * 6, 3, 8, 1, b.x);
  b.gradient.set_primary_source_feature_channel_offset(2);
  b.gradient.set_primary_source_feature_channel_max_count(4);
  b.gradient.set_secondary_source_feature_channel_offset(1);
  b.gradient.set_secondary_source_feature_channel_max_count(3);
  EXPECT_EQ(b.gradient.primary_source_feature_channel_offset(), 2);
  EXPECT_EQ(b.gradient.primary_source_feature_channel_max_count(), 4);
  EXPECT_EQ(b.gradient.secondary_source_feature_channel_offset(), 1);
  EXPECT_EQ(b.gradient.secondary_source_feature_channel_max_count(), 3);
  Image dx;
  b.run([&](CommandBuffer& buffer) { dx = b.gradient.encode(buffer, dy_big, x_big, b.state); });
  EXPECT_EQ(dx.feature_channels(), 3);
  EXPECT_TRUE(close(dx.read(), b.ref_dx(dy_values), 1e-5));
  const apitest::WeightGradients want = b.ref_dw(dy_values);
  EXPECT_TRUE(close(weight_gradient(b.state), want.dw, 1e-5));
  EXPECT_TRUE(close(bias_gradient(b.state), want.db, 1e-5));

  // A window that runs to the last channel needs no max count (too large values truncate).
  const Image dy_tail = embed(dy_values, dy_pixels, 4, 7, 3, b.y);
  b.gradient.set_primary_source_feature_channel_offset(3);
  b.gradient.set_primary_source_feature_channel_max_count(1000);
  b.gradient.set_gradient_option(GradientOption::gradient_with_data);
  b.run([&](CommandBuffer& buffer) { dx = b.gradient.encode(buffer, dy_tail, x_big, b.state); });
  EXPECT_TRUE(close(dx.read(), b.ref_dx(dy_values), 1e-5));

  // Windows of the wrong width are refused.
  CommandBuffer buffer = b.queue.command_buffer();
  b.gradient.set_primary_source_feature_channel_max_count(3);
  EXPECT_THROW(b.gradient.encode(buffer, dy_tail, x_big, b.state), InvalidArgument);
  b.gradient.set_primary_source_feature_channel_max_count(4);
  b.gradient.set_primary_source_feature_channel_offset(7);
  EXPECT_THROW(b.gradient.encode(buffer, dy_tail, x_big, b.state), InvalidArgument);
  b.gradient.set_primary_source_feature_channel_offset(3);
  b.gradient.set_secondary_source_feature_channel_max_count(0);
  EXPECT_THROW(b.gradient.encode(buffer, dy_tail, x_big, b.state), InvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Validation and the parity-only padding

TEST(ConvolutionGradientTest, EncodeValidatesBeforeWriting) {
  Bench b(conv(3, 3, 2, 3), 1, 5, 6, 580);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  const Image given = b.poisoned_destination();
  CommandBuffer buffer = b.queue.command_buffer();
  // Wrong sizes and types.
  const Image dy_small = apitest::random_image(b.device, 1, 4, 6, 3, DataType::float32, b.rng);
  const Image x_small = apitest::random_image(b.device, 1, 5, 5, 2, DataType::float32, b.rng);
  Image dest_f16(b.device, ImageDescriptor{6, 5, 2, 1, DataType::float16});
  Image dest_small(b.device, ImageDescriptor{6, 4, 2, 1, DataType::float32});
  EXPECT_THROW(b.gradient.encode(buffer, dy_small, b.x, b.state, given), InvalidArgument);
  EXPECT_THROW(b.gradient.encode(buffer, dy, x_small, b.state, given), InvalidArgument);
  EXPECT_THROW(b.gradient.encode(buffer, dy, b.x, b.state, dest_f16), InvalidArgument);
  EXPECT_THROW(b.gradient.encode(buffer, dy, b.x, b.state, dest_small), InvalidArgument);
  EXPECT_THROW(b.gradient.encode(buffer, Image(), b.x, b.state, given), InvalidArgument);
  // The destination may not alias a source.
  EXPECT_THROW(b.gradient.encode(buffer, dy, b.x, b.state, b.x), InvalidArgument);
  // States: empty, or from a convolution of another shape.
  EXPECT_THROW(b.gradient.encode(buffer, dy, b.x, ConvolutionGradientState(), given),
               InvalidArgument);
  auto rng = test::make_rng(581);
  Convolution other(b.device, apitest::make_layer(conv(3, 3, 2, 3, 1, 1, 2, 2), rng).source);
  const ConvolutionGradientState other_state = other.result_state(b.x, b.y);
  EXPECT_THROW(b.gradient.encode(buffer, dy, b.x, other_state, given), InvalidArgument);
  buffer.commit();
  buffer.wait();
  for (float v : given.read()) ASSERT_TRUE(std::isnan(v));
  for (float v : weight_gradient(b.state)) ASSERT_EQ(v, 0.0f);
}

TEST(ConvolutionGradientTest, PaddingPropertyDoesNotChangeTheResult) {
  Bench b(conv(3, 3, 2, 3, 2, 2), 1, 7, 8, 590);
  std::vector<float> dy_values;
  const Image dy = b.incoming(DataType::float32, &dy_values);
  b.gradient.set_gradient_option(GradientOption::gradient_with_data);
  for (const Padding& padding :
       {Padding::valid_only(), Padding::full(), Padding::explicit_pads(2, 2, 2, 2)}) {
    b.gradient.set_padding(padding);
    Image dx;
    b.run([&](CommandBuffer& buffer) { dx = b.gradient.encode(buffer, dy, b.x, b.state); });
    EXPECT_EQ(dx.descriptor(), b.x.descriptor());  // sized from the state, not the policy
    EXPECT_TRUE(close(dx.read(), b.ref_dx(dy_values), 1e-5));
  }
}

TEST(ConvolutionGradientTest, WeightGradientIsUnaffectedByDataSourceWeightType) {
  // fp32 internal weights: a float16 data source's weights are widened once, exactly.
  auto rng = test::make_rng(595);
  const ConvolutionDescriptor d = conv(3, 3, 2, 2);
  const std::vector<float> w = apitest::random_values(rng, d.weight_count());
  auto source = std::make_shared<MemoryConvolutionDataSource>(d, w, std::vector<float>{0.5f, -1},
                                                              "h", DataType::float16);
  ConvolutionGradient gradient(Device::cpu(), source);
  Convolution convolution(Device::cpu(), source);
  std::vector<float> x_values, dy_values;
  const Image x =
      apitest::random_image(Device::cpu(), 1, 5, 5, 2, DataType::float32, rng, &x_values);
  CommandQueue queue = Device::cpu().new_command_queue();
  CommandBuffer buffer = queue.command_buffer();
  ConvolutionGradientState state;
  const Image y = convolution.encode(buffer, x, state);
  const Image dy =
      apitest::random_image(Device::cpu(), 1, 5, 5, 2, DataType::float32, rng, &dy_values);
  const Image dx = gradient.encode(buffer, dy, x, state);
  buffer.commit();
  buffer.wait();
  const ConvProblem p = apitest::layer_problem(d, 1, 5, 5, {1, 1, 1, 1});
  EXPECT_TRUE(close(
      dx.read(), apitest::ref_dgrad(p, dy_values, apitest::rounded(w, DataType::float16)), 1e-5));
  EXPECT_TRUE(close(weight_gradient(state), apitest::ref_wgrad(p, x_values, dy_values).dw, 1e-5));
}

}  // namespace
}  // namespace convgrad
