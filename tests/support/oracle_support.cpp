// SPDX-License-Identifier: Apache-2.0
#include "support/oracle_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <system_error>

#include "convgrad/dtype.hpp"

namespace convgrad::test {
namespace {

std::int64_t uniform(std::mt19937_64& rng, std::int64_t lo, std::int64_t hi) {
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
}

bool chance(std::mt19937_64& rng, double rate) {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng) < rate;
}

// Negative pads reach at most three rows below zero: further ones only shrink the input, which
// a smaller h already covers.
std::int32_t draw_pad(std::mt19937_64& rng, const DrawSpec& spec, std::int64_t extent) {
  const std::int64_t low = chance(rng, spec.negative_pad_rate) ? -3 : 0;
  return static_cast<std::int32_t>(uniform(rng, low, extent - 1));
}

}  // namespace

ConvProblem with_implied_end_pads(ConvProblem p) {
  p.pad_bottom =
      static_cast<std::int32_t>((p.p - 1) * p.stride_h + p.dilated_r() - p.h - p.pad_top);
  p.pad_right =
      static_cast<std::int32_t>((p.q - 1) * p.stride_w + p.dilated_s() - p.w - p.pad_left);
  return p;
}

ConvProblem draw_problem(std::mt19937_64& rng, const DrawSpec& spec, std::size_t index) {
  for (;;) {
    ConvProblem p;
    p.n = uniform(rng, 1, spec.max_batch);
    p.h = uniform(rng, 1, spec.max_size);
    p.w = uniform(rng, 1, spec.max_size);
    p.r = uniform(rng, 1, spec.max_kernel);
    p.s = uniform(rng, 1, spec.max_kernel);
    p.stride_h = static_cast<std::int32_t>(uniform(rng, 1, spec.max_stride));
    p.stride_w = static_cast<std::int32_t>(uniform(rng, 1, spec.max_stride));
    p.dilation_h = static_cast<std::int32_t>(uniform(rng, 1, spec.max_dilation));
    p.dilation_w = static_cast<std::int32_t>(uniform(rng, 1, spec.max_dilation));
    p.pad_top = draw_pad(rng, spec, p.dilated_r());
    p.pad_bottom = draw_pad(rng, spec, p.dilated_r());
    p.pad_left = draw_pad(rng, spec, p.dilated_s());
    p.pad_right = draw_pad(rng, spec, p.dilated_s());
    if (p.h + p.pad_top + p.pad_bottom < p.dilated_r() ||
        p.w + p.pad_left + p.pad_right < p.dilated_s()) {
      continue;
    }
    const std::int64_t max_c = spec.max_channels;
    switch (index % 5) {
      case 0:
        p.c = uniform(rng, 1, max_c);
        p.k = uniform(rng, 1, max_c);
        break;
      case 1: {
        p.groups = static_cast<std::int32_t>(uniform(rng, 2, 4));
        p.c = p.groups * uniform(rng, 1, std::max<std::int64_t>(1, max_c / p.groups));
        p.k = p.groups * uniform(rng, 1, std::max<std::int64_t>(1, max_c / p.groups));
        break;
      }
      default: {
        const std::int64_t multiplier = static_cast<std::int64_t>(index % 5) - 1;
        p.c = uniform(rng, 2, std::max<std::int64_t>(2, max_c / multiplier));
        p.groups = static_cast<std::int32_t>(p.c);
        p.k = p.c * multiplier;
        break;
      }
    }
    p.with_bias = uniform(rng, 0, 3) != 0;
    derive_output_size(p);
    if (chance(rng, spec.implied_end_pad_rate)) p = with_implied_end_pads(p);
    return p;
  }
}

std::string describe(const ConvProblem& p) {
  std::string out = to_string(p);
  out += " (pads t" + std::to_string(p.pad_top) + " b" + std::to_string(p.pad_bottom) + " l" +
         std::to_string(p.pad_left) + " r" + std::to_string(p.pad_right);
  out += ", x/w/y " + std::string(to_string(p.x_type)) + "/" + std::string(to_string(p.w_type)) +
         "/" + std::string(to_string(p.y_type));
  out += p.with_bias ? ", bias)" : ", no bias)";
  return out;
}

std::string repro_hint() {
  std::string binary = "<test binary>";
  std::error_code error;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) binary = exe.string();
  std::string filter;
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    filter = std::string(" --gtest_filter=") + info->test_suite_name() + "." + info->name();
  }
  return "repro: CONVGRAD_SEED=" + std::to_string(process_seed()) + " " + binary + filter;
}

void Census::add(const ConvProblem& p) {
  ++total_;
  const auto mark = [this](const char* feature, bool present) {
    if (present) ++counts_[feature];
  };
  mark("batch>1", p.n > 1);
  mark("stride>1", p.stride_h > 1 || p.stride_w > 1);
  mark("stride 3", p.stride_h == 3 || p.stride_w == 3);
  mark("dilation>1", (p.dilation_h > 1 && p.r > 1) || (p.dilation_w > 1 && p.s > 1));
  mark("dilation 3", (p.dilation_h == 3 && p.r > 1) || (p.dilation_w == 3 && p.s > 1));
  mark("asymmetric pads", p.pad_top != p.pad_bottom || p.pad_left != p.pad_right);
  mark("negative pad", std::min({p.pad_top, p.pad_bottom, p.pad_left, p.pad_right}) < 0);
  mark("negative start pad", std::min(p.pad_top, p.pad_left) < 0);
  mark("non-square", p.h != p.w || p.r != p.s || p.stride_h != p.stride_w);
  mark("1x1", p.r == 1 && p.s == 1);
  mark("grouped", p.groups > 1 && p.groups != p.c);
  const bool depthwise = p.groups > 1 && p.groups == p.c;
  mark("depthwise m1", depthwise && p.k == p.c);
  mark("depthwise m2", depthwise && p.k == 2 * p.c);
  mark("depthwise m3", depthwise && p.k == 3 * p.c);
  mark("bias", p.with_bias);
  mark("no bias", !p.with_bias);
  mark("c not a multiple of 4", p.c % 4 != 0);
}

std::int64_t Census::count(const std::string& feature) const {
  const auto it = counts_.find(feature);
  return it == counts_.end() ? 0 : it->second;
}

std::string Census::summary() const {
  std::string out = std::to_string(total_) + " problems:";
  for (const auto& [feature, count] : counts_) {
    out += " [" + feature + "] " + std::to_string(count);
  }
  return out;
}

const std::vector<std::string>& required_features() {
  static const std::vector<std::string> features{
      "batch>1",         "stride>1",     "stride 3", "dilation>1",           "dilation 3",
      "asymmetric pads", "negative pad", "grouped",  "depthwise m1",         "depthwise m2",
      "depthwise m3",    "bias",         "no bias",  "c not a multiple of 4"};
  return features;
}

StridedTensor::StridedTensor(DataType type, const std::array<std::int64_t, 4>& dims, Layout layout,
                             std::mt19937_64& rng)
    : dims_(dims) {
  if (layout == Layout::dense) {
    buffer_ = HostTensor(type, dims[0], dims[1], dims[2], dims[3]);
    view_ = buffer_.view();
    buffer_.poison();
    return;
  }
  // Innermost axis first. Channels-first puts the channel axis (3) outside the spatial ones.
  const bool channels_first = uniform(rng, 0, 3) == 0;
  const std::array<int, 4> order =
      channels_first ? std::array<int, 4>{2, 1, 3, 0} : std::array<int, 4>{3, 2, 1, 0};
  std::array<std::int64_t, 4> strides{};
  std::int64_t step = uniform(rng, 1, 2);
  for (const int axis : order) {
    strides[static_cast<std::size_t>(axis)] = step;
    step = step * dims[static_cast<std::size_t>(axis)] + uniform(rng, 0, 3);
  }
  // A batch slice starts one or two whole items in; otherwise a small channel-window offset.
  offset_ = uniform(rng, 0, 3) + (uniform(rng, 0, 1) == 1 ? uniform(rng, 1, 2) * strides[0] : 0);
  std::int64_t span = 1;
  for (std::size_t i = 0; i < 4; ++i) span += (dims[i] - 1) * strides[i];
  const std::int64_t total = offset_ + span + uniform(rng, 0, 3);
  buffer_ = HostTensor(type, total, 1, 1, 1);
  view_.data = static_cast<std::byte*>(buffer_.view().data) +
               static_cast<std::size_t>(offset_) * size_of(type);
  view_.type = type;
  view_.dims = dims;
  view_.strides = strides;
  view_.extent = total - offset_;
  buffer_.poison();
}

std::int64_t StridedTensor::element(std::int64_t i) const {
  const std::int64_t i3 = i % dims_[3];
  i /= dims_[3];
  const std::int64_t i2 = i % dims_[2];
  i /= dims_[2];
  const std::int64_t i1 = i % dims_[1];
  const std::int64_t i0 = i / dims_[1];
  return offset_ + view_.offset(i0, i1, i2, i3);
}

std::vector<float> StridedTensor::gather() const {
  std::vector<float> out(static_cast<std::size_t>(size()));
  for (std::int64_t i = 0; i < size(); ++i)
    out[static_cast<std::size_t>(i)] = buffer_.get(element(i));
  return out;
}

void StridedTensor::scatter(const std::vector<float>& values) {
  for (std::int64_t i = 0; i < size(); ++i)
    buffer_.set(element(i), values[static_cast<std::size_t>(i)]);
}

void StridedTensor::fill_uniform(std::mt19937_64& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  for (std::int64_t i = 0; i < size(); ++i) buffer_.set(element(i), dist(rng));
}

void StridedTensor::fill_integers(std::mt19937_64& rng, int range) {
  std::uniform_int_distribution<int> dist(-range, range);
  for (std::int64_t i = 0; i < size(); ++i) buffer_.set(element(i), static_cast<float>(dist(rng)));
  if (size() > 0) buffer_.set(element(0), 1.0f);
}

void StridedTensor::poison() { buffer_.poison(); }

std::int64_t StridedTensor::outside_written() const {
  std::vector<bool> inside(static_cast<std::size_t>(buffer_.size()), false);
  for (std::int64_t i = 0; i < size(); ++i) inside[static_cast<std::size_t>(element(i))] = true;
  std::int64_t written = 0;
  for (std::int64_t i = 0; i < buffer_.size(); ++i) {
    if (!inside[static_cast<std::size_t>(i)] && !std::isnan(buffer_.get(i))) ++written;
  }
  return written;
}

namespace {

// Along one axis: which outputs see an input, which inputs some output sees, which taps see an
// input.
struct AxisReach {
  std::vector<bool> output, input, tap;
};

AxisReach axis_reach(std::int64_t input, std::int64_t output, std::int64_t kernel,
                     std::int64_t stride, std::int64_t dilation, std::int64_t pad) {
  AxisReach reach{std::vector<bool>(static_cast<std::size_t>(output), false),
                  std::vector<bool>(static_cast<std::size_t>(input), false),
                  std::vector<bool>(static_cast<std::size_t>(kernel), false)};
  for (std::int64_t o = 0; o < output; ++o) {
    for (std::int64_t t = 0; t < kernel; ++t) {
      const std::int64_t i = o * stride - pad + t * dilation;
      if (i < 0 || i >= input) continue;
      reach.output[static_cast<std::size_t>(o)] = true;
      reach.input[static_cast<std::size_t>(i)] = true;
      reach.tap[static_cast<std::size_t>(t)] = true;
    }
  }
  return reach;
}

}  // namespace

std::vector<bool> reached(const ConvProblem& p, Direction direction) {
  const AxisReach rows = axis_reach(p.h, p.p, p.r, p.stride_h, p.dilation_h, p.pad_top);
  const AxisReach cols = axis_reach(p.w, p.q, p.s, p.stride_w, p.dilation_w, p.pad_left);
  std::array<std::int64_t, 4> dims{};
  const std::vector<bool>* a = nullptr;
  const std::vector<bool>* b = nullptr;
  switch (direction) {
    case Direction::fprop:
      dims = {p.n, p.p, p.q, p.k};
      a = &rows.output;
      b = &cols.output;
      break;
    case Direction::dgrad:
      dims = {p.n, p.h, p.w, p.c};
      a = &rows.input;
      b = &cols.input;
      break;
    case Direction::wgrad:
      dims = {p.k, p.r, p.s, p.c_per_group()};
      a = &rows.tap;
      b = &cols.tap;
      break;
  }
  std::vector<bool> mask(static_cast<std::size_t>(dims[0] * dims[1] * dims[2] * dims[3]));
  std::size_t at = 0;
  for (std::int64_t i0 = 0; i0 < dims[0]; ++i0)
    for (std::int64_t i1 = 0; i1 < dims[1]; ++i1)
      for (std::int64_t i2 = 0; i2 < dims[2]; ++i2)
        for (std::int64_t i3 = 0; i3 < dims[3]; ++i3)
          mask[at++] = (*a)[static_cast<std::size_t>(i1)] && (*b)[static_cast<std::size_t>(i2)];
  return mask;
}

bool mostly_zero_where(const std::vector<float>& values, const std::vector<bool>& mask) {
  std::vector<float> kept;
  for (std::size_t i = 0; i < values.size() && i < mask.size(); ++i) {
    if (mask[i]) kept.push_back(values[i]);
  }
  return kept.empty() || mostly_zero(kept);
}

std::vector<float> rounded(const std::vector<float>& values, DataType type) {
  std::vector<float> out(values.size());
  std::vector<std::byte> cell(size_of(type));
  for (std::size_t i = 0; i < values.size(); ++i) {
    store_from_float(cell.data(), type, 0, values[i]);
    out[i] = load_as_float(cell.data(), type, 0);
  }
  return out;
}

}  // namespace convgrad::test
