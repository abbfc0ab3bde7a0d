// SPDX-License-Identifier: Apache-2.0
// How the SIMD kernels see their operands: float32 images with unit channel stride and arbitrary
// n/h/w strides. A float32 view with unit channel stride is used in place (channel windows and
// batch slices included); anything else is converted once into reusable per-thread scratch.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "convgrad/tensor_view.hpp"

namespace convgrad::cpu {

/// An NHWC (or KRSC) float32 image: element (a, b, c, e) at data[a*s[0] + b*s[1] + c*s[2] + e].
struct ImageF32 {
  float* data = nullptr;
  std::array<std::int64_t, 3> s{0, 0, 0};
  std::int64_t at(std::int64_t a, std::int64_t b, std::int64_t c) const noexcept {
    return a * s[0] + b * s[1] + c * s[2];
  }
};

/// Buffers kept per calling thread and grown on demand, so that repeated calls of the same
/// layer allocate nothing. Slots are independent (a kernel may hold several at once).
enum class Scratch : int {
  input_a,
  input_b,
  output,
  packed_weights,
  partials,
  table,
  segments,  // per-thread segment lists inside parallel regions
  count
};
float* scratch(Scratch slot, std::int64_t floats);

/// Read-only float32 view of `view` (dense copy in `slot` unless usable in place).
ImageF32 input_f32(const TensorView& view, Scratch slot);

/// Destination of an output: the view itself when it is float32 with unit channel stride and
/// non-overlapping rows; otherwise dense scratch that `finish_output` converts into the view.
struct OutputF32 {
  ImageF32 image;
  bool in_place = false;
};
OutputF32 output_f32(const TensorView& view, Scratch slot);
/// Writes scratch back (rounding to the view's type); with `accumulate` adds into the view.
void finish_output(const OutputF32& out, const TensorView& view, bool accumulate);

/// Element value of any view as float (weights packing of non-float32 types).
inline float load_view(const TensorView& v, std::int64_t a, std::int64_t b, std::int64_t c,
                       std::int64_t e) noexcept {
  const std::int64_t i = v.offset(a, b, c, e);
  return v.type == DataType::float32 ? static_cast<const float*>(v.data)[i]
                                     : load_as_float(v.data, v.type, i);
}

}  // namespace convgrad::cpu
