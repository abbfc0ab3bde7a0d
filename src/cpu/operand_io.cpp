// SPDX-License-Identifier: Apache-2.0
#include "cpu/operand_io.hpp"

#include <cstring>
#include <memory>

#include "core/parallel.hpp"
#include "cpu/convert.hpp"

namespace convgrad::cpu {
namespace {

// 64-byte aligned growable buffer; contents are not preserved on growth.
struct AlignedBuffer {
  struct Free {
    void operator()(float* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<float, Free> data;
  std::int64_t capacity = 0;
};

bool in_place_ok(const TensorView& v) { return v.type == DataType::float32 && v.strides[3] == 1; }

// Writing in place also needs distinct rows and pixels, or two threads could write one element.
bool writable_in_place(const TensorView& v) {
  const auto& d = v.dims;
  const auto& s = v.strides;
  return in_place_ok(v) && (d[2] <= 1 || s[2] >= d[3]) && (d[1] <= 1 || s[1] >= d[2] * s[2]) &&
         (d[0] <= 1 || s[0] >= d[1] * s[1]) && s[2] > 0 && s[1] > 0 && s[0] > 0;
}

// Address of element (a, b, c, 0): the start of a row of channels.
void* row_address(const TensorView& v, std::int64_t a, std::int64_t b, std::int64_t c) {
  return static_cast<char*>(v.data) +
         v.offset(a, b, c, 0) * static_cast<std::int64_t>(size_of(v.type));
}

ImageF32 dense_image(float* data, const TensorView& v) {
  return {data, {v.dims[1] * v.dims[2] * v.dims[3], v.dims[2] * v.dims[3], v.dims[3]}};
}

}  // namespace

float* scratch(Scratch slot, std::int64_t floats) {
  thread_local std::array<AlignedBuffer, static_cast<int>(Scratch::count)> buffers;
  AlignedBuffer& b = buffers[static_cast<std::size_t>(slot)];
  if (floats > b.capacity) {
    // Round up so that a sequence of slightly growing layers does not reallocate every call.
    const std::int64_t want = std::max<std::int64_t>(floats + floats / 4, 1024);
    const std::size_t bytes = (static_cast<std::size_t>(want) * sizeof(float) + 63) / 64 * 64;
    b.data.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!b.data) throw std::bad_alloc();
    b.capacity = want;
  }
  return b.data.get();
}

ImageF32 input_f32(const TensorView& v, Scratch slot) {
  if (in_place_ok(v)) {
    return {static_cast<float*>(v.data), {v.strides[0], v.strides[1], v.strides[2]}};
  }
  const auto& d = v.dims;
  float* dense = scratch(slot, d[0] * d[1] * d[2] * d[3]);
  core::parallel_for(d[0] * d[1], [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t ab = begin; ab < end; ++ab) {
      const std::int64_t a = ab / d[1], b = ab % d[1];
      float* out = dense + ab * d[2] * d[3];
      for (std::int64_t c = 0; c < d[2]; ++c) {
        if (v.strides[3] == 1) {
          convert_to_f32(row_address(v, a, b, c), v.type, d[3], out + c * d[3]);
          continue;
        }
        for (std::int64_t e = 0; e < d[3]; ++e) out[c * d[3] + e] = load_view(v, a, b, c, e);
      }
    }
  });
  return dense_image(dense, v);
}

OutputF32 output_f32(const TensorView& v, Scratch slot) {
  if (writable_in_place(v)) {
    return {{static_cast<float*>(v.data), {v.strides[0], v.strides[1], v.strides[2]}}, true};
  }
  const auto& d = v.dims;
  return {dense_image(scratch(slot, d[0] * d[1] * d[2] * d[3]), v), false};
}

void finish_output(const OutputF32& out, const TensorView& v, bool accumulate) {
  if (out.in_place) return;
  const auto& d = v.dims;
  core::parallel_for(d[0] * d[1], [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t ab = begin; ab < end; ++ab) {
      const std::int64_t a = ab / d[1], b = ab % d[1];
      const float* in = out.image.data + ab * d[2] * d[3];
      for (std::int64_t c = 0; c < d[2]; ++c) {
        if (v.strides[3] == 1) {
          convert_from_f32(in + c * d[3], d[3], v.type, row_address(v, a, b, c), accumulate);
          continue;
        }
        for (std::int64_t e = 0; e < d[3]; ++e) {
          const std::int64_t i = v.offset(a, b, c, e);
          float value = in[c * d[3] + e];
          if (accumulate) value += load_as_float(v.data, v.type, i);
          store_from_float(v.data, v.type, i, value);
        }
      }
    }
  });
}

}  // namespace convgrad::cpu
