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
//
// The common 3x3 filters (stride 1 or 2, multiplier 1, whole channel vectors) have kernels of
// their own below, with the taps known at compile time: see the section "3x3 filters".
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
unsigned grid_for(std::int64_t items, std::int64_t slices, int threads = kThreads) {
  const std::int64_t cap = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(special::multiprocessors()) * 16 * (kThreads / threads) / slices);
  return static_cast<unsigned>(std::clamp<std::int64_t>((items + threads - 1) / threads, 1, cap));
}

// The vector width a problem's views allow: 16 bytes when m == 1 and every image view reads whole
// aligned vectors of channels, else 1 (any strides).
template <class T>
bool vectorised(const ConvProblem& p, const TensorView& a, const TensorView& b) {
  constexpr int vec = 16 / sizeof(T);
  return p.k == p.c && p.c % vec == 0 && special::vector_ok(a, vec) && special::vector_ok(b, vec);
}

// The launch of a kernel that stages its block's weights: `slice` channel vectors per block
// (as many as shared memory holds the weights of, `per_vector` filters each), `count` blocks
// along y, `smem` bytes of fp32 weights.
struct Slices {
  int slice;
  std::int64_t count;
  std::size_t smem;
  dim3 grid(std::int64_t items, int threads = kThreads) const {
    return dim3(grid_for(items, count, threads), static_cast<unsigned>(count));
  }
};

Slices slices_for(std::int64_t vectors, std::int64_t taps, std::int64_t per_vector) {
  const std::int64_t fit = kWeightBytes / (taps * per_vector * static_cast<std::int64_t>(sizeof(float)));
  const int slice = static_cast<int>(std::clamp<std::int64_t>(std::min(vectors, fit), 1, 1 << 20));
  return {slice, (vectors + slice - 1) / slice,
          static_cast<std::size_t>(taps * slice * per_vector) * sizeof(float)};
}

// The grid of a wgrad kernel whose blocks of `threads` threads take `per_block` channel vectors
// (x) and one split of `work` positions (y): about `per_sm` blocks per SM in all, each lane with
// at least a few positions, and no split empty.
struct WgradGrid {
  int per_block;
  std::int64_t blocks_x, splits, per_split;
};

WgradGrid wgrad_grid(std::int64_t vectors, int threads, std::int64_t work, int per_sm) {
  WgradGrid g{};
  g.per_block = static_cast<int>(std::min<std::int64_t>(vectors, threads));
  const int lanes = threads / g.per_block;
  g.blocks_x = (vectors + g.per_block - 1) / g.per_block;
  const std::int64_t want = std::max<std::int64_t>(
      1, per_sm * static_cast<std::int64_t>(special::multiprocessors()) / g.blocks_x);
  const std::int64_t most = std::max<std::int64_t>(1, work / (4 * lanes));
  g.splits = std::clamp<std::int64_t>(want, 1, std::min<std::int64_t>(most, 65535));
  g.per_split = (work + g.splits - 1) / g.splits;
  g.splits = (work + g.per_split - 1) / g.per_split;
  return g;
}

// fprop's bias as the kernels take it: null when the problem has none.
struct Bias {
  const float* data = nullptr;
  std::int64_t stride = 0;
};

Bias bias_of(const ConvProblem& p, const core::Operands& o) {
  if (!p.with_bias || o.b.empty()) return {};
  return {static_cast<const float*>(o.b.data), o.b.strides[0]};
}

// Calls launch(T{}, integral_constant<VEC>) for the storage type, VEC the widest the views allow,
// so that each kernel is instantiated once per type and width.
template <class Launch>
void launch_generic(const ConvProblem& p, const core::Operands& o, const Launch& launch) {
  special::with_storage(p.x_type, [&](auto tag) {
    using T = decltype(tag);
    if (vectorised<T>(p, o.x, o.y)) {
      launch(tag, std::integral_constant<int, 16 / sizeof(T)>{});
    } else {
      launch(tag, std::integral_constant<int, 1>{});
    }
  });
  finish_launches();
}

// ---- 3x3 filters, stride 1 or 2, dilation 1, m == 1, whole 16-byte channel vectors ----------
// The taps are compile-time and every loop over them is unrolled, so that a thread issues all
// the loads of a tile before its first multiply: the generic kernels' run-time tap loops left
// too few requests in flight to reach the memory roofline. A thread takes one channel vector and
// a tile of output pixels; the input rows of the tile are read once into registers and serve
// every tap and output row they reach (the halo shared with neighbouring tiles comes from L1).

// Threads of a 3x3 fprop/dgrad block: small blocks, three resident per SM (at most 170
// registers a thread), so that their load and compute phases overlap. Measured on the H100 (bf16
// MobileNetV2 layers): 40 us against 54 us with one 256-thread block and 250 registers.
constexpr int kThreads3 = 128;
constexpr int kMinBlocks3 = 3;

// Output rows x columns per thread, by stride: with 16-bit storage, 24 (stride 1) or 25 (stride
// 2) 16-byte loads in flight per thread, and 64 or 32 fp32 accumulators.
template <int S>
struct Tile3 {
  static constexpr int rows = 2;
  static constexpr int cols = S == 1 ? 4 : 2;
};

// One 16-byte vector as stored, or zeros (the same bits in every storage type) outside the
// image. The loads of a tile are all issued into these before any is widened, so that they are
// in flight together; kept as four 32-bit words, two 16-bit values to a register.
template <class T>
__device__ __forceinline__ uint4 load_raw(const T* p, bool inside) {
  return inside ? *reinterpret_cast<const uint4*>(p) : make_uint4(0, 0, 0, 0);
}

__device__ __forceinline__ void widen_word(float, unsigned word, float* out) {
  out[0] = __uint_as_float(word);
}
__device__ __forceinline__ void widen_word(__nv_bfloat16, unsigned word, float* out) {
  out[0] = __uint_as_float(word << 16);  // bfloat16 is the top half of a float
  out[1] = __uint_as_float(word & 0xffff0000u);
}
__device__ __forceinline__ void widen_word(__half, unsigned word, float* out) {
  out[0] = __half2float(__ushort_as_half(static_cast<unsigned short>(word & 0xffffu)));
  out[1] = __half2float(__ushort_as_half(static_cast<unsigned short>(word >> 16)));
}

template <class T, int VEC>
__device__ __forceinline__ void widen(const uint4& raw, float (&out)[VEC]) {
  static_assert(VEC * sizeof(T) == 16, "one 16-byte vector");
  constexpr int per_word = VEC / 4;
  widen_word(T{}, raw.x, out);
  widen_word(T{}, raw.y, out + per_word);
  widen_word(T{}, raw.z, out + 2 * per_word);
  widen_word(T{}, raw.w, out + 3 * per_word);
}

struct Plane {
  int h, w;  // input plane
  int p, q;  // output plane
  int pt, pl;  // pads of the input
  int c;       // channels (== filters)
};

// Weights of channels [c0, c0 + count) as wsm[tap * count + c - c0], taps mirrored when `flip`
// (dgrad in gather form is fprop with the filter turned by 180 degrees).
__device__ __forceinline__ void stage_weights3(const Weights& w, int channels, int c0, int count,
                                               bool flip, float* wsm) {
  for (int e = static_cast<int>(threadIdx.x); e < 9 * count; e += blockDim.x) {
    const int tap = e / count;
    const int c = c0 + e % count;
    const int t = flip ? 8 - tap : tap;
    wsm[e] = c < channels ? load_any(w.data, w.type, c * w.s0 + t / 3 * w.s1 + t % 3 * w.s2) : 0.0f;
  }
  __syncthreads();
}

// out[o] = bias + sum over (r, s) of in[o * S - pad + (r, s)] * wsm[r, s]: fprop (stride 1 or 2)
// and, with mirrored weights and pad 2 - pad, stride-1 dgrad. Items (vector of the slice,
// column strip, row band, n), vector fastest.
template <class T, int VEC, int S>
__global__ void __launch_bounds__(kThreads3, kMinBlocks3)
    stencil3_kernel(Plane g, Img in, Img out, Weights w, bool flip, const float* bias,
                    std::int64_t bias_stride, int slice, unsigned total) {
  constexpr int PT = Tile3<S>::rows, QT = Tile3<S>::cols;
  constexpr int IR = (PT - 1) * S + 3, IC = (QT - 1) * S + 3;
  extern __shared__ float4 shared4[];
  float* wsm = reinterpret_cast<float*>(shared4);
  const int vectors = g.c / VEC;
  const int cv_base = static_cast<int>(blockIdx.y) * slice;
  stage_weights3(w, g.c, cv_base * VEC, slice * VEC, flip, wsm);
  const unsigned strips = static_cast<unsigned>((g.q + QT - 1) / QT);
  const unsigned bands = static_cast<unsigned>((g.p + PT - 1) / PT);
  for (unsigned i = blockIdx.x * kThreads3 + threadIdx.x; i < total; i += gridDim.x * kThreads3) {
    const int cvl = static_cast<int>(i % static_cast<unsigned>(slice));
    unsigned t = i / static_cast<unsigned>(slice);
    const int strip = static_cast<int>(t % strips);
    t /= strips;
    const int band = static_cast<int>(t % bands);
    const std::int64_t n = t / bands;
    if (cv_base + cvl >= vectors) continue;
    const std::int64_t c0 = static_cast<std::int64_t>(cv_base + cvl) * VEC;
    const int oh0 = band * PT, ow0 = strip * QT;
    float acc[PT][QT][VEC];
#pragma unroll
    for (int v = 0; v < VEC; ++v) {
      const float b0 = bias != nullptr ? bias[(c0 + v) * bias_stride] : 0.0f;
#pragma unroll
      for (int row = 0; row < PT; ++row) {
#pragma unroll
        for (int col = 0; col < QT; ++col) acc[row][col][v] = b0;
      }
    }
    const T* base = static_cast<const T*>(in.data) + n * in.s0 + c0 * in.s3;
    const int ih0 = oh0 * S - g.pt, iw0 = ow0 * S - g.pl;
    uint4 raw[IR][IC];
#pragma unroll
    for (int ir = 0; ir < IR; ++ir) {
      const int ih = ih0 + ir;
#pragma unroll
      for (int ic = 0; ic < IC; ++ic) {
        const int iw = iw0 + ic;
        const bool inside = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
        raw[ir][ic] = load_raw<T>(base + (inside ? ih * in.s1 + iw * in.s2 : 0), inside);
      }
    }
#pragma unroll
    for (int ir = 0; ir < IR; ++ir) {
      float xs[IC][VEC];
#pragma unroll
      for (int ic = 0; ic < IC; ++ic) widen<T, VEC>(raw[ir][ic], xs[ic]);
#pragma unroll
      for (int row = 0; row < PT; ++row) {
        const int r = ir - row * S;
        if (r < 0 || r > 2) continue;
#pragma unroll
        for (int s = 0; s < 3; ++s) {
          float wv[VEC];
          read_weights<VEC>(wsm + (r * 3 + s) * slice * VEC + cvl * VEC, wv);
#pragma unroll
          for (int col = 0; col < QT; ++col) {
#pragma unroll
            for (int v = 0; v < VEC; ++v) {
              acc[row][col][v] = fmaf(xs[col * S + s][v], wv[v], acc[row][col][v]);
            }
          }
        }
      }
    }
    T* obase = static_cast<T*>(out.data) + n * out.s0 + c0 * out.s3;
#pragma unroll
    for (int row = 0; row < PT; ++row) {
#pragma unroll
      for (int col = 0; col < QT; ++col) {
        if (oh0 + row < g.p && ow0 + col < g.q) {
          store_vec<T, VEC>(obase + (oh0 + row) * out.s1 + (ow0 + col) * out.s2, acc[row][col]);
        }
      }
    }
  }
}

// The tap of a 3-wide, stride-2 filter that carries dy index `j` (of the tile's j0 - 1 + j) to
// dx index 2a + phase (of the tile's 2 * j0 - pad parity), or -1: even dx indices take taps 0
// and 2 from two dy indices, odd ones tap 1 from one.
__host__ __device__ constexpr int tap_s2(int j, int a, int phase) {
  return phase == 0 ? (j == a + 1 ? 0 : (j == a ? 2 : -1)) : (j == a + 1 ? 1 : -1);
}

constexpr int kDgrad2Rows = 2;  // dy rows per thread: 2 * kDgrad2Rows dx rows
constexpr int kDgrad2Cols = 1;  // dy columns per thread: 2 * kDgrad2Cols dx columns

// Stride-2 dgrad in gather form, each thread a tile of 2 x 2 dx cells whose first cell sits on an
// even (ih + pad): the taps of each dx pixel are then known at compile time. Items (vector of
// the slice, column strip, row band, n), vector fastest.
template <class T, int VEC>
__global__ void __launch_bounds__(kThreads3, kMinBlocks3)
    dgrad_s2_kernel(Plane g, Img dy, Img dx, Weights w, int slice, unsigned total) {
  constexpr int PT = kDgrad2Rows, QT = kDgrad2Cols;
  extern __shared__ float4 shared4[];
  float* wsm = reinterpret_cast<float*>(shared4);
  const int vectors = g.c / VEC;
  const int cv_base = static_cast<int>(blockIdx.y) * slice;
  stage_weights3(w, g.c, cv_base * VEC, slice * VEC, false, wsm);
  const unsigned strips = static_cast<unsigned>((g.w + 1 + 2 * QT - 1) / (2 * QT));
  const unsigned bands = static_cast<unsigned>((g.h + 1 + 2 * PT - 1) / (2 * PT));
  for (unsigned i = blockIdx.x * kThreads3 + threadIdx.x; i < total; i += gridDim.x * kThreads3) {
    const int cvl = static_cast<int>(i % static_cast<unsigned>(slice));
    unsigned t = i / static_cast<unsigned>(slice);
    const int strip = static_cast<int>(t % strips);
    t /= strips;
    const int band = static_cast<int>(t % bands);
    const std::int64_t n = t / bands;
    if (cv_base + cvl >= vectors) continue;
    const std::int64_t c0 = static_cast<std::int64_t>(cv_base + cvl) * VEC;
    // dx rows ih0 .. ih0 + 2 PT - 1 with ih0 + pt even; dy rows o0 - 1 .. o0 + PT - 1.
    const int ih0 = 2 * PT * band - (g.pt & 1), iw0 = 2 * QT * strip - (g.pl & 1);
    const int o0 = (ih0 + g.pt) / 2, q0 = (iw0 + g.pl) / 2;
    float acc[2 * PT][2 * QT][VEC] = {};
    const T* base = static_cast<const T*>(dy.data) + n * dy.s0 + c0 * dy.s3;
    uint4 raw[PT + 1][QT + 1];
#pragma unroll
    for (int j = 0; j <= PT; ++j) {
      const int oh = o0 - 1 + j;
#pragma unroll
      for (int jc = 0; jc <= QT; ++jc) {
        const int ow = q0 - 1 + jc;
        const bool inside = oh >= 0 && oh < g.p && ow >= 0 && ow < g.q;
        raw[j][jc] = load_raw<T>(base + (inside ? oh * dy.s1 + ow * dy.s2 : 0), inside);
      }
    }
#pragma unroll
    for (int j = 0; j <= PT; ++j) {
      float ds[QT + 1][VEC];
#pragma unroll
      for (int jc = 0; jc <= QT; ++jc) widen<T, VEC>(raw[j][jc], ds[jc]);
#pragma unroll
      for (int lr = 0; lr < 2 * PT; ++lr) {
        const int r = tap_s2(j, lr / 2, lr % 2);
        if (r < 0) continue;
#pragma unroll
        for (int lc = 0; lc < 2 * QT; ++lc) {
#pragma unroll
          for (int jc = 0; jc <= QT; ++jc) {
            const int s = tap_s2(jc, lc / 2, lc % 2);
            if (s < 0) continue;
            float wv[VEC];
            read_weights<VEC>(wsm + (r * 3 + s) * slice * VEC + cvl * VEC, wv);
#pragma unroll
            for (int v = 0; v < VEC; ++v) acc[lr][lc][v] = fmaf(ds[jc][v], wv[v], acc[lr][lc][v]);
          }
        }
      }
    }
    T* obase = static_cast<T*>(dx.data) + n * dx.s0 + c0 * dx.s3;
#pragma unroll
    for (int lr = 0; lr < 2 * PT; ++lr) {
#pragma unroll
      for (int lc = 0; lc < 2 * QT; ++lc) {
        const int ih = ih0 + lr, iw = iw0 + lc;
        if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) {
          store_vec<T, VEC>(obase + ih * dx.s1 + iw * dx.s2, acc[lr][lc]);
        }
      }
    }
  }
}

constexpr int kWgrad3Threads = 256;
template <int S>
__host__ __device__ constexpr int wgrad3_cols() {
  return S == 1 ? 4 : 2;
}

// Block (blockIdx.x, blockIdx.y) takes `per_block` channel vectors and split blockIdx.y of the
// output's row segments (n, oh, strip of wgrad3_cols columns); its threads are (lane, vector),
// vector fastest, each lane taking the split's segments lane, lane + lanes, ... in order. For a
// segment a thread reads its dy vectors once and the three x rows under it once, and adds into
// all nine taps (and db). The lanes' sums are added in lane order in shared memory; the block
// writes its split's partials as the generic depthwise wgrad does, for the shared fixed-order
// reduction: the same bits on every run.
// Registers: 16-bit types keep one block per SM (capping them at 128 spilled and ran 2.5x
// slower); float32, with half the packed loads, fits two blocks with a few bytes of spill and
// ran 15% faster so.
template <class T, int VEC, int S>
__global__ void __launch_bounds__(kWgrad3Threads, sizeof(T) == 4 ? 2 : 1)
    wgrad3_kernel(Plane g, std::int64_t batch, Img x, Img dy, bool with_db, float* partials,
                  std::int64_t split_floats, std::int64_t per_split, int per_block) {
  constexpr int QT = wgrad3_cols<S>();
  constexpr int IC = (QT - 1) * S + 3;
  __shared__ float sums[kWgrad3Threads * VEC];
  const int lanes = kWgrad3Threads / per_block;
  const int vector_in_block = static_cast<int>(threadIdx.x) % per_block;
  const int lane = static_cast<int>(threadIdx.x) / per_block;
  const std::int64_t kv = static_cast<std::int64_t>(blockIdx.x) * per_block + vector_in_block;
  const bool active = lane < lanes && kv < g.c / VEC;
  const std::int64_t c0 = kv * VEC;
  const int strips = (g.q + QT - 1) / QT;
  const std::int64_t segments = batch * g.p * strips;
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.y) * per_split;
  const std::int64_t end = segments < begin + per_split ? segments : begin + per_split;
  float acc[9][VEC] = {};
  float db[VEC] = {};
  if (active && begin + lane < end) {
    std::int64_t j = begin + lane;
    int strip = static_cast<int>(j % strips);
    std::int64_t t = j / strips;
    int oh = static_cast<int>(t % g.p);
    std::int64_t n = t / g.p;
    for (; j < end; j += lanes) {
      const int ow0 = strip * QT;
      const T* dyrow = static_cast<const T*>(dy.data) + n * dy.s0 + oh * dy.s1 + c0 * dy.s3;
      const T* xn = static_cast<const T*>(x.data) + n * x.s0 + c0 * x.s3;
      const int iw0 = ow0 * S - g.pl;
      uint4 draw[QT];
      uint4 xraw[3][IC];
#pragma unroll
      for (int col = 0; col < QT; ++col) {
        const bool inside = ow0 + col < g.q;
        draw[col] = load_raw<T>(dyrow + (inside ? (ow0 + col) * dy.s2 : 0), inside);
      }
#pragma unroll
      for (int r = 0; r < 3; ++r) {
        const int ih = oh * S - g.pt + r;
#pragma unroll
        for (int ic = 0; ic < IC; ++ic) {
          const int iw = iw0 + ic;
          const bool inside = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
          xraw[r][ic] = load_raw<T>(xn + (inside ? ih * x.s1 + iw * x.s2 : 0), inside);
        }
      }
      float dv[QT][VEC];
#pragma unroll
      for (int col = 0; col < QT; ++col) widen<T, VEC>(draw[col], dv[col]);
      if (with_db) {
#pragma unroll
        for (int col = 0; col < QT; ++col) {
#pragma unroll
          for (int v = 0; v < VEC; ++v) db[v] += dv[col][v];
        }
      }
#pragma unroll
      for (int r = 0; r < 3; ++r) {
        float xs[IC][VEC];
#pragma unroll
        for (int ic = 0; ic < IC; ++ic) widen<T, VEC>(xraw[r][ic], xs[ic]);
#pragma unroll
        for (int s = 0; s < 3; ++s) {
#pragma unroll
          for (int col = 0; col < QT; ++col) {
#pragma unroll
            for (int v = 0; v < VEC; ++v) {
              acc[r * 3 + s][v] = fmaf(xs[col * S + s][v], dv[col][v], acc[r * 3 + s][v]);
            }
          }
        }
      }
      strip += lanes;
      while (strip >= strips) {
        strip -= strips;
        if (++oh == g.p) {
          oh = 0;
          ++n;
        }
      }
    }
  }
  float* split = partials + static_cast<std::int64_t>(blockIdx.y) * split_floats;
  const std::int64_t block_c0 = static_cast<std::int64_t>(blockIdx.x) * per_block * VEC;
#pragma unroll
  for (int slot = 0; slot <= 9; ++slot) {
    const bool is_db = slot == 9;
    if (is_db && !with_db) continue;  // uniform over the block
    if (lane < lanes) {
#pragma unroll
      for (int v = 0; v < VEC; ++v) {
        sums[(lane * per_block + vector_in_block) * VEC + v] = is_db ? db[v] : acc[slot][v];
      }
    }
    __syncthreads();
    for (int e = static_cast<int>(threadIdx.x); e < per_block * VEC; e += kWgrad3Threads) {
      float sum = 0.0f;
      for (int l = 0; l < lanes; ++l) sum += sums[l * per_block * VEC + e];
      const std::int64_t c = block_c0 + e;
      if (c < g.c) split[is_db ? g.c * 9 + c : c * 9 + slot] = sum;
    }
    __syncthreads();
  }
}

Plane plane_of(const ConvProblem& p) {
  return {static_cast<int>(p.h), static_cast<int>(p.w), static_cast<int>(p.p), static_cast<int>(p.q),
          p.pad_top,             p.pad_left,            static_cast<int>(p.c)};
}

// The 3x3 entry points read whole channel vectors; views whose strides or base break the
// vectors (which rejects() cannot see) go to `fallback`, the generic depthwise kernels. Otherwise
// calls launch(T{}, integral_constant<S>) with the storage type and the stride, 1 or 2.
template <class Launch>
void launch_3x3(const ConvProblem& p, const core::Operands& o, bool accumulate,
                void (*fallback)(const ConvProblem&, const core::Operands&, bool),
                const Launch& launch) {
  bool done = false;
  special::with_storage(p.x_type, [&](auto tag) {
    using T = decltype(tag);
    if (!vectorised<T>(p, o.x, o.y)) return;
    if (p.stride_h == 1) {
      launch(tag, std::integral_constant<int, 1>{});
    } else {
      launch(tag, std::integral_constant<int, 2>{});
    }
    done = true;
  });
  if (!done) return fallback(p, o, accumulate);
  finish_launches();
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
  const Bias bias = bias_of(problem, o);
  launch_generic(problem, o, [&](auto tag, auto vec_tag) {
    using T = decltype(tag);
    constexpr int VEC = decltype(vec_tag)::value;
    const std::int64_t vectors = problem.k / VEC;
    const Slices slices = slices_for(vectors, problem.r * problem.s, VEC);
    const std::int64_t tiles = (problem.p + kRows - 1) / kRows;
    const std::int64_t total = problem.n * tiles * problem.q * slices.slice;
    fprop_kernel<T, VEC><<<slices.grid(total), kThreads, slices.smem, current_stream()>>>(
        shape, img(o.x), img(o.y), weights(o.w), bias.data, bias.stride, slices.slice,
        static_cast<unsigned>(total));
  });
}

void depthwise_dgrad(const ConvProblem& problem, const core::Operands& o, bool /*accumulate*/) {
  const Shape shape = shape_of(problem);
  launch_generic(problem, o, [&](auto tag, auto vec_tag) {
    using T = decltype(tag);
    constexpr int VEC = decltype(vec_tag)::value;
    const std::int64_t vectors = problem.c / VEC;
    const Slices slices = slices_for(vectors, problem.r * problem.s, VEC * (problem.k / problem.c));
    const std::int64_t columns = (problem.w + problem.stride_w - 1) / problem.stride_w;
    const std::int64_t rows = (problem.h + problem.stride_h - 1) / problem.stride_h;
    const std::int64_t tiles = (rows + kRows - 1) / kRows;
    const std::int64_t total =
        problem.n * problem.stride_h * tiles * problem.stride_w * columns * slices.slice;
    dgrad_kernel<T, VEC><<<slices.grid(total), kThreads, slices.smem, current_stream()>>>(
        shape, img(o.y), img(o.x), weights(o.w), slices.slice, static_cast<unsigned>(total));
  });
}

void depthwise_wgrad(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  const Shape shape = shape_of(problem);
  const bool bias = !o.b.empty();
  const std::int64_t taps = problem.r * problem.s;
  const std::int64_t split_floats = problem.k * taps + problem.k;
  const std::int64_t npq = problem.n * problem.p * problem.q;
  launch_generic(problem, o, [&](auto tag, auto vec_tag) {
    using T = decltype(tag);
    constexpr int VEC = decltype(vec_tag)::value;
    const WgradGrid g = wgrad_grid(problem.k / VEC, kWgradThreads, npq, 3);
    float* partials = special::workspace(static_cast<std::size_t>(g.splits * split_floats));
    for (std::int64_t tap0 = 0; tap0 < taps; tap0 += kTaps) {
      wgrad_kernel<T, VEC><<<dim3(static_cast<unsigned>(g.blocks_x), static_cast<unsigned>(g.splits)),
                             kWgradThreads, 0, current_stream()>>>(
          shape, img(o.x), img(o.y), static_cast<int>(tap0), bias && tap0 == 0, partials,
          split_floats, g.per_split, g.per_block);
    }
    special::reduce_wgrad_partials(problem, o, partials, g.splits, split_floats, accumulate);
  });
}

}  // namespace convgrad::cuda

namespace convgrad::cuda {

std::optional<std::string> depthwise3x3_rejects(const ConvProblem& problem) {
  if (auto reason = depthwise_rejects(problem)) return reason;
  if (problem.k != problem.c) {
    return "channel multiplier " + std::to_string(problem.k / problem.c) + ": the 3x3 kernels take 1";
  }
  if (problem.r != 3 || problem.s != 3) {
    return "filter " + std::to_string(problem.r) + "x" + std::to_string(problem.s) + ": not 3x3";
  }
  if (problem.dilation_h != 1 || problem.dilation_w != 1) {
    return std::string("dilated filter: the 3x3 kernels take dilation 1");
  }
  if (problem.stride_h != problem.stride_w || problem.stride_h > 2) {
    return "strides " + std::to_string(problem.stride_h) + "x" + std::to_string(problem.stride_w) +
           ": the 3x3 kernels take 1x1 or 2x2";
  }
  const int vec = special::vector_width(problem.x_type);
  if (problem.c % vec != 0) {
    return "c = " + std::to_string(problem.c) + " is not a whole number of " +
           std::to_string(vec) + "-channel vectors";
  }
  return std::nullopt;
}

void depthwise3x3_fprop(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  const Bias bias = bias_of(problem, o);
  launch_3x3(problem, o, accumulate, depthwise_fprop, [&](auto tag, auto stride_tag) {
    using T = decltype(tag);
    constexpr int VEC = 16 / sizeof(T);
    constexpr int S = decltype(stride_tag)::value;
    const Slices slices = slices_for(problem.c / VEC, 9, VEC);
    const std::int64_t strips = (problem.q + Tile3<S>::cols - 1) / Tile3<S>::cols;
    const std::int64_t bands = (problem.p + Tile3<S>::rows - 1) / Tile3<S>::rows;
    const std::int64_t total = problem.n * bands * strips * slices.slice;
    stencil3_kernel<T, VEC, S><<<slices.grid(total, kThreads3), kThreads3, slices.smem,
                                 current_stream()>>>(plane_of(problem), img(o.x), img(o.y),
                                                     weights(o.w), false, bias.data, bias.stride,
                                                     slices.slice, static_cast<unsigned>(total));
  });
}

void depthwise3x3_dgrad(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  launch_3x3(problem, o, accumulate, depthwise_dgrad, [&](auto tag, auto stride_tag) {
    using T = decltype(tag);
    constexpr int VEC = 16 / sizeof(T);
    const Slices slices = slices_for(problem.c / VEC, 9, VEC);
    if constexpr (decltype(stride_tag)::value == 1) {
      // dx = dy correlated with the mirrored filter, padded by 2 - pad: the fprop stencil with
      // the planes swapped.
      Plane g = plane_of(problem);
      g = {g.p, g.q, g.h, g.w, 2 - g.pt, 2 - g.pl, g.c};
      constexpr int S = 1;
      const std::int64_t strips = (problem.w + Tile3<S>::cols - 1) / Tile3<S>::cols;
      const std::int64_t bands = (problem.h + Tile3<S>::rows - 1) / Tile3<S>::rows;
      const std::int64_t total = problem.n * bands * strips * slices.slice;
      stencil3_kernel<T, VEC, S><<<slices.grid(total, kThreads3), kThreads3, slices.smem,
                                   current_stream()>>>(g, img(o.y), img(o.x), weights(o.w), true,
                                                       nullptr, 0, slices.slice,
                                                       static_cast<unsigned>(total));
    } else {
      const std::int64_t strips = (problem.w + 2 * kDgrad2Cols) / (2 * kDgrad2Cols);
      const std::int64_t bands = (problem.h + 2 * kDgrad2Rows) / (2 * kDgrad2Rows);
      const std::int64_t total = problem.n * bands * strips * slices.slice;
      dgrad_s2_kernel<T, VEC><<<slices.grid(total, kThreads3), kThreads3, slices.smem,
                                current_stream()>>>(plane_of(problem), img(o.y), img(o.x),
                                                    weights(o.w), slices.slice,
                                                    static_cast<unsigned>(total));
    }
  });
}

void depthwise3x3_wgrad(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  const bool bias = !o.b.empty();
  const std::int64_t split_floats = problem.c * 9 + problem.c;
  launch_3x3(problem, o, accumulate, depthwise_wgrad, [&](auto tag, auto stride_tag) {
    using T = decltype(tag);
    constexpr int VEC = 16 / sizeof(T);
    constexpr int S = decltype(stride_tag)::value;
    const std::int64_t strips = (problem.q + wgrad3_cols<S>() - 1) / wgrad3_cols<S>();
    const WgradGrid g = wgrad_grid(problem.c / VEC, kWgrad3Threads, problem.n * problem.p * strips, 2);
    float* partials = special::workspace(static_cast<std::size_t>(g.splits * split_floats));
    wgrad3_kernel<T, VEC, S>
        <<<dim3(static_cast<unsigned>(g.blocks_x), static_cast<unsigned>(g.splits)), kWgrad3Threads,
           0, current_stream()>>>(plane_of(problem), problem.n, img(o.x), img(o.y), bias, partials,
                                  split_floats, g.per_split, g.per_block);
    special::reduce_wgrad_partials(problem, o, partials, g.splits, split_floats, accumulate);
  });
}

}  // namespace convgrad::cuda
