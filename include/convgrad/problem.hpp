// SPDX-License-Identifier: Apache-2.0
// ConvProblem: the one plain description of a 2-D convolution that every backend receives.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "convgrad/dtype.hpp"

namespace convgrad {

/// Which pass of the convolution is computed.
/// fprop: y = conv(x, w) + b.  dgrad: dx from dy and w.  wgrad: dw (and db) from x and dy.
enum class Direction : std::uint8_t { fprop, dgrad, wgrad };

std::string_view to_string(Direction direction) noexcept;

/// Shape of a 2-D convolution, with CUTLASS's letters. Images are NHWC, weights are
/// `[K][R][S][C/groups]`. A field keeps its name in every direction: `x` is the image side whether
/// it holds x or dx, `y` the output side whether it holds y or dy.
///
/// Padding is explicit per side and may be negative (a negative pad skips input rows or columns,
/// which MPS offsets and stride rounding produce). `p` and `q` must equal
/// `(h + pad_top + pad_bottom - ((r - 1) * dilation_h + 1)) / stride_h + 1` (floor) and the same
/// across; `make_problem` derives them. Depthwise with channel multiplier m is `groups == c`,
/// `k == c * m`.
struct ConvProblem {
  std::int64_t n = 1, h = 1, w = 1, c = 1;  ///< image x (or dx)
  std::int64_t k = 1, r = 1, s = 1;         ///< filters [K][R][S][C/groups]
  std::int64_t p = 1, q = 1;                ///< output y (or dy)
  std::int32_t stride_h = 1, stride_w = 1;
  std::int32_t dilation_h = 1, dilation_w = 1;  ///< 1 = dense (benchdnn counts from 0)
  std::int32_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  std::int32_t groups = 1;
  DataType x_type = DataType::float32;  ///< x and dx
  DataType w_type = DataType::float32;  ///< w and dw
  DataType y_type = DataType::float32;  ///< y and dy
  MathMode math = MathMode::exact_fp32;
  bool with_bias = true;  ///< fprop adds b; wgrad also produces db

  std::int64_t dilated_r() const noexcept { return (r - 1) * dilation_h + 1; }
  std::int64_t dilated_s() const noexcept { return (s - 1) * dilation_w + 1; }
  std::int64_t c_per_group() const noexcept { return c / groups; }
  std::int64_t k_per_group() const noexcept { return k / groups; }

  friend bool operator==(const ConvProblem&, const ConvProblem&) = default;
};

/// Builds a problem with p and q derived from the other sizes; the caller validates it.
/// Symmetric padding; set the `pad_bottom`/`pad_right` fields afterwards for asymmetric ones and
/// call `derive_output_size`.
ConvProblem make_problem(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c,
                         std::int64_t k, std::int64_t r, std::int64_t s, std::int32_t stride = 1,
                         std::int32_t pad = 0, std::int32_t dilation = 1, std::int32_t groups = 1);

/// Sets p and q from the input size, kernel, stride, dilation and the four pads.
void derive_output_size(ConvProblem& problem) noexcept;

/// Multiply-adds of one direction times two (bias excluded), for GFLOP/s figures.
double flop_count(const ConvProblem& problem, Direction direction) noexcept;

/// Element counts of each tensor (dense).
std::int64_t x_elements(const ConvProblem& problem) noexcept;
std::int64_t w_elements(const ConvProblem& problem) noexcept;
std::int64_t y_elements(const ConvProblem& problem) noexcept;

/// oneDNN benchdnn convolution syntax, e.g. `g32mb32ic256ih28oc256oh28kh3ph1`. Round-trips with
/// `parse_problem`; dilation is written 0-based (`dh1` is dilation 2) as benchdnn does. The
/// bottom and right pads are implied by `oh` and `ow`, which are always printed, so asymmetric
/// padding survives (docs/problem_string.md).
std::string to_string(const ConvProblem& problem);

/// Parses benchdnn syntax. Missing width fields copy the height ones, missing output sizes are
/// derived, missing padding is 0; throws InvalidArgument naming the bad field.
ConvProblem parse_problem(std::string_view text);

}  // namespace convgrad
