// SPDX-License-Identifier: Apache-2.0
// The non-convolution layers of a small CNN on device memory, and the element-wise pieces the
// transposed convolution needs around its dgrad/fprop/wgrad. Float32 NHWC views (any strides,
// so channel windows and batch slices work); every function launches on current_stream() and
// ends with finish_launches(). Each follows its CPU loop in src/api/ step for step, so the
// results agree bit for bit (softmax aside, whose exp/log come from different libraries).
#pragma once

#include <cstdint>

#include "convgrad/tensor_view.hpp"

namespace convgrad::cuda {

void relu_forward(const TensorView& x, const TensorView& y);
void relu_backward(const TensorView& dy, const TensorView& x, const TensorView& dx);
/// 2x2, stride 2; y is floor(H/2) x floor(W/2).
void max_pool_forward(const TensorView& x, const TensorView& y);
/// dx is zero except at the first maximum of each window (row-major), which gets dy.
void max_pool_backward(const TensorView& dy, const TensorView& x, const TensorView& dx);
/// N x 1 x 1 x C logits; `labels` (N int32) and `per_image` (N doubles, scratch) in device
/// memory. Writes dL/dz (scaled by 1/N) and the mean loss into `loss` (one float).
void softmax_cross_entropy(const TensorView& logits, const std::int32_t* labels,
                           double* per_image, float* loss, const TensorView& gradient);

/// The OHWI shapes of api::reverse_weights.
struct ReverseShape {
  std::int64_t out, groups, in_per_group, out_per_group, r, s;
};
/// api::reverse_weights on device memory.
void reverse_weights(const float* from, float* to, const ReverseShape& shape, bool inverse,
                     bool add);
/// y[n][h][w][k] += bias[k].
void add_channel_bias(const TensorView& y, const float* bias);
/// sums[k] += sum over n, h, w of dy[n][h][w][k], in pixel order (as the CPU adds them).
void accumulate_channel_sums(const TensorView& dy, float* sums);

}  // namespace convgrad::cuda
