// SPDX-License-Identifier: Apache-2.0
// The objects around the gradient kernel: devices, command queues and buffers, images,
// descriptors, data sources, weight and gradient states, and the forward convolution.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "api/api_support.hpp"

namespace convgrad {
namespace {

using apitest::close;

// ---------------------------------------------------------------------------------------------
// Device

TEST(DeviceTest, CpuAndReferenceDevices) {
  const Device cpu = Device::cpu();
  EXPECT_EQ(cpu.kind(), DeviceKind::cpu);
  EXPECT_EQ(cpu.backend(), "cpu");
  EXPECT_EQ(cpu.ordinal(), 0);
  EXPECT_NE(cpu.name().find("cpu"), std::string::npos);
  const Device ref = Device::reference();
  EXPECT_EQ(ref.kind(), DeviceKind::cpu);
  EXPECT_EQ(ref.backend(), "ref");
  EXPECT_EQ(cpu, Device::cpu());
  EXPECT_FALSE(cpu == ref);
  EXPECT_EQ(cpu.new_command_queue().device(), cpu);
  EXPECT_EQ(ref.new_command_queue().command_buffer().device(), ref);
}

TEST(DeviceTest, CudaIsAvailableOrUnsupported) {
  try {
    const Device cuda = Device::cuda();
    EXPECT_EQ(cuda.kind(), DeviceKind::cuda);
    EXPECT_EQ(cuda.backend(), "cuda");
  } catch (const Unsupported&) {
    // A build or machine without CUDA says so with this type, not another.
  }
}

TEST(DeviceTest, ReferenceDeviceRunsTheSameGradient) {
  // The same layer on both CPU devices: the backends differ, the results must not.
  auto rng = test::make_rng(400);
  ConvolutionDescriptor d(3, 3, 3, 4);
  d.set_stride_in_pixels_x(2);
  const apitest::Layer layer = apitest::make_layer(d, rng);
  std::vector<float> x_values, dy_values;
  const Device cpu = Device::cpu();
  const Image x_probe = apitest::random_image(cpu, 2, 7, 8, 3, DataType::float32, rng, &x_values);
  std::vector<std::vector<float>> dx, dw;
  for (const Device& device : {Device::cpu(), Device::reference()}) {
    Convolution convolution(device, layer.source);
    ConvolutionGradient gradient(device, layer.source);
    Image x(device, x_probe.descriptor());
    x.write(x_values);
    CommandQueue queue = device.new_command_queue();
    CommandBuffer buffer = queue.command_buffer();
    ConvolutionGradientState state;
    const Image y = convolution.encode(buffer, x, state);
    if (dy_values.empty()) {
      dy_values = apitest::random_values(rng, y.number_of_images() * y.height() * y.width() * 4);
    }
    buffer.commit();
    buffer.wait();
    Image dy(device, y.descriptor());
    dy.write(dy_values);
    CommandBuffer backward = queue.command_buffer();
    const Image result = gradient.encode(backward, dy, x, state);
    backward.commit();
    backward.wait();
    dx.push_back(result.read());
    auto w = std::as_const(state).gradient_for_weights();
    dw.emplace_back(w.begin(), w.end());
  }
  EXPECT_TRUE(close(dx[0], dx[1], 1e-5));
  EXPECT_TRUE(close(dw[0], dw[1], 1e-5));
}

// ---------------------------------------------------------------------------------------------
// CommandQueue and CommandBuffer

TEST(CommandBufferTest, EncodeCommitWait) {
  CommandQueue queue = Device::cpu().new_command_queue();
  CommandBuffer buffer = queue.command_buffer();
  EXPECT_EQ(buffer.status(), CommandBufferStatus::not_enqueued);
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) buffer.enqueue([&order, i] { order.push_back(i); });
  EXPECT_TRUE(order.empty());  // encoding runs nothing
  buffer.commit();
  EXPECT_NE(buffer.status(), CommandBufferStatus::not_enqueued);
  buffer.wait();
  EXPECT_EQ(buffer.status(), CommandBufferStatus::completed);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));  // encoding order within a buffer
  buffer.wait();  // waiting again on a completed buffer is fine
  EXPECT_EQ(buffer.status(), CommandBufferStatus::completed);
}

TEST(CommandBufferTest, WaitBeforeCommitThrows) {
  CommandQueue queue = Device::cpu().new_command_queue();
  CommandBuffer buffer = queue.command_buffer();
  buffer.enqueue([] {});
  EXPECT_THROW(buffer.wait(), InvalidArgument);
  buffer.commit();
  EXPECT_NO_THROW(buffer.wait());
}

TEST(CommandBufferTest, EnqueueOrCommitAfterCommitThrows) {
  CommandQueue queue = Device::cpu().new_command_queue();
  CommandBuffer buffer = queue.command_buffer();
  bool ran = false;
  buffer.enqueue([&ran] { ran = true; });
  buffer.commit();
  EXPECT_THROW(buffer.enqueue([] {}), InvalidArgument);
  EXPECT_THROW(buffer.commit(), InvalidArgument);
  buffer.wait();
  EXPECT_TRUE(ran);
  // A kernel's encode on a committed buffer fails the same way.
  auto rng = test::make_rng(401);
  const apitest::Layer layer = apitest::make_layer(ConvolutionDescriptor(3, 3, 1, 1), rng);
  Convolution convolution(Device::cpu(), layer.source);
  const Image x = apitest::random_image(Device::cpu(), 1, 4, 4, 1, DataType::float32, rng);
  EXPECT_THROW(convolution.encode(buffer, x), InvalidArgument);
}

TEST(CommandBufferTest, ErrorInWorkIsRethrownByWait) {
  CommandQueue queue = Device::cpu().new_command_queue();
  CommandBuffer failing = queue.command_buffer();
  bool after = false;
  failing.enqueue([] { throw DeviceError("simulated device failure"); });
  failing.commit();
  CommandBuffer next = queue.command_buffer();
  next.enqueue([&after] { after = true; });
  next.commit();
  EXPECT_THROW(failing.wait(), DeviceError);
  EXPECT_EQ(failing.status(), CommandBufferStatus::error);
  // A failed buffer does not stop the queue.
  next.wait();
  EXPECT_TRUE(after);
  EXPECT_EQ(next.status(), CommandBufferStatus::completed);
}

TEST(CommandBufferTest, StatusReportsErrorWithoutWait) {
  CommandQueue queue = Device::cpu().new_command_queue();
  CommandBuffer failing = queue.command_buffer();
  failing.enqueue([] { throw std::runtime_error("boom"); });
  failing.commit();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (failing.status() == CommandBufferStatus::committed &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(failing.status(), CommandBufferStatus::error);
  EXPECT_THROW(failing.wait(), std::runtime_error);
}

TEST(CommandBufferTest, BuffersRunInCommitOrderNotCreationOrder) {
  CommandQueue queue = Device::cpu().new_command_queue();
  std::mutex mutex;
  std::vector<char> order;
  auto record = [&](char name, int sleep_ms) {
    return [&, name, sleep_ms] {
      // The first committed buffer sleeps: without ordering, later ones would overtake it.
      std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
      const std::lock_guard lock(mutex);
      order.push_back(name);
    };
  };
  CommandBuffer a = queue.command_buffer();
  CommandBuffer b = queue.command_buffer();
  CommandBuffer c = queue.command_buffer();
  a.enqueue(record('a', 0));
  b.enqueue(record('b', 0));
  c.enqueue(record('c', 40));
  c.enqueue(record('C', 0));
  c.commit();
  a.commit();
  b.commit();
  b.wait();
  a.wait();
  c.wait();
  EXPECT_EQ(order, (std::vector<char>{'c', 'C', 'a', 'b'}));
}

// ---------------------------------------------------------------------------------------------
// Image

TEST(ImageTest, DescriptorDefaultsAndZeroFill) {
  const ImageDescriptor defaults;
  EXPECT_EQ(defaults.width, 1);
  EXPECT_EQ(defaults.height, 1);
  EXPECT_EQ(defaults.feature_channels, 1);
  EXPECT_EQ(defaults.number_of_images, 1);
  EXPECT_EQ(defaults.data_type, DataType::float32);
  EXPECT_FALSE(Image().valid());
  EXPECT_FALSE(static_cast<bool>(Image()));
  for (const DataType type : {DataType::float32, DataType::float16, DataType::bfloat16}) {
    const ImageDescriptor d{5, 3, 7, 2, type};
    const Image image(Device::cpu(), d);
    EXPECT_TRUE(image.valid());
    EXPECT_EQ(image.descriptor(), d);
    EXPECT_EQ(image.width(), 5);
    EXPECT_EQ(image.height(), 3);
    EXPECT_EQ(image.feature_channels(), 7);
    EXPECT_EQ(image.number_of_images(), 2);
    EXPECT_EQ(image.data_type(), type);
    EXPECT_EQ(image.device(), Device::cpu());
    const std::vector<std::byte> bytes = apitest::raw_bytes(image);
    EXPECT_EQ(bytes.size(), 5u * 3 * 7 * 2 * size_of(type));
    for (std::byte b : bytes) ASSERT_EQ(b, std::byte{0});
  }
}

TEST(ImageTest, WriteReadRoundTripPerType) {
  auto rng = test::make_rng(410);
  for (const DataType type : {DataType::float32, DataType::float16, DataType::bfloat16}) {
    SCOPED_TRACE(std::string(to_string(type)));
    Image image(Device::cpu(), ImageDescriptor{4, 3, 5, 2, type});
    const std::vector<float> values = apitest::random_values(rng, 2 * 3 * 4 * 5, -100.0f, 100.0f);
    image.write(values);
    const std::vector<float> back = image.read();
    const std::vector<float> expected = apitest::rounded(values, type);
    ASSERT_EQ(back.size(), values.size());
    EXPECT_EQ(apitest::bits_of(back), apitest::bits_of(expected));
    if (type != DataType::float32) {
      EXPECT_NE(back, values);  // the storage really is narrower
    }
    // Writing what was read changes nothing.
    image.write(back);
    EXPECT_EQ(apitest::bits_of(image.read()), apitest::bits_of(expected));
  }
}

TEST(ImageTest, ViewsShareStorage) {
  auto rng = test::make_rng(411);
  Image image(Device::cpu(), ImageDescriptor{3, 2, 6, 4, DataType::float32});
  std::vector<float> values = apitest::random_values(rng, 4 * 2 * 3 * 6);
  image.write(values);

  Image window = image.channels(2, 3);
  EXPECT_TRUE(window.shares_storage_with(image));
  EXPECT_EQ(window.feature_channels(), 3);
  EXPECT_EQ(window.number_of_images(), 4);
  const std::vector<float> read = window.read();
  for (std::int64_t pixel = 0; pixel < 4 * 2 * 3; ++pixel) {
    for (std::int64_t c = 0; c < 3; ++c) {
      ASSERT_EQ(read[static_cast<std::size_t>(pixel * 3 + c)],
                values[static_cast<std::size_t>(pixel * 6 + 2 + c)]);
    }
  }
  // Writing through a view changes the parent, and only the window.
  window.write(std::vector<float>(static_cast<std::size_t>(4 * 2 * 3 * 3), 9.0f));
  const std::vector<float> after = image.read();
  for (std::int64_t i = 0; i < 4 * 2 * 3 * 6; ++i) {
    const std::int64_t c = i % 6;
    const float expected = c >= 2 && c < 5 ? 9.0f : values[static_cast<std::size_t>(i)];
    ASSERT_EQ(after[static_cast<std::size_t>(i)], expected) << i;
  }

  Image batch = image.images(1, 2);
  EXPECT_TRUE(batch.shares_storage_with(image));
  EXPECT_EQ(batch.number_of_images(), 2);
  batch.write(std::vector<float>(static_cast<std::size_t>(2 * 2 * 3 * 6), -1.0f));
  const std::vector<float> last = image.read();
  for (std::int64_t i = 0; i < 4 * 2 * 3 * 6; ++i) {
    const std::int64_t n = i / (2 * 3 * 6);
    if (n == 1 || n == 2) {
      ASSERT_EQ(last[static_cast<std::size_t>(i)], -1.0f);
    } else {
      ASSERT_EQ(last[static_cast<std::size_t>(i)], after[static_cast<std::size_t>(i)]);
    }
  }
  // A view of a view: channel window of a batch slice.
  Image nested = image.images(3, 1).channels(5, 1);
  nested.write(std::vector<float>(6, 42.0f));
  const std::vector<float> final_values = image.read();
  EXPECT_EQ(final_values[static_cast<std::size_t>(3 * 36 + 5)], 42.0f);
  EXPECT_EQ(final_values[static_cast<std::size_t>(3 * 36 + 35)], 42.0f);
  EXPECT_EQ(final_values[static_cast<std::size_t>(3 * 36 + 4)], last[3 * 36 + 4]);

  const Image other(Device::cpu(), image.descriptor());
  EXPECT_FALSE(other.shares_storage_with(image));
  EXPECT_FALSE(Image().shares_storage_with(Image()));
}

TEST(ImageTest, BadSizesThrow) {
  const Device cpu = Device::cpu();
  EXPECT_THROW((void)Image(cpu, ImageDescriptor{0, 1, 1, 1}), InvalidArgument);
  EXPECT_THROW((void)Image(cpu, ImageDescriptor{1, -2, 1, 1}), InvalidArgument);
  EXPECT_THROW((void)Image(cpu, ImageDescriptor{1, 1, 0, 1}), InvalidArgument);
  EXPECT_THROW((void)Image(cpu, ImageDescriptor{1, 1, 1, 0}), InvalidArgument);
  EXPECT_THROW((void)Image(cpu, ImageDescriptor{1 << 30, 1 << 30, 1 << 30, 1 << 30}),
               InvalidArgument);
  Image image(cpu, ImageDescriptor{2, 2, 3, 1});
  EXPECT_THROW(image.write(std::vector<float>(11)), InvalidArgument);
  EXPECT_THROW(image.write(std::vector<float>(13)), InvalidArgument);
  EXPECT_THROW(image.channels(3, 1), InvalidArgument);
  EXPECT_THROW(image.channels(-1, 1), InvalidArgument);
  EXPECT_THROW(image.channels(1, 3), InvalidArgument);
  EXPECT_THROW(image.channels(0, 0), InvalidArgument);
  EXPECT_THROW(image.images(1, 1), InvalidArgument);
  EXPECT_THROW(image.images(0, 2), InvalidArgument);
  // The failed write left the zeros in place.
  for (float v : image.read()) EXPECT_EQ(v, 0.0f);
}

// ---------------------------------------------------------------------------------------------
// Descriptors

TEST(DescriptorTest, ConvolutionDescriptorDefaultsAreMps) {
  const ConvolutionDescriptor d;
  EXPECT_EQ(d.kernel_width(), 3);
  EXPECT_EQ(d.kernel_height(), 3);
  EXPECT_EQ(d.stride_in_pixels_x(), 1);
  EXPECT_EQ(d.stride_in_pixels_y(), 1);
  EXPECT_EQ(d.dilation_rate_x(), 1);
  EXPECT_EQ(d.dilation_rate_y(), 1);
  EXPECT_EQ(d.groups(), 1);
  EXPECT_TRUE(d.bias_enabled());
  EXPECT_EQ(d.kind(), ConvolutionKind::regular);
  EXPECT_EQ(d.channel_multiplier(), 0);
  EXPECT_EQ(d.sub_pixel_scale_factor(), 1);

  ConvolutionDescriptor e(5, 2, 6, 9);
  EXPECT_EQ(e.kernel_width(), 5);
  EXPECT_EQ(e.kernel_height(), 2);
  EXPECT_EQ(e.input_feature_channels(), 6);
  EXPECT_EQ(e.output_feature_channels(), 9);
  e.set_groups(3);
  e.set_dilation_rate_x(3);
  e.set_dilation_rate_y(2);
  EXPECT_EQ(e.weight_count(), 9 * 2 * 5 * 2);
  EXPECT_EQ(e.dilated_kernel_width(), 13);
  EXPECT_EQ(e.dilated_kernel_height(), 3);
  EXPECT_NO_THROW(e.validate("test"));
  EXPECT_NE(e.to_string().find("groups 3"), std::string::npos);
  e.set_groups(4);  // divides neither 6 nor 9
  EXPECT_THROW(e.validate("test"), InvalidArgument);
  e.set_groups(1);
  e.set_stride_in_pixels_x(0);
  try {
    e.validate("test");
    ADD_FAILURE() << "stride 0 accepted";
  } catch (const InvalidArgument& error) {
    EXPECT_EQ(error.parameter(), "descriptor.stride_in_pixels_x");
  }
}

TEST(DescriptorTest, Depthwise) {
  DepthwiseConvolutionDescriptor d(3, 3, 4, 8);
  EXPECT_EQ(d.kind(), ConvolutionKind::depthwise);
  EXPECT_EQ(d.groups(), 4);
  EXPECT_EQ(d.channel_multiplier(), 2);
  EXPECT_EQ(d.weight_count(), 8 * 3 * 3);
  EXPECT_NO_THROW(d.validate("test"));
  EXPECT_EQ(DepthwiseConvolutionDescriptor(3, 3, 5, 5).channel_multiplier(), 1);
  d.set_groups(2);  // a depthwise descriptor groups by channel already
  EXPECT_THROW(d.validate("test"), InvalidArgument);
  EXPECT_THROW((void)DepthwiseConvolutionDescriptor(3, 3, 4, 6).validate("test"), InvalidArgument);
}

TEST(DescriptorTest, SubPixelHasNoGradient) {
  const SubPixelConvolutionDescriptor d(3, 3, 4, 16, 2);
  EXPECT_EQ(d.kind(), ConvolutionKind::sub_pixel);
  EXPECT_EQ(d.sub_pixel_scale_factor(), 2);
  auto rng = test::make_rng(420);
  auto source = std::make_shared<MemoryConvolutionDataSource>(
      d, apitest::random_values(rng, d.weight_count()));
  try {
    ConvolutionGradient gradient(Device::cpu(), source);
    ADD_FAILURE() << "a sub-pixel gradient was created";
  } catch (const InvalidArgument& error) {
    EXPECT_EQ(error.parameter(), "descriptor.sub_pixel_scale_factor");
    EXPECT_NE(std::string(error.what()).find("descriptor.sub_pixel_scale_factor"),
              std::string::npos);
  }
  EXPECT_EQ(source->load_count(), source->purge_count());
  EXPECT_THROW((void)Convolution(Device::cpu(), source), Unsupported);
  EXPECT_EQ(source->load_count(), source->purge_count());
}

// ---------------------------------------------------------------------------------------------
// MemoryConvolutionDataSource

TEST(DataSourceTest, SizesAreChecked) {
  ConvolutionDescriptor d(3, 2, 4, 6);
  d.set_groups(2);
  const std::int64_t count = 6 * 2 * 3 * 2;
  EXPECT_EQ(d.weight_count(), count);
  EXPECT_NO_THROW((void)MemoryConvolutionDataSource(d, std::vector<float>(count)));
  EXPECT_NO_THROW(
      (void)MemoryConvolutionDataSource(d, std::vector<float>(count), std::vector<float>(6)));
  EXPECT_THROW((void)MemoryConvolutionDataSource(d, std::vector<float>(count + 1)),
               InvalidArgument);
  EXPECT_THROW((void)MemoryConvolutionDataSource(d, std::vector<float>(6 * 2 * 3 * 4)),
               InvalidArgument);
  EXPECT_THROW(
      (void)MemoryConvolutionDataSource(d, std::vector<float>(count), std::vector<float>(5)),
      InvalidArgument);
  ConvolutionDescriptor bad(3, 3, 4, 6);
  bad.set_groups(4);
  EXPECT_THROW((void)MemoryConvolutionDataSource(bad, std::vector<float>(1)), InvalidArgument);

  MemoryConvolutionDataSource source(d, std::vector<float>(count), std::vector<float>(6), "l");
  EXPECT_THROW(source.set_weights_and_biases(std::vector<float>(count - 1), std::vector<float>(6)),
               InvalidArgument);
  EXPECT_THROW(source.set_weights_and_biases(std::vector<float>(count), std::vector<float>(7)),
               InvalidArgument);
}

TEST(DataSourceTest, ContentsCountsAndCopy) {
  auto rng = test::make_rng(430);
  const ConvolutionDescriptor d(2, 2, 3, 2);
  const std::vector<float> weights = apitest::random_values(rng, d.weight_count());
  const std::vector<float> biases = apitest::random_values(rng, 2);
  MemoryConvolutionDataSource source(d, weights, biases, "conv7");
  EXPECT_EQ(source.label(), "conv7");
  EXPECT_EQ(source.data_type(), DataType::float32);
  EXPECT_EQ(source.descriptor(), d);
  EXPECT_EQ(source.weight_values(), weights);
  EXPECT_EQ(std::vector<float>(source.bias_values().begin(), source.bias_values().end()), biases);
  EXPECT_EQ(source.load_count(), 0);
  EXPECT_TRUE(source.load());
  EXPECT_TRUE(source.loaded());
  const auto* raw = static_cast<const float*>(source.weights());
  EXPECT_EQ(std::vector<float>(raw, raw + d.weight_count()), weights);
  EXPECT_EQ(std::vector<float>(source.bias_terms(), source.bias_terms() + 2), biases);
  source.purge();
  EXPECT_FALSE(source.loaded());
  EXPECT_EQ(source.load_count(), 1);
  EXPECT_EQ(source.purge_count(), 1);

  const std::shared_ptr<ConvolutionDataSource> copy = source.copy(Device::cpu());
  ASSERT_NE(copy, nullptr);
  auto* memory_copy = dynamic_cast<MemoryConvolutionDataSource*>(copy.get());
  ASSERT_NE(memory_copy, nullptr);
  EXPECT_EQ(memory_copy->load_count(), 0);
  EXPECT_EQ(memory_copy->weight_values(), weights);
  EXPECT_EQ(memory_copy->label(), "conv7");
  // Independent: changing the original leaves the copy alone.
  const std::vector<float> fresh = apitest::random_values(rng, d.weight_count());
  source.set_weights_and_biases(fresh, biases);
  EXPECT_EQ(source.weight_values(), fresh);
  EXPECT_EQ(memory_copy->weight_values(), weights);

  // No bias: a null bias pointer.
  MemoryConvolutionDataSource no_bias(d, weights);
  EXPECT_EQ(no_bias.bias_terms(), nullptr);
  EXPECT_TRUE(no_bias.bias_values().empty());
}

TEST(DataSourceTest, NarrowTypesRoundTheWeights) {
  auto rng = test::make_rng(431);
  const ConvolutionDescriptor d(3, 3, 2, 2);
  const std::vector<float> weights = apitest::random_values(rng, d.weight_count());
  for (const DataType type : {DataType::float16, DataType::bfloat16}) {
    MemoryConvolutionDataSource source(d, weights, {}, "", type);
    EXPECT_EQ(source.data_type(), type);
    EXPECT_EQ(source.weight_values(), apitest::rounded(weights, type));
    EXPECT_NE(source.weight_values(), weights);
    // The kernel copies what the source holds (as float32).
    auto shared = std::make_shared<MemoryConvolutionDataSource>(source);
    ConvolutionGradient gradient(Device::cpu(), shared);
    EXPECT_EQ(gradient.kernel_weights()->weights, apitest::rounded(weights, type));
  }
}

// ---------------------------------------------------------------------------------------------
// ConvolutionWeightsAndBiasesState

TEST(WeightsAndBiasesStateTest, ZeroedAndExactlySized) {
  ConvolutionDescriptor d(3, 2, 4, 6);
  d.set_groups(2);
  const ConvolutionWeightsAndBiasesState zeroed(Device::cpu(), d);
  EXPECT_EQ(zeroed.weights().size(), static_cast<std::size_t>(6 * 2 * 3 * 2));
  EXPECT_EQ(zeroed.biases().size(), 6u);
  for (float v : zeroed.weights()) EXPECT_EQ(v, 0.0f);
  for (float v : zeroed.biases()) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(zeroed.descriptor(), d);
  EXPECT_EQ(zeroed.device(), Device::cpu());

  auto rng = test::make_rng(440);
  const std::vector<float> w = apitest::random_values(rng, 72);
  const std::vector<float> b = apitest::random_values(rng, 6);
  const ConvolutionWeightsAndBiasesState state(Device::cpu(), d, w, b);
  EXPECT_EQ(std::vector<float>(state.weights().begin(), state.weights().end()), w);
  EXPECT_EQ(std::vector<float>(state.biases().begin(), state.biases().end()), b);
  EXPECT_THROW((void)ConvolutionWeightsAndBiasesState(Device::cpu(), d, std::vector<float>(71), b),
               InvalidArgument);
  EXPECT_THROW((void)ConvolutionWeightsAndBiasesState(Device::cpu(), d, std::vector<float>(144), b),
               InvalidArgument);
  EXPECT_THROW((void)ConvolutionWeightsAndBiasesState(Device::cpu(), d, w, std::vector<float>(5)),
               InvalidArgument);
  EXPECT_THROW((void)ConvolutionWeightsAndBiasesState(Device::cpu(), d, w, {}), InvalidArgument);

  // A handle: copies share the buffers.
  ConvolutionWeightsAndBiasesState copy = state;
  copy.weights()[0] = 123.0f;
  EXPECT_EQ(state.weights()[0], 123.0f);

  ConvolutionDescriptor no_bias = d;
  no_bias.set_bias_enabled(false);
  EXPECT_TRUE(ConvolutionWeightsAndBiasesState(Device::cpu(), no_bias).biases().empty());
  EXPECT_NO_THROW((void)ConvolutionWeightsAndBiasesState(Device::cpu(), no_bias, w, {}));
  EXPECT_THROW((void)ConvolutionWeightsAndBiasesState(Device::cpu(), no_bias, w, b),
               InvalidArgument);

  // Depthwise: C_in * kH * kW * multiplier weights.
  const DepthwiseConvolutionDescriptor depthwise(3, 3, 4, 8);
  EXPECT_EQ(ConvolutionWeightsAndBiasesState(Device::cpu(), depthwise).weights().size(),
            static_cast<std::size_t>(4 * 3 * 3 * 2));
}

TEST(WeightsAndBiasesStateTest, ExportedFromAConvolution) {
  auto rng = test::make_rng(441);
  const ConvolutionDescriptor d(3, 3, 2, 3);
  const apitest::Layer layer = apitest::make_layer(d, rng);
  Convolution convolution(Device::cpu(), layer.source);
  CommandQueue queue = Device::cpu().new_command_queue();
  CommandBuffer buffer = queue.command_buffer();
  const ConvolutionWeightsAndBiasesState exported = convolution.export_weights_and_biases(buffer);
  EXPECT_EQ(std::vector<float>(exported.weights().begin(), exported.weights().end()),
            layer.weights);
  EXPECT_EQ(std::vector<float>(exported.biases().begin(), exported.biases().end()), layer.biases);
  EXPECT_EQ(exported.descriptor(), d);
}

// ---------------------------------------------------------------------------------------------
// ConvolutionGradientState

TEST(GradientStateTest, CreatedZeroedByTheForwardPass) {
  auto rng = test::make_rng(450);
  ConvolutionDescriptor d(3, 2, 4, 6);
  d.set_groups(2);
  d.set_stride_in_pixels_x(2);
  const apitest::Layer layer = apitest::make_layer(d, rng);
  Convolution convolution(Device::cpu(), layer.source);
  const ConvolutionGradientState empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_THROW(empty.gradient_for_weights(), InvalidArgument);
  EXPECT_THROW(empty.source_width(), InvalidArgument);

  const Image x = apitest::random_image(Device::cpu(), 2, 7, 9, 4, DataType::float32, rng);
  CommandQueue queue = Device::cpu().new_command_queue();
  CommandBuffer buffer = queue.command_buffer();
  ConvolutionGradientState state;
  const Image y = convolution.encode(buffer, x, state);
  buffer.commit();
  buffer.wait();
  ASSERT_TRUE(state.valid());
  const ConvolutionGradientState& view = state;
  EXPECT_EQ(view.gradient_for_weights().size(), static_cast<std::size_t>(d.weight_count()));
  EXPECT_EQ(view.gradient_for_biases().size(), 6u);
  for (float v : view.gradient_for_weights()) ASSERT_EQ(v, 0.0f);
  for (float v : view.gradient_for_biases()) ASSERT_EQ(v, 0.0f);
  EXPECT_EQ(view.gradient_for_weights_layout(), WeightsLayout::ohwi);
  EXPECT_EQ(static_cast<int>(WeightsLayout::ohwi), 0);
  EXPECT_EQ(view.source_width(), 9);
  EXPECT_EQ(view.source_height(), 7);
  EXPECT_EQ(view.destination_width(), y.width());
  EXPECT_EQ(view.destination_height(), y.height());
  EXPECT_EQ(y.width(), 5);  // ceil(9 / 2)
  EXPECT_EQ(view.convolution().descriptor(), d);
  EXPECT_EQ(view.convolution().data_source(), layer.source);
  EXPECT_EQ(view.descriptor(), d);
  EXPECT_EQ(view.geometry().offset_x, convolution.offset().x);

  // A handle: copies share the gradient buffers.
  ConvolutionGradientState copy = state;
  copy.gradient_for_weights()[3] = 5.0f;
  EXPECT_EQ(view.gradient_for_weights()[3], 5.0f);

  // result_state gives a fresh zeroed state; no bias, no bias gradient.
  const ConvolutionGradientState fresh = convolution.result_state(x, y);
  EXPECT_EQ(fresh.gradient_for_weights()[3], 0.0f);
  ConvolutionDescriptor nb(3, 3, 1, 1);
  nb.set_bias_enabled(false);
  auto no_bias_source =
      std::make_shared<MemoryConvolutionDataSource>(nb, apitest::random_values(rng, 9));
  Convolution no_bias(Device::cpu(), no_bias_source);
  const Image x1 = apitest::random_image(Device::cpu(), 1, 4, 4, 1, DataType::float32, rng);
  CommandBuffer second = queue.command_buffer();
  ConvolutionGradientState nb_state;
  no_bias.encode(second, x1, nb_state);
  second.commit();
  second.wait();
  EXPECT_TRUE(std::as_const(nb_state).gradient_for_biases().empty());
}

// ---------------------------------------------------------------------------------------------
// Convolution (forward)

struct ForwardCase {
  const char* name;
  ConvolutionDescriptor descriptor;
  Padding padding;
  std::int64_t n, h, w;
  DataType type;
};

ConvolutionDescriptor with(ConvolutionDescriptor d, std::int64_t sy, std::int64_t sx,
                           std::int64_t dil_y, std::int64_t dil_x, std::int64_t groups = 1,
                           bool bias = true) {
  d.set_stride_in_pixels_y(sy);
  d.set_stride_in_pixels_x(sx);
  d.set_dilation_rate_y(dil_y);
  d.set_dilation_rate_x(dil_x);
  if (d.kind() == ConvolutionKind::regular) d.set_groups(groups);
  d.set_bias_enabled(bias);
  return d;
}

class ForwardTest : public ::testing::TestWithParam<ForwardCase> {};

TEST_P(ForwardTest, MatchesReferenceFprop) {
  const ForwardCase& c = GetParam();
  auto rng = test::make_rng(460);
  const Device device = Device::cpu();
  const apitest::Layer layer = apitest::make_layer(c.descriptor, rng);
  Convolution convolution(device, layer.source);
  convolution.set_padding(c.padding);
  EXPECT_EQ(convolution.input_feature_channels(), c.descriptor.input_feature_channels());
  EXPECT_EQ(convolution.output_feature_channels(), c.descriptor.output_feature_channels());
  EXPECT_EQ(convolution.label(), "layer");
  std::vector<float> x_values;
  const Image x = apitest::random_image(
      device, c.n, c.h, c.w, c.descriptor.input_feature_channels(), c.type, rng, &x_values);
  CommandQueue queue = device.new_command_queue();
  CommandBuffer buffer = queue.command_buffer();
  const Image y = convolution.encode(buffer, x);
  buffer.commit();
  buffer.wait();
  const apitest::Pads pads =
      apitest::expected_pads(c.padding, c.h, c.w, c.descriptor.dilated_kernel_height(),
                             c.descriptor.dilated_kernel_width(), c.descriptor.stride_in_pixels_y(),
                             c.descriptor.stride_in_pixels_x());
  const ConvProblem p = apitest::layer_problem(c.descriptor, c.n, c.h, c.w, pads);
  ASSERT_EQ(y.height(), p.p);
  ASSERT_EQ(y.width(), p.q);
  ASSERT_EQ(y.feature_channels(), p.k);
  ASSERT_EQ(y.number_of_images(), c.n);
  EXPECT_EQ(y.data_type(), c.type);
  EXPECT_TRUE(close(y.read(), apitest::ref_fprop(p, x_values, layer.weights, layer.biases),
                    apitest::tolerance(c.type)));
}

std::vector<ForwardCase> forward_cases() {
  const auto f32 = DataType::float32;
  return {
      {"same3x3", ConvolutionDescriptor(3, 3, 3, 5), Padding(), 2, 7, 6, f32},
      {"stride2_tf", with(ConvolutionDescriptor(3, 3, 4, 4), 2, 2, 1, 1),
       Padding::tensorflow_same(), 1, 8, 9, f32},
      {"dilation2_valid", with(ConvolutionDescriptor(3, 3, 2, 3), 1, 1, 2, 2),
       Padding::valid_only(), 1, 9, 8, f32},
      {"even4x2_full", with(ConvolutionDescriptor(2, 4, 2, 3), 2, 1, 1, 1), Padding::full(), 2, 7,
       6, f32},
      {"groups3_nobias", with(ConvolutionDescriptor(3, 3, 6, 9), 1, 1, 1, 1, 3, false), Padding(),
       1, 5, 5, f32},
      {"depthwise_m2", with(DepthwiseConvolutionDescriptor(3, 3, 3, 6), 2, 2, 1, 1), Padding(), 2,
       6, 7, f32},
      {"explicit_pads", ConvolutionDescriptor(3, 3, 2, 2), Padding::explicit_pads(2, 0, 1, 2), 1, 5,
       6, f32},
      {"f16", with(ConvolutionDescriptor(3, 3, 3, 4), 2, 1, 1, 1), Padding(), 1, 7, 7,
       DataType::float16},
      {"bf16", ConvolutionDescriptor(3, 3, 3, 4), Padding::tensorflow_same(), 2, 5, 6,
       DataType::bfloat16},
  };
}

INSTANTIATE_TEST_SUITE_P(Convolution, ForwardTest, ::testing::ValuesIn(forward_cases()),
                         [](const ::testing::TestParamInfo<ForwardCase>& param_info) {
                           return std::string(param_info.param.name);
                         });

TEST(ConvolutionTest, EncodeIntoDestinationWithOffsetsAndChannelWindows) {
  // The older encode: the caller's offset (not the policy) places the windows, the batch starts
  // at offset.z, the source is read from a channel offset, the result lands in a channel window.
  auto rng = test::make_rng(461);
  const Device device = Device::cpu();
  const ConvolutionDescriptor d(3, 3, 2, 3);
  const apitest::Layer layer = apitest::make_layer(d, rng);
  Convolution convolution(device, layer.source);
  convolution.set_offset({2, 0, 1});  // pad top 1, left -1 (skip the first column)
  convolution.set_source_feature_channel_offset(1);
  convolution.set_destination_feature_channel_offset(2);
  std::vector<float> big_values;
  const Image big = apitest::random_image(device, 3, 6, 7, 3, DataType::float32, rng, &big_values);
  Image destination(device, ImageDescriptor{4, 6, 6, 2, DataType::float32});
  apitest::fill(destination, apitest::kNaN);
  CommandQueue queue = device.new_command_queue();
  CommandBuffer buffer = queue.command_buffer();
  convolution.encode(buffer, big, destination);
  buffer.commit();
  buffer.wait();
  // Reference input: images 1 and 2, channels 1 and 2 of `big`.
  std::vector<float> x_values;
  for (std::int64_t n = 1; n < 3; ++n) {
    for (std::int64_t pixel = 0; pixel < 6 * 7; ++pixel) {
      for (std::int64_t c = 1; c < 3; ++c) {
        x_values.push_back(big_values[static_cast<std::size_t>((n * 42 + pixel) * 3 + c)]);
      }
    }
  }
  // Output 6 x 4 with pad top 1 and left -1: bottom pad 1, right pad 0.
  const ConvProblem p = apitest::layer_problem(d, 2, 6, 7, {1, -1, 1, 0});
  ASSERT_EQ(p.p, 6);
  ASSERT_EQ(p.q, 4);
  const std::vector<float> want = apitest::ref_fprop(p, x_values, layer.weights, layer.biases);
  const std::vector<float> got = destination.read();
  std::vector<float> window;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(got.size()); ++i) {
    const std::int64_t c = i % 6;
    if (c >= 2 && c < 5) {
      window.push_back(got[static_cast<std::size_t>(i)]);
    } else {
      EXPECT_TRUE(std::isnan(got[static_cast<std::size_t>(i)])) << "channel " << c;
    }
  }
  EXPECT_TRUE(close(window, want, 1e-5));
  // A destination without room for the channel offset is refused before anything runs.
  Image small(device, ImageDescriptor{4, 6, 4, 2, DataType::float32});
  CommandBuffer refused = queue.command_buffer();
  EXPECT_THROW(convolution.encode(refused, big, small), InvalidArgument);
}

TEST(ConvolutionTest, EncodeBatchSharesOneState) {
  auto rng = test::make_rng(462);
  const Device device = Device::cpu();
  const ConvolutionDescriptor d(3, 3, 2, 3);
  const apitest::Layer layer = apitest::make_layer(d, rng);
  Convolution convolution(device, layer.source);
  ImageBatch sources;
  std::vector<std::vector<float>> values(3);
  for (auto& v : values) {
    sources.push_back(apitest::random_image(device, 1, 5, 4, 2, DataType::float32, rng, &v));
  }
  CommandQueue queue = device.new_command_queue();
  CommandBuffer buffer = queue.command_buffer();
  ConvolutionGradientState state;
  const ImageBatch results = convolution.encode_batch(buffer, sources, state);
  buffer.commit();
  buffer.wait();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(state.valid());
  EXPECT_EQ(state.source_height(), 5);
  const ConvProblem p = apitest::layer_problem(d, 3, 5, 4, {1, 1, 1, 1});
  const std::vector<float> want =
      apitest::ref_fprop(p, apitest::concat(values), layer.weights, layer.biases);
  EXPECT_TRUE(close(apitest::concat({results[0].read(), results[1].read(), results[2].read()}),
                    want, 1e-5));
  // Images of different sizes cannot share a state.
  ImageBatch mixed = sources;
  mixed.push_back(apitest::random_image(device, 1, 6, 4, 2, DataType::float32, rng));
  CommandBuffer refused = queue.command_buffer();
  EXPECT_THROW(convolution.encode_batch(refused, mixed, state), InvalidArgument);
  EXPECT_THROW(convolution.encode_batch(refused, {}, state), InvalidArgument);
}

TEST(ConvolutionTest, ReloadFromDataSourceAffectsOnlyLaterEncodes) {
  auto rng = test::make_rng(463);
  const Device device = Device::cpu();
  const ConvolutionDescriptor d(3, 3, 2, 2);
  apitest::Layer layer = apitest::make_layer(d, rng);
  Convolution convolution(device, layer.source);
  EXPECT_EQ(layer.source->load_count(), 1);
  EXPECT_EQ(layer.source->purge_count(), 1);
  std::vector<float> x_values;
  const Image x = apitest::random_image(device, 1, 5, 5, 2, DataType::float32, rng, &x_values);
  const std::vector<float> new_w = apitest::random_values(rng, d.weight_count());
  const std::vector<float> new_b = apitest::random_values(rng, 2);
  layer.source->set_weights_and_biases(new_w, new_b);
  CommandQueue queue = device.new_command_queue();
  CommandBuffer buffer = queue.command_buffer();
  const Image before = convolution.encode(buffer, x);  // not reloaded yet: old weights
  convolution.reload_weights_and_biases_from_data_source();
  const Image after = convolution.encode(buffer, x);
  buffer
      .commit();  // both run after the reload, yet the first keeps the weights it was encoded with
  buffer.wait();
  EXPECT_EQ(layer.source->load_count(), 2);
  EXPECT_EQ(layer.source->purge_count(), 2);
  const ConvProblem p = apitest::layer_problem(d, 1, 5, 5, {1, 1, 1, 1});
  EXPECT_TRUE(
      close(before.read(), apitest::ref_fprop(p, x_values, layer.weights, layer.biases), 1e-5));
  EXPECT_TRUE(close(after.read(), apitest::ref_fprop(p, x_values, new_w, new_b), 1e-5));
}

TEST(ConvolutionTest, RejectsBadSourcesBeforeRunning) {
  auto rng = test::make_rng(464);
  const Device device = Device::cpu();
  const apitest::Layer layer = apitest::make_layer(ConvolutionDescriptor(3, 3, 2, 2), rng);
  Convolution convolution(device, layer.source);
  CommandQueue queue = device.new_command_queue();
  CommandBuffer buffer = queue.command_buffer();
  EXPECT_THROW(convolution.encode(buffer, Image()), InvalidArgument);
  const Image three = apitest::random_image(device, 1, 4, 4, 3, DataType::float32, rng);
  EXPECT_THROW(convolution.encode(buffer, three), InvalidArgument);
  EXPECT_THROW((void)Convolution(device, nullptr), InvalidArgument);
}

}  // namespace
}  // namespace convgrad
