// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the MPS-face tests: random images and layers, an independent restatement of
// the MPS padding arithmetic (mps-reference.md §7.3) and the functional reference (`ref` backend)
// on plain float vectors, so every API result can be checked against a ConvProblem the test built
// itself.
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "convgrad/convgrad.hpp"
#include "support/tensors.hpp"

namespace convgrad::apitest {

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

inline std::vector<float> random_values(std::mt19937_64& rng, std::int64_t count, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(static_cast<std::size_t>(count));
  for (float& v : values) v = dist(rng);
  return values;
}

/// The values as `type` stores them, so a float32 reference sees exactly what a kernel reads.
inline std::vector<float> rounded(std::vector<float> values, DataType type) {
  for (float& v : values) {
    if (type == DataType::float16) v = half_to_float(float_to_half(v));
    if (type == DataType::bfloat16) v = bfloat16_to_float(float_to_bfloat16(v));
  }
  return values;
}

/// An image filled with random values; `values` receives what it holds (rounded to `type`).
inline Image random_image(const Device& device, std::int64_t n, std::int64_t h, std::int64_t w,
                          std::int64_t c, DataType type, std::mt19937_64& rng,
                          std::vector<float>* values = nullptr) {
  Image image(device, ImageDescriptor{w, h, c, n, type});
  std::vector<float> v = rounded(random_values(rng, n * h * w * c), type);
  image.write(v);
  if (values != nullptr) *values = std::move(v);
  return image;
}

inline void fill(Image& image, float value) {
  image.write(
      std::vector<float>(static_cast<std::size_t>(image.number_of_images() * image.height() *
                                                  image.width() * image.feature_channels()),
                         value));
}

/// The raw bytes of a whole (not windowed) image: for bit-identical checks.
inline std::vector<std::byte> raw_bytes(const Image& image) {
  const TensorView v = image.view();
  const std::int64_t count = v.dims[0] * v.dims[1] * v.dims[2] * v.dims[3];
  std::vector<std::byte> bytes(static_cast<std::size_t>(count) * size_of(v.type));
  std::memcpy(bytes.data(), v.data, bytes.size());
  return bytes;
}

inline std::vector<std::uint32_t> bits_of(std::span<const float> values) {
  std::vector<std::uint32_t> out;
  out.reserve(values.size());
  for (float v : values) out.push_back(std::bit_cast<std::uint32_t>(v));
  return out;
}

/// One axis of MPS's padding arithmetic, restated from mps-reference.md §7.3 (and deliberately
/// not calling Padding): `style` -1/0/+1 for valid/same/full, `align` 0 centred, 1 top-left,
/// 2 bottom-right, `remainder_before` for AddRemainderToTop/Left on this axis.
struct MpsAxis {
  std::int64_t dest = 0, before = 0, after = 0, offset = 0;
};

inline MpsAxis mps_axis(std::int64_t src, std::int64_t kd, std::int64_t stride, int style,
                        int align, bool remainder_before) {
  MpsAxis a;
  const std::int64_t numerator = src + style * (kd - 1);
  a.dest = (numerator + stride - 1) / stride;
  const std::int64_t extra = (a.dest - 1) * stride + kd - src;
  if (align == 1) {
    a.before = extra;
  } else if (align == 2) {
    a.before = 0;
  } else {
    a.before = (extra + (remainder_before ? 1 : 0)) / 2;  // C truncation towards zero
  }
  a.after = extra - a.before;
  a.offset = (kd >> 1) - a.before;
  return a;
}

/// The forward pads a padding policy stands for, from the restatement above.
struct Pads {
  std::int64_t top = 0, left = 0, bottom = 0, right = 0;
};

inline Pads expected_pads(const Padding& padding, std::int64_t h, std::int64_t w, std::int64_t kdh,
                          std::int64_t kdw, std::int64_t sy, std::int64_t sx) {
  if (padding.is_explicit()) {
    const ExplicitPadding& e = padding.pads();
    return {e.top, e.left, e.bottom, e.right};
  }
  const auto bits = static_cast<std::uint32_t>(padding.method());
  const std::uint32_t size = bits & 48u, remainder = bits & 12u;
  const int style = size == 0 ? -1 : size == 16 ? 0 : 1;
  const int align = static_cast<int>(bits & 3u);
  const MpsAxis y = mps_axis(h, kdh, sy, style, align, remainder == 0 || remainder == 4);
  const MpsAxis x = mps_axis(w, kdw, sx, style, align, remainder == 0 || remainder == 8);
  return {y.before, x.before, y.after, x.after};
}

/// The ConvProblem of a layer with `descriptor` on `n` images of `h x w` with these pads.
inline ConvProblem layer_problem(const ConvolutionDescriptor& d, std::int64_t n, std::int64_t h,
                                 std::int64_t w, const Pads& pads) {
  ConvProblem p;
  p.n = n;
  p.h = h;
  p.w = w;
  p.c = d.input_feature_channels();
  p.k = d.output_feature_channels();
  p.r = d.kernel_height();
  p.s = d.kernel_width();
  p.stride_h = static_cast<std::int32_t>(d.stride_in_pixels_y());
  p.stride_w = static_cast<std::int32_t>(d.stride_in_pixels_x());
  p.dilation_h = static_cast<std::int32_t>(d.dilation_rate_y());
  p.dilation_w = static_cast<std::int32_t>(d.dilation_rate_x());
  p.groups = d.kind() == ConvolutionKind::depthwise
                 ? static_cast<std::int32_t>(d.input_feature_channels())
                 : static_cast<std::int32_t>(d.groups());
  p.pad_top = static_cast<std::int32_t>(pads.top);
  p.pad_left = static_cast<std::int32_t>(pads.left);
  p.pad_bottom = static_cast<std::int32_t>(pads.bottom);
  p.pad_right = static_cast<std::int32_t>(pads.right);
  p.with_bias = d.bias_enabled();
  derive_output_size(p);
  return p;
}

inline RunOptions ref_options() {
  RunOptions options;
  options.backend = "ref";
  return options;
}

// The reference runs in float32 on values already rounded to the image types: a kernel that reads
// f16 or bf16 images computes on exactly these values.
inline std::vector<float> ref_fprop(const ConvProblem& p, std::vector<float> x,
                                    std::vector<float> w, std::vector<float> b) {
  std::vector<float> y(static_cast<std::size_t>(y_elements(p)), kNaN);
  const TensorView bias = p.with_bias ? bias_view(b.data(), p.k) : TensorView{};
  fprop(p, dense_view(x.data(), DataType::float32, p.n, p.h, p.w, p.c),
        dense_view(w.data(), DataType::float32, p.k, p.r, p.s, p.c_per_group()), bias,
        dense_view(y.data(), DataType::float32, p.n, p.p, p.q, p.k), ref_options());
  return y;
}

inline std::vector<float> ref_dgrad(const ConvProblem& p, std::vector<float> dy,
                                    std::vector<float> w) {
  std::vector<float> dx(static_cast<std::size_t>(x_elements(p)), kNaN);
  dgrad(p, dense_view(dy.data(), DataType::float32, p.n, p.p, p.q, p.k),
        dense_view(w.data(), DataType::float32, p.k, p.r, p.s, p.c_per_group()),
        dense_view(dx.data(), DataType::float32, p.n, p.h, p.w, p.c), ref_options());
  return dx;
}

struct WeightGradients {
  std::vector<float> dw, db;
};

inline WeightGradients ref_wgrad(const ConvProblem& p, std::vector<float> x,
                                 std::vector<float> dy) {
  WeightGradients g;
  g.dw.assign(static_cast<std::size_t>(w_elements(p)), kNaN);
  if (p.with_bias) g.db.assign(static_cast<std::size_t>(p.k), kNaN);
  wgrad(p, dense_view(x.data(), DataType::float32, p.n, p.h, p.w, p.c),
        dense_view(dy.data(), DataType::float32, p.n, p.p, p.q, p.k),
        dense_view(g.dw.data(), DataType::float32, p.k, p.r, p.s, p.c_per_group()),
        p.with_bias ? bias_view(g.db.data(), p.k) : TensorView{}, ref_options());
  return g;
}

/// A layer's weights and the data source holding them.
struct Layer {
  std::vector<float> weights, biases;
  std::shared_ptr<MemoryConvolutionDataSource> source;
};

inline Layer make_layer(const ConvolutionDescriptor& d, std::mt19937_64& rng,
                        std::string label = "layer") {
  Layer layer;
  layer.weights = random_values(rng, d.weight_count());
  if (d.bias_enabled()) layer.biases = random_values(rng, d.output_feature_channels());
  layer.source = std::make_shared<MemoryConvolutionDataSource>(d, layer.weights, layer.biases,
                                                               std::move(label));
  return layer;
}

inline double tolerance(DataType type) { return type == DataType::float32 ? 1e-5 : 1e-2; }

/// got ~ want within `tol` relative to max|want|, no NaN, and want not trivially all zero.
inline ::testing::AssertionResult close(const std::vector<float>& got,
                                        const std::vector<float>& want, double tol) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != expected " << want.size();
  }
  if (test::count_nan(got) != 0) {
    return ::testing::AssertionFailure() << test::count_nan(got) << " NaN elements (unwritten)";
  }
  bool any = false;
  for (float v : want) any = any || v != 0.0f;
  if (!any) return ::testing::AssertionFailure() << "the expected values are all zero";
  const double error = test::relative_error(got, want);
  if (error > tol) {
    return ::testing::AssertionFailure() << "relative error " << error << " > " << tol;
  }
  return ::testing::AssertionSuccess();
}

/// Concatenates NHWC batches (the reference sees a batch as one tensor).
inline std::vector<float> concat(const std::vector<std::vector<float>>& parts) {
  std::vector<float> out;
  for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

/// Images [first, first + count) of an NHWC vector of `per_image` elements per image.
inline std::vector<float> slice(const std::vector<float>& v, std::int64_t per_image,
                                std::int64_t first, std::int64_t count) {
  return {v.begin() + first * per_image, v.begin() + (first + count) * per_image};
}

}  // namespace convgrad::apitest
