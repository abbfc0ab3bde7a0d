// SPDX-License-Identifier: Apache-2.0
// Optimizer checkpoints (Adam/RMSProp/SGD save_state and load_state): a run interrupted,
// saved and resumed from the files continues bit for bit like the run that never stopped.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "api/api_support.hpp"
#include "convgrad/convgrad.hpp"

namespace convgrad {
namespace {

namespace fs = std::filesystem;
using apitest::random_values;

// Minimises |y|^2 / 2 for a fixed input: one step is forward, gradient, update, reload.
struct Trainer {
  Trainer(const ConvolutionDescriptor& d, const std::vector<float>& w, const std::vector<float>& b,
          const std::vector<float>& x)
      : source(std::make_shared<MemoryConvolutionDataSource>(d, w, b)),
        conv(device, source),
        gradient(device, source),
        weights(device, d, w, b),
        image(device, ImageDescriptor{6, 6, d.input_feature_channels(), 2}) {
    image.write(x);
  }
  // `update` encodes the optimizer from `state` into `weights`.
  void step(const std::function<void(CommandBuffer&, const ConvolutionGradientState&)>& update) {
    CommandBuffer cb = queue.command_buffer();
    ConvolutionGradientState state;
    const Image y = conv.encode(cb, image, state);
    gradient.encode(cb, y, image, state);
    update(cb, state);
    conv.reload_weights_and_biases(cb, weights);
    gradient.reload_weights_and_biases(cb, weights);
    cb.commit();
    cb.wait();
  }

  Device device = Device::cpu();
  CommandQueue queue{device};
  std::shared_ptr<MemoryConvolutionDataSource> source;
  Convolution conv;
  ConvolutionGradient gradient;
  ConvolutionWeightsAndBiasesState weights;
  Image image;
};

class OptimizerCheckpoint : public testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng = test::make_rng(0xc4ec);
    w_ = random_values(rng, d_.weight_count());
    b_ = random_values(rng, d_.output_feature_channels());
    x_ = random_values(rng, 2 * 6 * 6 * 2);
    path_ = (fs::temp_directory_path() /
             ("convgrad_checkpoint_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
  }
  void TearDown() override { fs::remove(path_); }

  ConvolutionDescriptor d_{3, 3, 2, 3};
  std::vector<float> w_, b_, x_;
  std::string path_;
  OptimizerDescriptor settings_ = [] {
    OptimizerDescriptor s;
    s.learning_rate = 0.02f;
    s.regularization_type = RegularizationType::l2;
    s.regularization_scale = 1e-3f;
    return s;
  }();
};

TEST_F(OptimizerCheckpoint, AdamAmsgradResumesExactly) {
  const Device cpu = Device::cpu();
  // The uninterrupted run: six steps.
  Trainer straight(d_, w_, b_, x_);
  Adam adam(cpu, 0.9, 0.999, 1e-8f, 0, settings_);
  adam.set_amsgrad(true);
  OptimizerStateVectors m(cpu, d_), v(cpu, d_), vmax(cpu, d_);
  for (int i = 0; i < 6; ++i) {
    straight.step([&](CommandBuffer& cb, const ConvolutionGradientState& g) {
      adam.encode(cb, g, straight.weights, m, v, vmax, straight.weights);
    });
  }
  // Three steps, a checkpoint, then three more in new objects restored from it.
  Trainer first(d_, w_, b_, x_);
  Adam adam1(cpu, 0.9, 0.999, 1e-8f, 0, settings_);
  adam1.set_amsgrad(true);
  OptimizerStateVectors m1(cpu, d_), v1(cpu, d_), vmax1(cpu, d_);
  for (int i = 0; i < 3; ++i) {
    first.step([&](CommandBuffer& cb, const ConvolutionGradientState& g) {
      adam1.encode(cb, g, first.weights, m1, v1, vmax1, first.weights);
    });
  }
  adam1.save_state(path_, m1, v1, &vmax1);
  Trainer second(d_, first.weights.read_weights(), first.weights.read_biases(), x_);
  Adam adam2(cpu, 0.9, 0.999, 1e-8f, 0, settings_);
  adam2.set_amsgrad(true);
  OptimizerStateVectors m2(cpu, d_), v2(cpu, d_), vmax2(cpu, d_);
  adam2.load_state(path_, m2, v2, &vmax2);
  EXPECT_EQ(adam2.time_step(), 3);
  for (int i = 0; i < 3; ++i) {
    second.step([&](CommandBuffer& cb, const ConvolutionGradientState& g) {
      adam2.encode(cb, g, second.weights, m2, v2, vmax2, second.weights);
    });
  }
  EXPECT_EQ(apitest::bits_of(second.weights.read_weights()),
            apitest::bits_of(straight.weights.read_weights()));
  EXPECT_EQ(apitest::bits_of(second.weights.read_biases()),
            apitest::bits_of(straight.weights.read_biases()));
  EXPECT_EQ(apitest::bits_of(vmax2.read_weights()), apitest::bits_of(vmax.read_weights()));
  EXPECT_NE(straight.weights.read_weights(), w_);
}

TEST_F(OptimizerCheckpoint, MomentumAndRmsPropResumeExactly) {
  const Device cpu = Device::cpu();
  const StochasticGradientDescent sgd(cpu, 0.8f, true, settings_);
  const RMSProp rmsprop(cpu, 0.9, 1e-6f, settings_);
  for (const bool use_sgd : {true, false}) {
    SCOPED_TRACE(use_sgd ? "nesterov" : "rmsprop");
    const auto update = [&](Trainer& t, OptimizerStateVectors& vector) {
      return [&, trainer = &t, memory = &vector](CommandBuffer& cb,
                                                 const ConvolutionGradientState& g) {
        if (use_sgd) {
          sgd.encode(cb, g, trainer->weights, *memory, trainer->weights);
        } else {
          rmsprop.encode(cb, g, trainer->weights, *memory, trainer->weights);
        }
      };
    };
    Trainer straight(d_, w_, b_, x_);
    OptimizerStateVectors vector(cpu, d_);
    for (int i = 0; i < 4; ++i) straight.step(update(straight, vector));
    Trainer first(d_, w_, b_, x_);
    OptimizerStateVectors vector1(cpu, d_);
    for (int i = 0; i < 2; ++i) first.step(update(first, vector1));
    if (use_sgd) {
      sgd.save_state(path_, vector1);
    } else {
      rmsprop.save_state(path_, vector1);
    }
    Trainer second(d_, first.weights.read_weights(), first.weights.read_biases(), x_);
    OptimizerStateVectors vector2(cpu, d_);
    if (use_sgd) {
      sgd.load_state(path_, vector2);
    } else {
      rmsprop.load_state(path_, vector2);
    }
    for (int i = 0; i < 2; ++i) second.step(update(second, vector2));
    EXPECT_EQ(apitest::bits_of(second.weights.read_weights()),
              apitest::bits_of(straight.weights.read_weights()));
  }
}

TEST_F(OptimizerCheckpoint, RefusesAnotherLayerOrOptimizer) {
  const Device cpu = Device::cpu();
  Adam adam(cpu, 0.01f);
  OptimizerStateVectors m(cpu, d_), v(cpu, d_);
  m.write_weights(std::vector<float>(m.weight_count(), 0.5f));
  adam.save_state(path_, m, v);
  const ConvolutionDescriptor other(3, 3, 2, 4);
  OptimizerStateVectors om(cpu, other), ov(cpu, other);
  EXPECT_THROW(adam.load_state(path_, om, ov), FormatError);
  OptimizerStateVectors s(cpu, d_);
  EXPECT_THROW(RMSProp(cpu, 0.01f).load_state(path_, s), FormatError);
  Adam ams(cpu, 0.01f);
  ams.set_amsgrad(true);
  OptimizerStateVectors vmax(cpu, d_);
  EXPECT_THROW(ams.load_state(path_, m, v, &vmax), FormatError);
  // A refused file changes nothing.
  EXPECT_EQ(om.read_weights(), std::vector<float>(om.weight_count(), 0.0f));
  EXPECT_EQ(s.read_weights(), std::vector<float>(s.weight_count(), 0.0f));
}

}  // namespace
}  // namespace convgrad
