// SPDX-License-Identifier: Apache-2.0
// The CUTLASS 3.x sm90 implicit-GEMM convolutions (TMA im2col + wgmma) behind a plain interface:
// one table of function pointers per (direction, element type), each defined in its own
// translation unit, so that CUTLASS's headers and nvcc's time stay in those few files.
#pragma once

#include <cuda_runtime.h>

#include <optional>
#include <string>

namespace convgrad::cuda::tc {

/// An NHWC forward convolution as CUTLASS sees it: activation [n][h][w][c], filter [k][r][s][c],
/// output [n][p][q][k] packed, channels contiguous. Pads are non-negative here. The activation's
/// image-axis strides default (0) to packed; dgrad's phases set them to read a crop of dy. (The
/// output cannot be strided: the NoSmem epilogue steps the linearized pixel index by the
/// innermost pixel stride alone.)
struct ConvShape {
  int n, h, w, c, k, r, s;
  int pad_top, pad_left, pad_bottom, pad_right;
  int stride_h, stride_w, dilation_h, dilation_w;
  long long act_stride_n = 0, act_stride_h = 0, act_stride_w = 0;  ///< fprop only
  /// fprop with float32 output: y = conv + y, rounded once per element (no bias then). Sums a
  /// reduction run in chunks with round-to-nearest adds instead of the tensor cores' own.
  bool add_to_output = false;
};

/// One slice of a split wgrad: a range of images and the float32 [k][r][s][c] partial it sums.
struct WgradSplit {
  ConvShape shape;  ///< n = the images of this slice
  const void* x;
  const void* dy;
  float* dw;
};

/// The most slices one wgrad launch takes (their parameters travel in the kernel's parameter
/// space, 32 KB on sm_90).
constexpr int kMaxSplits = 32;

struct CutlassOps {
  /// nullopt when CUTLASS's can_implement accepts the shape; otherwise why not.
  std::optional<std::string> (*can_implement)(const ConvShape& shape);
  /// fprop: y = conv(x, w) (+ bias, float32 [k], when not null), all packed, storage type.
  void (*fprop)(const ConvShape& shape, const void* x, const void* w, const float* bias, void* y,
                cudaStream_t stream);
  /// wgrad: every slice in one launch (grid z = slice), each writing its own partial, so the
  /// sum stays in a fixed order. 1 <= count <= kMaxSplits; every slice has the same k, r, s, c.
  void (*wgrad)(const WgradSplit* splits, int count, cudaStream_t stream);
  /// Output tiles of one slice (the grid's x times y), for choosing the slice count.
  long long (*tiles)(const ConvShape& shape);
  /// wgrad: how many CTAs of its kernel fit on one SM (registers, shared memory).
  int (*ctas_per_sm)();
};

// 128x128 tiles (a 64-row tile for *_m64, a 64-column one for *_n64, both 4 stages deep so that
// two CTAs share an SM): fprop's N is the output channels, wgrad's M the filters.
extern const CutlassOps fprop_f16, fprop_bf16, fprop_tf32, fprop_f16_n64, fprop_bf16_n64;
extern const CutlassOps wgrad_f16, wgrad_bf16, wgrad_f16_m64, wgrad_bf16_m64;

}  // namespace convgrad::cuda::tc
