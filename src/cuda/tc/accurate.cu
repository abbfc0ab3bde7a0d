// SPDX-License-Identifier: Apache-2.0
// 3xTF32: each float32 operand v is split into big = tf32(v) and small = tf32(v - big), and
// v * u ~ big_v * big_u + small_v * big_u + big_v * small_u (small * small lies below float32's
// rounding of the product). The three products are one tf32 convolution with three times the
// reduced channels: fprop reads x' = [big | small | big] and w' = [big | big | small] along c;
// dgrad reads dy' = [big | small | big] along k and w' = [big; big; small] stacked along k.
//
// The products keep about 21 bits, but the tensor cores add them in float32 with truncation, so
// one accumulator's error grows with the terms it sums (measured on the H100, max-relative: about
// 3e-9 times the tripled reduction; 3.5e-5 for deeplab_aspp_dilated's 13,824). The reduction
// therefore runs in chunks of channels, kChunkTerms original terms each, and the chunks' results
// are added in float32 with rounding (the epilogue reads y back): the chunks' errors then add like
// random ones and the whole stays near one chunk's, whatever the length.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/check.hpp"
#include "cuda/direct.hpp"
#include "cuda/special_common.cuh"
#include "cuda/stream.hpp"
#include "cuda/tc/accurate.hpp"
#include "cuda/tc/runs.hpp"

namespace convgrad::cuda::tc {
namespace {

constexpr int kParts = 3;
constexpr std::int64_t kChunkTerms = 512;
// Filters of more taps than this make even a chunk of 4 channels too long a reduction.
constexpr std::int64_t kMaxTaps = 2 * kChunkTerms / 4;

// Round to nearest tf32 (10 mantissa bits); where that overflows to infinity, truncate instead
// so that big stays finite and small exact.
__device__ __forceinline__ float to_tf32(float v) {
  std::uint32_t bits;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(bits) : "f"(v));
  const float rounded = __uint_as_float(bits);
  if (isinf(rounded) && !isinf(v)) return __uint_as_float(__float_as_uint(v) & 0xffffe000u);
  return rounded;
}

// Where the three parts of a chunk go. `rows` x `length` floats in, chunks of `chunk` columns
// (within_rows, by_columns) or rows (by_rows):
// - within_rows: each row becomes [chunk 0: p0 | p1 | p2][chunk 1: ...] (x, dy: the image whose
//   channels a chunk's convolution reads through a pixel stride of 3 x length);
// - by_columns: chunk-major, each chunk a packed [rows][p0 | p1 | p2] (fprop's filter chunks);
// - by_rows: chunk-major over rows, each chunk [p0 rows; p1 rows; p2 rows] (dgrad's filters,
//   stacked along k).
enum class Parts : int { within_rows, by_columns, by_rows };

__device__ __forceinline__ float4 part_of(float4 big, float4 small, int part, int small_part) {
  return part == small_part ? small : big;
}

__global__ void split_parts(const float4* __restrict__ in, float4* __restrict__ out,
                            std::int64_t rows, std::int64_t length4, std::int64_t chunk,
                            Parts layout, int small_part) {
  const std::int64_t count = rows * length4;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < count; i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t row = i / length4, col = i - row * length4;
    std::int64_t base, step;
    if (layout == Parts::by_rows) {
      const std::int64_t first = row / chunk * chunk, size = min(chunk, rows - first);
      base = kParts * first * length4 + (row - first) * length4 + col;
      step = size * length4;
    } else {
      const std::int64_t first = col / chunk * chunk, size = min(chunk, length4 - first);
      base = layout == Parts::within_rows ? row * kParts * length4 + kParts * first + col - first
                                          : kParts * first * rows + row * kParts * size + col - first;
      step = size;
    }
    const float4 v = in[i];
    float4 big, small;
    big.x = to_tf32(v.x), small.x = to_tf32(v.x - big.x);
    big.y = to_tf32(v.y), small.y = to_tf32(v.y - big.y);
    big.z = to_tf32(v.z), small.z = to_tf32(v.z - big.z);
    big.w = to_tf32(v.w), small.w = to_tf32(v.w - big.w);
#pragma unroll
    for (int part = 0; part < kParts; ++part) out[base + part * step] = part_of(big, small, part, small_part);
  }
}

// `chunk` counts floats for within_rows and by_columns (a multiple of 4), rows for by_rows.
void split(const void* in, float* out, std::int64_t rows, std::int64_t length, std::int64_t chunk,
           Parts layout, int small_part) {
  const std::int64_t length4 = length / 4;
  const std::int64_t count = rows * length4;
  const std::int64_t blocks =
      std::clamp<std::int64_t>((count + 255) / 256, 1, 64LL * special::multiprocessors());
  split_parts<<<static_cast<unsigned>(blocks), 256, 0, current_stream()>>>(
      static_cast<const float4*>(in), reinterpret_cast<float4*>(out), rows, length4,
      layout == Parts::by_rows ? chunk : chunk / 4, layout, small_part);
  CONVGRAD_CUDA_CHECK(cudaGetLastError());
}

// Channels per chunk: kChunkTerms reduced terms, a multiple of 4 (16-byte rows).
std::int64_t chunk_channels(std::int64_t channels, std::int64_t taps) {
  return std::clamp<std::int64_t>(kChunkTerms / taps / 4 * 4, 4, channels);
}

std::optional<std::string> accurate_class(const ConvProblem& p) {
  if (p.x_type != DataType::float32 || p.w_type != DataType::float32 ||
      p.y_type != DataType::float32) {
    return "storage types x " + std::string(to_string(p.x_type)) + ", w " +
           std::string(to_string(p.w_type)) + ", y " + std::string(to_string(p.y_type)) +
           ": the 3xTF32 kernels take float32 for all three";
  }
  if (p.math != MathMode::fp32_accurate) {
    return "math = " + std::string(to_string(p.math)) +
           ": the 3xTF32 kernels run MathMode::fp32_accurate only";
  }
  if (p.c % 4 != 0 || p.k % 4 != 0) {
    return "c = " + std::to_string(p.c) + ", k = " + std::to_string(p.k) +
           ": both must be multiples of 4 (16-byte rows of tf32)";
  }
  if (p.r * p.s > kMaxTaps) {
    return "r * s = " + std::to_string(p.r * p.s) + " taps: more than the " +
           std::to_string(kMaxTaps) + " for which a chunk of 4 channels stays within 3xTF32's accuracy";
  }
  return std::nullopt;
}

// The tf32 problem of one chunk: `channels` of c (fprop) or k (dgrad), tripled.
ConvProblem chunk_problem(const ConvProblem& p, bool along_k, std::int64_t channels) {
  ConvProblem t = p;
  t.math = MathMode::tf32;
  (along_k ? t.k : t.c) = kParts * channels;
  return t;
}

std::optional<std::string> as_chunk(std::optional<std::string> reason, std::int64_t channels) {
  if (!reason) return reason;
  return "as tf32 convolutions over chunks of " + std::to_string(channels) +
         " channels, tripled: " + *reason;
}

std::size_t floats_bytes(std::int64_t count) {
  return aligned_bytes(count * static_cast<std::int64_t>(sizeof(float)));
}

}  // namespace

std::optional<std::string> accurate_fprop_rejects(const ConvProblem& p) {
  if (auto reason = accurate_class(p)) return reason;
  const std::int64_t chunk = chunk_channels(p.c, p.r * p.s);
  // The whole tripled problem bounds the workspace's extents; each chunk's shape, CUTLASS's.
  if (auto reason = common_rejects(chunk_problem(p, false, p.c), Kind::tf32)) return as_chunk(reason, chunk);
  for (const std::int64_t size : {chunk, p.c % chunk}) {
    if (size == 0) continue;
    const ConvProblem t = chunk_problem(p, false, size);
    if (auto reason = fprop_rejects(t, Kind::tf32)) return as_chunk(reason, size);
  }
  return std::nullopt;
}

std::optional<std::string> accurate_dgrad_rejects(const ConvProblem& p) {
  if (auto reason = accurate_class(p)) return reason;
  const std::int64_t chunk = chunk_channels(p.k, p.r * p.s);
  if (auto reason = common_rejects(chunk_problem(p, true, p.k), Kind::tf32)) return as_chunk(reason, chunk);
  for (const std::int64_t size : {chunk, p.k % chunk}) {
    if (size == 0) continue;
    if (auto reason = dgrad_rejects(chunk_problem(p, true, size), Kind::tf32)) return as_chunk(reason, size);
  }
  return std::nullopt;
}

void accurate_fprop(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  const bool with_bias = !o.b.empty();
  if (!packed(o.x) || !packed(o.w) || !packed(o.y) || !bias_readable(o.b)) {
    fprop_direct(p, o, accumulate);
    return;
  }
  const cudaStream_t stream = current_stream();
  const std::int64_t chunk = chunk_channels(p.c, p.r * p.s);
  const std::int64_t pixels = p.n * p.h * p.w, filters = p.k * p.r * p.s;
  const std::size_t x_bytes = floats_bytes(kParts * pixels * p.c);
  char* space = static_cast<char*>(
      workspace(x_bytes + floats_bytes(kParts * w_elements(p)), stream, Slot::operands));
  float* x3 = reinterpret_cast<float*>(space);
  float* w3 = reinterpret_cast<float*>(space + x_bytes);
  split(o.x.data, x3, pixels, p.c, chunk, Parts::within_rows, 1);
  split(o.w.data, w3, filters, p.c, chunk, Parts::by_columns, 2);
  for (std::int64_t c0 = 0; c0 < p.c; c0 += chunk) {
    const std::int64_t size = std::min(chunk, p.c - c0);
    ConvShape shape = fprop_shape(chunk_problem(p, false, size));
    shape.act_stride_w = kParts * p.c;
    shape.act_stride_h = p.w * shape.act_stride_w;
    shape.act_stride_n = p.h * shape.act_stride_h;
    shape.add_to_output = c0 > 0;
    const float* bias = with_bias && c0 == 0 ? static_cast<const float*>(o.b.data) : nullptr;
    fprop_ops(Kind::tf32, p.k, kParts * size * p.r * p.s)
        .fprop(shape, x3 + kParts * c0, w3 + kParts * c0 * filters, bias, o.y.data, stream);
  }
  finish_launches();
}

void accurate_dgrad(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  if (!packed(o.x) || !packed(o.w) || !packed(o.y)) {
    dgrad_direct(p, o, accumulate);
    return;
  }
  const std::int64_t chunk = chunk_channels(p.k, p.r * p.s);
  const std::int64_t pixels = p.n * p.p * p.q, filter = p.r * p.s * p.c;
  const std::size_t y_bytes = floats_bytes(kParts * pixels * p.k);
  char* space = static_cast<char*>(
      workspace(y_bytes + floats_bytes(kParts * w_elements(p)), current_stream(), Slot::operands));
  float* y3 = reinterpret_cast<float*>(space);
  float* w3 = reinterpret_cast<float*>(space + y_bytes);
  split(o.y.data, y3, pixels, p.k, chunk, Parts::within_rows, 1);
  split(o.w.data, w3, p.k, filter, chunk, Parts::by_rows, 2);
  std::vector<KChunk> chunks;
  for (std::int64_t k0 = 0; k0 < p.k; k0 += chunk) {
    const std::int64_t size = std::min(chunk, p.k - k0);
    chunks.push_back({y3 + kParts * k0, w3 + kParts * k0 * filter, kParts * size});
  }
  dgrad_chunks_run(Kind::tf32, chunk_problem(p, true, p.k), o.x.data, chunks);
  finish_launches();
}

}  // namespace convgrad::cuda::tc
