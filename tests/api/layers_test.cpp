// SPDX-License-Identifier: Apache-2.0
// ReLU, 2x2 max pooling and softmax cross-entropy: each forward against a plain loop written here,
// each gradient against central finite differences of a scalar function of the forward result,
// and the validation rules (InvalidArgument naming the parameter, outputs untouched).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "api/api_support.hpp"

namespace convgrad {
namespace {

using apitest::random_values;

struct Fixture {
  Device device = Device::cpu();
  CommandQueue queue{device};
  std::mt19937_64 rng{42};

  Image image(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c,
              const std::vector<float>& values) {
    Image result(device, ImageDescriptor{w, h, c, n});
    result.write(values);
    return result;
  }
  // Runs `encode` on a fresh command buffer and waits.
  void run(const std::function<void(CommandBuffer&)>& encode) {
    CommandBuffer command_buffer = queue.command_buffer();
    encode(command_buffer);
    command_buffer.commit();
    command_buffer.wait();
  }
};

// d(sum_i weights[i] * f(x)[i]) / dx by central differences in double-precision bookkeeping.
std::vector<double> numeric_gradient(const std::vector<float>& x, const std::vector<float>& weights,
                                     const std::function<std::vector<float>(std::vector<float>)>& f,
                                     float step) {
  std::vector<double> result(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    std::vector<float> plus = x, minus = x;
    plus[i] += step;
    minus[i] -= step;
    const std::vector<float> fp = f(plus), fm = f(minus);
    double sum = 0.0;
    for (std::size_t k = 0; k < fp.size(); ++k) {
      sum += static_cast<double>(weights[k]) * (static_cast<double>(fp[k]) - fm[k]);
    }
    result[i] = sum / (2.0 * step);
  }
  return result;
}

// Values at least `gap` apart from each other and from 0, so that neither ReLU's kink nor a
// pooling tie lies within a finite-difference step.
std::vector<float> separated_values(std::mt19937_64& rng, std::int64_t count, float gap) {
  std::vector<float> values(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i] = (static_cast<float>(i) + 1.0f) * gap * (i % 2 == 0 ? 1.0f : -1.0f);
  }
  std::shuffle(values.begin(), values.end(), rng);
  return values;
}

TEST(ReluTest, ForwardMatchesLoop) {
  Fixture f;
  const std::vector<float> x = random_values(f.rng, 2 * 3 * 5 * 4);
  Image source = f.image(2, 3, 5, 4, x);
  Image result;
  f.run([&](CommandBuffer& cb) { result = Relu(f.device).encode(cb, source); });
  const std::vector<float> y = result.read();
  ASSERT_EQ(y.size(), x.size());
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], x[i] > 0 ? x[i] : 0.0f) << i;
}

TEST(ReluTest, ForwardOnChannelWindowLeavesOtherChannels) {
  Fixture f;
  const std::vector<float> x = random_values(f.rng, 1 * 2 * 2 * 4);
  Image source = f.image(1, 2, 2, 4, x);
  f.run([&](CommandBuffer& cb) {
    Relu(f.device).encode(cb, source.channels(1, 2), source.channels(1, 2));
  });
  const std::vector<float> y = source.read();
  for (std::size_t i = 0; i < x.size(); ++i) {
    const bool inside = i % 4 == 1 || i % 4 == 2;
    EXPECT_EQ(y[i], inside && x[i] < 0 ? 0.0f : x[i]) << i;
  }
}

TEST(ReluTest, GradientMatchesFiniteDifferences) {
  Fixture f;
  const std::int64_t n = 2, h = 3, w = 3, c = 2, count = n * h * w * c;
  const std::vector<float> x = separated_values(f.rng, count, 0.05f);
  const std::vector<float> dy = random_values(f.rng, count);
  Image source = f.image(n, h, w, c, x), incoming = f.image(n, h, w, c, dy);
  Image dx;
  f.run([&](CommandBuffer& cb) { dx = ReluGradient(f.device).encode(cb, incoming, source); });
  auto forward = [&](std::vector<float> values) {
    Image s = f.image(n, h, w, c, values), y;
    f.run([&](CommandBuffer& cb) { y = Relu(f.device).encode(cb, s); });
    return y.read();
  };
  const std::vector<double> expected = numeric_gradient(x, dy, forward, 1e-2f);
  const std::vector<float> got = dx.read();
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-4) << i;
}

TEST(MaxPoolingTest, ForwardMatchesLoopAndDropsOddEdge) {
  Fixture f;
  const std::int64_t n = 2, h = 5, w = 7, c = 3;
  const std::vector<float> x = random_values(f.rng, n * h * w * c);
  Image source = f.image(n, h, w, c, x);
  Image result;
  f.run([&](CommandBuffer& cb) { result = MaxPooling(f.device).encode(cb, source); });
  ASSERT_EQ(result.height(), 2);
  ASSERT_EQ(result.width(), 3);
  const std::vector<float> y = result.read();
  auto at = [&](std::int64_t i, std::int64_t r, std::int64_t s, std::int64_t k) {
    return x[static_cast<std::size_t>(((i * h + r) * w + s) * c + k)];
  };
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t p = 0; p < 2; ++p) {
      for (std::int64_t q = 0; q < 3; ++q) {
        for (std::int64_t k = 0; k < c; ++k) {
          float best = at(i, 2 * p, 2 * q, k);
          for (int dr = 0; dr < 2; ++dr) {
            for (int ds = 0; ds < 2; ++ds) best = std::max(best, at(i, 2 * p + dr, 2 * q + ds, k));
          }
          EXPECT_EQ(y[static_cast<std::size_t>(((i * 2 + p) * 3 + q) * c + k)], best);
        }
      }
    }
  }
}

TEST(MaxPoolingTest, GradientMatchesFiniteDifferences) {
  Fixture f;
  const std::int64_t n = 2, h = 5, w = 4, c = 2;
  const std::vector<float> x = separated_values(f.rng, n * h * w * c, 0.05f);
  const std::vector<float> dy = random_values(f.rng, n * 2 * 2 * c);
  Image source = f.image(n, h, w, c, x), incoming = f.image(n, 2, 2, c, dy);
  Image dx(f.device, source.descriptor());
  dx.write(std::vector<float>(x.size(), 7.0f));  // stale values must be overwritten with zeros
  f.run([&](CommandBuffer& cb) { MaxPoolingGradient(f.device).encode(cb, incoming, source, dx); });
  auto forward = [&](std::vector<float> values) {
    Image s = f.image(n, h, w, c, values), y;
    f.run([&](CommandBuffer& cb) { y = MaxPooling(f.device).encode(cb, s); });
    return y.read();
  };
  const std::vector<double> expected = numeric_gradient(x, dy, forward, 1e-2f);
  const std::vector<float> got = dx.read();
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-4) << i;
}

TEST(MaxPoolingTest, GradientTieGoesToFirstInRowMajorOrder) {
  Fixture f;
  Image source = f.image(1, 2, 2, 1, {1.0f, 3.0f, 3.0f, 3.0f});
  Image incoming = f.image(1, 1, 1, 1, {5.0f});
  Image dx;
  f.run([&](CommandBuffer& cb) { dx = MaxPoolingGradient(f.device).encode(cb, incoming, source); });
  EXPECT_EQ(dx.read(), (std::vector<float>{0.0f, 5.0f, 0.0f, 0.0f}));
}

// The loss and its gradient computed here in double precision, independently.
double reference_loss(const std::vector<float>& z, const std::vector<std::int32_t>& labels,
                      std::int64_t classes) {
  double total = 0.0;
  const auto n = static_cast<std::int64_t>(labels.size());
  for (std::int64_t i = 0; i < n; ++i) {
    double sum = 0.0;
    for (std::int64_t k = 0; k < classes; ++k) sum += std::exp(double{z[i * classes + k]});
    total += std::log(sum) - z[i * classes + labels[i]];
  }
  return total / static_cast<double>(n);
}

TEST(SoftmaxCrossEntropyLossTest, ForwardMatchesLoopAndGradientMatchesFiniteDifferences) {
  Fixture f;
  const std::int64_t n = 4, c = 10;
  const std::vector<float> z = random_values(f.rng, n * c, -3.0f, 3.0f);
  const std::vector<std::int32_t> labels = {3, 0, 9, 3};
  Image logits = f.image(n, 1, 1, c, z);
  SoftmaxCrossEntropyLoss::Result result;
  f.run([&](CommandBuffer& cb) {
    result = SoftmaxCrossEntropyLoss(f.device).encode(cb, logits, labels);
  });
  EXPECT_NEAR(result.loss.read()[0], reference_loss(z, labels, c), 1e-5);
  const std::vector<float> got = result.gradient.read();
  for (std::size_t i = 0; i < z.size(); ++i) {
    std::vector<float> plus = z, minus = z;
    plus[i] += 1e-2f;
    minus[i] -= 1e-2f;
    // The reference is double, so the step can be small without cancellation in float.
    const double numeric =
        (reference_loss(plus, labels, c) - reference_loss(minus, labels, c)) / 2e-2;
    EXPECT_NEAR(got[i], numeric, 1e-4) << i;
  }
}

TEST(SoftmaxCrossEntropyLossTest, GradientMatchesFiniteDifferencesOfTheKernelsOwnLoss) {
  Fixture f;
  const std::int64_t n = 3, c = 4;
  const std::vector<float> z = random_values(f.rng, n * c, -2.0f, 2.0f);
  const std::vector<std::int32_t> labels = {1, 3, 0};
  SoftmaxCrossEntropyLoss loss(f.device);
  auto forward = [&](std::vector<float> values) {
    Image s = f.image(n, 1, 1, c, values);
    SoftmaxCrossEntropyLoss::Result r;
    f.run([&](CommandBuffer& cb) { r = loss.encode(cb, s, labels); });
    return r.loss.read();
  };
  Image logits = f.image(n, 1, 1, c, z);
  SoftmaxCrossEntropyLoss::Result result;
  f.run([&](CommandBuffer& cb) { result = loss.encode(cb, logits, labels); });
  const std::vector<double> expected = numeric_gradient(z, {1.0f}, forward, 5e-2f);
  const std::vector<float> got = result.gradient.read();
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 2e-3) << i;
}

TEST(SoftmaxCrossEntropyLossTest, StableForHugeLogits) {
  Fixture f;
  Image logits = f.image(2, 1, 1, 3, {1000.0f, 0.0f, -1000.0f, 5e30f, 5e30f, -5e30f});
  SoftmaxCrossEntropyLoss::Result result;
  f.run([&](CommandBuffer& cb) {
    result = SoftmaxCrossEntropyLoss(f.device).encode(cb, logits, {1, 0});
  });
  // Image 0: loss 1000 (label 1 is 1000 below the max); image 1: log 2. Mean over 2.
  EXPECT_NEAR(result.loss.read()[0], (1000.0 + std::log(2.0)) / 2.0, 1e-3);
  const std::vector<float> g = result.gradient.read();
  for (float v : g) EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(g[0], 0.5f, 1e-6);
  EXPECT_NEAR(g[1], -0.5f, 1e-6);
  EXPECT_NEAR(g[3], -0.25f, 1e-6);
  EXPECT_NEAR(g[4], 0.25f, 1e-6);
}

template <typename Encode>
void expect_invalid(Encode encode, const std::string& parameter) {
  try {
    encode();
    ADD_FAILURE() << "no InvalidArgument for " << parameter;
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.parameter(), parameter) << e.what();
  }
}

TEST(LayersValidationTest, NamesTheParameterAndWritesNothing) {
  Fixture f;
  CommandBuffer cb = f.queue.command_buffer();
  Image x = f.image(2, 4, 4, 3, std::vector<float>(96, -1.0f));
  Image wrong(f.device, ImageDescriptor{4, 4, 2, 2});
  wrong.write(std::vector<float>(64, 9.0f));
  Image half(f.device, ImageDescriptor{4, 4, 3, 2, DataType::float16});
  Image tiny(f.device, ImageDescriptor{1, 4, 3, 2});
  expect_invalid([&] { Relu(f.device).encode(cb, x, wrong); }, "destination_image.shape");
  expect_invalid([&] { Relu(f.device).encode(cb, half); }, "source_image.data_type");
  expect_invalid([&] { Relu(f.device).encode(cb, Image()); }, "source_image");
  expect_invalid([&] { ReluGradient(f.device).encode(cb, wrong, x); }, "source_gradient.shape");
  expect_invalid([&] { MaxPooling(f.device).encode(cb, tiny); }, "source_image.width");
  expect_invalid([&] { MaxPooling(f.device).encode(cb, x, wrong); }, "destination_image.shape");
  expect_invalid([&] { MaxPooling(f.device).encode(cb, x, x); }, "destination_image.shape");
  expect_invalid([&] { MaxPoolingGradient(f.device).encode(cb, x, x); }, "source_gradient.shape");
  Image logits = f.image(2, 1, 1, 3, std::vector<float>(6, 0.0f));
  SoftmaxCrossEntropyLoss loss(f.device);
  expect_invalid([&] { loss.encode(cb, x, {0, 1}); }, "logits.shape");
  expect_invalid([&] { loss.encode(cb, logits, {0}); }, "labels.size()");
  expect_invalid([&] { loss.encode(cb, logits, {0, 3}); }, "labels[1]");
  expect_invalid([&] { loss.encode(cb, logits, {0, -1}); }, "labels[1]");
  expect_invalid(
      [&] {
        loss.encode(cb, logits, {0, 1}, Image(f.device, ImageDescriptor{}), logits);
      },
      "gradient");
  cb.commit();
  cb.wait();
  EXPECT_EQ(wrong.read(), std::vector<float>(64, 9.0f));
  EXPECT_EQ(x.read(), std::vector<float>(96, -1.0f));
}

}  // namespace
}  // namespace convgrad
