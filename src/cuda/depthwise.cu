// SPDX-License-Identifier: Apache-2.0
// Depthwise convolution (groups == C, any channel multiplier m = K / C). These layers do ~2 flops
// per byte, so the kernels are built for memory bandwidth: consecutive threads take consecutive
// channel vectors of one pixel (16-byte loads of NHWC rows when m == 1 and the views allow it),
// each thread walks kRows output rows of one column so that overlapping taps hit its own L1
// lines, and each block holds its channels' weights in shared memory as fp32. dgrad keeps the
// rows of a thread and the columns of a warp on one phase of the stride, so that a tap lands for
// all of them or none. wgrad splits N*P*Q over blocks, sums each block's lanes in shared memory in
// a fixed order and leaves the per-split partials to the shared fixed-order reduction
// (special_common.cu), which writes dw and db: no atomics, the same bits on every run.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/check.hpp"
#include "cuda/depthwise.hpp"
#include "cuda/special_common.cuh"
#include "cuda/stream.hpp"

namespace convgrad::cuda {
namespace {

using special::load_any;
using special::load_vec;
using special::store_vec;

// Spatial sizes and coordinates are 32-bit (depthwise_rejects refuses sides of 2^30 and more):
// 64-bit division in the tap loops cost more than the loads. Offsets into tensors stay 64-bit.
struct Shape {
  std::int64_t n, k;
  int h, w, c, p, q;
  int r, s, sh, sw, dh, dw, pt, pl, m;
};

Shape shape_of(const ConvProblem& p) {
  Shape s{};
  s.n = p.n, s.k = p.k;
  s.h = static_cast<int>(p.h), s.w = static_cast<int>(p.w), s.c = static_cast<int>(p.c);
  s.p = static_cast<int>(p.p), s.q = static_cast<int>(p.q);
  s.r = static_cast<int>(p.r), s.s = static_cast<int>(p.s);
  s.sh = p.stride_h, s.sw = p.stride_w, s.dh = p.dilation_h, s.dw = p.dilation_w;
  s.pt = p.pad_top, s.pl = p.pad_left;
  s.m = static_cast<int>(p.k / p.c);
  return s;
}

struct Img {
  void* data;
  std::int64_t s0, s1, s2, s3;
};
Img img(const TensorView& v) { return {v.data, v.strides[0], v.strides[1], v.strides[2], v.strides[3]}; }

struct Weights {
  const void* data;
  DataType type;
  std::int64_t s0, s1, s2;
};
Weights weights(const TensorView& v) {
  return {v.data, v.type, v.strides[0], v.strides[1], v.strides[2]};
}

constexpr int kThreads = 256;
constexpr int kRows = 4;  // output rows per thread (fprop) / input rows per thread (dgrad)
// A block's weights live in shared memory as fp32 [tap][filter of the block's slice].
constexpr int kWeightBytes = 48 * 1024;
constexpr int kMaxTaps = kWeightBytes / (8 * static_cast<int>(sizeof(float)));

// Stages the weights of filters [k0, k0 + count) as wsm[tap * count + k - k0] and waits.
__device__ __forceinline__ void stage_weights(const Shape& p, const Weights& w, std::int64_t k0,
                                              int count, float* wsm) {
  const int taps = p.r * p.s;
  for (int e = static_cast<int>(threadIdx.x); e < taps * count; e += blockDim.x) {
    const int tap = e / count;
    const std::int64_t k = k0 + e % count;
    wsm[e] = k < p.k ? load_any(w.data, w.type, k * w.s0 + tap / p.s * w.s1 + tap % p.s * w.s2)
                     : 0.0f;
  }
  __syncthreads();
}

template <int VEC>
__device__ __forceinline__ void read_weights(const float* at, float (&out)[VEC]) {
  if constexpr (VEC % 4 == 0) {
#pragma unroll
    for (int i = 0; i < VEC / 4; ++i) {
      const float4 v = reinterpret_cast<const float4*>(at)[i];
      out[4 * i] = v.x, out[4 * i + 1] = v.y, out[4 * i + 2] = v.z, out[4 * i + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) out[i] = at[i];
  }
}

// Block (x, y): y is a slice of `slice` channel vectors; its threads take items (n, row tile,
// output column, vector of the slice), vector fastest.
template <class T, int VEC>
__global__ void __launch_bounds__(kThreads)
    fprop_kernel(Shape p, Img x, Img y, Weights w, const float* bias, std::int64_t bias_stride,
                 int slice, unsigned total) {
  extern __shared__ float4 shared4[];
  float* wsm = reinterpret_cast<float*>(shared4);
  const std::int64_t vectors = p.k / VEC;
  const std::int64_t kv_base = static_cast<std::int64_t>(blockIdx.y) * slice;
  stage_weights(p, w, kv_base * VEC, slice * VEC, wsm);
  const int tiles = (p.p + kRows - 1) / kRows;
  // 32-bit item arithmetic: depthwise_rejects keeps the item count below 2^31.
  for (unsigned i = blockIdx.x * kThreads + threadIdx.x; i < total; i += gridDim.x * kThreads) {
    const int kvl = static_cast<int>(i % static_cast<unsigned>(slice));
    unsigned t = i / static_cast<unsigned>(slice);
    const int oq = static_cast<int>(t % static_cast<unsigned>(p.q));
    t /= static_cast<unsigned>(p.q);
    const int tile = static_cast<int>(t % static_cast<unsigned>(tiles));
    const std::int64_t n = t / static_cast<unsigned>(tiles);
    if (kv_base + kvl >= vectors) continue;
    const std::int64_t k0 = (kv_base + kvl) * VEC;
    const std::int64_t cin = k0 / p.m;  // m == 1 whenever VEC > 1
    float acc[kRows][VEC];
#pragma unroll
    for (int v = 0; v < VEC; ++v) {
      const float b0 = bias != nullptr ? bias[(k0 + v) * bias_stride] : 0.0f;
#pragma unroll
      for (int row = 0; row < kRows; ++row) acc[row][v] = b0;
    }
    const T* xn = static_cast<const T*>(x.data) + n * x.s0 + cin * x.s3;
    for (int r = 0; r < p.r; ++r) {
      for (int s = 0; s < p.s; ++s) {
        const int iw = oq * p.sw - p.pl + s * p.dw;
        if (iw < 0 || iw >= p.w) continue;
        float wv[VEC];
        read_weights<VEC>(wsm + (r * p.s + s) * slice * VEC + kvl * VEC, wv);
        const T* xc = xn + iw * x.s2;
#pragma unroll
        for (int row = 0; row < kRows; ++row) {
          const int oh = tile * kRows + row;
          const int ih = oh * p.sh - p.pt + r * p.dh;
          if (oh >= p.p || ih < 0 || ih >= p.h) continue;
          float xv[VEC];
          load_vec<T, VEC>(xc + ih * x.s1, xv);
#pragma unroll
          for (int v = 0; v < VEC; ++v) acc[row][v] = fmaf(xv[v], wv[v], acc[row][v]);
        }
      }
    }
    T* yn = static_cast<T*>(y.data) + n * y.s0 + oq * y.s2 + k0 * y.s3;
#pragma unroll
    for (int row = 0; row < kRows; ++row) {
      const int oh = tile * kRows + row;
      if (oh < p.p) store_vec<T, VEC>(yn + oh * y.s1, acc[row]);
    }
  }
}

// Floor division (t may be negative) and whether it was exact.
__device__ __forceinline__ bool divides(int t, int stride, int& quotient) {
  quotient = t >= 0 ? t / stride : -((-t + stride - 1) / stride);
  return quotient * stride == t;
}

// Gather form: each dx element sums the taps whose output position lands on the stride grid.
// The rows of a thread, and the columns of a warp's lanes, share one phase of the stride, so a
// tap lands for all of them or for none: one test per tap, and no lane idles while another
// computes. Items (channel vector of the slice, column of the phase, column phase, row tile,
// row phase, n), vector fastest. The slice is over the filters k = c * m + j of its channels.
template <class T, int VEC>
__global__ void __launch_bounds__(kThreads)
    dgrad_kernel(Shape p, Img dy, Img dx, Weights w, int slice, unsigned total) {
  extern __shared__ float4 shared4[];
  float* wsm = reinterpret_cast<float*>(shared4);
  const std::int64_t vectors = p.c / VEC;
  const std::int64_t cv_base = static_cast<std::int64_t>(blockIdx.y) * slice;
  const int filters = slice * VEC * p.m;
  stage_weights(p, w, cv_base * VEC * p.m, filters, wsm);
  const unsigned columns = static_cast<unsigned>((p.w + p.sw - 1) / p.sw);
  const unsigned tiles = static_cast<unsigned>(((p.h + p.sh - 1) / p.sh + kRows - 1) / kRows);
  for (unsigned i = blockIdx.x * kThreads + threadIdx.x; i < total; i += gridDim.x * kThreads) {
    const int cvl = static_cast<int>(i % static_cast<unsigned>(slice));
    unsigned t = i / static_cast<unsigned>(slice);
    const int column = static_cast<int>(t % columns);
    t /= columns;
    const int phase_w = static_cast<int>(t % static_cast<unsigned>(p.sw));
    t /= static_cast<unsigned>(p.sw);
    const int tile = static_cast<int>(t % tiles);
    t /= tiles;
    const int phase_h = static_cast<int>(t % static_cast<unsigned>(p.sh));
    const std::int64_t n = t / static_cast<unsigned>(p.sh);
    const int iw = phase_w + column * p.sw;
    const int ih0 = phase_h + tile * kRows * p.sh;  // row `row` is ih0 + row * sh
    if (cv_base + cvl >= vectors || iw >= p.w || ih0 >= p.h) continue;
    const std::int64_t c0 = (cv_base + cvl) * VEC;
    float acc[kRows][VEC] = {};
    const T* dyn = static_cast<const T*>(dy.data) + n * dy.s0;
    for (int s = 0; s < p.s; ++s) {
      int ow;
      if (!divides(iw + p.pl - s * p.dw, p.sw, ow) || ow < 0 || ow >= p.q) continue;
      const T* dyc = dyn + ow * dy.s2;
      for (int r = 0; r < p.r; ++r) {
        int oh0;  // output row of row 0; row `row` reads oh0 + row
        if (!divides(ih0 + p.pt - r * p.dh, p.sh, oh0) || oh0 >= p.p || oh0 + kRows <= 0) continue;
        for (int j = 0; j < p.m; ++j) {
          const std::int64_t k0 = c0 * p.m + j;  // with VEC > 1, m == 1 and k = c
          float wv[VEC];
          read_weights<VEC>(wsm + (r * p.s + s) * filters + cvl * VEC * p.m + j, wv);
#pragma unroll
          for (int row = 0; row < kRows; ++row) {
            const int oh = oh0 + row;
            if (oh < 0 || oh >= p.p || ih0 + row * p.sh >= p.h) continue;
            float dv[VEC];
            load_vec<T, VEC>(dyc + oh * dy.s1 + k0 * dy.s3, dv);
#pragma unroll
            for (int v = 0; v < VEC; ++v) acc[row][v] = fmaf(dv[v], wv[v], acc[row][v]);
          }
        }
      }
    }
    T* dxn = static_cast<T*>(dx.data) + n * dx.s0 + iw * dx.s2 + c0 * dx.s3;
#pragma unroll
    for (int row = 0; row < kRows; ++row) {
      const int ih = ih0 + row * p.sh;
      if (ih < p.h) store_vec<T, VEC>(dxn + ih * dx.s1, acc[row]);
    }
  }
}

constexpr int kTaps = 9;  // taps per wgrad pass: kTaps x VEC accumulators per thread
constexpr int kWgradThreads = 128;

// Block (blockIdx.x, blockIdx.y) takes `per_block` channel vectors and split blockIdx.y of
// N*P*Q; its threads are (lane, vector) with the vector fastest, each lane striding over the
// split's positions. Taps tap0 .. tap0 + kTaps - 1 (and db when `with_db`). The lanes' sums are
// added in lane order in shared memory; the block writes its split's partials in the dense
// [K][R][S] order of the shared reduction, db after them.
template <class T, int VEC>
__global__ void __launch_bounds__(kWgradThreads, 4)
    wgrad_kernel(Shape p, Img x, Img dy, int tap0, bool with_db, float* partials,
                 std::int64_t split_floats, std::int64_t per_split, int per_block) {
  __shared__ float sums[kWgradThreads * VEC];
  const int taps = p.r * p.s;
  const int lanes = kWgradThreads / per_block;
  const int vector_in_block = static_cast<int>(threadIdx.x) % per_block;
  const int lane = static_cast<int>(threadIdx.x) / per_block;
  const std::int64_t kv = static_cast<std::int64_t>(blockIdx.x) * per_block + vector_in_block;
  const bool active = lane < lanes && kv < p.k / VEC;
  const std::int64_t k0 = kv * VEC;
  const std::int64_t cin = k0 / p.m;
  const std::int64_t npq = p.n * p.p * p.q;
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.y) * per_split;
  const std::int64_t end = npq < begin + per_split ? npq : begin + per_split;
  int r_off[kTaps], s_off[kTaps];
#pragma unroll
  for (int tap = 0; tap < kTaps; ++tap) {
    const bool real = tap0 + tap < taps;
    r_off[tap] = real ? (tap0 + tap) / p.s * p.dh - p.pt : -(1 << 30);
    s_off[tap] = real ? (tap0 + tap) % p.s * p.dw - p.pl : -(1 << 30);
  }
  float acc[kTaps][VEC] = {};
  float db[VEC] = {};
  if (active && begin + lane < end) {
    // Position j = begin + lane, then steps of `lanes`, tracked as (n, oh, ow) without divisions.
    std::int64_t j = begin + lane;
    int ow = static_cast<int>(j % p.q);
    std::int64_t t = j / p.q;
    int oh = static_cast<int>(t % p.p);
    std::int64_t n = t / p.p;
    for (; j < end; j += lanes) {
      float dv[VEC];
      load_vec<T, VEC>(static_cast<const T*>(dy.data) + n * dy.s0 + oh * dy.s1 + ow * dy.s2 +
                           k0 * dy.s3,
                       dv);
      if (with_db) {
#pragma unroll
        for (int v = 0; v < VEC; ++v) db[v] += dv[v];
      }
      const T* xn = static_cast<const T*>(x.data) + n * x.s0 + cin * x.s3;
      const int ih0 = oh * p.sh, iw0 = ow * p.sw;
#pragma unroll
      for (int tap = 0; tap < kTaps; ++tap) {
        const int ih = ih0 + r_off[tap];
        const int iw = iw0 + s_off[tap];
        if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
        float xv[VEC];
        load_vec<T, VEC>(xn + ih * x.s1 + iw * x.s2, xv);
#pragma unroll
        for (int v = 0; v < VEC; ++v) acc[tap][v] = fmaf(xv[v], dv[v], acc[tap][v]);
      }
      ow += lanes;
      while (ow >= p.q) {
        ow -= p.q;
        if (++oh == p.p) {
          oh = 0;
          ++n;
        }
      }
    }
  }
  float* split = partials + static_cast<std::int64_t>(blockIdx.y) * split_floats;
  const std::int64_t block_k0 = static_cast<std::int64_t>(blockIdx.x) * per_block * VEC;
#pragma unroll
  for (int slot = 0; slot <= kTaps; ++slot) {
    const bool is_db = slot == kTaps;
    if (is_db ? !with_db : tap0 + slot >= taps) continue;  // uniform over the block
    if (lane < lanes) {
#pragma unroll
      for (int v = 0; v < VEC; ++v) {
        sums[(lane * per_block + vector_in_block) * VEC + v] = is_db ? db[v] : acc[slot][v];
      }
    }
    __syncthreads();
    for (int e = static_cast<int>(threadIdx.x); e < per_block * VEC; e += kWgradThreads) {
      float sum = 0.0f;
      for (int l = 0; l < lanes; ++l) sum += sums[l * per_block * VEC + e];
      const std::int64_t k = block_k0 + e;
      if (k < p.k) {
        split[is_db ? p.k * taps + k : k * taps + tap0 + slot] = sum;
      }
    }
    __syncthreads();
  }
}

// Enough resident blocks for every SM several times; the kernels loop beyond that.
unsigned grid_for(std::int64_t items, std::int64_t slices) {
  const std::int64_t cap =
      std::max<std::int64_t>(1, static_cast<std::int64_t>(special::multiprocessors()) * 16 / slices);
  return static_cast<unsigned>(std::clamp<std::int64_t>((items + kThreads - 1) / kThreads, 1, cap));
}

// The vector width a problem's views allow: 16 bytes when m == 1 and every image view reads whole
// aligned vectors of channels, else 1 (any strides).
template <class T>
bool vectorised(const ConvProblem& p, const TensorView& a, const TensorView& b) {
  constexpr int vec = 16 / sizeof(T);
  return p.k == p.c && p.c % vec == 0 && special::vector_ok(a, vec) && special::vector_ok(b, vec);
}

// Channel vectors per block slice: as many as shared memory holds the weights of (`per_vector`
// filters each).
int slice_for(std::int64_t vectors, std::int64_t taps, std::int64_t per_vector) {
  const std::int64_t fit = kWeightBytes / (taps * per_vector * static_cast<std::int64_t>(sizeof(float)));
  return static_cast<int>(std::clamp<std::int64_t>(std::min(vectors, fit), 1, 1 << 20));
}

}  // namespace

constexpr std::int64_t kMaxSide = std::int64_t{1} << 30;

std::optional<std::string> depthwise_rejects(const ConvProblem& problem) {
  if (problem.groups != problem.c) {
    return "not depthwise: groups = " + std::to_string(problem.groups) + " differs from c = " +
           std::to_string(problem.c);
  }
  if (problem.h >= kMaxSide || problem.w >= kMaxSide || problem.p >= kMaxSide ||
      problem.q >= kMaxSide) {
    return std::string("an image side reaches 2^30 (32-bit coordinates)");
  }
  if (problem.r * problem.s > kMaxTaps) {
    return "R*S = " + std::to_string(problem.r * problem.s) + " taps: more than the " +
           std::to_string(kMaxTaps) + " whose weights fit in shared memory";
  }
  if (problem.k / problem.c > kMaxTaps) {
    return "channel multiplier " + std::to_string(problem.k / problem.c) + " above " +
           std::to_string(kMaxTaps);
  }
  if (problem.r * problem.s * (problem.k / problem.c) > kMaxTaps) {
    return "R*S x channel multiplier = " + std::to_string(problem.r * problem.s * (problem.k / problem.c)) +
           ": the weights of one channel do not fit in shared memory";
  }
  // Work items (4 rows x one column x one channel at worst) are counted in 32 bits.
  const std::int64_t items = problem.n * (std::max(problem.h, problem.p) + 4 * problem.stride_h) *
                             (std::max(problem.w, problem.q) + problem.stride_w) * problem.c *
                             (problem.k / problem.c) / 4;
  if (items >= std::int64_t{1} << 31) {
    return std::to_string(items) + " work items: above the 2^31 these kernels count";
  }
  const std::int64_t per_slice =
      kWeightBytes / (problem.r * problem.s * (problem.k / problem.c) * std::int64_t{4});
  if ((problem.c + per_slice - 1) / per_slice > 65535) {
    return "c = " + std::to_string(problem.c) + " needs more than the grid's 65535 weight slices";
  }
  return special::reject_mixed_image_types(problem);
}

void depthwise_fprop(const ConvProblem& problem, const core::Operands& o, bool /*accumulate*/) {
  const Shape shape = shape_of(problem);
  const bool bias = problem.with_bias && !o.b.empty();
  const float* bias_data = bias ? static_cast<const float*>(o.b.data) : nullptr;
  const std::int64_t bias_stride = bias ? o.b.strides[0] : 0;
  const std::int64_t taps = problem.r * problem.s;
  special::with_storage(problem.x_type, [&](auto tag) {
    using T = decltype(tag);
    const auto launch = [&](auto vec_tag) {
      constexpr int VEC = decltype(vec_tag)::value;
      const std::int64_t vectors = problem.k / VEC;
      const int slice = slice_for(vectors, taps, VEC);
      const std::int64_t slices = (vectors + slice - 1) / slice;
      const std::int64_t tiles = (problem.p + kRows - 1) / kRows;
      const std::int64_t total = problem.n * tiles * problem.q * slice;
      const std::size_t smem = static_cast<std::size_t>(taps * slice * VEC) * sizeof(float);
      fprop_kernel<T, VEC><<<dim3(grid_for(total, slices), static_cast<unsigned>(slices)), kThreads,
                             smem, current_stream()>>>(shape, img(o.x), img(o.y), weights(o.w),
                                                       bias_data, bias_stride, slice,
                                                       static_cast<unsigned>(total));
    };
    if (vectorised<T>(problem, o.x, o.y)) {
      launch(std::integral_constant<int, 16 / sizeof(T)>{});
    } else {
      launch(std::integral_constant<int, 1>{});
    }
  });
  finish_launches();
}

void depthwise_dgrad(const ConvProblem& problem, const core::Operands& o, bool /*accumulate*/) {
  const Shape shape = shape_of(problem);
  const std::int64_t taps = problem.r * problem.s;
  const std::int64_t m = problem.k / problem.c;
  special::with_storage(problem.x_type, [&](auto tag) {
    using T = decltype(tag);
    const auto launch = [&](auto vec_tag) {
      constexpr int VEC = decltype(vec_tag)::value;
      const std::int64_t vectors = problem.c / VEC;
      const int slice = slice_for(vectors, taps, VEC * m);
      const std::int64_t slices = (vectors + slice - 1) / slice;
      const std::int64_t columns = (problem.w + problem.stride_w - 1) / problem.stride_w;
      const std::int64_t rows = (problem.h + problem.stride_h - 1) / problem.stride_h;
      const std::int64_t tiles = (rows + kRows - 1) / kRows;
      const std::int64_t total =
          problem.n * problem.stride_h * tiles * problem.stride_w * columns * slice;
      const std::size_t smem = static_cast<std::size_t>(taps * slice * VEC * m) * sizeof(float);
      dgrad_kernel<T, VEC><<<dim3(grid_for(total, slices), static_cast<unsigned>(slices)), kThreads,
                             smem, current_stream()>>>(shape, img(o.y), img(o.x), weights(o.w),
                                                       slice, static_cast<unsigned>(total));
    };
    if (vectorised<T>(problem, o.x, o.y)) {
      launch(std::integral_constant<int, 16 / sizeof(T)>{});
    } else {
      launch(std::integral_constant<int, 1>{});
    }
  });
  finish_launches();
}

void depthwise_wgrad(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  const Shape shape = shape_of(problem);
  const bool bias = !o.b.empty();
  const std::int64_t taps = problem.r * problem.s;
  const std::int64_t split_floats = problem.k * taps + problem.k;
  const std::int64_t npq = problem.n * problem.p * problem.q;
  special::with_storage(problem.x_type, [&](auto tag) {
    using T = decltype(tag);
    constexpr int vec = 16 / sizeof(T);
    const auto launch = [&](auto vec_tag) {
      constexpr int VEC = decltype(vec_tag)::value;
      const std::int64_t vectors = problem.k / VEC;
      const int per_block = static_cast<int>(std::min<std::int64_t>(vectors, kWgradThreads));
      const int lanes = kWgradThreads / per_block;
      const std::int64_t blocks_x = (vectors + per_block - 1) / per_block;
      // About three blocks per SM in all, each lane with at least a few positions.
      const std::int64_t want = std::max<std::int64_t>(
          1, 3 * static_cast<std::int64_t>(special::multiprocessors()) / blocks_x);
      const std::int64_t most = std::max<std::int64_t>(1, npq / (4 * lanes));
      std::int64_t splits = std::clamp<std::int64_t>(want, 1, std::min<std::int64_t>(most, 65535));
      const std::int64_t per_split = (npq + splits - 1) / splits;
      splits = (npq + per_split - 1) / per_split;
      float* partials = special::workspace(static_cast<std::size_t>(splits * split_floats));
      for (std::int64_t tap0 = 0; tap0 < taps; tap0 += kTaps) {
        wgrad_kernel<T, VEC><<<dim3(static_cast<unsigned>(blocks_x), static_cast<unsigned>(splits)),
                               kWgradThreads, 0, current_stream()>>>(
            shape, img(o.x), img(o.y), static_cast<int>(tap0), bias && tap0 == 0, partials,
            split_floats, per_split, per_block);
      }
      special::reduce_wgrad_partials(problem, o, partials, splits, split_floats, accumulate);
    };
    if (vectorised<T>(problem, o.x, o.y)) {
      launch(std::integral_constant<int, vec>{});
    } else {
      launch(std::integral_constant<int, 1>{});
    }
  });
  finish_launches();
}

}  // namespace convgrad::cuda
