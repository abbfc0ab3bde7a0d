// SPDX-License-Identifier: Apache-2.0
// Deterministic wgrad for any grouping: per group, dw is the GEMM dy^T (kg x NPQ) times the
// im2col of x (NPQ x R*S*cg). Output tiles are few on most layers (dw is small), so the NPQ
// reduction is split over blocks: block (column tile, row tile of one group, split) runs a
// shared-memory-tiled SGEMM over its slice of NPQ and writes fp32 partials, never atomics; the
// shared reduction (special_common.cu) adds the splits in split order. The blocks of column tile
// 0 also sum dy's rows for db from the tiles they already hold, so db costs no second read.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/check.hpp"
#include "cuda/special_common.cuh"
#include "cuda/stream.hpp"
#include "cuda/wgrad_split.hpp"

namespace convgrad::cuda {
namespace {

using special::to_float;

struct Shape {
  std::int64_t n, h, w, p, q, k;
  int r, s, sh, sw, dh, dw, pt, pl;
  int cg, kg, cols;  // cols = r * s * cg, the GEMM's N
  int row_tiles;     // per group
};

struct Img {
  const void* data;
  std::int64_t s0, s1, s2, s3;
};
Img img(const TensorView& v) {
  return {v.data, v.strides[0], v.strides[1], v.strides[2], v.strides[3]};
}

constexpr int kThreads = 256;
constexpr int kDepth = 32;  // NPQ positions per shared-memory stage
constexpr int kCols = 64;   // BN

// Where the rows of one stage read: x's image base, dy's element, the top-left input corner.
struct Rows {
  std::int64_t x[kDepth], dy[kDepth];
  int ih[kDepth], iw[kDepth];
};

__device__ __forceinline__ void describe_rows(const Shape& p, const Img& x, const Img& dy,
                                              std::int64_t j0, std::int64_t end, Rows& rows) {
  const int tid = static_cast<int>(threadIdx.x);
  if (tid >= kDepth) return;
  const std::int64_t j = j0 + tid;
  if (j < end) {
    const std::int64_t ow = j % p.q;
    const std::int64_t t = j / p.q;
    const std::int64_t oh = t % p.p;
    const std::int64_t n = t / p.p;
    rows.x[tid] = n * x.s0;
    rows.dy[tid] = n * dy.s0 + oh * dy.s1 + ow * dy.s2;
    rows.ih[tid] = static_cast<int>(oh * p.sh - p.pt);
    rows.iw[tid] = static_cast<int>(ow * p.sw - p.pl);
  } else {
    rows.dy[tid] = -1;
    rows.ih[tid] = -(1 << 30);  // no tap reaches row -2^30
    rows.iw[tid] = 0;
    rows.x[tid] = 0;
  }
}

// Stage by stage: the next stage's global loads go out into registers before this stage's
// products, so their latency hides behind the arithmetic (two barriers per stage).
template <class T, int BM>
__global__ void __launch_bounds__(kThreads)
    split_kernel(Shape p, Img x, Img dy, float* partials, std::int64_t split_floats,
                 std::int64_t per_split, bool with_db) {
  __shared__ float a_tile[kDepth][BM];     // dy[j][k]
  __shared__ float b_tile[kDepth][kCols];  // x at (j, column)
  __shared__ Rows rows[2];
  constexpr int TM = BM / 16, TN = kCols / 16;
  constexpr int A_LOADS = kDepth * BM / kThreads, B_LOADS = kDepth * kCols / kThreads;
  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid % 16, ty = tid / 16;
  const int g = static_cast<int>(blockIdx.y) / p.row_tiles;
  const int m0 = static_cast<int>(blockIdx.y) % p.row_tiles * BM;
  const int n0 = static_cast<int>(blockIdx.x) * kCols;
  const std::int64_t npq = p.n * p.p * p.q;
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.z) * per_split;
  const std::int64_t end = npq < begin + per_split ? npq : begin + per_split;
  const T* xp = static_cast<const T*>(x.data);
  const T* dyp = static_cast<const T*>(dy.data);

  // The one column this thread loads (256 % kCols == 0) and the one dy channel (256 % BM == 0).
  const int col = n0 + tid % kCols;
  const bool col_ok = col < p.cols;
  const int c = col % p.cg;
  const int tap = col / p.cg;
  const int r_off = tap / p.s * p.dh;
  const int s_off = tap % p.s * p.dw;
  const std::int64_t x_channel = (static_cast<std::int64_t>(g) * p.cg + c) * x.s3;
  const int kk = tid % BM;
  const bool k_ok = m0 + kk < p.kg;
  const std::int64_t dy_channel = (static_cast<std::int64_t>(g) * p.kg + m0 + kk) * dy.s3;

  float ra[A_LOADS], rb[B_LOADS];
  const auto gather = [&](const Rows& rw) {
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) {
      const int jj = (tid + i * kThreads) / BM;
      const std::int64_t at = rw.dy[jj];
      ra[i] = k_ok && at >= 0 ? to_float(dyp[at + dy_channel]) : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < B_LOADS; ++i) {
      const int jj = (tid + i * kThreads) / kCols;
      const int ih = rw.ih[jj] + r_off;
      const int iw = rw.iw[jj] + s_off;
      rb[i] = col_ok && ih >= 0 && ih < p.h && iw >= 0 && iw < p.w
                  ? to_float(xp[rw.x[jj] + ih * x.s1 + iw * x.s2 + x_channel])
                  : 0.0f;
    }
  };

  float acc[TM][TN] = {};
  float db = 0.0f;
  const bool db_here = with_db && blockIdx.x == 0 && tid < BM;
  int buffer = 0;
  describe_rows(p, x, dy, begin, end, rows[0]);
  __syncthreads();
  if (begin < end) gather(rows[0]);
  for (std::int64_t j0 = begin; j0 < end; j0 += kDepth) {
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) a_tile[(tid + i * kThreads) / BM][kk] = ra[i];
#pragma unroll
    for (int i = 0; i < B_LOADS; ++i) b_tile[(tid + i * kThreads) / kCols][tid % kCols] = rb[i];
    const bool more = j0 + kDepth < end;
    if (more) describe_rows(p, x, dy, j0 + kDepth, end, rows[buffer ^ 1]);
    __syncthreads();
    if (more) gather(rows[buffer ^ 1]);
#pragma unroll 8
    for (int d = 0; d < kDepth; ++d) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = a_tile[d][ty + 16 * i];
#pragma unroll
      for (int jn = 0; jn < TN; ++jn) b[jn] = b_tile[d][tx + 16 * jn];
#pragma unroll
      for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int jn = 0; jn < TN; ++jn) acc[i][jn] = fmaf(a[i], b[jn], acc[i][jn]);
      }
    }
    if (db_here) {
#pragma unroll 8
      for (int d = 0; d < kDepth; ++d) db += a_tile[d][tid];
    }
    __syncthreads();
    buffer ^= 1;
  }

  float* out = partials + static_cast<std::int64_t>(blockIdx.z) * split_floats;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= p.kg) continue;
    const std::int64_t k = static_cast<std::int64_t>(g) * p.kg + m;
#pragma unroll
    for (int jn = 0; jn < TN; ++jn) {
      const int cn = n0 + tx + 16 * jn;
      if (cn < p.cols) out[k * p.cols + cn] = acc[i][jn];
    }
  }
  if (db_here && m0 + tid < p.kg) {
    out[p.k * p.cols + static_cast<std::int64_t>(g) * p.kg + m0 + tid] = db;
  }
}

// Rows of 64 filters for wide groups; 16 for narrow ones (grouped layers), which would leave
// most of a 64-row tile idle.
constexpr std::int64_t kWideRows = 48;

// Keeps the partials of all splits under 256 MiB.
constexpr std::int64_t kMaxPartialFloats = std::int64_t{64} << 20;

template <class T, int BM>
void launch(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  Shape shape{};
  shape.n = problem.n, shape.h = problem.h, shape.w = problem.w;
  shape.p = problem.p, shape.q = problem.q, shape.k = problem.k;
  shape.r = static_cast<int>(problem.r), shape.s = static_cast<int>(problem.s);
  shape.sh = problem.stride_h, shape.sw = problem.stride_w;
  shape.dh = problem.dilation_h, shape.dw = problem.dilation_w;
  shape.pt = problem.pad_top, shape.pl = problem.pad_left;
  shape.cg = static_cast<int>(problem.c_per_group());
  shape.kg = static_cast<int>(problem.k_per_group());
  shape.cols = static_cast<int>(problem.r * problem.s * problem.c_per_group());
  shape.row_tiles = (shape.kg + BM - 1) / BM;
  const bool bias = !o.b.empty();
  const std::int64_t col_tiles = (shape.cols + kCols - 1) / kCols;
  const std::int64_t row_blocks = problem.groups * shape.row_tiles;
  const std::int64_t split_floats = problem.k * shape.cols + problem.k;
  const std::int64_t npq = problem.n * problem.p * problem.q;
  // About four blocks per SM in all, each with at least 8 stages of work.
  const std::int64_t want = std::max<std::int64_t>(
      1, 4 * static_cast<std::int64_t>(special::multiprocessors()) / (col_tiles * row_blocks));
  const std::int64_t most = std::max<std::int64_t>(
      1, std::min({npq / (8 * kDepth), kMaxPartialFloats / split_floats, std::int64_t{65535}}));
  std::int64_t splits = std::clamp<std::int64_t>(want, 1, most);
  const std::int64_t per_split = ((npq + splits - 1) / splits + kDepth - 1) / kDepth * kDepth;
  splits = (npq + per_split - 1) / per_split;
  float* partials = special::workspace(static_cast<std::size_t>(splits * split_floats));
  split_kernel<T, BM><<<dim3(static_cast<unsigned>(col_tiles), static_cast<unsigned>(row_blocks),
                             static_cast<unsigned>(splits)),
                        kThreads, 0, current_stream()>>>(shape, img(o.x), img(o.y), partials,
                                                         split_floats, per_split, bias);
  special::reduce_wgrad_partials(problem, o, partials, splits, split_floats, accumulate);
}

}  // namespace

std::optional<std::string> wgrad_split_rejects(const ConvProblem& problem) {
  // The kernel keeps image rows and columns and R*S*cg in 32-bit integers.
  constexpr std::int64_t limit = std::int64_t{1} << 30;
  if (problem.h >= limit || problem.w >= limit || problem.r * problem.s * problem.c_per_group() >= limit) {
    return std::string("an image side or R*S*C/groups reaches 2^30");
  }
  if (problem.groups > 65535 / ((problem.k_per_group() + 15) / 16)) {
    return "groups x row tiles = " + std::to_string(problem.groups) + " x " +
           std::to_string((problem.k_per_group() + 15) / 16) + " exceeds the grid's 65535";
  }
  return special::reject_mixed_image_types(problem);
}

void wgrad_split(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  special::with_storage(problem.x_type, [&](auto tag) {
    using T = decltype(tag);
    if (problem.k_per_group() >= kWideRows) {
      launch<T, 64>(problem, o, accumulate);
    } else {
      launch<T, 16>(problem, o, accumulate);
    }
  });
  finish_launches();
}

}  // namespace convgrad::cuda
