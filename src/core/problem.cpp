// SPDX-License-Identifier: Apache-2.0
#include "convgrad/problem.hpp"

#include "convgrad/tensor_view.hpp"

namespace convgrad {

std::string_view to_string(Direction direction) noexcept {
  switch (direction) {
    case Direction::fprop: return "fprop";
    case Direction::dgrad: return "dgrad";
    case Direction::wgrad: return "wgrad";
  }
  return "?";
}

namespace {
// Floor division: with negative pads the numerator may be negative, and C++ truncates to zero.
std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
}  // namespace

void derive_output_size(ConvProblem& problem) noexcept {
  if (problem.stride_h > 0 && problem.stride_w > 0) {
    problem.p = floor_div(problem.h + problem.pad_top + problem.pad_bottom - problem.dilated_r(),
                          problem.stride_h) + 1;
    problem.q = floor_div(problem.w + problem.pad_left + problem.pad_right - problem.dilated_s(),
                          problem.stride_w) + 1;
  }
}

ConvProblem make_problem(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c,
                         std::int64_t k, std::int64_t r, std::int64_t s, std::int32_t stride,
                         std::int32_t pad, std::int32_t dilation, std::int32_t groups) {
  ConvProblem problem;
  problem.n = n;
  problem.h = h;
  problem.w = w;
  problem.c = c;
  problem.k = k;
  problem.r = r;
  problem.s = s;
  problem.stride_h = problem.stride_w = stride;
  problem.pad_top = problem.pad_left = problem.pad_bottom = problem.pad_right = pad;
  problem.dilation_h = problem.dilation_w = dilation;
  problem.groups = groups;
  derive_output_size(problem);
  return problem;
}

double flop_count(const ConvProblem& p, Direction /*direction*/) noexcept {
  // The three directions perform the same multiply-adds; dgrad with stride counts the useful ones.
  return 2.0 * static_cast<double>(p.n) * static_cast<double>(p.p) * static_cast<double>(p.q) *
         static_cast<double>(p.k) * static_cast<double>(p.r) * static_cast<double>(p.s) *
         static_cast<double>(p.c_per_group());
}

std::int64_t x_elements(const ConvProblem& p) noexcept { return p.n * p.h * p.w * p.c; }
std::int64_t w_elements(const ConvProblem& p) noexcept {
  return p.k * p.r * p.s * p.c_per_group();
}
std::int64_t y_elements(const ConvProblem& p) noexcept { return p.n * p.p * p.q * p.k; }

TensorView dense_view(void* data, DataType type, std::int64_t d0, std::int64_t d1,
                      std::int64_t d2, std::int64_t d3, DeviceKind device) {
  TensorView view;
  view.data = data;
  view.type = type;
  view.dims = {d0, d1, d2, d3};
  view.strides = {d1 * d2 * d3, d2 * d3, d3, 1};
  view.extent = d0 * d1 * d2 * d3;
  view.device = device;
  return view;
}

TensorView bias_view(float* data, std::int64_t k, DeviceKind device) {
  return dense_view(data, DataType::float32, k, 1, 1, 1, device);
}

}  // namespace convgrad
