// SPDX-License-Identifier: Apache-2.0
// The MPS-style objects on a CUDA device: one training step (convolution, ReLU, pooling, fully
// connected, loss, both gradients, an optimizer update through the states, reloads) on
// Device::cpu() and Device::cuda() from the same random inputs must agree; CUDA states keep
// host spans away from device memory as documented; errors inside a command buffer surface at
// wait() as DeviceError with the status `error`.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <optional>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "api/api_support.hpp"
#include "convgrad/convgrad.hpp"
#include "cuda/check.hpp"
#include "cuda/stream.hpp"
#include "gpu/gpu_support.hpp"

namespace convgrad {
namespace {

using apitest::close;
using apitest::random_values;

enum class Rule { sgd, nesterov, rmsprop, adam, amsgrad };

struct Inputs {
  ConvolutionDescriptor conv{3, 3, 4, 6};
  ConvolutionDescriptor fc{4, 4, 6, 5};
  std::vector<float> conv_w, conv_b, fc_w, fc_b, x;
  std::vector<std::int32_t> labels;
  OptimizerDescriptor optimizer;
};

Inputs make_inputs(std::mt19937_64& rng) {
  Inputs in;
  in.conv_w = random_values(rng, in.conv.weight_count());
  in.conv_b = random_values(rng, 6);
  in.fc_w = random_values(rng, in.fc.weight_count());
  in.fc_b = random_values(rng, 5);
  in.x = random_values(rng, 3 * 8 * 8 * 4);
  in.labels = {1, 4, 0};
  in.optimizer.learning_rate = 0.05f;
  in.optimizer.apply_gradient_clipping = true;
  in.optimizer.gradient_clip_min = -0.5f;
  in.optimizer.gradient_clip_max = 0.4f;
  in.optimizer.gradient_rescale = 0.9f;
  in.optimizer.regularization_type = RegularizationType::l2;
  in.optimizer.regularization_scale = 1e-3f;
  return in;
}

struct Outputs {
  std::vector<float> logits, loss, dx, dw, db, fc_dw, fc_db, new_w, new_b, moment, y_after;
  std::vector<float> exported_w, gradient_kernel_dx;
};

// One step on `device`: forward, loss, backward, `rule` on the convolution's weights (states on
// the device), both kernels reloaded, a second forward and gradient with the new weights.
Outputs train_step(const Device& device, const Inputs& in, Rule rule) {
  auto conv_source = std::make_shared<MemoryConvolutionDataSource>(in.conv, in.conv_w, in.conv_b);
  auto fc_source = std::make_shared<MemoryConvolutionDataSource>(in.fc, in.fc_w, in.fc_b);
  Convolution conv(device, conv_source);
  ConvolutionGradient conv_gradient(device, conv_source);
  FullyConnected fc(device, fc_source);
  FullyConnectedGradient fc_gradient(device, fc_source);
  const Relu relu(device);
  const ReluGradient relu_gradient(device);
  const MaxPooling pool(device);
  const MaxPoolingGradient pool_gradient(device);
  const SoftmaxCrossEntropyLoss loss(device);
  CommandQueue queue(device);

  Image x(device, ImageDescriptor{8, 8, 4, 3});
  x.write(in.x);
  CommandBuffer cb = queue.command_buffer();
  ConvolutionGradientState conv_state, fc_state;
  const Image c = conv.encode(cb, x, conv_state);
  const Image r = relu.encode(cb, c);
  const Image p = pool.encode(cb, r);
  const Image logits = fc.encode(cb, p, fc_state);
  const SoftmaxCrossEntropyLoss::Result l = loss.encode(cb, logits, in.labels);
  const Image dp = fc_gradient.encode(cb, l.gradient, p, fc_state);
  const Image dc = relu_gradient.encode(cb, pool_gradient.encode(cb, dp, r), c);
  const Image dx = conv_gradient.encode(cb, dc, x, conv_state);

  const ConvolutionWeightsAndBiasesState source = conv.export_weights_and_biases(cb);
  ConvolutionWeightsAndBiasesState result(device, in.conv);
  OptimizerStateVectors v0(device, in.conv), v1(device, in.conv), v2(device, in.conv);
  // Non-zero optimizer memory, so that every term of each rule matters.
  std::mt19937_64 rng(7);
  v0.write_weights(random_values(rng, in.conv.weight_count(), 0.0f, 0.1f));
  v0.write_biases(random_values(rng, 6, 0.0f, 0.1f));
  v1.write_weights(random_values(rng, in.conv.weight_count(), 0.0f, 0.1f));
  v1.write_biases(random_values(rng, 6, 0.0f, 0.1f));
  v2.write_weights(random_values(rng, in.conv.weight_count(), 0.0f, 0.1f));
  v2.write_biases(random_values(rng, 6, 0.0f, 0.1f));
  switch (rule) {
    case Rule::sgd:
      StochasticGradientDescent(device, 0.5f, false, in.optimizer)
          .encode(cb, conv_state, source, v0, result);
      break;
    case Rule::nesterov:
      StochasticGradientDescent(device, 0.5f, true, in.optimizer)
          .encode(cb, conv_state, source, v0, result);
      break;
    case Rule::rmsprop:
      RMSProp(device, 0.9, 1e-6f, in.optimizer).encode(cb, conv_state, source, v0, result);
      break;
    case Rule::adam:
      Adam(device, 0.9, 0.999, 1e-6f, 3, in.optimizer)
          .encode(cb, conv_state, source, v0, v1, result);
      break;
    case Rule::amsgrad: {
      Adam adam(device, 0.9, 0.999, 1e-6f, 3, in.optimizer);
      adam.set_amsgrad(true);
      adam.encode(cb, conv_state, source, v0, v1, v2, result);
      break;
    }
  }
  conv.reload_weights_and_biases(cb, result);
  conv_gradient.reload_weights_and_biases(cb, result);
  const Image y_after = conv.encode(cb, x);
  ConvolutionGradientState unused = conv.result_state(x, y_after);
  conv_gradient.set_gradient_option(GradientOption::gradient_with_data);
  const Image dx_after = conv_gradient.encode(cb, dc, x, unused);
  cb.commit();
  cb.wait();
  EXPECT_EQ(cb.status(), CommandBufferStatus::completed);

  Outputs out;
  out.logits = logits.read();
  out.loss = l.loss.read();
  out.dx = dx.read();
  out.dw = conv_state.read_gradient_for_weights();
  out.db = conv_state.read_gradient_for_biases();
  out.fc_dw = fc_state.read_gradient_for_weights();
  out.fc_db = fc_state.read_gradient_for_biases();
  out.new_w = result.read_weights();
  out.new_b = result.read_biases();
  out.moment = v0.read_weights();
  out.y_after = y_after.read();
  out.gradient_kernel_dx = dx_after.read();
  CommandBuffer after = queue.command_buffer();
  out.exported_w = conv.export_weights_and_biases(after).read_weights();
  return out;
}

TEST(CudaApi, TrainingStepMatchesCpu) {
  CONVGRAD_REQUIRE_CUDA();
  std::mt19937_64 rng = test::make_rng(0xa91c0da);
  const Inputs in = make_inputs(rng);
  for (const Rule rule : {Rule::sgd, Rule::nesterov, Rule::rmsprop, Rule::adam, Rule::amsgrad}) {
    SCOPED_TRACE("rule " + std::to_string(static_cast<int>(rule)));
    const Outputs cpu = train_step(Device::cpu(), in, rule);
    const Outputs gpu = train_step(Device::cuda(), in, rule);
    constexpr double kTol = 1e-5;
    EXPECT_TRUE(close(gpu.logits, cpu.logits, kTol)) << "logits";
    EXPECT_TRUE(close(gpu.loss, cpu.loss, kTol)) << "loss";
    EXPECT_TRUE(close(gpu.dx, cpu.dx, kTol)) << "dL/dx";
    EXPECT_TRUE(close(gpu.dw, cpu.dw, kTol)) << "dL/dW";
    EXPECT_TRUE(close(gpu.db, cpu.db, kTol)) << "dL/db";
    EXPECT_TRUE(close(gpu.fc_dw, cpu.fc_dw, kTol)) << "fc dL/dW";
    EXPECT_TRUE(close(gpu.fc_db, cpu.fc_db, kTol)) << "fc dL/db";
    EXPECT_TRUE(close(gpu.new_w, cpu.new_w, kTol)) << "updated weights";
    EXPECT_TRUE(close(gpu.new_b, cpu.new_b, kTol)) << "updated biases";
    EXPECT_TRUE(close(gpu.moment, cpu.moment, kTol)) << "optimizer vector";
    EXPECT_TRUE(close(gpu.y_after, cpu.y_after, kTol)) << "forward after the reload";
    EXPECT_TRUE(close(gpu.gradient_kernel_dx, cpu.gradient_kernel_dx, kTol))
        << "gradient kernel after the reload";
    // The reload reached the kernel: its exported weights are the optimizer's result.
    EXPECT_EQ(gpu.exported_w, gpu.new_w);
    EXPECT_NE(gpu.new_w, in.conv_w);
  }
}

// The data source's GPU-style hook (as examples/train_fashion_mnist does it): Adam encoded by the
// hook, both kernels reloaded from the state it returns, several steps, against the CPU.
class AdamSource : public ConvolutionDataSource {
 public:
  AdamSource(const Device& device, const ConvolutionDescriptor& d, const std::vector<float>& w,
             const std::vector<float>& b)
      : d_(d), state_(device, d, w, b), m_(device, d), v_(device, d), adam_(device, 0.01f) {}
  DataType data_type() const override { return DataType::float32; }
  const ConvolutionDescriptor& descriptor() const override { return d_; }
  const void* weights() override { return host_w_.data(); }
  const float* bias_terms() override { return host_b_.data(); }
  bool load() override {
    host_w_ = state_.read_weights();
    host_b_ = state_.read_biases();
    return true;
  }
  void purge() override {}
  std::string label() const override { return "adam"; }
  std::optional<ConvolutionWeightsAndBiasesState> update(
      CommandBuffer& cb, const ConvolutionGradientState& g,
      const ConvolutionWeightsAndBiasesState& source) override {
    adam_.encode(cb, g, source, m_, v_, state_);
    return state_;
  }
  ConvolutionWeightsAndBiasesState& state() { return state_; }

 private:
  ConvolutionDescriptor d_;
  ConvolutionWeightsAndBiasesState state_;
  OptimizerStateVectors m_, v_;
  Adam adam_;
  std::vector<float> host_w_, host_b_;
};

std::vector<float> hook_training(const Device& device, const Inputs& in, int steps) {
  auto source = std::make_shared<AdamSource>(device, in.conv, in.conv_w, in.conv_b);
  Convolution conv(device, source);
  ConvolutionGradient gradient(device, source);
  CommandQueue queue(device);
  Image x(device, ImageDescriptor{8, 8, 4, 3});
  x.write(in.x);
  for (int i = 0; i < steps; ++i) {
    CommandBuffer cb = queue.command_buffer();
    ConvolutionGradientState state;
    const Image y = conv.encode(cb, x, state);
    gradient.encode(cb, y, x, state);  // L = |y|^2 / 2
    const auto updated = source->update(cb, state, conv.export_weights_and_biases(cb));
    conv.reload_weights_and_biases(cb, *updated);
    gradient.reload_weights_and_biases(cb, *updated);
    cb.commit();
    cb.wait();
  }
  // The data-source reload reads the state through load() (a download on the GPU).
  conv.reload_weights_and_biases_from_data_source();
  CommandBuffer cb = queue.command_buffer();
  return conv.export_weights_and_biases(cb).read_weights();
}

TEST(CudaApi, UpdateHookAndReloadsMatchCpu) {
  CONVGRAD_REQUIRE_CUDA();
  std::mt19937_64 rng = test::make_rng(0x400c);
  const Inputs in = make_inputs(rng);
  const std::vector<float> cpu = hook_training(Device::cpu(), in, 4);
  const std::vector<float> gpu = hook_training(Device::cuda(), in, 4);
  EXPECT_TRUE(close(gpu, cpu, 1e-5));
  EXPECT_NE(gpu, in.conv_w);
}

TEST(CudaApi, TransposeMatchesCpu) {
  CONVGRAD_REQUIRE_CUDA();
  std::mt19937_64 rng = test::make_rng(0x7a05e);
  ConvolutionDescriptor d(3, 3, 4, 6);
  d.set_stride_in_pixels_x(2);
  d.set_stride_in_pixels_y(2);
  const std::vector<float> w = random_values(rng, d.weight_count());
  const std::vector<float> b = random_values(rng, 6);
  const std::vector<float> x = random_values(rng, 2 * 5 * 5 * 4);
  const std::vector<float> w2 = random_values(rng, d.weight_count());
  const std::vector<float> b2 = random_values(rng, 6);
  std::vector<std::vector<float>> results[2];
  const Device devices[2] = {Device::cpu(), Device::cuda()};
  for (int i = 0; i < 2; ++i) {
    const Device& device = devices[i];
    auto source = std::make_shared<MemoryConvolutionDataSource>(d, w, b);
    ConvolutionTranspose transpose(device, source);
    ConvolutionTransposeGradient gradient(device, source);
    CommandQueue queue(device);
    Image image(device, ImageDescriptor{5, 5, 4, 2});
    image.write(x);
    CommandBuffer cb = queue.command_buffer();
    ConvolutionTransposeGradientState state;
    const Image y = transpose.encode(cb, image, state);
    const Image dx = gradient.encode(cb, y, image, state);
    // Reload from a state on the same device, then run again with the new weights.
    const ConvolutionWeightsAndBiasesState next(device, d, w2, b2);
    transpose.reload_weights_and_biases(cb, next);
    gradient.reload_weights_and_biases(cb, next);
    ConvolutionTransposeGradientState state2;
    const Image y2 = transpose.encode(cb, image, state2);
    const Image dx2 = gradient.encode(cb, y2, image, state2);
    cb.commit();
    cb.wait();
    results[i] = {y.read(),
                  dx.read(),
                  state.read_gradient_for_weights(),
                  state.read_gradient_for_biases(),
                  y2.read(),
                  dx2.read(),
                  state2.read_gradient_for_weights()};
  }
  for (std::size_t k = 0; k < results[0].size(); ++k) {
    EXPECT_TRUE(close(results[1][k], results[0][k], 1e-5)) << "output " << k;
  }
}

TEST(CudaApi, StatesKeepHostSpansAwayFromDeviceMemory) {
  CONVGRAD_REQUIRE_CUDA();
  std::mt19937_64 rng = test::make_rng(0x5ba4);
  const Device device = Device::cuda();
  const ConvolutionDescriptor d(3, 3, 2, 3);
  const std::vector<float> w = random_values(rng, d.weight_count());
  const std::vector<float> b = random_values(rng, 3);
  ConvolutionWeightsAndBiasesState state(device, d, w, b);
  const auto expect_unsupported = [](auto&& call, const char* where) {
    try {
      call();
      ADD_FAILURE() << where << " returned a host span of device memory";
    } catch (const Unsupported& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(where), std::string::npos) << message;
      EXPECT_NE(message.find("cuda:0"), std::string::npos) << message;
    }
  };
  expect_unsupported([&] { (void)state.weights(); }, "ConvolutionWeightsAndBiasesState::weights");
  expect_unsupported([&] { (void)state.biases(); }, "ConvolutionWeightsAndBiasesState::biases");
  EXPECT_EQ(state.read_weights(), w);
  EXPECT_EQ(state.read_biases(), b);
  EXPECT_EQ(state.weights_view().device, DeviceKind::cuda);
  EXPECT_EQ(state.weights_view().dims, (std::array<std::int64_t, 4>{3, 3, 3, 2}));
  EXPECT_EQ(state.biases_view().device, DeviceKind::cuda);
  EXPECT_EQ(state.weight_count(), w.size());
  state.write_weights(std::vector<float>(w.size(), 0.25f));
  EXPECT_EQ(state.read_weights(), std::vector<float>(w.size(), 0.25f));
  EXPECT_THROW(state.write_biases(std::vector<float>(4)), InvalidArgument);

  auto source = std::make_shared<MemoryConvolutionDataSource>(d, w, b);
  Convolution conv(device, source);
  EXPECT_TRUE(conv.kernel_weights()->on_device());
  EXPECT_TRUE(conv.kernel_weights()->weights.empty());
  const Image x = apitest::random_image(device, 1, 4, 4, 2, DataType::float32, rng);
  CommandQueue queue(device);
  CommandBuffer cb = queue.command_buffer();
  ConvolutionGradientState g;
  const Image y = conv.encode(cb, x, g);
  ConvolutionGradient(device, source).encode(cb, y, x, g);
  cb.commit();
  cb.wait();
  EXPECT_EQ(g.device().kind(), DeviceKind::cuda);
  expect_unsupported([&] { (void)g.gradient_for_weights(); },
                     "ConvolutionGradientState::gradient_for_weights");
  expect_unsupported([&] { (void)g.gradient_for_biases(); },
                     "ConvolutionGradientState::gradient_for_biases");
  EXPECT_EQ(g.gradient_for_weights_view().device, DeviceKind::cuda);
  EXPECT_EQ(g.read_gradient_for_weights().size(), w.size());
  EXPECT_EQ(g.read_gradient_for_biases().size(), 3u);
  EXPECT_TRUE(close(conv.export_weights_and_biases(cb).read_weights(), w, 0.0));
}

TEST(CudaApi, ErrorsInsideABufferSurfaceAtWait) {
  CONVGRAD_REQUIRE_CUDA();
  const Device device = Device::cuda();
  CommandQueue queue(device);
  // An allocation far beyond any GPU's memory, inside the work.
  CommandBuffer oom = queue.command_buffer();
  oom.enqueue([device] { DeviceBuffer huge(device, std::size_t{1} << 50); });
  oom.commit();
  EXPECT_THROW(oom.wait(), DeviceError);
  EXPECT_EQ(oom.status(), CommandBufferStatus::error);
  // A CUDA call that fails on the buffer's stream (a copy of no valid direction): the failure
  // is not sticky, so it must not reach the next buffer.
  CommandBuffer bad = queue.command_buffer();
  DeviceBuffer target(device, 64), origin(device, 64);
  bad.enqueue([&] {
    CONVGRAD_CUDA_CHECK(cudaMemcpyAsync(target.data(), origin.data(), 64,
                                        static_cast<cudaMemcpyKind>(99), cuda::current_stream()));
  });
  bad.commit();
  try {
    bad.wait();
    ADD_FAILURE() << "the failed copy was not reported";
  } catch (const DeviceError& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA error"), std::string::npos) << e.what();
  }
  EXPECT_EQ(bad.status(), CommandBufferStatus::error);
  // Neither failure poisons the queue: the next buffer runs and completes.
  std::mt19937_64 rng = test::make_rng(0xe440);
  Image x = apitest::random_image(device, 2, 4, 4, 3, DataType::float32, rng);
  CommandBuffer good = queue.command_buffer();
  const Image y = Relu(device).encode(good, x);
  good.commit();
  good.wait();
  EXPECT_EQ(good.status(), CommandBufferStatus::completed);
  std::vector<float> want = x.read();
  for (float& v : want) v = v > 0.0f ? v : 0.0f;
  EXPECT_EQ(y.read(), want);
}

TEST(CudaApi, OptimizerStateRoundTripsAcrossDevices) {
  CONVGRAD_REQUIRE_CUDA();
  std::mt19937_64 rng = test::make_rng(0xad4a);
  const ConvolutionDescriptor d(3, 3, 2, 4);
  const Device gpu = Device::cuda();
  OptimizerStateVectors m(gpu, d), v(gpu, d);
  const std::vector<float> mw = random_values(rng, d.weight_count());
  const std::vector<float> vw = random_values(rng, d.weight_count(), 0.0f, 1.0f);
  m.write_weights(mw);
  v.write_weights(vw);
  Adam adam(gpu, 0.9, 0.999, 1e-8f, 17, OptimizerDescriptor{});
  const std::string path =
      (std::filesystem::temp_directory_path() / "convgrad_cuda_api_adam.safetensors").string();
  adam.save_state(path, m, v);
  Adam restored(Device::cpu(), 0.01f);
  OptimizerStateVectors cm(Device::cpu(), d), cv(Device::cpu(), d);
  restored.load_state(path, cm, cv);
  std::filesystem::remove(path);
  EXPECT_EQ(restored.time_step(), 17);
  EXPECT_EQ(cm.read_weights(), mw);
  EXPECT_EQ(cv.read_weights(), vw);
}

}  // namespace
}  // namespace convgrad
