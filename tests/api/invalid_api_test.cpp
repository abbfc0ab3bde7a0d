// SPDX-License-Identifier: Apache-2.0
// Invalid use of the MPS-like objects: descriptors, data sources, images, states, command
// buffers and the gradient and forward encodes. Each call must throw InvalidArgument naming the
// parameter and its value (and the problem or descriptor where the rule is about one), leave the
// destination image and the gradient state byte-identical, and enqueue nothing: committing the
// command buffer afterwards must not change them either.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "convgrad/convgrad.hpp"

namespace convgrad {
namespace {

// The parameter and value the error must carry; `problem`, when not empty, is the problem or
// descriptor string the message must end with.
struct Expected {
  Expected(std::string name, std::string text, std::string problem_text = {})
      : parameter(std::move(name)), value(std::move(text)), problem(std::move(problem_text)) {}
  std::string parameter;
  std::string value;
  std::string problem;
};

// What a rejected call must leave alone.
struct Outputs {
  std::vector<Image> images;
  std::vector<ConvolutionGradientState> states;
  CommandBuffer* buffer = nullptr;  // committed and waited afterwards when still open
};

std::vector<float> pattern(std::size_t count, float start) {
  std::vector<float> values(count);
  for (std::size_t i = 0; i < count; ++i) values[i] = start + 0.25f * static_cast<float>(i % 512);
  return values;
}

std::size_t element_count(const Image& image) {
  return static_cast<std::size_t>(image.number_of_images() * image.height() * image.width() *
                                  image.feature_channels());
}

// Poisoning with a pattern (not zeros) catches a kernel that clears its outputs before failing.
void poison(Outputs& outputs) {
  for (Image& image : outputs.images) image.write(pattern(element_count(image), 1000.0f));
  for (ConvolutionGradientState& state : outputs.states) {
    const std::vector<float> w = pattern(state.gradient_for_weights().size(), -500.0f);
    std::copy(w.begin(), w.end(), state.gradient_for_weights().begin());
    const std::vector<float> b = pattern(state.gradient_for_biases().size(), 300.0f);
    std::copy(b.begin(), b.end(), state.gradient_for_biases().begin());
  }
}

std::vector<std::vector<float>> snapshot(const Outputs& outputs) {
  std::vector<std::vector<float>> values;
  for (const Image& image : outputs.images) values.push_back(image.read());
  for (const ConvolutionGradientState& state : outputs.states) {
    const std::span<const float> w = state.gradient_for_weights();
    const std::span<const float> b = state.gradient_for_biases();
    values.emplace_back(w.begin(), w.end());
    values.emplace_back(b.begin(), b.end());
  }
  return values;
}

void expect_rejected(const std::function<void()>& call, const Expected& expected,
                     Outputs outputs = {}) {
  poison(outputs);
  const std::vector<std::vector<float>> before = snapshot(outputs);
  try {
    call();
    ADD_FAILURE() << "no exception; expected InvalidArgument for " << expected.parameter;
  } catch (const InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.parameter(), expected.parameter) << what;
    EXPECT_EQ(e.value(), expected.value) << what;
    EXPECT_FALSE(e.rule().empty()) << what;
    EXPECT_NE(what.find(": " + expected.parameter + " = " + expected.value + ": "),
              std::string::npos)
        << what;
    if (!expected.problem.empty()) {
      EXPECT_NE(what.find("[" + expected.problem + "]"), std::string::npos) << what;
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
  EXPECT_EQ(snapshot(outputs), before) << "an output was written before the throw";
  if (outputs.buffer != nullptr && outputs.buffer->status() == CommandBufferStatus::not_enqueued) {
    outputs.buffer->commit();
    outputs.buffer->wait();
    EXPECT_EQ(snapshot(outputs), before) << "the rejected call enqueued work";
  }
}

// A data source that does what it is told, including breaking the protocol, and validates
// nothing itself (MemoryConvolutionDataSource would refuse a bad descriptor first).
class RawDataSource : public ConvolutionDataSource {
 public:
  explicit RawDataSource(const ConvolutionDescriptor& descriptor)
      : descriptor_(descriptor), weights_(weight_storage(descriptor)) {}

  DataType data_type() const override { return DataType::float32; }
  const ConvolutionDescriptor& descriptor() const override { return descriptor_; }
  const void* weights() override { return null_weights ? nullptr : weights_.data(); }
  const float* bias_terms() override { return nullptr; }
  bool load() override {
    ++loads;
    return load_succeeds;
  }
  void purge() override { ++purges; }
  std::string label() const override { return "raw"; }

  ConvolutionDescriptor descriptor_;
  bool load_succeeds = true;
  bool null_weights = false;
  int loads = 0, purges = 0;

 private:
  // weight_count() of an invalid descriptor may overflow; such a source is never read.
  static std::size_t weight_storage(const ConvolutionDescriptor& descriptor) {
    try {
      descriptor.validate("RawDataSource");
    } catch (const InvalidArgument&) {
      return 0;
    }
    return static_cast<std::size_t>(descriptor.weight_count());
  }
  std::vector<float> weights_;
};

std::shared_ptr<MemoryConvolutionDataSource> memory_source(const ConvolutionDescriptor& d) {
  return std::make_shared<MemoryConvolutionDataSource>(
      d, pattern(static_cast<std::size_t>(d.weight_count()), -1.0f),
      pattern(static_cast<std::size_t>(d.output_feature_channels()), 0.5f), "layer");
}

// One trained-looking layer: 3x3, 4 -> 8 channels, two 5x6 images, forward already run.
class InvalidApi : public testing::Test {
 protected:
  InvalidApi()
      : descriptor_(3, 3, 4, 8),
        data_source_(memory_source(descriptor_)),
        convolution_(device_, data_source_),
        gradient_(device_, data_source_) {
    source_ =
        Image(device_, {.width = 6, .height = 5, .feature_channels = 4, .number_of_images = 2});
    source_.write(pattern(element_count(source_), -2.0f));
    CommandBuffer forward = queue_.command_buffer();
    const Image result = convolution_.encode(forward, source_, state_);
    forward.commit();
    forward.wait();
    incoming_ = Image(device_, result.descriptor());
    incoming_.write(pattern(element_count(incoming_), 0.125f));
    destination_ = Image(device_, source_.descriptor());
  }

  Outputs gradient_outputs() { return {{destination_}, {state_}, &buffer_}; }
  Image image(std::int64_t height, std::int64_t width, std::int64_t channels,
              std::int64_t count = 2, DataType type = DataType::float32) const {
    return Image(device_, {.width = width,
                           .height = height,
                           .feature_channels = channels,
                           .number_of_images = count,
                           .data_type = type});
  }
  void encode_gradient(const Image& dy, const Image& x, const ConvolutionGradientState& state,
                       const Image& dx) {
    gradient_.encode(buffer_, dy, x, state, dx);
  }

  Device device_ = Device::cpu();
  CommandQueue queue_{device_};
  CommandBuffer buffer_ = queue_.command_buffer();
  ConvolutionDescriptor descriptor_;
  std::shared_ptr<MemoryConvolutionDataSource> data_source_;
  Convolution convolution_;
  ConvolutionGradient gradient_;
  Image source_, incoming_, destination_;
  ConvolutionGradientState state_;
};

// --- Descriptors and data sources -------------------------------------------------------------

TEST_F(InvalidApi, DescriptorGroupsNotDividingInputChannels) {
  ConvolutionDescriptor d(3, 3, 6, 8);
  d.set_groups(4);
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.groups", "4", d.to_string()});
  expect_rejected([&] { memory_source(d); }, {"descriptor.groups", "4", d.to_string()});
}

TEST_F(InvalidApi, DescriptorGroupsNotDividingOutputChannels) {
  ConvolutionDescriptor d(3, 3, 4, 6);
  d.set_groups(4);
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.groups", "4", d.to_string()});
  expect_rejected([&] { Convolution(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.groups", "4", d.to_string()});
}

TEST_F(InvalidApi, DepthwiseDescriptorWithGroups) {
  // The multiplier already implies one group per channel; extra groups are contradictory.
  DepthwiseConvolutionDescriptor d(3, 3, 4, 8);
  d.set_groups(2);
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.groups", "2", d.to_string()});
}

TEST_F(InvalidApi, DepthwiseOutputsNotMultipleOfInputs) {
  DepthwiseConvolutionDescriptor d(3, 3, 4, 6);
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.output_feature_channels", "6", d.to_string()});
}

TEST_F(InvalidApi, DescriptorKernelSizeBelowOne) {
  ConvolutionDescriptor d(0, 3, 4, 8);
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.kernel_width", "0", d.to_string()});
  d = ConvolutionDescriptor(3, -1, 4, 8);
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.kernel_height", "-1", d.to_string()});
}

TEST_F(InvalidApi, DescriptorChannelsBelowOne) {
  ConvolutionDescriptor d(3, 3, 0, 8);
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.input_feature_channels", "0", d.to_string()});
  DepthwiseConvolutionDescriptor depthwise(3, 3, 0, 8);  // would divide by zero unchecked
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(depthwise)); },
                  {"descriptor.input_feature_channels", "0", depthwise.to_string()});
}

TEST_F(InvalidApi, DescriptorStrideBelowOne) {
  ConvolutionDescriptor d = descriptor_;
  d.set_stride_in_pixels_x(0);
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.stride_in_pixels_x", "0", d.to_string()});
  d = descriptor_;
  d.set_stride_in_pixels_y(-3);
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.stride_in_pixels_y", "-3", d.to_string()});
}

TEST_F(InvalidApi, DescriptorDilationBelowOne) {
  ConvolutionDescriptor d = descriptor_;
  d.set_dilation_rate_y(-1);
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.dilation_rate_y", "-1", d.to_string()});
}

TEST_F(InvalidApi, DescriptorGroupsBelowOne) {
  ConvolutionDescriptor d = descriptor_;
  d.set_groups(0);  // would divide by zero in weight_count() unchecked
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.groups", "0", d.to_string()});
}

TEST_F(InvalidApi, DescriptorSizeTooLarge) {
  // Every field stays below 2^31 so that no product of two of them can overflow.
  ConvolutionDescriptor d(std::int64_t{1} << 31, 3, 4, 8);
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.kernel_width", "2147483648", d.to_string()});
  d = ConvolutionDescriptor(1 << 16, 3, 4, 8);
  d.set_dilation_rate_x(1 << 16);  // dilated width (2^16 - 1) * 2^16 + 1 >= 2^31
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.dilation_rate_x", "65536", d.to_string()});
  d = ConvolutionDescriptor(1 << 30, 1 << 30, 4, 8);  // 8 * 2^30 * 2^30 * 4 weights
  expect_rejected([&] { ConvolutionGradient(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.output_feature_channels", "8", d.to_string()});
}

TEST_F(InvalidApi, SubPixelDescriptorHasNoGradient) {
  SubPixelConvolutionDescriptor d(3, 3, 4, 8, 2);
  auto source = std::make_shared<RawDataSource>(d);
  expect_rejected([&] { ConvolutionGradient(device_, source); },
                  {"descriptor.sub_pixel_scale_factor", "2", d.to_string()});
  EXPECT_EQ(source->loads, source->purges);
}

TEST_F(InvalidApi, SubPixelForwardIsUnsupported) {
  // A valid model this build cannot run: Unsupported, not InvalidArgument.
  SubPixelConvolutionDescriptor d(3, 3, 4, 8, 2);
  EXPECT_THROW(Convolution(device_, std::make_shared<RawDataSource>(d)), Unsupported);
}

TEST_F(InvalidApi, SubPixelScaleBelowOne) {
  SubPixelConvolutionDescriptor d(3, 3, 4, 8, 0);
  expect_rejected([&] { Convolution(device_, std::make_shared<RawDataSource>(d)); },
                  {"descriptor.sub_pixel_scale_factor", "0", d.to_string()});
}

TEST_F(InvalidApi, NullDataSource) {
  expect_rejected([&] { ConvolutionGradient(device_, nullptr); }, {"data_source", "null"});
  expect_rejected([&] { Convolution(device_, nullptr); }, {"data_source", "null"});
}

TEST_F(InvalidApi, DataSourceLoadFails) {
  auto source = std::make_shared<RawDataSource>(descriptor_);
  source->load_succeeds = false;
  expect_rejected([&] { ConvolutionGradient(device_, source); },
                  {"data_source.load()", "false", descriptor_.to_string()});
}

TEST_F(InvalidApi, DataSourceReturnsNullWeights) {
  auto source = std::make_shared<RawDataSource>(descriptor_);
  source->null_weights = true;
  expect_rejected([&] { ConvolutionGradient(device_, source); },
                  {"data_source.weights()", "null", descriptor_.to_string()});
  EXPECT_EQ(source->loads, 1);
  EXPECT_EQ(source->purges, 1) << "a failed read must still balance load() with purge()";
}

TEST_F(InvalidApi, DataSourceDescriptorChangedBeforeReload) {
  auto source = std::make_shared<RawDataSource>(descriptor_);
  ConvolutionGradient gradient(device_, source);
  const SharedKernelWeights before = gradient.kernel_weights();
  source->descriptor_.set_stride_in_pixels_y(2);
  expect_rejected([&] { gradient.reload_weights_and_biases_from_data_source(); },
                  {"data_source.descriptor", source->descriptor_.to_string()});
  EXPECT_EQ(gradient.kernel_weights(), before);
}

TEST_F(InvalidApi, MemoryDataSourceWrongWeightCount) {
  expect_rejected([&] { MemoryConvolutionDataSource(descriptor_, std::vector<float>(287)); },
                  {"weights.size()", "287", descriptor_.to_string()});
  expect_rejected(
      [&] {
        MemoryConvolutionDataSource(descriptor_, std::vector<float>(288), {1.0f, 2.0f});
      },
      {"biases.size()", "2", descriptor_.to_string()});
  expect_rejected(
      [&] { data_source_->set_weights_and_biases(std::vector<float>(12), std::vector<float>(8)); },
      {"weights.size()", "12"});
  const std::vector<float> kept = data_source_->weight_values();
  expect_rejected(
      [&] { data_source_->set_weights_and_biases(std::vector<float>(288), std::vector<float>(7)); },
      {"biases.size()", "7"});
  EXPECT_EQ(data_source_->weight_values(), kept) << "weights replaced before the throw";
}

TEST_F(InvalidApi, WeightsStateWrongSizes) {
  expect_rejected(
      [&] {
        ConvolutionWeightsAndBiasesState(device_, descriptor_, std::vector<float>(10),
                                         std::vector<float>(8));
      },
      {"weights.size()", "10", descriptor_.to_string()});
  expect_rejected(
      [&] {
        ConvolutionWeightsAndBiasesState(device_, descriptor_, std::vector<float>(288),
                                         std::vector<float>(7));
      },
      {"biases.size()", "7", descriptor_.to_string()});
}

TEST_F(InvalidApi, WeightsStateWriteWrongSizes) {
  // 3x3 4->8 with bias: 288 weights, 8 biases.
  ConvolutionWeightsAndBiasesState state(device_, descriptor_, pattern(288, 1.0f),
                                         pattern(8, 2.0f));
  expect_rejected([&] { state.write_weights(pattern(287, 0.0f)); },
                  {"weights.size()", "287", descriptor_.to_string()});
  expect_rejected([&] { state.write_biases(pattern(9, 0.0f)); },
                  {"biases.size()", "9", descriptor_.to_string()});
  ConvolutionDescriptor no_bias = descriptor_;
  no_bias.set_bias_enabled(false);
  ConvolutionWeightsAndBiasesState bare(device_, no_bias);
  expect_rejected([&] { bare.write_biases(pattern(8, 0.0f)); },
                  {"biases.size()", "8", no_bias.to_string()});
  bare.write_biases({});  // no biases is the one size a layer without bias takes
  EXPECT_EQ(state.read_weights(), pattern(288, 1.0f));
  EXPECT_EQ(state.read_biases(), pattern(8, 2.0f));
}

// Adam's checkpoints hold the maximum-velocity vectors exactly when AMSGrad is on; a call that
// passes them to a plain Adam, or omits them for AMSGrad, writes no file and reads none.
TEST_F(InvalidApi, AdamStateAmsgradMismatch) {
  namespace fs = std::filesystem;
  const std::string path =
      (fs::temp_directory_path() /
       ("convgrad_amsgrad_" + std::to_string(testing::UnitTest::GetInstance()->random_seed())))
          .string();
  fs::remove(path);
  Adam plain(device_, 0.01f);
  Adam ams(device_, 0.01f);
  ams.set_amsgrad(true);
  OptimizerStateVectors m(device_, descriptor_), v(device_, descriptor_),
      vmax(device_, descriptor_);
  expect_rejected([&] { plain.save_state(path, m, v, &vmax); }, {"amsgrad", "false"});
  expect_rejected([&] { ams.save_state(path, m, v); }, {"amsgrad", "true"});
  EXPECT_FALSE(fs::exists(path));
  m.write_weights(pattern(288, 3.0f));
  plain.save_state(path, m, v);
  ASSERT_TRUE(fs::exists(path));
  OptimizerStateVectors m2(device_, descriptor_), v2(device_, descriptor_),
      vmax2(device_, descriptor_);
  expect_rejected([&] { plain.load_state(path, m2, v2, &vmax2); }, {"amsgrad", "false"});
  expect_rejected([&] { ams.load_state(path, m2, v2); }, {"amsgrad", "true"});
  EXPECT_EQ(m2.read_weights(), std::vector<float>(288, 0.0f));
  EXPECT_EQ(ams.time_step(), 0);
  fs::remove(path);
}

// Every vector of one checkpoint belongs to one layer: the first vector's descriptor is the
// layer's, and a later vector of another shape is named.
TEST_F(InvalidApi, OptimizerStateVectorsOfAnotherDescriptor) {
  namespace fs = std::filesystem;
  const std::string path =
      (fs::temp_directory_path() /
       ("convgrad_vectors_" + std::to_string(testing::UnitTest::GetInstance()->random_seed())))
          .string();
  fs::remove(path);
  const ConvolutionDescriptor other(3, 3, 4, 16);
  OptimizerStateVectors m(device_, descriptor_), v(device_, other);
  expect_rejected([&] { Adam(device_, 0.01f).save_state(path, m, v); },
                  {"velocity", other.to_string()});
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(InvalidApi, ReloadWithWeightsStateOfAnotherDescriptor) {
  ConvolutionDescriptor other(3, 3, 4, 16);
  const ConvolutionWeightsAndBiasesState weights(device_, other);
  const SharedKernelWeights before = gradient_.kernel_weights();
  expect_rejected([&] { gradient_.reload_weights_and_biases(buffer_, weights); },
                  {"state.descriptor", other.to_string()}, gradient_outputs());
  EXPECT_EQ(gradient_.kernel_weights(), before);
  const SharedKernelWeights forward_before = convolution_.kernel_weights();
  CommandBuffer buffer = queue_.command_buffer();
  expect_rejected([&] { convolution_.reload_weights_and_biases(buffer, weights); },
                  {"state.descriptor", other.to_string()}, {{}, {}, &buffer});
  EXPECT_EQ(convolution_.kernel_weights(), forward_before);
}

// --- Kernel settings --------------------------------------------------------------------------

TEST_F(InvalidApi, GradientOptionInvalid) {
  gradient_.set_gradient_option(GradientOption::gradient_with_data);
  expect_rejected([&] { gradient_.set_gradient_option(static_cast<GradientOption>(0)); },
                  {"gradient_option", "0"});
  expect_rejected([&] { gradient_.set_gradient_option(static_cast<GradientOption>(4)); },
                  {"gradient_option", "4"});
  EXPECT_EQ(gradient_.gradient_option(), GradientOption::gradient_with_data);
}

TEST_F(InvalidApi, PrimaryOffsetWithXOrY) {
  // The incoming gradient must be the whole forward result (MPS pitfall: padding leaks into dW).
  expect_rejected([&] { gradient_.set_primary_offset({1, 0, 0}); }, {"primary_offset", "1,0"});
  expect_rejected([&] { gradient_.set_primary_offset({0, -2, 0}); }, {"primary_offset", "0,-2"});
  EXPECT_EQ(gradient_.primary_offset(), (Offset{0, 0, 0}));
}

TEST_F(InvalidApi, NegativeZOffsets) {
  expect_rejected([&] { gradient_.set_primary_offset({0, 0, -1}); }, {"primary_offset.z", "-1"});
  expect_rejected(
      [&] {
        gradient_.set_secondary_offset({-1, -1, -3});
      },
      {"secondary_offset.z", "-3"});
}

// --- Images -----------------------------------------------------------------------------------

TEST_F(InvalidApi, ImageSizeBelowOne) {
  expect_rejected([&] { image(5, 0, 4); }, {"width", "0"});
  expect_rejected([&] { image(-5, 6, 4); }, {"height", "-5"});
  expect_rejected([&] { image(5, 6, 0); }, {"feature_channels", "0"});
  expect_rejected([&] { image(5, 6, 4, 0); }, {"number_of_images", "0"});
}

TEST_F(InvalidApi, ImageElementCountOverflows) {
  const std::int64_t big = std::int64_t{1} << 20;
  expect_rejected([&] { image(big, big, big, big); },
                  {"number_of_images*height*width*channels", "1152921504606846976 * 1048576"});
  // 2^62 elements fit in int64, their bytes do not.
  expect_rejected([&] { image(std::int64_t{1} << 31, 1, 1, std::int64_t{1} << 31); },
                  {"bytes", "4611686018427387904 * 4"});
}

TEST_F(InvalidApi, EmptyImageHasNoDevice) {
  expect_rejected([&] { (void)Image().device(); }, {"image", "empty"});
}

TEST_F(InvalidApi, ImageChannelWindowOutOfRange) {
  expect_rejected([&] { source_.channels(4, 1); }, {"first", "4"});
  expect_rejected([&] { source_.channels(-1, 1); }, {"first", "-1"});
  expect_rejected([&] { source_.channels(3, 2); }, {"count", "2"});
}

TEST_F(InvalidApi, ImageBatchWindowOutOfRange) {
  expect_rejected([&] { source_.images(2, 1); }, {"first", "2"});
  expect_rejected([&] { source_.images(1, 0); }, {"count", "0"});
}

TEST_F(InvalidApi, ImageWriteWrongCount) {
  Outputs outputs{{destination_}, {}, nullptr};
  expect_rejected([&] { destination_.write(std::vector<float>(10)); }, {"values.size()", "10"},
                  outputs);
}

// --- Command buffers --------------------------------------------------------------------------

TEST_F(InvalidApi, WaitBeforeCommit) {
  encode_gradient(incoming_, source_, state_, destination_);
  expect_rejected([&] { buffer_.wait(); }, {"status", "not committed"});
  EXPECT_EQ(buffer_.status(), CommandBufferStatus::not_enqueued);
}

TEST_F(InvalidApi, CommitTwice) {
  buffer_.commit();
  expect_rejected([&] { buffer_.commit(); }, {"status", "committed"});
  buffer_.wait();
}

TEST_F(InvalidApi, EncodeAfterCommit) {
  buffer_.commit();
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, destination_); },
                  {"status", "committed"}, gradient_outputs());
  buffer_.wait();
  ConvolutionGradientState forward_state = state_;
  Image y(device_, incoming_.descriptor());
  Outputs outputs{{y}, {forward_state}, nullptr};
  expect_rejected([&] { convolution_.encode(buffer_, source_, y, forward_state); },
                  {"status", "committed"}, outputs);
  EXPECT_EQ(forward_state.gradient_for_weights().data(), state_.gradient_for_weights().data())
      << "the failed encode replaced the state";
}

// --- Gradient encodes -------------------------------------------------------------------------

TEST_F(InvalidApi, EmptyGradientState) {
  const ConvolutionGradientState empty;
  expect_rejected([&] { encode_gradient(incoming_, source_, empty, destination_); },
                  {"gradient_state", "empty"}, gradient_outputs());
  expect_rejected([&] { (void)empty.gradient_for_weights(); }, {"state", "empty"});
  expect_rejected([&] { (void)empty.descriptor(); }, {"state", "empty"});
}

TEST_F(InvalidApi, GradientStateFromAnotherConvolution) {
  // A stride-2 layer of the same channels: the state's geometry is not this kernel's.
  ConvolutionDescriptor other = descriptor_;
  other.set_stride_in_pixels_x(2);
  other.set_stride_in_pixels_y(2);
  Convolution strided(device_, memory_source(other));
  CommandBuffer forward = queue_.command_buffer();
  ConvolutionGradientState foreign;
  const Image y = strided.encode(forward, source_, foreign);
  forward.commit();
  forward.wait();
  Image dy(device_, y.descriptor());
  Outputs outputs{{destination_}, {foreign, state_}, &buffer_};
  expect_rejected([&] { encode_gradient(dy, source_, foreign, destination_); },
                  {"gradient_state", "from a " + other.to_string() + " convolution"}, outputs);

  // Same shape but no bias: the kernel would add into a bias gradient the state does not have.
  ConvolutionDescriptor no_bias = descriptor_;
  no_bias.set_bias_enabled(false);
  Convolution unbiased(device_, memory_source(no_bias));
  CommandBuffer forward2 = queue_.command_buffer();
  ConvolutionGradientState foreign2;
  unbiased.encode(forward2, source_, foreign2);
  forward2.commit();
  forward2.wait();
  CommandBuffer buffer = queue_.command_buffer();
  expect_rejected([&] { gradient_.encode(buffer, incoming_, source_, foreign2, destination_); },
                  {"gradient_state", "from a " + no_bias.to_string() + " convolution"},
                  {{destination_}, {foreign2}, &buffer});
}

TEST_F(InvalidApi, SourceImageChannelsNotMatchingKernel) {
  const Image x = image(5, 6, 5);
  expect_rejected([&] { encode_gradient(incoming_, x, state_, destination_); },
                  {"source_image.feature_channels", "5"}, gradient_outputs());
}

TEST_F(InvalidApi, SourceGradientChannelsNotMatchingKernel) {
  const Image dy = image(5, 6, 7);
  expect_rejected([&] { encode_gradient(dy, source_, state_, destination_); },
                  {"source_gradient.feature_channels", "7"}, gradient_outputs());
}

TEST_F(InvalidApi, DestinationTooFewChannels) {
  Image dx = image(5, 6, 3);
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, dx); },
                  {"destination_gradient.feature_channels", "3"}, {{dx}, {state_}, &buffer_});
  gradient_.set_destination_feature_channel_offset(2);  // 2 + 4 channels do not fit in 4
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, destination_); },
                  {"destination_gradient.feature_channels", "4"}, gradient_outputs());
}

TEST_F(InvalidApi, SourceGradientWrongSizeForState) {
  const Image dy = image(4, 6, 8);
  expect_rejected([&] { encode_gradient(dy, source_, state_, destination_); },
                  {"source_gradient.size", "4x6"}, gradient_outputs());
}

TEST_F(InvalidApi, SourceImageWrongSizeForState) {
  const Image x = image(5, 7, 4);
  expect_rejected([&] { encode_gradient(incoming_, x, state_, destination_); },
                  {"source_image.size", "5x7"}, gradient_outputs());
}

TEST_F(InvalidApi, DestinationWrongSizeForState) {
  Image dx = image(6, 6, 4);
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, dx); },
                  {"destination_gradient.size", "6x6"}, {{dx}, {state_}, &buffer_});
}

TEST_F(InvalidApi, DestinationDataTypeNotSourceDataType) {
  Image dx = image(5, 6, 4, 2, DataType::float16);
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, dx); },
                  {"destination_gradient.data_type", "f16"}, {{dx}, {state_}, &buffer_});
}

TEST_F(InvalidApi, DestinationAliasesSource) {
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, source_); },
                  {"destination_gradient", "aliases a source"}, {{source_}, {state_}, &buffer_});
}

TEST_F(InvalidApi, EmptySourceImage) {
  expect_rejected([&] { encode_gradient(Image(), source_, state_, destination_); },
                  {"source_gradient", "empty"}, gradient_outputs());
  expect_rejected([&] { encode_gradient(incoming_, Image(), state_, destination_); },
                  {"source_image", "empty"}, gradient_outputs());
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, Image()); },
                  {"destination_gradient", "empty"}, gradient_outputs());
}

TEST_F(InvalidApi, PrimaryZOffsetOutOfRange) {
  gradient_.set_primary_offset({0, 0, 1});  // 2 destination images need dy images 1 and 2
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, destination_); },
                  {"primary_offset.z", "1"}, gradient_outputs());
}

TEST_F(InvalidApi, SecondaryZOffsetOutOfRange) {
  gradient_.destination_image_descriptor(incoming_, source_, state_);  // automatic x and y
  Offset secondary = gradient_.secondary_offset();
  secondary.z = 2;
  gradient_.set_secondary_offset(secondary);
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, destination_); },
                  {"secondary_offset.z", "2"}, gradient_outputs());
}

TEST_F(InvalidApi, ChannelOffsetOutOfRange) {
  gradient_.set_primary_source_feature_channel_offset(8);
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, destination_); },
                  {"primary_source_feature_channel_offset", "8"}, gradient_outputs());
  gradient_.set_primary_source_feature_channel_offset(0);
  gradient_.set_secondary_source_feature_channel_offset(-1);
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, destination_); },
                  {"secondary_source_feature_channel_offset", "-1"}, gradient_outputs());
  gradient_.set_secondary_source_feature_channel_offset(0);
  gradient_.set_destination_feature_channel_offset(-4);
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, destination_); },
                  {"destination_feature_channel_offset", "-4"}, gradient_outputs());
  // The encode that sizes its own result must not turn the offset into an image-size error.
  expect_rejected([&] { gradient_.encode(buffer_, incoming_, source_, state_); },
                  {"destination_feature_channel_offset", "-4"}, gradient_outputs());
}

TEST_F(InvalidApi, ChannelMaxCountBelowOne) {
  gradient_.set_primary_source_feature_channel_max_count(-1);
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, destination_); },
                  {"primary_source_feature_channel_max_count", "-1"}, gradient_outputs());
  gradient_.set_primary_source_feature_channel_max_count(8);
  gradient_.set_secondary_source_feature_channel_max_count(0);
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, destination_); },
                  {"secondary_source_feature_channel_max_count", "0"}, gradient_outputs());
}

TEST_F(InvalidApi, ChannelWindowTooNarrow) {
  // A max count of 3 leaves 3 of the 4 channels the kernel reads.
  gradient_.set_secondary_source_feature_channel_max_count(3);
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, destination_); },
                  {"source_image.feature_channels", "4"}, gradient_outputs());
}

TEST_F(InvalidApi, KernelOffsetPutsWindowsInPadding) {
  // A manual kernel offset far off the image becomes a left pad beyond the kernel extent in the
  // data-gradient problem: the problem-level rule fires and the message carries that problem.
  gradient_.set_kernel_offset_x(50);
  ConvProblem dgrad_problem = make_problem(2, 5, 6, 4, 8, 3, 3, 1, 1);
  dgrad_problem.pad_left = 51;    // (kernel >> 1) + 50
  dgrad_problem.pad_right = -49;  // what keeps the 6 output columns
  dgrad_problem.with_bias = false;
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, destination_); },
                  {"pad_left", "51", to_string(dgrad_problem)}, gradient_outputs());
  // Offsets beyond +-2^30 cannot become a ConvProblem's int32 pads at all.
  gradient_.set_kernel_offset_x(std::int64_t{1} << 40);
  expect_rejected([&] { encode_gradient(incoming_, source_, state_, destination_); },
                  {"pad_left", "1099511627777"}, gradient_outputs());
}

TEST_F(InvalidApi, BatchSizesDiffer) {
  const ImageBatch dys{incoming_, incoming_};
  const ImageBatch xs{source_};
  Image dx0(device_, source_.descriptor()), dx1(device_, source_.descriptor());
  const ImageBatch dxs{dx0, dx1};
  Outputs outputs{{dx0, dx1}, {state_}, &buffer_};
  expect_rejected([&] { gradient_.encode_batch(buffer_, dys, xs, state_, dxs); },
                  {"source_images.size()", "1"}, outputs);
  expect_rejected(
      [&] {
        gradient_.encode_batch(buffer_, dys, ImageBatch{source_, source_}, state_, ImageBatch{dx0});
      },
      {"destination_gradients.size()", "1"}, outputs);
  expect_rejected([&] { gradient_.encode_batch(buffer_, dys, xs, state_); },
                  {"source_images.size()", "1"}, outputs);
  expect_rejected([&] { gradient_.encode_batch(buffer_, {}, {}, state_, {}); },
                  {"source_gradients.size()", "0"}, outputs);
}

TEST_F(InvalidApi, BatchWithOneBadEntryEncodesNothing) {
  Image dx0(device_, source_.descriptor());
  Image dx1 = image(6, 6, 4);  // wrong size for the state
  Outputs outputs{{dx0, dx1}, {state_}, &buffer_};
  expect_rejected(
      [&] {
        gradient_.encode_batch(buffer_, {incoming_, incoming_}, {source_, source_}, state_,
                               {dx0, dx1});
      },
      {"destination_gradient.size", "6x6"}, outputs);
}

// --- Forward encodes --------------------------------------------------------------------------

TEST_F(InvalidApi, ForwardSourceChannelsNotMatching) {
  Image y(device_, incoming_.descriptor());
  ConvolutionGradientState state = state_;
  expect_rejected([&] { convolution_.encode(buffer_, image(5, 6, 3), y, state); },
                  {"source_image.feature_channels", "3"}, {{y}, {state}, &buffer_});
}

TEST_F(InvalidApi, ForwardEmptyImage) {
  Image y(device_, incoming_.descriptor());
  expect_rejected([&] { convolution_.encode(buffer_, Image(), y); }, {"source_image", "empty"},
                  {{y}, {}, &buffer_});
  expect_rejected([&] { convolution_.encode(buffer_, source_, Image()); },
                  {"destination_image", "empty"}, {{}, {}, &buffer_});
  ConvolutionGradientState state = state_;
  expect_rejected(
      [&] {
        convolution_.encode_batch(buffer_, {source_, Image()}, state);
      },
      {"sources[1]", "empty"}, {{}, {state}, &buffer_});
}

TEST_F(InvalidApi, ForwardSourceChannelOffsetOutOfRange) {
  Image y(device_, incoming_.descriptor());
  convolution_.set_source_feature_channel_offset(4);
  expect_rejected([&] { convolution_.encode(buffer_, source_, y); },
                  {"source_feature_channel_offset", "4"}, {{y}, {}, &buffer_});
  convolution_.set_source_feature_channel_offset(0);
  convolution_.set_destination_feature_channel_offset(-1);
  expect_rejected([&] { convolution_.encode(buffer_, source_, y); },
                  {"destination_feature_channel_offset", "-1"}, {{y}, {}, &buffer_});
  expect_rejected([&] { convolution_.encode(buffer_, source_); },
                  {"destination_feature_channel_offset", "-1"}, {{}, {}, &buffer_});
}

TEST_F(InvalidApi, ForwardDestinationTooFewChannels) {
  Image y = image(5, 6, 7);
  expect_rejected([&] { convolution_.encode(buffer_, source_, y); },
                  {"destination_image.feature_channels", "7"}, {{y}, {}, &buffer_});
}

TEST_F(InvalidApi, ForwardZOffsetOutOfRange) {
  Image y(device_, incoming_.descriptor());
  convolution_.set_offset({1, 1, 1});  // two destination images from source images 1 and 2
  expect_rejected([&] { convolution_.encode(buffer_, source_, y); }, {"offset.z", "1"},
                  {{y}, {}, &buffer_});
  // The encode that sizes its own result takes the images from offset.z to the end.
  convolution_.set_offset({1, 1, 2});
  ConvolutionGradientState state = state_;
  expect_rejected([&] { convolution_.encode(buffer_, source_, state); }, {"offset.z", "2"},
                  {{}, {state}, &buffer_});
  EXPECT_EQ(state.gradient_for_weights().data(), state_.gradient_for_weights().data());
}

TEST_F(InvalidApi, ForwardOffsetOutsideSource) {
  Image y(device_, incoming_.descriptor());
  convolution_.set_offset({1, -2, 0});  // first window's top row at -3: entirely padding
  expect_rejected([&] { convolution_.encode(buffer_, source_, y); }, {"offset.y", "-2"},
                  {{y}, {}, &buffer_});
  convolution_.set_offset({7, 1, 0});  // first window's left column at 6: past the source
  expect_rejected([&] { convolution_.encode(buffer_, source_, y); }, {"offset.x", "7"},
                  {{y}, {}, &buffer_});
}

TEST_F(InvalidApi, ForwardValidPaddingKernelLargerThanSource) {
  ConvolutionDescriptor d(5, 5, 4, 8);
  Convolution wide(device_, memory_source(d));
  wide.set_padding(Padding::valid_only());
  expect_rejected([&] { wide.encode(buffer_, image(3, 6, 4)); }, {"height", "3"},
                  {{}, {}, &buffer_});
}

TEST_F(InvalidApi, ForwardExplicitPaddingNotBelowKernelExtent) {
  convolution_.set_padding(Padding::explicit_pads(3, 0, 0, 0));
  expect_rejected([&] { convolution_.encode(buffer_, source_); }, {"padding.top", "3"},
                  {{}, {}, &buffer_});
  convolution_.set_padding(Padding::explicit_pads(0, 0, 0, 5));
  expect_rejected([&] { convolution_.encode(buffer_, source_); }, {"padding.right", "5"},
                  {{}, {}, &buffer_});
  convolution_.set_padding(Padding::explicit_pads(0, 4, 0, 0));
  expect_rejected([&] { convolution_.encode(buffer_, source_); }, {"padding.left", "4"},
                  {{}, {}, &buffer_});
  // Even where a stride would let the windows stop short of it, as ConvProblem demands.
  ConvolutionDescriptor strided = descriptor_;
  strided.set_stride_in_pixels_y(2);
  Convolution convolution(device_, memory_source(strided));
  convolution.set_padding(Padding::explicit_pads(0, 0, 3, 0));
  expect_rejected([&] { convolution.encode(buffer_, image(6, 6, 4)); }, {"padding.bottom", "3"},
                  {{}, {}, &buffer_});
}

TEST_F(InvalidApi, ForwardExplicitPaddingEmptyOutput) {
  convolution_.set_padding(Padding::explicit_pads(-3, 0, 0, 0));  // 5 - 3 rows < 3 taps
  expect_rejected([&] { convolution_.encode(buffer_, source_); }, {"height", "5"},
                  {{}, {}, &buffer_});
}

TEST_F(InvalidApi, ForwardReservedPaddingMethod) {
  convolution_.set_padding(Padding(static_cast<PaddingMethod>(3)));  // alignment 3 is reserved
  expect_rejected([&] { convolution_.encode(buffer_, source_); }, {"method", "3"},
                  {{}, {}, &buffer_});
}

TEST_F(InvalidApi, ForwardStateKeptWhenEncodeFails) {
  // The state argument is an output too: a failed encode must not replace it.
  ConvolutionGradientState state = state_;
  Image y = image(5, 6, 7);
  expect_rejected([&] { convolution_.encode(buffer_, source_, y, state); },
                  {"destination_image.feature_channels", "7"}, {{y}, {state}, &buffer_});
  EXPECT_EQ(state.gradient_for_weights().data(), state_.gradient_for_weights().data());
}

TEST_F(InvalidApi, ForwardBatchImagesOfDifferentSizes) {
  ConvolutionGradientState state = state_;
  expect_rejected(
      [&] {
        convolution_.encode_batch(buffer_, {source_, image(5, 7, 4)}, state);
      },
      {"sources[1].size", "5x7"}, {{}, {state}, &buffer_});
  EXPECT_EQ(state.gradient_for_weights().data(), state_.gradient_for_weights().data());
}

TEST_F(InvalidApi, ForwardBatchEmpty) {
  ConvolutionGradientState state = state_;
  expect_rejected([&] { convolution_.encode_batch(buffer_, {}, state); }, {"sources.size()", "0"},
                  {{}, {state}, &buffer_});
}

TEST_F(InvalidApi, ForwardBatchWithOneBadEntryEncodesNothing) {
  // The second image has the right size but the wrong channels; the first must not be encoded.
  ConvolutionGradientState state = state_;
  const ImageBatch sources{source_, image(5, 6, 5)};
  expect_rejected([&] { convolution_.encode_batch(buffer_, sources, state); },
                  {"source_image.feature_channels", "5"}, {{}, {state}, &buffer_});
  EXPECT_EQ(state.gradient_for_weights().data(), state_.gradient_for_weights().data());
}

}  // namespace
}  // namespace convgrad
