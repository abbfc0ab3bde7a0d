// SPDX-License-Identifier: Apache-2.0
// One kernel for every optimizer rule: the rule is uniform across the grid, so the switch never
// diverges, and CI compiles one kernel instead of six.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/check.hpp"
#include "cuda/optimizer.hpp"
#include "cuda/stream.hpp"

namespace convgrad::cuda {
namespace {

// Explicitly rounded operations: nvcc would otherwise fuse a * b + c, which the host rule (built
// for baseline x86-64) does not.
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float div(float a, float b) { return __fdiv_rn(a, b); }

__device__ __forceinline__ float preprocess(const UpdateStep& s, float g, float w) {
  if (s.clip) g = g < s.clip_min ? s.clip_min : (s.clip_max < g ? s.clip_max : g);  // std::clamp
  g = mul(g, s.rescale);
  if (s.regularization == 2) {
    g = add(g, mul(s.regularization_scale, w));
  } else if (s.regularization == 1) {
    g = add(g, mul(s.regularization_scale, static_cast<float>((w > 0.0f) - (w < 0.0f))));
  }
  return g;
}

__global__ void update_kernel(UpdateStep s, const float* gradient, const float* values, float* v0,
                              float* v1, float* v2, float* result, std::int64_t count) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < count; i += stride) {
    const float w = values[i];
    const float g = preprocess(s, gradient[i], w);
    switch (s.rule) {
      case UpdateRule::sgd:
        result[i] = sub(w, mul(s.learning_rate, g));
        break;
      case UpdateRule::momentum: {
        const float m = add(mul(s.momentum_scale, v0[i]), mul(s.learning_rate, g));
        v0[i] = m;
        result[i] = sub(w, m);
        break;
      }
      case UpdateRule::nesterov: {
        const float m = add(mul(s.momentum_scale, v0[i]), g);
        v0[i] = m;
        result[i] = sub(w, mul(s.learning_rate, add(g, mul(s.momentum_scale, m))));
        break;
      }
      case UpdateRule::rmsprop: {
        const float sq = add(mul(s.keep, v0[i]), mul(mul(s.take, g), g));
        v0[i] = sq;
        result[i] = sub(w, div(mul(s.learning_rate, g), add(__fsqrt_rn(sq), s.epsilon)));
        break;
      }
      case UpdateRule::adam:
      case UpdateRule::amsgrad: {
        const float m = add(mul(s.keep, v0[i]), mul(s.take, g));
        const float v = add(mul(s.keep2, v1[i]), mul(mul(s.take2, g), g));
        v0[i] = m;
        v1[i] = v;
        float denominator = v;
        if (s.rule == UpdateRule::amsgrad) {
          denominator = v2[i] < v ? v : v2[i];  // std::max(vmax, v), NaN handling included
          v2[i] = denominator;
        }
        result[i] = sub(w, div(mul(s.learning_rate, m), add(__fsqrt_rn(denominator), s.epsilon)));
        break;
      }
    }
  }
}

}  // namespace

void optimizer_update(const UpdateStep& step, const float* gradient, const float* values,
                      float* v0, float* v1, float* v2, float* result, std::int64_t count) {
  if (count <= 0) return;
  constexpr int kThreads = 256;
  const auto blocks = static_cast<unsigned>(
      std::clamp<std::int64_t>((count + kThreads - 1) / kThreads, 1, std::int64_t{1} << 16));
  update_kernel<<<blocks, kThreads, 0, current_stream()>>>(step, gradient, values, v0, v1, v2,
                                                            result, count);
  finish_launches();
}

}  // namespace convgrad::cuda
