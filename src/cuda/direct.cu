// SPDX-License-Identifier: Apache-2.0
// Generic direct convolution kernels. They follow src/ref/ loop for loop (same tap arithmetic,
// same treatment of negative pads, strides and dilation) so that any difference from the oracle
// is rounding, and they read storage types at run time rather than through templates: three
// kernels in all, which keeps nvcc's time on CI small. Speed is the tensor-core kernels' job.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/check.hpp"
#include "cuda/direct.hpp"
#include "cuda/stream.hpp"

namespace convgrad::cuda {
namespace {

// A TensorView as a kernel argument: the element type stays a run-time value (uniform across the
// grid, so the switch in load/store never diverges).
struct View {
  void* data;
  DataType type;
  std::int64_t s0, s1, s2, s3;

  __device__ std::int64_t at(std::int64_t i0, std::int64_t i1, std::int64_t i2,
                             std::int64_t i3) const {
    return i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3;
  }
};

View device_view(const TensorView& view) {
  return {view.data, view.type, view.strides[0], view.strides[1], view.strides[2], view.strides[3]};
}

// The problem's sizes, all 64-bit so that no product in an index overflows.
struct Shape {
  std::int64_t n, h, w, c, k, r, s, p, q;
  std::int64_t stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
  std::int64_t cg, kg;  // channels and filters per group
};

Shape shape_of(const ConvProblem& p) {
  Shape s{};
  s.n = p.n, s.h = p.h, s.w = p.w, s.c = p.c, s.k = p.k, s.r = p.r, s.s = p.s, s.p = p.p;
  s.q = p.q;
  s.stride_h = p.stride_h, s.stride_w = p.stride_w;
  s.dilation_h = p.dilation_h, s.dilation_w = p.dilation_w;
  s.pad_top = p.pad_top, s.pad_left = p.pad_left;
  s.cg = p.c_per_group(), s.kg = p.k_per_group();
  return s;
}

__device__ __forceinline__ float load(const View& v, std::int64_t i) {
  switch (v.type) {
    case DataType::float16:
      return __half2float(static_cast<const __half*>(v.data)[i]);
    case DataType::bfloat16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(v.data)[i]);
    case DataType::float32:
      break;
  }
  return static_cast<const float*>(v.data)[i];
}

// Round to nearest even, as the host's store_from_float does.
__device__ __forceinline__ void store(const View& v, std::int64_t i, float value) {
  switch (v.type) {
    case DataType::float16:
      static_cast<__half*>(v.data)[i] = __float2half_rn(value);
      return;
    case DataType::bfloat16:
      static_cast<__nv_bfloat16*>(v.data)[i] = __float2bfloat16_rn(value);
      return;
    case DataType::float32:
      break;
  }
  static_cast<float*>(v.data)[i] = value;
}

__device__ __forceinline__ std::int64_t global_thread() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::int64_t grid_threads() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

// One thread per y element, k fastest: the threads of a warp share x and differ in w.
__global__ void fprop_kernel(Shape p, View x, View w, View b, bool bias, View y,
                             std::int64_t total) {
  for (std::int64_t i = global_thread(); i < total; i += grid_threads()) {
    const std::int64_t k = i % p.k;
    std::int64_t t = i / p.k;
    const std::int64_t ow = t % p.q;
    t /= p.q;
    const std::int64_t oh = t % p.p;
    const std::int64_t n = t / p.p;
    const std::int64_t c0 = k / p.kg * p.cg;
    float sum = bias ? static_cast<const float*>(b.data)[k * b.s0] : 0.0f;
    for (std::int64_t r = 0; r < p.r; ++r) {
      const std::int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
      if (ih < 0 || ih >= p.h) continue;
      for (std::int64_t s = 0; s < p.s; ++s) {
        const std::int64_t iw = ow * p.stride_w - p.pad_left + s * p.dilation_w;
        if (iw < 0 || iw >= p.w) continue;
        const std::int64_t xa = x.at(n, ih, iw, c0);
        const std::int64_t wa = w.at(k, r, s, 0);
        for (std::int64_t c = 0; c < p.cg; ++c) {
          sum = fmaf(load(x, xa + c * x.s3), load(w, wa + c * w.s3), sum);
        }
      }
    }
    store(y, y.at(n, oh, ow, k), sum);
  }
}

// One thread per dx element, c fastest; it gathers the taps that read it, so every element is
// written exactly once (zero where no tap reaches it).
__global__ void dgrad_kernel(Shape p, View dy, View w, View dx, std::int64_t total) {
  for (std::int64_t i = global_thread(); i < total; i += grid_threads()) {
    const std::int64_t c = i % p.c;
    std::int64_t t = i / p.c;
    const std::int64_t iw = t % p.w;
    t /= p.w;
    const std::int64_t ih = t % p.h;
    const std::int64_t n = t / p.h;
    const std::int64_t g = c / p.cg;
    const std::int64_t cl = c % p.cg;
    float sum = 0.0f;
    for (std::int64_t r = 0; r < p.r; ++r) {
      const std::int64_t th = ih + p.pad_top - r * p.dilation_h;
      if (th < 0 || th % p.stride_h != 0) continue;
      const std::int64_t oh = th / p.stride_h;
      if (oh >= p.p) continue;
      for (std::int64_t s = 0; s < p.s; ++s) {
        const std::int64_t tw = iw + p.pad_left - s * p.dilation_w;
        if (tw < 0 || tw % p.stride_w != 0) continue;
        const std::int64_t ow = tw / p.stride_w;
        if (ow >= p.q) continue;
        for (std::int64_t k = g * p.kg; k < (g + 1) * p.kg; ++k) {
          sum = fmaf(load(dy, dy.at(n, oh, ow, k)), load(w, w.at(k, r, s, cl)), sum);
        }
      }
    }
    store(dx, dx.at(n, ih, iw, c), sum);
  }
}

constexpr int kWarp = 32;
constexpr int kWgradWarpsPerBlock = 8;

// Sums over the warp in a fixed tree; every lane gets the total. Same inputs, same bits.
__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  return value;
}

// One warp per dw element (k, r, s, c), then one per db element: lane l sums the positions
// j = l, l + 32, ... of N*P*Q in order, and the warp adds the 32 partial sums in a fixed tree.
// The result depends on nothing but the data, and the bias gradient costs no second launch.
__global__ void wgrad_kernel(Shape p, View x, View dy, View dw, View db, bool bias, bool accumulate,
                             std::int64_t dw_count) {
  const std::int64_t total = dw_count + (bias ? p.k : 0);
  const std::int64_t npq = p.n * p.p * p.q;
  const std::int64_t pq = p.p * p.q;
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * (blockDim.x / kWarp);
  for (std::int64_t e = global_thread() / kWarp; e < total; e += warps) {
    float sum = 0.0f;
    if (e < dw_count) {
      const std::int64_t c = e % p.cg;
      std::int64_t t = e / p.cg;
      const std::int64_t s = t % p.s;
      t /= p.s;
      const std::int64_t r = t % p.r;
      const std::int64_t k = t / p.r;
      const std::int64_t xc = k / p.kg * p.cg + c;
      for (std::int64_t j = lane; j < npq; j += kWarp) {
        const std::int64_t n = j / pq;
        const std::int64_t oh = j % pq / p.q;
        const std::int64_t ow = j % p.q;
        const std::int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
        const std::int64_t iw = ow * p.stride_w - p.pad_left + s * p.dilation_w;
        if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
        sum = fmaf(load(x, x.at(n, ih, iw, xc)), load(dy, dy.at(n, oh, ow, k)), sum);
      }
      sum = warp_sum(sum);
      if (lane == 0) {
        const std::int64_t at = dw.at(k, r, s, c);
        store(dw, at, accumulate ? load(dw, at) + sum : sum);
      }
    } else {
      const std::int64_t k = e - dw_count;
      for (std::int64_t j = lane; j < npq; j += kWarp) {
        sum += load(dy, dy.at(j / pq, j % pq / p.q, j % p.q, k));
      }
      sum = warp_sum(sum);
      if (lane == 0) {
        float* out = static_cast<float*>(db.data) + k * db.s0;
        *out = accumulate ? *out + sum : sum;
      }
    }
  }
}

constexpr int kThreads = 256;
// Enough blocks to fill any current GPU many times over; the kernels loop beyond that, so the
// grid never approaches its 2^31 - 1 limit whatever the tensor size.
constexpr std::int64_t kMaxBlocks = std::int64_t{1} << 20;

unsigned blocks_for(std::int64_t items, std::int64_t per_block) {
  return static_cast<unsigned>(
      std::clamp<std::int64_t>((items + per_block - 1) / per_block, 1, kMaxBlocks));
}

}  // namespace

void fprop_direct(const ConvProblem& problem, const core::Operands& o, bool /*accumulate*/) {
  const bool bias = problem.with_bias && !o.b.empty();
  const std::int64_t total = problem.n * problem.p * problem.q * problem.k;
  fprop_kernel<<<blocks_for(total, kThreads), kThreads, 0, current_stream()>>>(
      shape_of(problem), device_view(o.x), device_view(o.w), device_view(o.b), bias,
      device_view(o.y), total);
  finish_launches();
}

void dgrad_direct(const ConvProblem& problem, const core::Operands& o, bool /*accumulate*/) {
  const std::int64_t total = problem.n * problem.h * problem.w * problem.c;
  dgrad_kernel<<<blocks_for(total, kThreads), kThreads, 0, current_stream()>>>(
      shape_of(problem), device_view(o.y), device_view(o.w), device_view(o.x), total);
  finish_launches();
}

void wgrad_direct(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  const bool bias = !o.b.empty();
  const std::int64_t dw_count = problem.k * problem.r * problem.s * problem.c_per_group();
  const std::int64_t warps = dw_count + (bias ? problem.k : 0);
  wgrad_kernel<<<blocks_for(warps, kWgradWarpsPerBlock), kWgradWarpsPerBlock * kWarp, 0,
                 current_stream()>>>(shape_of(problem), device_view(o.x), device_view(o.y),
                                        device_view(o.w), device_view(o.b), bias, accumulate,
                                        dw_count);
  finish_launches();
}

}  // namespace convgrad::cuda
