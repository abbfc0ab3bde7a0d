// SPDX-License-Identifier: Apache-2.0
// Grouped convolutions with few channels per group, and convolutions with few input channels,
// on CUDA cores: a direct gather in which each block owns one group and one slice of OMAX output
// channels, holds that slice's weights in shared memory as [tap][in channel][OMAX] fp32, and each
// thread accumulates PIX output pixels x OMAX channels in registers. All threads of a block read
// the same weight at the same time (a shared-memory broadcast, one 16-byte load per four FMAs per
// pixel), and each input value loaded is used OMAX times. dgrad is the same loop with the roles of
// x and y swapped; its PIX pixels share one phase of the stride, so that a tap is valid or
// invalid for all of them together, and no thread spends FMAs on taps that do not land.
// wgrad of small groups (tile_wgrad) accumulates 8 x 8 outer products per tap in registers over a
// split of N*P*Q and reduces in a fixed order (no atomics).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda/check.hpp"
#include "cuda/grouped.hpp"
#include "cuda/special_common.cuh"
#include "cuda/stream.hpp"

namespace convgrad::cuda {
namespace {

using special::load_any;
using special::load_vec;

// Spatial sizes and coordinates are 32-bit (gather_rejects refuses sides of 2^30 and more): 64-bit
// division in the tap loops cost more than the arithmetic. Offsets into tensors stay 64-bit.
struct Shape {
  std::int64_t n;
  int oh, ow, ih, iw;  // the written image (y or dx) and the read one (x or dy)
  int r, s, sh, sw, dh, dw, pt, pl;
  int ig, og, chunks;  // channels per group read and written; OMAX slices per group
  bool dgrad;
  bool batch_fastest;
};

struct Img {
  void* data;
  std::int64_t s0, s1, s2, s3;
};
Img img(const TensorView& v) {
  return {v.data, v.strides[0], v.strides[1], v.strides[2], v.strides[3]};
}

struct Weights {
  const void* data;
  DataType type;
  std::int64_t s0, s1, s2, s3;
};

constexpr int kThreads = 256;
// Shared memory a block may take for its weights; above it the problem goes to the next kernel.
constexpr std::int64_t kMaxWeightBytes = 160 * 1024;

// Items are (column chunk, n, phase, output row), column chunk fastest, so that a warp reads
// neighbouring pixels; for strided dgrad n goes first instead: the lanes of a warp then share the
// row and the phase, and so which taps land (no divergence) whenever N >= 32. Two blocks per SM
// at least (launch bounds), so that one block's loads wait while the other computes.
template <class T, int VEC, int OMAX, int PIX>
__global__ void __launch_bounds__(kThreads, 2)
    gather_kernel(Shape p, Img in, Img out, Weights w, const float* bias, std::int64_t bias_stride,
                  unsigned items) {
  extern __shared__ float4 shared_weights[];
  float* wsm = reinterpret_cast<float*>(shared_weights);
  const int g = static_cast<int>(blockIdx.y) / p.chunks;
  const int oc0 = static_cast<int>(blockIdx.y) % p.chunks * OMAX;
  const int taps = p.r * p.s;
  for (int e = static_cast<int>(threadIdx.x); e < taps * p.ig * OMAX; e += kThreads) {
    const int oc = e % OMAX;
    const int ic = e / OMAX % p.ig;
    const int tap = e / OMAX / p.ig;
    const int r = tap / p.s;
    const int s = tap % p.s;
    float v = 0.0f;
    if (oc0 + oc < p.og) {
      // fprop reads w[g*og + oc][r][s][ic]; dgrad reads w[g*ig + ic][r][s][oc].
      const std::int64_t k = p.dgrad ? std::int64_t{g} * p.ig + ic : std::int64_t{g} * p.og + oc0 + oc;
      const std::int64_t c = p.dgrad ? oc0 + oc : ic;
      v = load_any(w.data, w.type, k * w.s0 + r * w.s1 + s * w.s2 + c * w.s3);
    }
    wsm[e] = v;
  }
  __syncthreads();

  const int step = p.dgrad ? p.sw : 1;  // dgrad: the PIX columns of a thread share one phase
  const int per_phase = (p.ow + step - 1) / step;
  const int column_chunks = (per_phase + PIX - 1) / PIX;
  const T* in_group = static_cast<const T*>(in.data) + std::int64_t{g} * p.ig * in.s3;
  T* out_group = static_cast<T*>(out.data) + (std::int64_t{g} * p.og + oc0) * out.s3;
  // 32-bit item arithmetic: gather_rejects keeps the item count below 2^31.
  for (unsigned item = blockIdx.x * kThreads + threadIdx.x; item < items;
       item += gridDim.x * kThreads) {
    unsigned t = item;
    std::int64_t n;
    int cw;
    if (p.batch_fastest) {
      n = t % static_cast<unsigned>(p.n);
      t /= static_cast<unsigned>(p.n);
      cw = static_cast<int>(t % static_cast<unsigned>(column_chunks));
      t /= static_cast<unsigned>(column_chunks);
    } else {
      cw = static_cast<int>(t % static_cast<unsigned>(column_chunks));
      t /= static_cast<unsigned>(column_chunks);
      n = t % static_cast<unsigned>(p.n);
      t /= static_cast<unsigned>(p.n);
    }
    const int phase = static_cast<int>(t % static_cast<unsigned>(step));
    const int oh = static_cast<int>(t / static_cast<unsigned>(step));
    const int ow0 = phase + cw * PIX * step;  // column j is ow0 + j * step
    const T* in_n = in_group + n * in.s0;
    float acc[PIX][OMAX] = {};
    for (int r = 0; r < p.r; ++r) {
      int ih;
      if (p.dgrad) {
        const int th = oh + p.pt - r * p.dh;
        if (th < 0) continue;
        ih = th / p.sh;
        if (ih * p.sh != th) continue;
      } else {
        ih = oh * p.sh - p.pt + r * p.dh;
      }
      if (ih < 0 || ih >= p.ih) continue;
      for (int s = 0; s < p.s; ++s) {
        // Input column of output column j: first + j * inc.
        int first, inc;
        if (p.dgrad) {
          const int tw = ow0 + p.pl - s * p.dw;  // the same phase for every j
          const int q = tw >= 0 ? tw / p.sw : -((-tw + p.sw - 1) / p.sw);
          if (q * p.sw != tw) continue;
          first = q;
          inc = 1;
        } else {
          first = ow0 * p.sw - p.pl + s * p.dw;
          inc = p.sw;
        }
        std::int64_t offset[PIX];
        bool any = false;
#pragma unroll
        for (int j = 0; j < PIX; ++j) {
          const int iw = first + j * inc;
          const bool ok = ow0 + j * step < p.ow && iw >= 0 && iw < p.iw;
          offset[j] = ok ? ih * in.s1 + iw * in.s2 : -1;
          any |= ok;
        }
        if (!any) continue;
        const float* wt = wsm + (r * p.s + s) * p.ig * OMAX;
        for (int ic = 0; ic < p.ig; ic += VEC) {
          float xv[PIX][VEC];
#pragma unroll
          for (int j = 0; j < PIX; ++j) {
            if (offset[j] >= 0) {
              load_vec<T, VEC>(in_n + offset[j] + ic * in.s3, xv[j]);
            } else {
#pragma unroll
              for (int v = 0; v < VEC; ++v) xv[j][v] = 0.0f;
            }
          }
#pragma unroll
          for (int v = 0; v < VEC; ++v) {
            const float4* row = reinterpret_cast<const float4*>(wt + (ic + v) * OMAX);
#pragma unroll
            for (int q = 0; q < OMAX / 4; ++q) {
              const float4 wv = row[q];
#pragma unroll
              for (int j = 0; j < PIX; ++j) {
                acc[j][4 * q + 0] = fmaf(xv[j][v], wv.x, acc[j][4 * q + 0]);
                acc[j][4 * q + 1] = fmaf(xv[j][v], wv.y, acc[j][4 * q + 1]);
                acc[j][4 * q + 2] = fmaf(xv[j][v], wv.z, acc[j][4 * q + 2]);
                acc[j][4 * q + 3] = fmaf(xv[j][v], wv.w, acc[j][4 * q + 3]);
              }
            }
          }
        }
      }
    }
    T* out_row = out_group + n * out.s0 + oh * out.s1;
#pragma unroll
    for (int j = 0; j < PIX; ++j) {
      const int ow = ow0 + j * step;
      if (ow >= p.ow) continue;
#pragma unroll
      for (int oc = 0; oc < OMAX; ++oc) {
        if (oc0 + oc >= p.og) continue;
        const float b = bias != nullptr
                            ? bias[(std::int64_t{g} * p.og + oc0 + oc) * bias_stride]
                            : 0.0f;
        out_row[ow * out.s2 + oc * out.s3] = special::from_float<T>(acc[j][oc] + b);
      }
    }
  }
}

// wgrad of small groups: block x is one unit (group, 8 filters, 8 channels, one tap), block y one
// split of N*P*Q; its 256 lanes stride over the split's positions, each accumulating the 8 x 8
// outer products dy[k] * x[c] of its positions in registers (two 16-byte loads per 64 FMAs). The
// lanes are summed by a fixed shuffle tree and then over the warps in order; the split's partials
// go to the shared fixed-order reduction. Units of tap 0 and channel chunk 0 also sum db.
constexpr int kTile = 8;
constexpr int kWgradThreads = 256;
constexpr int kWarps = kWgradThreads / 32;

struct WgradShape {
  std::int64_t n, k;
  int h, w, p, q;
  int r, s, sh, sw, dh, dw, pt, pl;
  int cg, kg, k_chunks, c_chunks;
};

template <class T, bool VECTOR>
__device__ __forceinline__ void load_tile(const T* at, std::int64_t stride, int count,
                                          float (&out)[kTile]) {
  if constexpr (VECTOR) {
    constexpr int vec = 16 / sizeof(T);
#pragma unroll
    for (int i = 0; i < kTile / vec; ++i) {
      float part[vec];
      load_vec<T, vec>(at + i * vec, part);
#pragma unroll
      for (int v = 0; v < vec; ++v) out[i * vec + v] = part[v];
    }
  } else {
#pragma unroll
    for (int i = 0; i < kTile; ++i) out[i] = i < count ? special::to_float(at[i * stride]) : 0.0f;
  }
}

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

template <class T, bool VECTOR_X, bool VECTOR_DY>
__global__ void __launch_bounds__(kWgradThreads, 2)
    tile_wgrad_kernel(WgradShape p, Img x, Img dy, float* partials, std::int64_t split_floats,
                      std::int64_t per_split, bool with_db) {
  __shared__ float sums[kWarps][kTile * kTile + kTile];
  const int taps = p.r * p.s;
  int unit = static_cast<int>(blockIdx.x);
  const int tap = unit % taps;
  unit /= taps;
  const int cc = unit % p.c_chunks;
  unit /= p.c_chunks;
  const int kc = unit % p.k_chunks;
  const int g = unit / p.k_chunks;
  const int r_off = tap / p.s * p.dh - p.pt;
  const int s_off = tap % p.s * p.dw - p.pl;
  const int kn = min(kTile, p.kg - kc * kTile);
  const int cn = min(kTile, p.cg - cc * kTile);
  const std::int64_t k0 = static_cast<std::int64_t>(g) * p.kg + kc * kTile;
  const std::int64_t c0 = static_cast<std::int64_t>(g) * p.cg + cc * kTile;
  const bool db_unit = with_db && tap == 0 && cc == 0;
  const T* xp = static_cast<const T*>(x.data) + c0 * x.s3;
  const T* dyp = static_cast<const T*>(dy.data) + k0 * dy.s3;

  const std::int64_t npq = p.n * p.p * p.q;
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.y) * per_split;
  const std::int64_t end = npq < begin + per_split ? npq : begin + per_split;
  float acc[kTile][kTile] = {};
  float db[kTile] = {};
  std::int64_t j = begin + threadIdx.x;
  if (j < end) {
    int ow = static_cast<int>(j % p.q);
    std::int64_t t = j / p.q;
    int oh = static_cast<int>(t % p.p);
    std::int64_t n = t / p.p;
    for (; j < end; j += kWgradThreads) {
      const int ih = oh * p.sh + r_off;
      const int iw = ow * p.sw + s_off;
      const bool inside = ih >= 0 && ih < p.h && iw >= 0 && iw < p.w;
      if (inside || db_unit) {
        float dv[kTile];
        load_tile<T, VECTOR_DY>(dyp + n * dy.s0 + oh * dy.s1 + ow * dy.s2, dy.s3, kn, dv);
        if (db_unit) {
#pragma unroll
          for (int a = 0; a < kTile; ++a) db[a] += dv[a];
        }
        if (inside) {
          float xv[kTile];
          load_tile<T, VECTOR_X>(xp + n * x.s0 + ih * x.s1 + iw * x.s2, x.s3, cn, xv);
#pragma unroll
          for (int a = 0; a < kTile; ++a) {
#pragma unroll
            for (int b = 0; b < kTile; ++b) acc[a][b] = fmaf(dv[a], xv[b], acc[a][b]);
          }
        }
      }
      ow += kWgradThreads;
      while (ow >= p.q) {
        ow -= p.q;
        if (++oh == p.p) {
          oh = 0;
          ++n;
        }
      }
    }
  }
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
#pragma unroll
  for (int a = 0; a < kTile; ++a) {
#pragma unroll
    for (int b = 0; b < kTile; ++b) {
      const float v = warp_sum(acc[a][b]);
      if (lane == 0) sums[warp][a * kTile + b] = v;
    }
    if (db_unit) {
      const float v = warp_sum(db[a]);
      if (lane == 0) sums[warp][kTile * kTile + a] = v;
    }
  }
  __syncthreads();
  float* out = partials + static_cast<std::int64_t>(blockIdx.y) * split_floats;
  const int e = static_cast<int>(threadIdx.x);
  if (e < kTile * kTile + (db_unit ? kTile : 0)) {
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w) sum += sums[w][e];
    if (e < kTile * kTile) {
      const int a = e / kTile, b = e % kTile;
      if (a < kn && b < cn) {
        out[((k0 + a) * taps + tap) * p.cg + cc * kTile + b] = sum;
      }
    } else if (e - kTile * kTile < kn) {
      out[p.k * taps * p.cg + k0 + (e - kTile * kTile)] = sum;
    }
  }
}

// Few output channels per group (dgrad of C <= 4): a narrow slice and more pixels per thread.
constexpr int kNarrow = 4, kNarrowPixels = 8;
constexpr int kWide = 8, kWidePixels = 4;

int slice_width(std::int64_t og) { return og <= kNarrow ? kNarrow : kWide; }

Shape shape_of(const ConvProblem& p, bool dgrad) {
  Shape s{};
  s.n = p.n;
  s.oh = static_cast<int>(dgrad ? p.h : p.p);
  s.ow = static_cast<int>(dgrad ? p.w : p.q);
  s.ih = static_cast<int>(dgrad ? p.p : p.h);
  s.iw = static_cast<int>(dgrad ? p.q : p.w);
  s.r = static_cast<int>(p.r), s.s = static_cast<int>(p.s);
  s.sh = p.stride_h, s.sw = p.stride_w, s.dh = p.dilation_h, s.dw = p.dilation_w;
  s.pt = p.pad_top, s.pl = p.pad_left;
  s.ig = static_cast<int>(dgrad ? p.k_per_group() : p.c_per_group());
  s.og = static_cast<int>(dgrad ? p.c_per_group() : p.k_per_group());
  const int width = slice_width(s.og);
  s.chunks = (s.og + width - 1) / width;
  s.dgrad = dgrad;
  s.batch_fastest = dgrad && p.stride_w > 1;
  return s;
}

std::int64_t weight_bytes(const ConvProblem& p, bool dgrad) {
  const std::int64_t ig = dgrad ? p.k_per_group() : p.c_per_group();
  const std::int64_t og = dgrad ? p.c_per_group() : p.k_per_group();
  return p.r * p.s * ig * slice_width(og) * static_cast<std::int64_t>(sizeof(float));
}

template <class T, int VEC, int OMAX, int PIX>
void launch(const Shape& shape, const TensorView& in, const TensorView& out, const TensorView& w,
            const float* bias, std::int64_t bias_stride, std::int64_t groups,
            std::int64_t smem_bytes) {
  auto* kernel = gather_kernel<T, VEC, OMAX, PIX>;
  // Per call rather than once: the attribute belongs to the current device.
  if (smem_bytes > 48 * 1024) {
    CONVGRAD_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem_bytes)));
  }
  const int step = shape.dgrad ? shape.sw : 1;
  const std::int64_t per_phase = (std::int64_t{shape.ow} + step - 1) / step;
  const std::int64_t items = shape.n * shape.oh * step * ((per_phase + PIX - 1) / PIX);
  const std::int64_t slices = groups * shape.chunks;
  // A few blocks per SM in all: every block restages its slice of weights, so no more of them.
  const std::int64_t want = std::max<std::int64_t>(
      1, 8 * static_cast<std::int64_t>(special::multiprocessors()) / slices);
  const std::int64_t blocks_x = std::clamp<std::int64_t>((items + kThreads - 1) / kThreads, 1, want);
  const Weights weights{w.data, w.type, w.strides[0], w.strides[1], w.strides[2], w.strides[3]};
  kernel<<<dim3(static_cast<unsigned>(blocks_x), static_cast<unsigned>(slices)), kThreads,
           static_cast<std::size_t>(smem_bytes), current_stream()>>>(
      shape, img(in), img(out), weights, bias, bias_stride, static_cast<unsigned>(items));
}

}  // namespace

std::optional<std::string> gather_rejects(const ConvProblem& problem, Direction direction) {
  const bool dgrad = direction == Direction::dgrad;
  constexpr std::int64_t side = std::int64_t{1} << 30;
  if (problem.h >= side || problem.w >= side || problem.p >= side || problem.q >= side) {
    return std::string("an image side reaches 2^30 (32-bit coordinates)");
  }
  const std::int64_t bytes = weight_bytes(problem, dgrad);
  // Work items (one pixel at worst) are counted in 32 bits.
  const std::int64_t items = problem.n * std::max(problem.h, problem.p) *
                             (std::max(problem.w, problem.q) + problem.stride_w);
  if (items >= std::int64_t{1} << 31) {
    return std::to_string(items) + " work items: above the 2^31 this kernel counts";
  }
  if (bytes > kMaxWeightBytes) {
    return "a group's weight slice takes " + std::to_string(bytes) +
           " bytes of shared memory, more than the " + std::to_string(kMaxWeightBytes) +
           " this kernel uses";
  }
  const std::int64_t og = dgrad ? problem.c_per_group() : problem.k_per_group();
  const std::int64_t slices = problem.groups * ((og + slice_width(og) - 1) / slice_width(og));
  if (slices > 65535) {
    return "groups x output slices = " + std::to_string(slices) + " exceeds the grid's 65535";
  }
  return special::reject_mixed_image_types(problem);
}

void gather_run(const ConvProblem& problem, const core::Operands& o, Direction direction) {
  const bool dgrad = direction == Direction::dgrad;
  const Shape shape = shape_of(problem, dgrad);
  const TensorView& in = dgrad ? o.y : o.x;
  const TensorView& out = dgrad ? o.x : o.y;
  const bool bias = !dgrad && problem.with_bias && !o.b.empty();
  const float* bias_data = bias ? static_cast<const float*>(o.b.data) : nullptr;
  const std::int64_t bias_stride = bias ? o.b.strides[0] : 0;
  const std::int64_t smem = weight_bytes(problem, dgrad);
  special::with_storage(problem.x_type, [&](auto tag) {
    using T = decltype(tag);
    constexpr int vec = 16 / sizeof(T);
    const bool vector = shape.ig % vec == 0 && special::vector_ok(in, vec);
    const bool narrow = slice_width(shape.og) == kNarrow;
    if (vector && narrow) {
      launch<T, vec, kNarrow, kNarrowPixels>(shape, in, out, o.w, bias_data, bias_stride,
                                             problem.groups, smem);
    } else if (vector) {
      launch<T, vec, kWide, kWidePixels>(shape, in, out, o.w, bias_data, bias_stride,
                                         problem.groups, smem);
    } else if (narrow) {
      launch<T, 1, kNarrow, kNarrowPixels>(shape, in, out, o.w, bias_data, bias_stride,
                                           problem.groups, smem);
    } else {
      launch<T, 1, kWide, kWidePixels>(shape, in, out, o.w, bias_data, bias_stride,
                                       problem.groups, smem);
    }
  });
  finish_launches();
}

std::optional<std::string> tile_wgrad_rejects(const ConvProblem& problem) {
  constexpr std::int64_t side = std::int64_t{1} << 30;
  if (problem.h >= side || problem.w >= side || problem.p >= side || problem.q >= side) {
    return std::string("an image side reaches 2^30 (32-bit coordinates)");
  }
  const std::int64_t units = problem.groups * ((problem.k_per_group() + kTile - 1) / kTile) *
                             ((problem.c_per_group() + kTile - 1) / kTile) * problem.r * problem.s;
  if (units >= std::int64_t{1} << 31) {
    return "groups x filter chunks x channel chunks x taps = " + std::to_string(units) +
           " blocks: above the grid's 2^31 - 1";
  }
  return special::reject_mixed_image_types(problem);
}

void tile_wgrad(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  WgradShape shape{};
  shape.n = problem.n, shape.k = problem.k;
  shape.h = static_cast<int>(problem.h), shape.w = static_cast<int>(problem.w);
  shape.p = static_cast<int>(problem.p), shape.q = static_cast<int>(problem.q);
  shape.r = static_cast<int>(problem.r), shape.s = static_cast<int>(problem.s);
  shape.sh = problem.stride_h, shape.sw = problem.stride_w;
  shape.dh = problem.dilation_h, shape.dw = problem.dilation_w;
  shape.pt = problem.pad_top, shape.pl = problem.pad_left;
  shape.cg = static_cast<int>(problem.c_per_group());
  shape.kg = static_cast<int>(problem.k_per_group());
  shape.k_chunks = (shape.kg + kTile - 1) / kTile;
  shape.c_chunks = (shape.cg + kTile - 1) / kTile;
  const bool bias = !o.b.empty();
  const std::int64_t units =
      problem.groups * shape.k_chunks * shape.c_chunks * problem.r * problem.s;
  const std::int64_t split_floats = problem.k * problem.r * problem.s * shape.cg + problem.k;
  const std::int64_t npq = problem.n * problem.p * problem.q;
  // About four blocks per SM in all, each lane with at least 4 positions.
  const std::int64_t want =
      std::max<std::int64_t>(1, 4 * static_cast<std::int64_t>(special::multiprocessors()) / units);
  const std::int64_t most = std::max<std::int64_t>(1, std::min<std::int64_t>(npq / (4 * kWgradThreads), 65535));
  std::int64_t splits = std::clamp<std::int64_t>(want, 1, most);
  const std::int64_t per_split = (npq + splits - 1) / splits;
  splits = (npq + per_split - 1) / per_split;
  float* partials = special::workspace(static_cast<std::size_t>(splits * split_floats));
  const dim3 grid(static_cast<unsigned>(units), static_cast<unsigned>(splits));
  special::with_storage(problem.x_type, [&](auto tag) {
    using T = decltype(tag);
    constexpr int vec = 16 / sizeof(T);
    const bool vector_x = shape.cg % kTile == 0 && special::vector_ok(o.x, vec);
    const bool vector_dy = shape.kg % kTile == 0 && special::vector_ok(o.y, vec);
    const auto launch = [&](auto vx, auto vdy) {
      tile_wgrad_kernel<T, decltype(vx)::value, decltype(vdy)::value>
          <<<grid, kWgradThreads, 0, current_stream()>>>(shape, img(o.x), img(o.y), partials,
                                                         split_floats, per_split, bias);
    };
    using yes = std::true_type;
    using no = std::false_type;
    if (vector_x && vector_dy) {
      launch(yes{}, yes{});
    } else if (vector_dy) {
      launch(no{}, yes{});
    } else if (vector_x) {
      launch(yes{}, no{});
    } else {
      launch(no{}, no{});
    }
  });
  special::reduce_wgrad_partials(problem, o, partials, splits, split_floats, accumulate);
  finish_launches();
}

std::optional<std::string> grouped_rejects_wgrad(const ConvProblem& problem) {
  if (problem.groups == 1) return std::string("not grouped: groups = 1");
  if (problem.groups == problem.c) return std::string("depthwise (groups = c): the depthwise kernels take it");
  return tile_wgrad_rejects(problem);
}

void grouped_wgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate) {
  tile_wgrad(problem, operands, accumulate);
}

std::optional<std::string> grouped_rejects_fprop(const ConvProblem& problem) {
  if (problem.groups == 1) return std::string("not grouped: groups = 1");
  if (problem.groups == problem.c) return std::string("depthwise (groups = c): the depthwise kernels take it");
  return gather_rejects(problem, Direction::fprop);
}

std::optional<std::string> grouped_rejects_dgrad(const ConvProblem& problem) {
  if (problem.groups == 1) return std::string("not grouped: groups = 1");
  if (problem.groups == problem.c) return std::string("depthwise (groups = c): the depthwise kernels take it");
  return gather_rejects(problem, Direction::dgrad);
}

void grouped_fprop(const ConvProblem& problem, const core::Operands& operands, bool) {
  gather_run(problem, operands, Direction::fprop);
}

void grouped_dgrad(const ConvProblem& problem, const core::Operands& operands, bool) {
  gather_run(problem, operands, Direction::dgrad);
}

}  // namespace convgrad::cuda
