// SPDX-License-Identifier: Apache-2.0
// Test tensors: owned host buffers with views, random fills, NaN poisoning, and comparisons.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "convgrad/problem.hpp"
#include "convgrad/tensor_view.hpp"

namespace convgrad::test {

/// The seed of this test process: CONVGRAD_SEED when set, otherwise fresh from random_device.
/// Printed once so that a failure can be reproduced.
std::uint64_t process_seed();
/// A generator seeded from process_seed() and `salt` (so tests draw independent streams).
std::mt19937_64 make_rng(std::uint64_t salt);

/// A dense host tensor of any storage type.
class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DataType type, std::int64_t d0, std::int64_t d1, std::int64_t d2, std::int64_t d3);
  // A copy owns new storage; its view must point there, not at the original's bytes.
  HostTensor(const HostTensor& other);
  HostTensor& operator=(const HostTensor& other);
  HostTensor(HostTensor&&) noexcept = default;
  HostTensor& operator=(HostTensor&&) noexcept = default;
  const TensorView& view() const { return view_; }
  std::int64_t size() const { return view_.extent; }
  DataType type() const { return view_.type; }
  float get(std::int64_t i) const;
  void set(std::int64_t i, float value);
  /// Uniform in [lo, hi), rounded to the storage type.
  void fill_uniform(std::mt19937_64& rng, float lo = -1.0f, float hi = 1.0f);
  /// Small integers in [-range, range] (never all zero): exact in float32 sums.
  void fill_integers(std::mt19937_64& rng, int range = 3);
  void fill(float value);
  /// NaN everywhere: an element a kernel forgets to write stays NaN.
  void poison();
  std::vector<float> to_floats() const;
  std::vector<std::byte> bytes() const { return storage_; }

 private:
  std::vector<std::byte> storage_;
  TensorView view_;
};

/// Tensors of one convolution problem (dense).
struct ProblemTensors {
  HostTensor x, w, b, y;
  explicit ProblemTensors(const ConvProblem& problem);
};

/// max|got - want| / max|want|; infinity when got has a NaN where want has none.
double relative_error(const std::vector<float>& got, const std::vector<float>& want);
/// Number of NaN elements.
std::int64_t count_nan(const std::vector<float>& values);
/// True when more than half of the values are exactly zero (a result not worth trusting).
bool mostly_zero(const std::vector<float>& values);

/// A random valid problem drawn from every feature: stride, dilation, asymmetric and negative
/// padding, groups, depthwise with multipliers, odd sizes. Sizes stay small (`max_size`).
ConvProblem random_problem(std::mt19937_64& rng, int max_size = 12, bool allow_negative_pad = true);

}  // namespace convgrad::test
