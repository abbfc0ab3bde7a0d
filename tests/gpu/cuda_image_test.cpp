// SPDX-License-Identifier: Apache-2.0
// Image on a CUDA device: zero-filled storage in device memory, read() and write() through host
// copies (channel and batch windows included), and its views running the cuda backend.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "convgrad/device.hpp"
#include "convgrad/errors.hpp"
#include "convgrad/functional.hpp"
#include "convgrad/image.hpp"
#include "gpu/gpu_support.hpp"
#include "support/tensors.hpp"

namespace convgrad {
namespace {

std::vector<float> random_values(std::size_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values) v = uniform(rng);
  return values;
}

TEST(CudaImage, StartsZeroAndRoundTripsThroughWindows) {
  CONVGRAD_REQUIRE_CUDA();
  std::mt19937_64 rng = test::make_rng(0xc0da20);
  for (const DataType type : {DataType::float32, DataType::float16, DataType::bfloat16}) {
    SCOPED_TRACE(std::string(to_string(type)));
    Image image(
        Device::cuda(),
        {.width = 5, .height = 4, .feature_channels = 6, .number_of_images = 3, .data_type = type});
    EXPECT_EQ(image.view().device, DeviceKind::cuda);
    for (const float v : image.read()) EXPECT_EQ(v, 0.0f);
    const std::vector<float> all = random_values(3 * 4 * 5 * 6, rng);
    image.write(all);
    EXPECT_EQ(image.read(), test::rounded(all, type));
    // A window of channels 2..4 of images 1..2: writes there leave the rest as it was.
    Image window = image.images(1, 2).channels(2, 3);
    const std::vector<float> part = random_values(2 * 4 * 5 * 3, rng);
    window.write(part);
    EXPECT_EQ(window.read(), test::rounded(part, type));
    const std::vector<float> after = image.read();
    std::size_t i = 0, j = 0;
    for (int n = 0; n < 3; ++n) {
      for (int hw = 0; hw < 20; ++hw) {
        for (int c = 0; c < 6; ++c, ++i) {
          const bool inside = n >= 1 && c >= 2 && c < 5;
          EXPECT_EQ(after[i], test::rounded({inside ? part[j++] : all[i]}, type)[0]);
        }
      }
    }
  }
}

TEST(CudaImage, OutOfMemoryIsADeviceError) {
  CONVGRAD_REQUIRE_CUDA();
  const ImageDescriptor huge{.width = 1 << 20, .height = 1 << 20, .feature_channels = 1 << 10};
  EXPECT_THROW({ const Image image(Device::cuda(), huge); }, DeviceError);
}

TEST(CudaImage, ViewsRunTheCudaBackendAsTheReferenceDoesOnTheHost) {
  CONVGRAD_REQUIRE_CUDA();
  std::mt19937_64 rng = test::make_rng(0xc0da21);
  ConvProblem p = make_problem(2, 9, 7, 6, 4, 3, 3, 2, 1, 1, 2);
  const ImageDescriptor xd{
      .width = p.w, .height = p.h, .feature_channels = p.c, .number_of_images = p.n};
  const ImageDescriptor yd{
      .width = p.q, .height = p.p, .feature_channels = p.k, .number_of_images = p.n};
  // Weights and bias are no images: one image each, with the filter layout as its shape.
  const ImageDescriptor wd{
      .width = p.s, .height = p.r, .feature_channels = p.c_per_group(), .number_of_images = p.k};
  const ImageDescriptor bd{.width = 1, .height = 1, .feature_channels = 1, .number_of_images = p.k};
  const std::vector<float> xv = random_values(x_elements(p), rng),
                           wv = random_values(w_elements(p), rng), bv = random_values(p.k, rng),
                           dyv = random_values(y_elements(p), rng);
  RunOptions ref, cuda;
  ref.backend = "ref";
  cuda.backend = "cuda";
  std::vector<std::vector<float>> results[2];
  for (int side = 0; side < 2; ++side) {
    const Device device = side == 0 ? Device::reference() : Device::cuda();
    const RunOptions& options = side == 0 ? ref : cuda;
    Image x(device, xd), w(device, wd), b(device, bd), dy(device, yd), y(device, yd),
        dx(device, xd), dw(device, wd), db(device, bd);
    x.write(xv);
    w.write(wv);
    b.write(bv);
    dy.write(dyv);
    fprop(p, x.view(), w.view(), b.view(), y.view(), options);
    dgrad(p, dy.view(), w.view(), dx.view(), options);
    wgrad(p, x.view(), dy.view(), dw.view(), db.view(), options);
    results[side] = {y.read(), dx.read(), dw.read(), db.read()};
  }
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_LE(test::relative_error(results[1][i], results[0][i]), 1e-5) << "output " << i;
  }
}

}  // namespace
}  // namespace convgrad
