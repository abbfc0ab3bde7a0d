// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the oracle and property tests: a problem generator that cycles through the
// structural features so that every seed covers them, strided views into larger buffers, a
// feature census, and failure labels that carry the repro seed.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "convgrad/problem.hpp"
#include "convgrad/tensor_view.hpp"
#include "support/tensors.hpp"

namespace convgrad::test {

/// Limits and feature rates of `draw_problem`.
struct DrawSpec {
  std::int64_t max_size = 12;      ///< h and w
  std::int64_t max_channels = 20;  ///< c and k
  std::int64_t max_batch = 4;
  std::int64_t max_kernel = 5;  ///< r and s
  int max_stride = 3;
  int max_dilation = 3;
  /// Chance that one pad is drawn from a range that reaches below zero.
  double negative_pad_rate = 0.25;
  /// Chance that the end pads are replaced by the smallest ones giving the same output size: the
  /// values an MPS offset implies, negative whenever stride rounding leaves input rows unread.
  double implied_end_pad_rate = 0.3;
};

/// A random valid problem. The kind cycles with `index` (dense, grouped, depthwise with channel
/// multiplier 1, 2, 3) so that any run of five consecutive indices covers all of them; strides
/// and dilations are uniform per axis. Data types are float32 and `with_bias` is random.
ConvProblem draw_problem(std::mt19937_64& rng, const DrawSpec& spec, std::size_t index);

/// The smallest end pads that keep `p` and `q`: what a caller that only knows the output size
/// passes. They may be negative.
ConvProblem with_implied_end_pads(ConvProblem problem);

/// The problem string plus what it leaves out (end pads, data types, bias), for failure messages.
std::string describe(const ConvProblem& problem);

/// "CONVGRAD_SEED=<seed> <binary> --gtest_filter=<current test>", to paste after a failure.
std::string repro_hint();

/// Counts of the features a list of problems exercised, to print and to require coverage.
class Census {
 public:
  void add(const ConvProblem& problem);
  std::int64_t count(const std::string& feature) const;
  std::int64_t total() const { return total_; }
  std::string summary() const;

 private:
  std::map<std::string, std::int64_t> counts_;
  std::int64_t total_ = 0;
};

/// The features every randomized suite must have covered (see Census::add for the names).
const std::vector<std::string>& required_features();

/// How a StridedTensor lays out its view.
enum class Layout : std::uint8_t { dense, strided };

/// A 4-D view of a buffer. `dense` is plain row-major. `strided` views a larger buffer: a random
/// leading offset (which may be a batch slice), an innermost stride of 1 or 2, slack after every
/// row, image and batch item, and sometimes a channels-first order of the strides. Everything
/// outside the view is NaN, so that a kernel reading or writing past the view is caught.
class StridedTensor {
 public:
  StridedTensor(DataType type, const std::array<std::int64_t, 4>& dims, Layout layout,
                std::mt19937_64& rng);
  // The view points into the buffer: a copy would alias the original.
  StridedTensor(const StridedTensor&) = delete;
  StridedTensor& operator=(const StridedTensor&) = delete;
  StridedTensor(StridedTensor&&) = default;
  StridedTensor& operator=(StridedTensor&&) = default;
  const TensorView& view() const { return view_; }
  std::int64_t size() const { return dims_[0] * dims_[1] * dims_[2] * dims_[3]; }
  /// The viewed elements in row-major order of `dims`.
  std::vector<float> gather() const;
  /// Writes row-major values into the viewed elements (rounded to the type).
  void scatter(const std::vector<float>& values);
  /// Uniform values in [lo, hi) into the view.
  void fill_uniform(std::mt19937_64& rng, float lo = -1.0f, float hi = 1.0f);
  /// Small integers in [-range, range] into the view (the first one 1, so never all zero).
  void fill_integers(std::mt19937_64& rng, int range = 3);
  /// NaN everywhere, inside the view and out.
  void poison();
  /// Number of elements outside the view that are no longer NaN.
  std::int64_t outside_written() const;

 private:
  std::int64_t element(std::int64_t i) const;  // buffer index of row-major element i
  HostTensor buffer_;
  std::array<std::int64_t, 4> dims_;
  std::int64_t offset_ = 0;
  TensorView view_;
};

/// Which elements of the output of `direction` some tap of the convolution reaches (row-major
/// over y, dx or dw; db is always reached): windows of y that overlap the image, rows and columns
/// of dx that a window covers, taps of dw that read the image somewhere. The others are exactly
/// zero, or the bias for y: strides that skip rows, dilations sharing a factor with the stride
/// and wide pads make many of them, and they carry no information about the arithmetic.
std::vector<bool> reached(const ConvProblem& problem, Direction direction);

/// mostly_zero over the reached elements only; true when none is reached.
bool mostly_zero_where(const std::vector<float>& values, const std::vector<bool>& mask);

/// Dense row-major values rounded to `type` and back to float.
std::vector<float> rounded(const std::vector<float>& values, DataType type);

}  // namespace convgrad::test
