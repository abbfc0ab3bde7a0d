// SPDX-License-Identifier: Apache-2.0
// Device loops for ReLU, 2x2 max pooling, softmax cross-entropy and the transpose's helpers:
// one thread per output element (per image for the loss, per channel for the sums), 64-bit
// indices, grid-stride loops.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/check.hpp"
#include "cuda/layers.hpp"
#include "cuda/stream.hpp"

namespace convgrad::cuda {
namespace {

struct View {
  float* data;
  std::int64_t d0, d1, d2, d3;
  std::int64_t s0, s1, s2, s3;
  __device__ float& at(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c) const {
    return data[n * s0 + h * s1 + w * s2 + c * s3];
  }
  // Element i of the dense NHWC order (c fastest).
  __device__ float& flat(std::int64_t i) const {
    const std::int64_t c = i % d3;
    std::int64_t t = i / d3;
    const std::int64_t w = t % d2;
    t /= d2;
    return at(t / d1, t % d1, w, c);
  }
};

View view_of(const TensorView& v) {
  return {static_cast<float*>(v.data), v.dims[0], v.dims[1], v.dims[2], v.dims[3],
          v.strides[0], v.strides[1], v.strides[2], v.strides[3]};
}

std::int64_t count_of(const TensorView& v) { return v.dims[0] * v.dims[1] * v.dims[2] * v.dims[3]; }

__device__ __forceinline__ std::int64_t first_index() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::int64_t grid_stride() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

constexpr int kThreads = 256;
unsigned blocks_for(std::int64_t items) {
  return static_cast<unsigned>(
      std::clamp<std::int64_t>((items + kThreads - 1) / kThreads, 1, std::int64_t{1} << 20));
}

__global__ void relu_kernel(View x, View y, std::int64_t total) {
  for (std::int64_t i = first_index(); i < total; i += grid_stride()) {
    const float v = x.flat(i);
    y.flat(i) = v > 0.0f ? v : 0.0f;
  }
}

__global__ void relu_backward_kernel(View dy, View x, View dx, std::int64_t total) {
  for (std::int64_t i = first_index(); i < total; i += grid_stride()) {
    dx.flat(i) = x.flat(i) > 0.0f ? dy.flat(i) : 0.0f;
  }
}

__global__ void pool_kernel(View x, View y, std::int64_t total) {
  for (std::int64_t i = first_index(); i < total; i += grid_stride()) {
    const std::int64_t c = i % y.d3;
    std::int64_t t = i / y.d3;
    const std::int64_t q = t % y.d2;
    t /= y.d2;
    const std::int64_t p = t % y.d1, n = t / y.d1;
    const float a = x.at(n, 2 * p, 2 * q, c), b = x.at(n, 2 * p, 2 * q + 1, c);
    const float e = x.at(n, 2 * p + 1, 2 * q, c), f = x.at(n, 2 * p + 1, 2 * q + 1, c);
    // std::max(a, b) keeps a unless a < b: the same as the CPU's nested std::max.
    const float ab = a < b ? b : a, ef = e < f ? f : e;
    y.at(n, p, q, c) = ab < ef ? ef : ab;
  }
}

// One thread per dx element: it finds its window's first maximum and takes dy if it is that one.
__global__ void pool_backward_kernel(View dy, View x, View dx, std::int64_t total) {
  for (std::int64_t i = first_index(); i < total; i += grid_stride()) {
    const std::int64_t c = i % dx.d3;
    std::int64_t t = i / dx.d3;
    const std::int64_t w = t % dx.d2;
    t /= dx.d2;
    const std::int64_t h = t % dx.d1, n = t / dx.d1;
    const std::int64_t p = h / 2, q = w / 2;
    float value = 0.0f;
    if (p < dy.d1 && q < dy.d2) {
      int best = 0;
      float top = x.at(n, 2 * p, 2 * q, c);
      for (int k = 1; k < 4; ++k) {
        const float candidate = x.at(n, 2 * p + k / 2, 2 * q + k % 2, c);
        if (candidate > top) {  // strictly greater: the first of equal maxima wins, NaN never
          best = k;
          top = candidate;
        }
      }
      if (best == (h - 2 * p) * 2 + (w - 2 * q)) value = dy.at(n, p, q, c);
    }
    dx.at(n, h, w, c) = value;
  }
}

__global__ void softmax_kernel(View z, const std::int32_t* labels, double* per_image, View dz,
                               double scale) {
  const std::int64_t classes = z.d3;
  for (std::int64_t i = first_index(); i < z.d0; i += grid_stride()) {
    double top = z.at(i, 0, 0, 0);
    for (std::int64_t k = 1; k < classes; ++k) {
      const float v = z.at(i, 0, 0, k);
      if (top < v) top = v;  // std::max_element: the first maximum
    }
    double sum = 0.0;
    for (std::int64_t k = 0; k < classes; ++k) sum += exp(z.at(i, 0, 0, k) - top);
    const double log_sum = log(sum);
    const std::int32_t label = labels[i];
    per_image[i] = log_sum - (z.at(i, 0, 0, label) - top);
    for (std::int64_t k = 0; k < classes; ++k) {
      const double p = exp(z.at(i, 0, 0, k) - top - log_sum);
      dz.at(i, 0, 0, k) = static_cast<float>((p - (k == label ? 1.0 : 0.0)) * scale);
    }
  }
}

// Summed in image order by one thread, as the CPU does, so the loss does not depend on the grid.
__global__ void loss_sum_kernel(const double* per_image, std::int64_t batch, double scale,
                                float* loss) {
  double total = 0.0;
  for (std::int64_t i = 0; i < batch; ++i) total += per_image[i];
  *loss = static_cast<float>(total * scale);
}

__global__ void reverse_kernel(const float* from, float* to, ReverseShape t, bool inverse,
                               bool add, std::int64_t total) {
  for (std::int64_t i = first_index(); i < total; i += grid_stride()) {
    const std::int64_t c = i % t.in_per_group;
    std::int64_t rest = i / t.in_per_group;
    const std::int64_t w = rest % t.s;
    rest /= t.s;
    const std::int64_t h = rest % t.r, o = rest / t.r;
    const std::int64_t g = o / t.out_per_group;
    const std::int64_t theirs =
        (((g * t.in_per_group + c) * t.r + (t.r - 1 - h)) * t.s + (t.s - 1 - w)) *
            t.out_per_group +
        (o - g * t.out_per_group);
    const std::int64_t src = inverse ? theirs : i, dst = inverse ? i : theirs;
    to[dst] = add ? to[dst] + from[src] : from[src];
  }
}

__global__ void bias_kernel(View y, const float* bias, std::int64_t total) {
  for (std::int64_t i = first_index(); i < total; i += grid_stride()) {
    y.flat(i) += bias[i % y.d3];
  }
}

__global__ void channel_sum_kernel(View dy, float* sums) {
  for (std::int64_t k = first_index(); k < dy.d3; k += grid_stride()) {
    float acc = sums[k];
    for (std::int64_t n = 0; n < dy.d0; ++n)
      for (std::int64_t h = 0; h < dy.d1; ++h)
        for (std::int64_t w = 0; w < dy.d2; ++w) acc += dy.at(n, h, w, k);
    sums[k] = acc;
  }
}

}  // namespace

void relu_forward(const TensorView& x, const TensorView& y) {
  const std::int64_t total = count_of(x);
  relu_kernel<<<blocks_for(total), kThreads, 0, current_stream()>>>(view_of(x), view_of(y), total);
  finish_launches();
}

void relu_backward(const TensorView& dy, const TensorView& x, const TensorView& dx) {
  const std::int64_t total = count_of(x);
  relu_backward_kernel<<<blocks_for(total), kThreads, 0, current_stream()>>>(
      view_of(dy), view_of(x), view_of(dx), total);
  finish_launches();
}

void max_pool_forward(const TensorView& x, const TensorView& y) {
  const std::int64_t total = count_of(y);
  pool_kernel<<<blocks_for(total), kThreads, 0, current_stream()>>>(view_of(x), view_of(y), total);
  finish_launches();
}

void max_pool_backward(const TensorView& dy, const TensorView& x, const TensorView& dx) {
  const std::int64_t total = count_of(dx);
  pool_backward_kernel<<<blocks_for(total), kThreads, 0, current_stream()>>>(
      view_of(dy), view_of(x), view_of(dx), total);
  finish_launches();
}

void softmax_cross_entropy(const TensorView& logits, const std::int32_t* labels,
                           double* per_image, float* loss, const TensorView& gradient) {
  const std::int64_t batch = logits.dims[0];
  const double scale = 1.0 / static_cast<double>(batch);
  softmax_kernel<<<blocks_for(batch), kThreads, 0, current_stream()>>>(
      view_of(logits), labels, per_image, view_of(gradient), scale);
  CONVGRAD_CUDA_CHECK(cudaGetLastError());
  loss_sum_kernel<<<1, 1, 0, current_stream()>>>(per_image, batch, scale, loss);
  finish_launches();
}

void reverse_weights(const float* from, float* to, const ReverseShape& shape, bool inverse,
                     bool add) {
  const std::int64_t total = shape.out * shape.r * shape.s * shape.in_per_group;
  reverse_kernel<<<blocks_for(total), kThreads, 0, current_stream()>>>(from, to, shape, inverse,
                                                                      add, total);
  finish_launches();
}

void add_channel_bias(const TensorView& y, const float* bias) {
  const std::int64_t total = count_of(y);
  bias_kernel<<<blocks_for(total), kThreads, 0, current_stream()>>>(view_of(y), bias, total);
  finish_launches();
}

void accumulate_channel_sums(const TensorView& dy, float* sums) {
  channel_sum_kernel<<<blocks_for(dy.dims[3]), kThreads, 0, current_stream()>>>(view_of(dy),
                                                                               sums);
  finish_launches();
}

}  // namespace convgrad::cuda
