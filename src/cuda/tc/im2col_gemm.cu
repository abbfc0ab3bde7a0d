// SPDX-License-Identifier: Apache-2.0
// Few-channel convolutions as explicit GEMMs over columns: column j of an output pixel is tap
// (r, s) and channel c of its receptive field, j = (r * S + s) * C + c (the order of w[k][r][s][c],
// so a packed filter is already the GEMM's [k][j] matrix), padded with zeros to J columns (16-byte
// rows). The GEMMs are 1x1 fprops or the split 1x1 wgrad of the dense kernels (tensor_core.cu):
// - fprop: im2col(x) [n][p][q][J] times w [k][J] -> y, bias in the epilogue.
// - dgrad: dy [n][p][q][k] times w^T [J][k] -> float32 columns, column-major (a persistent GEMM,
//   gemm_ops.hpp: with k = 64 the reduction is a single tile), then col2im sums each dx element's
//   columns in a fixed order and rounds once, reading each column along the pixels.
// - wgrad: the split wgrad of im2col(x) and dy -> dw's [k][J] matrix (J's padding not written).
// With c = 3 a direct kernel reads each x element R*S times through 3-wide rows; here the tensor
// cores see a reduction of J and the copies are plain streams. fprop and dgrad go by chunks of
// images, so that the columns of a chunk are still in L2 when the next kernel reads them.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "cuda/check.hpp"
#include "cuda/direct.hpp"
#include "cuda/special_common.cuh"
#include "cuda/stream.hpp"
#include "cuda/tc/gemm_ops.hpp"
#include "cuda/tc/im2col_gemm.hpp"

namespace convgrad::cuda::tc {
namespace {

// The columns of one chunk of images (fprop, dgrad) stay within this; 32 MiB is under the H100's
// 50 MiB L2.
constexpr std::int64_t kChunkBytes = std::int64_t{32} << 20;
// wgrad's columns cover the whole batch (its split runs over all images at once), fprop's and
// dgrad's at least one image; above this the problem goes to the next kernel.
constexpr std::int64_t kMaxColumnBytes = std::int64_t{2} << 30;
// The per-column tap table of im2col lives in shared memory: 3 ints per column.
constexpr std::int64_t kMaxColumns = 4096;
constexpr int kThreads = 256;

std::string str(std::int64_t v) { return std::to_string(v); }
std::int64_t round_up(std::int64_t v, std::int64_t to) { return (v + to - 1) / to * to; }
std::int64_t element_bytes(Kind kind) { return static_cast<std::int64_t>(size_of(storage(kind))); }

struct Plan {
  std::int64_t taps_c;  // C * R * S
  std::int64_t width;   // J
  std::int64_t images;  // per chunk
};

Plan plan_of(const ConvProblem& p, Kind kind, Direction direction) {
  Plan plan{};
  plan.taps_c = p.c * p.r * p.s;
  plan.width = round_up(plan.taps_c, alignment(kind));
  const std::int64_t bytes = direction == Direction::dgrad ? 4 : element_bytes(kind);
  const std::int64_t per_image = std::max<std::int64_t>(1, p.p * p.q * plan.width * bytes);
  plan.images = direction == Direction::wgrad
                    ? p.n
                    : std::clamp<std::int64_t>(kChunkBytes / per_image, 1, std::max<std::int64_t>(p.n, 1));
  return plan;
}

// The 1x1 convolution of a GEMM over `images` images of p x q pixels: `channels` reduced, `outputs`
// produced.
ConvProblem gemm_problem(const ConvProblem& p, Kind kind, std::int64_t images,
                         std::int64_t channels, std::int64_t outputs) {
  ConvProblem g;
  g.n = images;
  g.h = g.p = p.p;
  g.w = g.q = p.q;
  g.c = channels;
  g.k = outputs;
  g.r = g.s = 1;
  g.x_type = g.w_type = g.y_type = storage(kind);
  g.math = p.math;
  g.with_bias = p.with_bias;
  return g;
}

const GemmOps& columns_gemm(Kind kind) {
  return kind == Kind::f16 ? gemm_f16_colmajor_f32 : gemm_bf16_colmajor_f32;
}

// dgrad's GEMM over `images` images: m = their pixels, n = J, k = k; D's columns 16-byte aligned.
GemmShape columns_shape(const ConvProblem& p, const Plan& plan, std::int64_t images) {
  const std::int64_t m = images * p.p * p.q;
  return {m, plan.width, p.k, round_up(m, 4)};
}

// ---- kernels --------------------------------------------------------------------------------

struct Geometry {
  int h, w, c, r, s, p, q;
  int sh, sw, dh, dw, pt, pl;
  int taps_c, width;
};

Geometry geometry(const ConvProblem& p, const Plan& plan) {
  return {static_cast<int>(p.h), static_cast<int>(p.w), static_cast<int>(p.c),
          static_cast<int>(p.r), static_cast<int>(p.s), static_cast<int>(p.p),
          static_cast<int>(p.q), p.stride_h, p.stride_w, p.dilation_h, p.dilation_w,
          p.pad_top, p.pad_left, static_cast<int>(plan.taps_c), static_cast<int>(plan.width)};
}

struct Strides {
  std::int64_t s0, s1, s2, s3;
};
Strides strides_of(const TensorView& v) { return {v.strides[0], v.strides[1], v.strides[2], v.strides[3]}; }

// out = w as [k][J] (transpose = false) or [J][k] (true), zero past C*R*S.
template <class Bits>
__global__ void filter_matrix(const Bits* __restrict__ w, Strides ws, Geometry g, int k_count,
                              bool transpose, Bits* __restrict__ out) {
  const std::int64_t count = static_cast<std::int64_t>(k_count) * g.width;
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const int k = static_cast<int>(transpose ? i % k_count : i / g.width);
  const int j = static_cast<int>(transpose ? i / k_count : i % g.width);
  Bits v = 0;
  if (j < g.taps_c) {
    const int c = j % g.c, s = j / g.c % g.s, r = j / g.c / g.s;
    v = w[k * ws.s0 + r * ws.s1 + s * ws.s2 + c * ws.s3];
  }
  out[i] = v;
}

// One block per output row (image, p): the row's q x J columns, written in order, 16 bytes per
// thread and step (J is a multiple of 16 bytes' worth).
template <class Bits>
__global__ void __launch_bounds__(kThreads)
    im2col(const Bits* __restrict__ x, Strides xs, Geometry g, std::int64_t first_image,
           Bits* __restrict__ out) {
  constexpr int kVec = 16 / sizeof(Bits);
  extern __shared__ int table[];  // per column: r * dh, s * dw, c (-1 past C*R*S)
  int* tap_h = table;
  int* tap_w = table + g.width;
  int* channel = table + 2 * g.width;
  for (int j = static_cast<int>(threadIdx.x); j < g.width; j += kThreads) {
    const bool real = j < g.taps_c;
    const int c = j % g.c, s = j / g.c % g.s, r = j / g.c / g.s;
    tap_h[j] = real ? r * g.dh : 0;
    tap_w[j] = real ? s * g.dw : 0;
    channel[j] = real ? c : -1;
  }
  __syncthreads();
  const int image = static_cast<int>(blockIdx.x) / g.p, row = static_cast<int>(blockIdx.x) % g.p;
  const Bits* xn = x + (first_image + image) * xs.s0;
  uint4* o = reinterpret_cast<uint4*>(out + static_cast<std::int64_t>(blockIdx.x) * g.q * g.width);
  const int vectors = g.width / kVec;
  const int total = g.q * vectors;
  const int h0 = row * g.sh - g.pt;
  int q = static_cast<int>(threadIdx.x) / vectors, v = static_cast<int>(threadIdx.x) % vectors;
  const int dq = kThreads / vectors, dv = kThreads % vectors;
  for (int e = static_cast<int>(threadIdx.x); e < total; e += kThreads) {
    const int w0 = q * g.sw - g.pl;
    union {
      uint4 chunk;
      Bits lane[kVec];
    } pack;
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const int j = v * kVec + i;
      const int ih = h0 + tap_h[j], iw = w0 + tap_w[j], c = channel[j];
      pack.lane[i] = c >= 0 && ih >= 0 && ih < g.h && iw >= 0 && iw < g.w
                         ? xn[ih * xs.s1 + iw * xs.s2 + c * xs.s3]
                         : Bits(0);
    }
    o[e] = pack.chunk;
    q += dq;
    v += dv;
    if (v >= vectors) v -= vectors, ++q;
  }
}

// The first tap t < kernel with t * dilation = target (mod stride), or -1; taps t, t + step, ...
// then land, step = stride / gcd(stride, dilation).
__device__ __forceinline__ int first_tap(int target, int kernel, int stride, int dilation, int step) {
  for (int t = 0; t < kernel && t < step; ++t) {
    if (((target - t * dilation) % stride + stride) % stride == 0) return t;
  }
  return -1;
}

// One block per dx row (image, h); each thread takes a column w and sums the columns of its C
// elements over the taps that land on them, r outer and s inner: a fixed order. Columns are
// column-major (column j of the chunk's pixel m at j * ldd + m): the lanes of a warp take
// consecutive w, so that their reads of one tap fall on consecutive pixels. Which taps land
// depends on h (listed once per block) and on w modulo the stride (a table of sw entries): the
// index arithmetic is done once per w, not per element. The loads of a thread go out
// kChannelBatch x kLoadBatch at a time.
constexpr int kLoadBatch = 4;
constexpr int kChannelBatch = 4;
constexpr int kMaxRows = 64;    // landing taps r of one dx row, listed in shared memory
constexpr int kMaxStride = 64;  // the per-residue table of first landing taps s

template <class T>
__global__ void __launch_bounds__(kThreads)
    col2im(const float* __restrict__ columns, std::int64_t ldd, Geometry g, int step_h,
           int step_w, std::int64_t first_image, T* __restrict__ dx, Strides xs) {
  __shared__ int row_tap[kMaxRows];    // r * s * c: the first column of tap row r
  __shared__ int row_pixel[kMaxRows];  // pp * q: the first pixel of dy row pp
  __shared__ int first_s[kMaxStride];  // by (w + pad_left) mod stride_w; -1: none lands
  __shared__ int rows;
  const int image = static_cast<int>(blockIdx.x) / g.h, hh = static_cast<int>(blockIdx.x) % g.h;
  for (int residue = static_cast<int>(threadIdx.x); residue < g.sw; residue += kThreads) {
    first_s[residue] = first_tap(residue, g.s, g.sw, g.dw, step_w);
  }
  if (threadIdx.x == 0) {
    int count = 0;
    const int r0 = first_tap(hh + g.pt, g.r, g.sh, g.dh, step_h);
    if (r0 >= 0) {
      const int th = hh + g.pt - r0 * g.dh, row_step = step_h * g.dh / g.sh;
      for (int r = r0, pp = th >= 0 ? th / g.sh : -1; r < g.r && pp >= 0; r += step_h, pp -= row_step) {
        if (pp < g.p) {
          row_tap[count] = r * g.s * g.c;
          row_pixel[count] = pp * g.q;
          ++count;
        }
      }
    }
    rows = count;
  }
  __syncthreads();
  const float* base = columns + static_cast<std::int64_t>(image) * g.p * g.q;
  const int col_step = step_w * g.dw / g.sw;
  T* out = dx + (first_image + image) * xs.s0 + hh * xs.s1;
  for (int ww = static_cast<int>(threadIdx.x); ww < g.w; ww += kThreads) {
    const int target = ww + g.pl;
    const int s0 = first_s[(target % g.sw + g.sw) % g.sw];
    const int tw = s0 >= 0 ? target - s0 * g.dw : -1;
    const int q0 = tw >= 0 ? tw / g.sw : -1;
    // Landing taps s0, s0 + step_w, ... while s < S and the dy column stays >= 0.
    const int taps_w = q0 < 0 ? 0 : min((g.s - 1 - s0) / step_w, q0 / col_step) + 1;
    // Taps si < skip land past dy's last column; tap si of row ri reads
    // row_start[ri] + si * step, a fixed step along j and back along the pixels.
    const int skip = q0 >= g.q ? (q0 - g.q) / col_step + 1 : 0;
    const std::int64_t step = static_cast<std::int64_t>(step_w) * g.c * ldd - col_step;
    T* at = out + ww * xs.s2;
    // kChannelBatch channels at a time, kLoadBatch taps each: that many loads in flight.
    for (int c0 = 0; c0 < g.c; c0 += kChannelBatch) {
      const float* first = base + static_cast<std::int64_t>(s0 * g.c + c0) * ldd + q0;
      float sum[kChannelBatch] = {};
      for (int ri = 0; ri < rows; ++ri) {
        const float* row = first + static_cast<std::int64_t>(row_tap[ri]) * ldd + row_pixel[ri];
        for (int t0 = skip; t0 < taps_w; t0 += kLoadBatch) {
          float v[kChannelBatch][kLoadBatch];
#pragma unroll
          for (int cc = 0; cc < kChannelBatch; ++cc) {
#pragma unroll
            for (int u = 0; u < kLoadBatch; ++u) {
              v[cc][u] = c0 + cc < g.c && t0 + u < taps_w ? __ldg(row + cc * ldd + (t0 + u) * step) : 0.0f;
            }
          }
#pragma unroll
          for (int cc = 0; cc < kChannelBatch; ++cc) {
#pragma unroll
            for (int u = 0; u < kLoadBatch; ++u) sum[cc] += v[cc][u];
          }
        }
      }
#pragma unroll
      for (int cc = 0; cc < kChannelBatch; ++cc) {
        if (c0 + cc < g.c) at[(c0 + cc) * xs.s3] = special::from_float<T>(sum[cc]);
      }
    }
  }
}

int gcd(int a, int b) { return b == 0 ? a : gcd(b, a % b); }

template <class Bits>
void launch_filter_matrix(const TensorView& w, const Geometry& g, std::int64_t k, bool transpose,
                          void* out) {
  const std::int64_t count = k * g.width;
  filter_matrix<Bits><<<static_cast<unsigned>((count + kThreads - 1) / kThreads), kThreads, 0,
                        current_stream()>>>(static_cast<const Bits*>(w.data), strides_of(w), g,
                                            static_cast<int>(k), transpose,
                                            static_cast<Bits*>(out));
  CONVGRAD_CUDA_CHECK(cudaGetLastError());
}

template <class Bits>
void launch_im2col(const TensorView& x, const Geometry& g, std::int64_t first, std::int64_t images,
                   void* out) {
  const std::size_t table = static_cast<std::size_t>(3 * g.width) * sizeof(int);
  im2col<Bits><<<static_cast<unsigned>(images * g.p), kThreads, table, current_stream()>>>(
      static_cast<const Bits*>(x.data), strides_of(x), g, first, static_cast<Bits*>(out));
  CONVGRAD_CUDA_CHECK(cudaGetLastError());
}

template <class Bits>
void fprop_columns(Kind kind, const ConvProblem& p, const core::Operands& o, const Plan& plan) {
  const Geometry g = geometry(p, plan);
  const std::int64_t e = element_bytes(kind);
  const std::size_t filter_bytes = aligned_bytes(p.k * plan.width * e);
  char* space = static_cast<char*>(workspace(
      filter_bytes + aligned_bytes(plan.images * p.p * p.q * plan.width * e), current_stream(),
      Slot::operands));
  launch_filter_matrix<Bits>(o.w, g, p.k, false, space);
  const bool with_bias = !o.b.empty();
  for (std::int64_t n0 = 0; n0 < p.n; n0 += plan.images) {
    const std::int64_t images = std::min(plan.images, p.n - n0);
    launch_im2col<Bits>(o.x, g, n0, images, space + filter_bytes);
    const ConvProblem gemm = gemm_problem(p, kind, images, plan.width, p.k);
    fprop_ops(kind, p.k, plan.width)
        .fprop(fprop_shape(gemm), space + filter_bytes, space,
               with_bias ? static_cast<const float*>(o.b.data) : nullptr,
               static_cast<char*>(o.y.data) + n0 * p.p * p.q * p.k * e, current_stream());
  }
}

template <class Bits, class T>
void dgrad_columns(Kind kind, const ConvProblem& p, const core::Operands& o, const Plan& plan) {
  const Geometry g = geometry(p, plan);
  const std::int64_t e = element_bytes(kind);
  const GemmOps& gemm = columns_gemm(kind);
  const GemmShape most = columns_shape(p, plan, plan.images);
  const std::size_t filter_bytes = aligned_bytes(p.k * plan.width * e);
  const std::size_t column_bytes = aligned_bytes(most.n * most.ldd * 4);
  char* space = static_cast<char*>(workspace(
      filter_bytes + column_bytes + aligned_bytes(static_cast<std::int64_t>(gemm.workspace_bytes(most))),
      current_stream(), Slot::operands));
  float* columns = reinterpret_cast<float*>(space + filter_bytes);
  void* gemm_space = space + filter_bytes + column_bytes;
  launch_filter_matrix<Bits>(o.w, g, p.k, true, space);
  const int step_h = p.stride_h / gcd(p.stride_h, p.dilation_h);
  const int step_w = p.stride_w / gcd(p.stride_w, p.dilation_w);
  for (std::int64_t n0 = 0; n0 < p.n; n0 += plan.images) {
    const std::int64_t images = std::min(plan.images, p.n - n0);
    const GemmShape shape = columns_shape(p, plan, images);
    gemm.run(shape, static_cast<const char*>(o.y.data) + n0 * p.p * p.q * p.k * e, space, columns,
             gemm_space, current_stream());
    col2im<T><<<static_cast<unsigned>(images * p.h), kThreads, 0, current_stream()>>>(
        columns, shape.ldd, g, step_h, step_w, n0, static_cast<T*>(o.x.data), strides_of(o.x));
    CONVGRAD_CUDA_CHECK(cudaGetLastError());
  }
}

template <class Bits>
void wgrad_columns(Kind kind, const ConvProblem& p, const core::Operands& o, const Plan& plan,
                   bool accumulate) {
  const Geometry g = geometry(p, plan);
  void* columns = workspace(aligned_bytes(p.n * p.p * p.q * plan.width * element_bytes(kind)),
                            current_stream(), Slot::operands);
  launch_im2col<Bits>(o.x, g, 0, p.n, columns);
  // dw[k][r][s][c] with (r, s, c) contiguous is dw's [k][C*R*S] matrix.
  TensorView dw = o.w;
  dw.dims = {p.k, 1, 1, plan.taps_c};
  dw.strides = {o.w.strides[0], 0, 0, 1};
  wgrad_gemm(kind, gemm_problem(p, kind, p.n, plan.width, p.k), columns, o.y.data, dw, o.b,
             accumulate);
}

bool filter_rows_contiguous(const TensorView& w, const ConvProblem& p) {
  return w.strides[3] == 1 && (p.s == 1 || w.strides[2] == p.c) &&
         (p.r == 1 || w.strides[1] == p.s * p.c);
}

}  // namespace

std::optional<std::string> im2col_rejects(const ConvProblem& p, Kind kind, Direction direction) {
  if (auto reason = storage_rejects(p, kind)) return reason;
  if (kind == Kind::tf32 && direction != Direction::fprop) {
    // wgrad: wgmma reads tf32 only K-major. dgrad: the column GEMM reads dy as it is, and the
    // tensor cores truncate float32 to tf32, which took the error past 1e-3 on random problems.
    return std::string("tf32 takes fprop only here (dgrad, wgrad: the CUDA-core kernels)");
  }
  if (p.groups != 1) return "groups = " + str(p.groups) + ": the column GEMMs are dense";
  const std::int64_t a = alignment(kind);
  if (p.c % a == 0) {
    return "c = " + str(p.c) + " is a multiple of " + str(a) +
           ": the implicit-GEMM kernels take it without columns";
  }
  if (p.k % a != 0) return "k = " + str(p.k) + ": must be a multiple of " + str(a) + " (16-byte GEMM rows)";
  const Plan plan = plan_of(p, kind, direction);
  if (direction == Direction::dgrad && (p.r > kMaxRows || p.stride_w > kMaxStride)) {
    return "r = " + str(p.r) + ", stride_w = " + str(p.stride_w) + ": col2im lists at most " +
           str(kMaxRows) + " filter rows and " + str(kMaxStride) + " column residues";
  }
  if (plan.width > kMaxColumns) {
    return "c * r * s = " + str(plan.taps_c) + ": more than the " + str(kMaxColumns) +
           " columns of this kernel's tap table";
  }
  constexpr std::int64_t int_max = std::numeric_limits<std::int32_t>::max();
  if (p.h >= int_max / 2 || p.w >= int_max / 2 || p.q * plan.width >= int_max ||
      p.w * p.c >= int_max || p.n * std::max(p.h, p.p) >= int_max) {
    return std::string("image sides, a row of columns or the row count reach 2^31 (32-bit indexing)");
  }
  const std::int64_t column_bytes =
      plan.images * p.p * p.q * plan.width * (direction == Direction::dgrad ? 4 : element_bytes(kind));
  if (column_bytes > kMaxColumnBytes) {
    return std::string(direction == Direction::wgrad ? "the columns of the whole batch"
                                                     : "the columns of one image") +
           " take " + str(column_bytes) + " bytes, more than the " + str(kMaxColumnBytes) +
           " this kernel allots";
  }
  switch (direction) {
    case Direction::fprop: {
      const ConvProblem gemm = gemm_problem(p, kind, plan.images, plan.width, p.k);
      if (auto reason = common_rejects(gemm, kind)) return "the column GEMM: " + *reason;
      return fprop_ops(kind, p.k, plan.width).can_implement(fprop_shape(gemm));
    }
    case Direction::dgrad: {
      const ConvProblem gemm = gemm_problem(p, kind, plan.images, p.k, plan.width);
      if (auto reason = common_rejects(gemm, kind)) return "the column GEMM: " + *reason;
      for (const std::int64_t images : {plan.images, p.n % plan.images}) {
        if (images == 0) continue;
        if (auto reason = columns_gemm(kind).can_implement(columns_shape(p, plan, images))) {
          return "the column GEMM: " + *reason;
        }
      }
      return std::nullopt;
    }
    case Direction::wgrad: {
      const ConvProblem gemm = gemm_problem(p, kind, p.n, plan.width, p.k);
      if (auto reason = wgrad_rejects(gemm, kind)) return "the column GEMM: " + *reason;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

void im2col_run(Kind kind, Direction direction, const ConvProblem& p, const core::Operands& o,
                bool accumulate) {
  const Plan plan = plan_of(p, kind, direction);
  switch (direction) {
    case Direction::fprop: {
      if (!packed(o.y) || !bias_readable(o.b)) {
        fprop_direct(p, o, accumulate);
        return;
      }
      if (kind == Kind::tf32) {
        fprop_columns<std::uint32_t>(kind, p, o, plan);
      } else {
        fprop_columns<std::uint16_t>(kind, p, o, plan);
      }
      break;
    }
    case Direction::dgrad:
      if (!packed(o.y)) {
        dgrad_direct(p, o, accumulate);
        return;
      }
      if (kind == Kind::f16) {
        dgrad_columns<std::uint16_t, __half>(kind, p, o, plan);
      } else {
        dgrad_columns<std::uint16_t, __nv_bfloat16>(kind, p, o, plan);
      }
      break;
    case Direction::wgrad:
      if (!packed(o.y) || !filter_rows_contiguous(o.w, p)) {
        wgrad_direct(p, o, accumulate);
        return;
      }
      wgrad_columns<std::uint16_t>(kind, p, o, plan, accumulate);
      break;
  }
  finish_launches();
}

}  // namespace convgrad::cuda::tc
