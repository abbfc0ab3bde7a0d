// SPDX-License-Identifier: Apache-2.0
#include "support/tensors.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>

namespace convgrad::test {

std::uint64_t process_seed() {
  static const std::uint64_t seed = [] {
    std::uint64_t value = 0;
    if (const char* env = std::getenv("CONVGRAD_SEED")) {
      value = std::strtoull(env, nullptr, 10);
    } else {
      std::random_device device;
      value = (static_cast<std::uint64_t>(device()) << 32) ^ device();
    }
    std::cout << "[convgrad] CONVGRAD_SEED=" << value << " (set it to reproduce)\n";
    return value;
  }();
  return seed;
}

std::mt19937_64 make_rng(std::uint64_t salt) {
  std::seed_seq seq{process_seed(), salt};
  return std::mt19937_64(seq);
}

HostTensor::HostTensor(DataType type, std::int64_t d0, std::int64_t d1, std::int64_t d2,
                       std::int64_t d3)
    : storage_(static_cast<std::size_t>(d0 * d1 * d2 * d3) * size_of(type)) {
  view_ = dense_view(storage_.data(), type, d0, d1, d2, d3);
}

HostTensor::HostTensor(const HostTensor& other) : storage_(other.storage_), view_(other.view_) {
  view_.data = storage_.data();
}

HostTensor& HostTensor::operator=(const HostTensor& other) {
  if (this != &other) {
    storage_ = other.storage_;
    view_ = other.view_;
    view_.data = storage_.data();
  }
  return *this;
}

float HostTensor::get(std::int64_t i) const { return load_as_float(view_.data, view_.type, i); }
void HostTensor::set(std::int64_t i, float value) {
  store_from_float(view_.data, view_.type, i, value);
}

void HostTensor::fill_uniform(std::mt19937_64& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  for (std::int64_t i = 0; i < size(); ++i) set(i, dist(rng));
}

void HostTensor::fill_integers(std::mt19937_64& rng, int range) {
  std::uniform_int_distribution<int> dist(-range, range);
  for (std::int64_t i = 0; i < size(); ++i) set(i, static_cast<float>(dist(rng)));
  if (size() > 0) set(0, 1.0f);  // never all zero
}

void HostTensor::fill(float value) {
  for (std::int64_t i = 0; i < size(); ++i) set(i, value);
}

void HostTensor::poison() { fill(std::numeric_limits<float>::quiet_NaN()); }

std::vector<float> HostTensor::to_floats() const {
  std::vector<float> out(static_cast<std::size_t>(size()));
  for (std::int64_t i = 0; i < size(); ++i) out[static_cast<std::size_t>(i)] = get(i);
  return out;
}

ProblemTensors::ProblemTensors(const ConvProblem& p)
    : x(p.x_type, p.n, p.h, p.w, p.c),
      w(p.w_type, p.k, p.r, p.s, p.c_per_group()),
      b(DataType::float32, p.k, 1, 1, 1),
      y(p.y_type, p.n, p.p, p.q, p.k) {}

double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double max_diff = 0.0, max_want = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) != std::isnan(want[i])) return std::numeric_limits<double>::infinity();
    max_diff = std::max(max_diff, std::abs(static_cast<double>(got[i]) - want[i]));
    max_want = std::max(max_want, std::abs(static_cast<double>(want[i])));
  }
  if (max_want == 0.0) return max_diff == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return max_diff / max_want;
}

std::int64_t count_nan(const std::vector<float>& values) {
  return std::count_if(values.begin(), values.end(), [](float v) { return std::isnan(v); });
}

bool mostly_zero(const std::vector<float>& values) {
  const auto zeros = std::count(values.begin(), values.end(), 0.0f);
  return static_cast<std::size_t>(zeros) * 2 > values.size();
}

ConvProblem random_problem(std::mt19937_64& rng, int max_size, bool allow_negative_pad) {
  auto uniform = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  for (;;) {
    ConvProblem p;
    p.n = uniform(1, 3);
    p.r = uniform(1, 5);
    p.s = uniform(1, 5);
    p.dilation_h = static_cast<std::int32_t>(uniform(0, 3) == 0 ? uniform(2, 3) : 1);
    p.dilation_w = static_cast<std::int32_t>(uniform(0, 3) == 0 ? uniform(2, 3) : 1);
    p.stride_h = static_cast<std::int32_t>(uniform(1, 3));
    p.stride_w = static_cast<std::int32_t>(uniform(1, 3));
    p.h = uniform(1, max_size);
    p.w = uniform(1, max_size);
    const std::int64_t er = p.dilated_r(), es = p.dilated_s();
    const std::int64_t low_r = allow_negative_pad ? -std::min<std::int64_t>(er - 1, 2) : 0;
    const std::int64_t low_s = allow_negative_pad ? -std::min<std::int64_t>(es - 1, 2) : 0;
    p.pad_top = static_cast<std::int32_t>(uniform(low_r, er - 1));
    p.pad_bottom = static_cast<std::int32_t>(uniform(low_r, er - 1));
    p.pad_left = static_cast<std::int32_t>(uniform(low_s, es - 1));
    p.pad_right = static_cast<std::int32_t>(uniform(low_s, es - 1));
    switch (uniform(0, 3)) {
      case 0: {  // grouped
        p.groups = static_cast<std::int32_t>(uniform(2, 4));
        p.c = p.groups * uniform(1, 4);
        p.k = p.groups * uniform(1, 4);
        break;
      }
      case 1: {  // depthwise, multiplier 1..3
        p.c = uniform(1, 9);
        p.groups = static_cast<std::int32_t>(p.c);
        p.k = p.c * uniform(1, 3);
        break;
      }
      default:
        p.c = uniform(1, 19);
        p.k = uniform(1, 19);
        break;
    }
    p.with_bias = uniform(0, 3) != 0;
    if (p.h + p.pad_top + p.pad_bottom < er || p.w + p.pad_left + p.pad_right < es) continue;
    derive_output_size(p);
    return p;
  }
}

}  // namespace convgrad::test
