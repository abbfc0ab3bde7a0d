// SPDX-License-Identifier: Apache-2.0
// Grouped convolutions on the tensor cores: mma.sync m16n8k16 (fp32 accumulation) fed by ldmatrix
// straight from shared-memory tiles, for float16 and bfloat16 storage with channels per group a
// multiple of 8. One group's 8 channels of one pixel are 16 contiguous bytes: an 8x8 ldmatrix row.
//
// - fprop: a block owns a few groups (64 input channels) and walks output tiles of about 128
//   pixels; for each it stages the input window (the tile plus the filter's halo, zeros outside the
//   image, 16-byte cp.async, the next tile's window loading while this one computes). A warp tile
//   is 16 output pixels x 8 output channels of one group; its reduction runs over (tap, 8-channel
//   chunk) pairs, so the A fragment of each k16 step is two taps' (or chunks') rows of the window,
//   addressed per pixel: any stride, dilation and padding, negative pads included. The results go
//   through shared memory so that the stores to y are whole 16-byte vectors along the channels.
// - dgrad at stride 1 is the same kernel over dy with each group's filter rotated by 180 degrees
//   and transposed, w'[c][r'][s'][k] = w[k][R-1-r'][S-1-s'][c] (built while staging the weights),
//   pads (R-1)*dilation - pad. Strided dgrad is left to the CUDA-core kernel.
// - wgrad: dw_g[k][tap][c] = sum over pixels of dy[pix][k] * x[pix + tap][c], as mma with
//   M = (tap, channel) rows read transposed (ldmatrix.trans) from the staged input window, N = 8
//   filters read transposed from the staged dy tile, reduced over 16 pixels a step. One more
//   8-row chunk of ones gives db in the same mma. A warp keeps its tile's accumulators in
//   registers across all the pixel tiles of its block; the blocks split the pixels, write fp32
//   partials, and the shared fixed-order reduction sums them: no atomics, the same bits every run.
//
// Shared-memory rows are padded to an odd number of 16-byte units so that the eight rows of an
// ldmatrix land in eight different bank quads.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "convgrad/errors.hpp"
#include "cuda/check.hpp"
#include "cuda/direct.hpp"
#include "cuda/grouped.hpp"
#include "cuda/grouped_tc.hpp"
#include "cuda/special_common.cuh"
#include "cuda/stream.hpp"

namespace convgrad::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Shared memory a block takes: two blocks per multiprocessor; one, for tiles that need more.
constexpr std::int64_t kMaxShared = 110 * 1024;
constexpr std::int64_t kMaxSharedOneBlock = 220 * 1024;
// Output pixels a tile aims at: 8 m16 tiles.
constexpr int kTilePixels = 128;
// Input channels a block stages per pixel (fprop, dgrad): 128 bytes, whole 32-byte sectors.
constexpr int kBlockChannels = 64;
// wgrad: m16 tiles in one warp tile (20 fp32 accumulators), warp tiles a warp may hold.
constexpr int kWgradM = 5;
constexpr int kMaxWarpTiles = 2;
// wgrad: the constant rows (16 bytes of zeros, 16 of ones) in front of the tiles.
constexpr int kConstBytes = 32;

// ---- PTX ------------------------------------------------------------------------------------

__device__ __forceinline__ unsigned shared_address(const void* pointer) {
  return static_cast<unsigned>(__cvta_generic_to_shared(pointer));
}

// 16 bytes, or 16 zeros when !valid (src-size 0 reads nothing).
__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, bool valid) {
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(unsigned addr, unsigned (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned addr, unsigned (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x2(unsigned addr, unsigned (&r)[2]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x2_trans(unsigned addr, unsigned (&r)[2]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x1(unsigned addr, unsigned& r) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
               : "=r"(r)
               : "r"(addr)
               : "memory");
}

template <class T>
struct Mma;
template <>
struct Mma<__nv_bfloat16> {
  static constexpr std::uint16_t one = 0x3F80;
  __device__ static void k16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  __device__ static void k8(float (&d)[4], const unsigned (&a)[2], unsigned b) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b));
  }
  __device__ static unsigned pack(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const unsigned*>(&v);
  }
};
template <>
struct Mma<__half> {
  static constexpr std::uint16_t one = 0x3C00;
  __device__ static void k16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  __device__ static void k8(float (&d)[4], const unsigned (&a)[2], unsigned b) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b));
  }
  __device__ static unsigned pack(float lo, float hi) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const unsigned*>(&v);
  }
};

// ---- shapes ---------------------------------------------------------------------------------

// An image as the kernels read or write it: 16-bit elements, unit channel stride.
struct Image {
  const void* data;
  std::int64_t s0, s1, s2;
};

// Threads of a block that walk a 2-D grid of pixels `per_pixel` 16-byte units at a time: each
// keeps one unit column and steps over the pixels row-major, so that the loops below divide only
// once, before they start. per_pixel <= kThreads (the host side checks). Index arithmetic was
// the cost: with divisions per copied vector and per warp tile, resnext50_grouped_3x3 fprop took
// 52.9 us on the H100; with these walks and the offset tables, 30.0 us.
struct Walk {
  int column;       // the thread's 16-byte unit within a pixel
  int pixel, step;  // its first pixel, and pixels per pass
  int y, x;         // the first pixel's row and column
  int step_y, step_x;
  bool active;      // threads past the last whole column set stand by
};

__device__ __forceinline__ Walk walk(int per_pixel, int width) {
  Walk w;
  const int t = static_cast<int>(threadIdx.x);
  w.step = kThreads / per_pixel;
  w.active = t < w.step * per_pixel;
  w.pixel = t / per_pixel;
  w.column = t - w.pixel * per_pixel;
  w.y = w.pixel / width;
  w.x = w.pixel - w.y * width;
  w.step_y = w.step / width;
  w.step_x = w.step - w.step_y * width;
  return w;
}

__device__ __forceinline__ void advance(Walk& w, int width) {
  w.pixel += w.step;
  w.y += w.step_y;
  w.x += w.step_x;
  if (w.x >= width) w.x -= width, ++w.y;
}

// The input window of one tile: its pixels, for `gt` groups of `cin_g` channels, group-major in
// shared memory ([group][window pixel][chunk], `ps` 16-byte units a pixel).
struct Window {
  int in_h, in_w;      // the image read
  int halo_h, halo_w;  // the window
  int groups, gt, cin_g, cp, ps;
};

// Stages the window whose top-left input pixel is (iy0, ix0) of image n, groups g0.. of the
// block, at shared address `dst`; pixels outside the image and groups past the last are zeros.
template <class T>
__device__ void stage_window(const Image& in, std::int64_t n, int iy0, int ix0, int g0,
                             const Window& wd, unsigned dst) {
  Walk w = walk(wd.gt * wd.cp, wd.halo_w);
  if (!w.active) return;
  const int g = w.column / wd.cp;
  const int chunk = w.column - g * wd.cp;
  const int pixels = wd.halo_h * wd.halo_w;
  const bool group_ok = g0 + g < wd.groups;
  const T* base = static_cast<const T*>(in.data);
  const T* image = base + n * in.s0 + (static_cast<std::int64_t>(g0 + g) * wd.cin_g + chunk * 8);
  unsigned to = dst + static_cast<unsigned>(((g * pixels + w.pixel) * wd.ps + chunk) * 16);
  const unsigned to_step = static_cast<unsigned>(w.step * wd.ps * 16);
  for (; w.pixel < pixels; advance(w, wd.halo_w), to += to_step) {
    const int iy = iy0 + w.y, ix = ix0 + w.x;
    const bool ok = group_ok && iy >= 0 && iy < wd.in_h && ix >= 0 && ix < wd.in_w;
    cp_async16(to, ok ? image + iy * in.s1 + ix * in.s2 : base, ok);
  }
}

struct ConvShape {
  std::int64_t n;
  int in_h, in_w, out_h, out_w;
  int r, s, sh, sw, dh, dw, pt, pl;
  int groups, cin_g, cout_g;  // channels per group read and written
  int cp, ps, gt;             // 16-byte chunks of a group's input pixel; its padded stride; groups a block
  int th, tw, halo_h, halo_w, tiles_h, tiles_w;
  int m_tiles, n_tiles;
  int wrow;  // 16-byte units of a staged filter row (odd)
  int orow;  // 16-byte units of a staged output pixel (odd)
  int weight_bytes, halo_bytes, stage_bytes, table_ints;
  std::int64_t tiles;  // n * tiles_h * tiles_w
  bool dgrad;
};

struct ConvArgs {
  Image in;
  void* out;
  std::int64_t o0, o1, o2;
  const std::uint16_t* w;
  std::int64_t w0, w1, w2, w3;
  bool w_vectors;  // fprop filters read 16 bytes at a time
  const float* bias;
  std::int64_t b0;
};

// Block (x, y): groups y*gt.., output tiles x, x + gridDim.x, ... Shared memory: filters, two
// windows, the output stage, then the chunk and pixel offset tables.
template <class T>
__global__ void __launch_bounds__(kThreads, 2) conv_kernel(ConvShape p, ConvArgs a) {
  extern __shared__ uint4 smem_vec[];
  unsigned char* smem = reinterpret_cast<unsigned char*>(smem_vec);
  const unsigned w_s = shared_address(smem);
  const unsigned halo_s = w_s + static_cast<unsigned>(p.weight_bytes);
  unsigned char* stage = smem + p.weight_bytes + 2 * p.halo_bytes;
  int* offsets = reinterpret_cast<int*>(stage + p.stage_bytes);
  const int g0 = static_cast<int>(blockIdx.y) * p.gt;
  const int taps = p.r * p.s;
  const int chunks = taps * p.cp;
  int* pixel_offsets = offsets + chunks;
  const int halo_pixels = p.halo_h * p.halo_w;
  const int tile_pixels = p.th * p.tw;

  // The block's filters as [group][output channel][tap][input channel] rows of `wrow` units,
  // 16 bytes (one chunk of 8 input channels) at a time.
  for (int e = static_cast<int>(threadIdx.x); e < p.gt * p.cout_g * chunks; e += kThreads) {
    const int row = e / chunks;
    const int q = e - row * chunks;
    const int tap = q / p.cp;
    const int c = (q - tap * p.cp) * 8;
    const int g = row / p.cout_g;
    const int o = row - g * p.cout_g;
    const int r = tap / p.s, s = tap - r * p.s;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (g0 + g < p.groups) {
      if (a.w_vectors) {
        value = *reinterpret_cast<const uint4*>(
            a.w + (static_cast<std::int64_t>(g0 + g) * p.cout_g + o) * a.w0 + r * a.w1 +
            s * a.w2 + c);
      } else {
        std::uint16_t v[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          // dgrad: w'[c][r'][s'][k] = w[k][R-1-r'][S-1-s'][c], k = the chunk's input channel.
          const std::int64_t at =
              p.dgrad ? (static_cast<std::int64_t>(g0 + g) * p.cin_g + c + i) * a.w0 +
                            (p.r - 1 - r) * a.w1 + (p.s - 1 - s) * a.w2 + o * a.w3
                      : (static_cast<std::int64_t>(g0 + g) * p.cout_g + o) * a.w0 + r * a.w1 +
                            s * a.w2 + (c + i) * a.w3;
          v[i] = a.w[at];
        }
        value = make_uint4(v[0] | (unsigned{v[1]} << 16), v[2] | (unsigned{v[3]} << 16),
                           v[4] | (unsigned{v[5]} << 16), v[6] | (unsigned{v[7]} << 16));
      }
    }
    *reinterpret_cast<uint4*>(smem + (row * p.wrow + q) * 16) = value;
  }
  // Each chunk's offset from a pixel in the window, in 16-byte units; each m-tile row's pixel in
  // the window (rows past the tile read pixel 0 and are never stored).
  for (int q = static_cast<int>(threadIdx.x); q < chunks; q += kThreads) {
    const int tap = q / p.cp;
    const int r = tap / p.s;
    offsets[q] = (r * p.dh * p.halo_w + (tap - r * p.s) * p.dw) * p.ps + (q - tap * p.cp);
  }
  for (int i = static_cast<int>(threadIdx.x); i < p.m_tiles * 16; i += kThreads) {
    const int ty = i / p.tw;
    pixel_offsets[i] = i < tile_pixels ? (ty * p.sh * p.halo_w + (i - ty * p.tw) * p.sw) * p.ps : 0;
  }

  const Window wd{p.in_h, p.in_w, p.halo_h, p.halo_w, p.groups, p.gt, p.cin_g, p.cp, p.ps};
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const auto origin = [&](std::int64_t t, std::int64_t& n, int& oy0, int& ox0) {
    ox0 = static_cast<int>(t % p.tiles_w) * p.tw;
    t /= p.tiles_w;
    oy0 = static_cast<int>(t % p.tiles_h) * p.th;
    n = t / p.tiles_h;
  };
  const auto load = [&](std::int64_t t, int buffer) {
    std::int64_t n;
    int oy0, ox0;
    origin(t, n, oy0, ox0);
    stage_window<T>(a.in, n, oy0 * p.sh - p.pt, ox0 * p.sw - p.pl, g0, wd,
                    halo_s + static_cast<unsigned>(buffer * p.halo_bytes));
  };
  // Warp tiles: (group, 8 output channels) pairs; with fewer pairs than warps, the warps of a
  // pair share out its m tiles.
  const int pairs = p.gt * p.n_tiles;
  const int per_pair = pairs >= kWarps ? 1 : kWarps / pairs;
  const int slots = kWarps / per_pair;
  const int slot = warp / per_pair, m_first = warp - slot * per_pair;
  const int vectors = p.gt * p.cout_g / 8;  // 16-byte units of a staged output pixel

  std::int64_t tile = blockIdx.x;
  if (tile < p.tiles) load(tile, 0);
  cp_async_commit();
  for (int it = 0; tile < p.tiles; ++it, tile += gridDim.x) {
    if (tile + gridDim.x < p.tiles) load(tile + gridDim.x, (it + 1) & 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const unsigned halo = halo_s + static_cast<unsigned>((it & 1) * p.halo_bytes);
    for (int pair = slot; pair < pairs; pair += slots) {
      const int g = pair / p.n_tiles;
      const int nt = pair - g * p.n_tiles;
      const unsigned a_group = halo + static_cast<unsigned>(g * halo_pixels * p.ps * 16);
      const unsigned b_row =
          w_s + static_cast<unsigned>((g * p.cout_g + nt * 8 + (lane & 7)) * p.wrow * 16);
      const unsigned b_base = b_row + static_cast<unsigned>(((lane >> 3) & 1) * 16);
      const int col = g * p.cout_g + nt * 8 + 2 * (lane & 3);
      float b0 = 0.0f, b1 = 0.0f;
      if (a.bias != nullptr && g0 + g < p.groups) {
        const std::int64_t k = static_cast<std::int64_t>(g0) * p.cout_g + col;
        b0 = a.bias[k * a.b0];
        b1 = a.bias[(k + 1) * a.b0];
      }
      const int* lane_offset = offsets + (lane >> 4);  // the lane's chunk: 2 * step + lane / 16
      for (int m = m_first; m < p.m_tiles; m += per_pair) {
        // The lane's ldmatrix row: pixel lane % 16 of the m tile.
        const unsigned a_base =
            a_group + static_cast<unsigned>(pixel_offsets[m * 16 + (lane & 15)] * 16);
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const int steps = chunks / 2;
#pragma unroll 2
        for (int step = 0; step < steps; ++step) {
          unsigned af[4], bf[2];
          ldmatrix_x4(a_base + static_cast<unsigned>(lane_offset[2 * step] * 16), af);
          ldmatrix_x2(b_base + static_cast<unsigned>(step * 32), bf);
          Mma<T>::k16(acc, af, bf);
        }
        if (chunks & 1) {
          // m16n8k8 over the last chunk: an x2 reads the addresses of lanes 0-15 only.
          unsigned af[2], bf;
          ldmatrix_x2(a_base + static_cast<unsigned>(offsets[chunks - 1] * 16), af);
          ldmatrix_x1(b_row + static_cast<unsigned>((chunks - 1) * 16), bf);
          Mma<T>::k8(acc, af, bf);
        }
        const int row = m * 16 + lane / 4;
        if (row < tile_pixels) {
          *reinterpret_cast<unsigned*>(stage + (row * p.orow * 8 + col) * 2) =
              Mma<T>::pack(acc[0] + b0, acc[1] + b1);
        }
        if (row + 8 < tile_pixels) {
          *reinterpret_cast<unsigned*>(stage + ((row + 8) * p.orow * 8 + col) * 2) =
              Mma<T>::pack(acc[2] + b0, acc[3] + b1);
        }
      }
    }
    __syncthreads();
    std::int64_t n;
    int oy0, ox0;
    origin(tile, n, oy0, ox0);
    Walk w = walk(vectors, p.tw);
    if (w.active && g0 + w.column * 8 / p.cout_g < p.groups) {
      T* out = static_cast<T*>(a.out) + n * a.o0 + static_cast<std::int64_t>(g0) * p.cout_g +
               w.column * 8;
      for (; w.pixel < tile_pixels; advance(w, p.tw)) {
        const int oy = oy0 + w.y, ox = ox0 + w.x;
        if (oy < p.out_h && ox < p.out_w) {
          *reinterpret_cast<uint4*>(out + oy * a.o1 + ox * a.o2) =
              *reinterpret_cast<const uint4*>(stage + (w.pixel * p.orow + w.column) * 16);
        }
      }
    }
  }
}

struct WgradShape {
  std::int64_t n, k;
  int h, w, p, q;
  int r, s, sh, sw, dh, dw, pt, pl;
  int groups, cg, kg;
  int cp, ps, kp, kps, gt;
  int th, tw, halo_h, halo_w, tiles_h, tiles_w;
  int mpix;     // tile pixels rounded up to 16
  int m_tiles;  // m16 tiles of (tap, chunk) rows, the ones chunk included
  int mgroups;  // warp tiles along M per group
  int n_tiles;
  int units;    // warp tiles of the block
  int table_bytes, halo_bytes, dy_bytes;
  bool with_db;
  std::int64_t tiles, per_split, split_floats;
};

// Block (x, y): split x of the pixel tiles, groups y*gt..; writes split x's partial dw (and db)
// of those groups. Shared memory: a zero row and a ones row, the pixel offset table, two input
// windows, two dy tiles.
template <class T, int UNITS>
__global__ void __launch_bounds__(kThreads, 2)
    wgrad_kernel(WgradShape p, Image x, Image dy, float* partials) {
  extern __shared__ uint4 smem_vec[];
  unsigned char* smem = reinterpret_cast<unsigned char*>(smem_vec);
  const unsigned zero_row = shared_address(smem);
  const unsigned ones_row = zero_row + 16;
  int* pixel_offsets = reinterpret_cast<int*>(smem + kConstBytes);
  const unsigned halo_s = zero_row + static_cast<unsigned>(kConstBytes + p.table_bytes);
  const unsigned dy_s = halo_s + static_cast<unsigned>(2 * p.halo_bytes);
  if (threadIdx.x < 16) {
    reinterpret_cast<std::uint16_t*>(smem)[threadIdx.x] = threadIdx.x < 8 ? 0 : Mma<T>::one;
  }
  const int g0 = static_cast<int>(blockIdx.y) * p.gt;
  const int taps = p.r * p.s;
  const int x_chunks = taps * p.cp;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int halo_pixels = p.halo_h * p.halo_w;
  const int tile_pixels = p.th * p.tw;
  // Each tile pixel's place in the window, in 16-byte units (pixels past the tile: pixel 0; their
  // dy rows are zeros).
  for (int i = static_cast<int>(threadIdx.x); i < p.mpix; i += kThreads) {
    const int ty = i / p.tw;
    pixel_offsets[i] = i < tile_pixels ? (ty * p.sh * p.halo_w + (i - ty * p.tw) * p.sw) * p.ps : 0;
  }

  // The warp's tiles: group, filter tile, and per m16 tile the lane's ldmatrix row as an offset
  // in 16-byte units from its pixel in the window (-1: the zero row, -2: the ones row).
  int unit_g[UNITS], unit_nt[UNITS], unit_mt[UNITS], unit_m0[UNITS];
  int offset[UNITS][kWgradM];
  const int lane_chunk = (lane >> 3) & 1;
#pragma unroll
  for (int j = 0; j < UNITS; ++j) {
    const int u = warp + j * kWarps;
    const int per_group = p.mgroups * p.n_tiles;
    const int g = u / per_group;
    const int rest = u - g * per_group;
    unit_g[j] = g;
    unit_nt[j] = rest / p.mgroups;
    const int mg = rest - unit_nt[j] * p.mgroups;
    unit_m0[j] = mg * kWgradM;
    unit_mt[j] = u < p.units ? min(kWgradM, p.m_tiles - unit_m0[j]) : 0;
#pragma unroll
    for (int jm = 0; jm < kWgradM; ++jm) {
      const int q = 2 * (unit_m0[j] + jm) + lane_chunk;
      int o = -1;
      if (q < x_chunks) {
        const int tap = q / p.cp;
        const int r = tap / p.s;
        o = (r * p.dh * p.halo_w + (tap - r * p.s) * p.dw) * p.ps + (q - tap * p.cp);
      } else if (q == x_chunks && p.with_db) {
        o = -2;
      }
      offset[j][jm] = o;
    }
  }
  float acc[UNITS][kWgradM][4];
#pragma unroll
  for (int j = 0; j < UNITS; ++j) {
#pragma unroll
    for (int jm = 0; jm < kWgradM; ++jm) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[j][jm][e] = 0.0f;
    }
  }

  const Window wd{p.h, p.w, p.halo_h, p.halo_w, p.groups, p.gt, p.cg, p.cp, p.ps};
  const auto origin = [&](std::int64_t t, std::int64_t& n, int& oy0, int& ox0) {
    ox0 = static_cast<int>(t % p.tiles_w) * p.tw;
    t /= p.tiles_w;
    oy0 = static_cast<int>(t % p.tiles_h) * p.th;
    n = t / p.tiles_h;
  };
  const auto load = [&](std::int64_t t, int buffer) {
    std::int64_t n;
    int oy0, ox0;
    origin(t, n, oy0, ox0);
    stage_window<T>(x, n, oy0 * p.sh - p.pt, ox0 * p.sw - p.pl, g0, wd,
                    halo_s + static_cast<unsigned>(buffer * p.halo_bytes));
    // dy rows of the tile as [group][tile pixel][chunk]; pixels past the tile or the image and
    // groups past the last are zeros, so that they add nothing.
    Walk w = walk(p.gt * p.kp, p.tw);
    if (!w.active) return;
    const int g = w.column / p.kp;
    const int chunk = w.column - g * p.kp;
    const bool group_ok = g0 + g < p.groups;
    const T* base = static_cast<const T*>(dy.data);
    const T* image = base + n * dy.s0 + (static_cast<std::int64_t>(g0 + g) * p.kg + chunk * 8);
    unsigned to = dy_s + static_cast<unsigned>(buffer * p.dy_bytes +
                                               ((g * p.mpix + w.pixel) * p.kps + chunk) * 16);
    const unsigned to_step = static_cast<unsigned>(w.step * p.kps * 16);
    for (; w.pixel < p.mpix; advance(w, p.tw), to += to_step) {
      const int oy = oy0 + w.y, ox = ox0 + w.x;
      const bool ok = group_ok && w.pixel < tile_pixels && oy < p.p && ox < p.q;
      cp_async16(to, ok ? image + oy * dy.s1 + ox * dy.s2 : base, ok);
    }
  };

  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.x) * p.per_split;
  const std::int64_t end = min(p.tiles, begin + p.per_split);
  if (begin < end) load(begin, 0);
  cp_async_commit();
  for (std::int64_t tile = begin; tile < end; ++tile) {
    const int buffer = static_cast<int>((tile - begin) & 1);
    if (tile + 1 < end) load(tile + 1, buffer ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const unsigned halo = halo_s + static_cast<unsigned>(buffer * p.halo_bytes);
    const unsigned dyb = dy_s + static_cast<unsigned>(buffer * p.dy_bytes);
    // The lane's ldmatrix rows: pixel (lane % 8) + 8 (lane / 16) of each k step for x, pixel
    // lane % 16 for dy.
    const int lane_pixel = (lane & 7) + ((lane >> 4) << 3);
#pragma unroll
    for (int j = 0; j < UNITS; ++j) {
      if (unit_mt[j] == 0) continue;
      const unsigned halo_g = halo + static_cast<unsigned>(unit_g[j] * halo_pixels * p.ps * 16);
      const unsigned dy_g =
          dyb + static_cast<unsigned>(((unit_g[j] * p.mpix + (lane & 15)) * p.kps + unit_nt[j]) * 16);
      for (int ks = 0; ks < p.mpix / 16; ++ks) {
        unsigned bf[2];
        ldmatrix_x2_trans(dy_g + static_cast<unsigned>(ks * 16 * p.kps * 16), bf);
        const unsigned a_pixel =
            halo_g + static_cast<unsigned>(pixel_offsets[ks * 16 + lane_pixel] * 16);
#pragma unroll
        for (int jm = 0; jm < kWgradM; ++jm) {
          if (jm < unit_mt[j]) {
            const int o = offset[j][jm];
            const unsigned addr = o >= 0 ? a_pixel + static_cast<unsigned>(o * 16)
                                         : (o == -1 ? zero_row : ones_row);
            unsigned af[4];
            ldmatrix_x4_trans(addr, af);
            Mma<T>::k16(acc[j][jm], af, bf);
          }
        }
      }
    }
    __syncthreads();
  }

  float* out = partials + static_cast<std::int64_t>(blockIdx.x) * p.split_floats;
  const std::int64_t db_at = p.k * taps * p.cg;
#pragma unroll
  for (int j = 0; j < UNITS; ++j) {
    if (unit_mt[j] == 0 || g0 + unit_g[j] >= p.groups) continue;
    const std::int64_t k = static_cast<std::int64_t>(g0 + unit_g[j]) * p.kg + unit_nt[j] * 8 + 2 * (lane & 3);
#pragma unroll
    for (int jm = 0; jm < kWgradM; ++jm) {
      if (jm >= unit_mt[j]) continue;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int q = 2 * (unit_m0[j] + jm) + half;
        const float v0 = acc[j][jm][2 * half], v1 = acc[j][jm][2 * half + 1];
        if (q < x_chunks) {
          const int tap = q / p.cp;
          const int c = (q - tap * p.cp) * 8 + lane / 4;
          out[(k * taps + tap) * p.cg + c] = v0;
          out[((k + 1) * taps + tap) * p.cg + c] = v1;
        } else if (q == x_chunks && p.with_db && lane < 4) {
          out[db_at + k] = v0;
          out[db_at + k + 1] = v1;
        }
      }
    }
  }
}

// ---- host side ------------------------------------------------------------------------------

std::string str(std::int64_t v) { return std::to_string(v); }

int odd(int units) { return units | 1; }

std::int64_t round16(std::int64_t bytes) { return (bytes + 15) / 16 * 16; }

std::int64_t extent(std::int64_t tile, std::int64_t stride, std::int64_t kernel,
                    std::int64_t dilation) {
  return (tile - 1) * stride + (kernel - 1) * dilation + 1;
}

// A tile of about kTilePixels output pixels: whole rows when they are short, else equal parts of
// at most 32 columns; smaller until `bytes(th, tw)` fits in `limit`, nullopt if one pixel does not.
template <class Bytes>
std::optional<std::pair<int, int>> choose_tile(std::int64_t out_h, std::int64_t out_w,
                                               const Bytes& bytes, std::int64_t limit) {
  const std::int64_t parts = (out_w + 31) / 32;
  std::int64_t tw = (out_w + parts - 1) / parts;
  std::int64_t th = std::clamp<std::int64_t>(kTilePixels / tw, 1, out_h);
  while (bytes(th, tw) > limit) {
    if (th > 1) {
      th = (th + 1) / 2;
    } else if (tw > 1) {
      tw = (tw + 1) / 2;
    } else {
      return std::nullopt;
    }
  }
  return std::make_pair(static_cast<int>(th), static_cast<int>(tw));
}

// The tile and groups per block: the most groups (up to `most`) whose tile fits two blocks per
// multiprocessor, else one group in one block per multiprocessor.
template <class Bytes>
std::optional<std::pair<int, std::pair<int, int>>> choose_blocking(std::int64_t out_h,
                                                                   std::int64_t out_w, int most,
                                                                   const Bytes& bytes) {
  for (int gt = most; gt >= 1; --gt) {
    const auto fits = [&](std::int64_t th, std::int64_t tw) { return bytes(gt, th, tw); };
    if (auto tile = choose_tile(out_h, out_w, fits, kMaxShared)) return std::make_pair(gt, *tile);
  }
  const auto one = [&](std::int64_t th, std::int64_t tw) { return bytes(1, th, tw); };
  if (auto tile = choose_tile(out_h, out_w, one, kMaxSharedOneBlock)) return std::make_pair(1, *tile);
  return std::nullopt;
}

std::optional<std::string> type_rejects(const ConvProblem& p, DataType type) {
  if (p.x_type != type || p.w_type != type || p.y_type != type) {
    return "storage types x " + std::string(to_string(p.x_type)) + ", w " +
           std::string(to_string(p.w_type)) + ", y " + std::string(to_string(p.y_type)) +
           ": this kernel takes " + std::string(to_string(type)) + " for all three";
  }
  return std::nullopt;
}

std::optional<std::string> common_rejects(const ConvProblem& p) {
  if (p.groups == 1) return std::string("not grouped: groups = 1");
  if (p.c_per_group() % 8 != 0) {
    return "c / groups = " + str(p.c_per_group()) +
           ": must be a multiple of 8 (16-byte rows of one group's channels)";
  }
  if (p.k_per_group() % 8 != 0) {
    return "k / groups = " + str(p.k_per_group()) +
           ": must be a multiple of 8 (16-byte rows of one group's filters)";
  }
  constexpr std::int64_t side = std::int64_t{1} << 30;
  if (p.h >= side || p.w >= side || p.p >= side || p.q >= side) {
    return std::string("an image side reaches 2^30 (32-bit coordinates)");
  }
  if (p.c >= side || p.k >= side) {
    return std::string("c or k reaches 2^30 (32-bit channel indices)");
  }
  return std::nullopt;
}

// ---- fprop and dgrad ------------------------------------------------------------------------

// The problem as the kernel sees it: fprop, or stride-1 dgrad as an fprop over dy. The tile is
// chosen here, so rejects() and run() agree; `reason` says why there is none.
std::optional<ConvShape> conv_shape(const ConvProblem& p, bool dgrad, std::string* reason) {
  ConvShape s{};
  s.n = p.n;
  s.dgrad = dgrad;
  s.in_h = static_cast<int>(dgrad ? p.p : p.h);
  s.in_w = static_cast<int>(dgrad ? p.q : p.w);
  s.out_h = static_cast<int>(dgrad ? p.h : p.p);
  s.out_w = static_cast<int>(dgrad ? p.w : p.q);
  s.r = static_cast<int>(p.r), s.s = static_cast<int>(p.s);
  s.dh = p.dilation_h, s.dw = p.dilation_w;
  if (dgrad) {
    s.sh = s.sw = 1;
    s.pt = static_cast<int>((p.r - 1) * p.dilation_h - p.pad_top);
    s.pl = static_cast<int>((p.s - 1) * p.dilation_w - p.pad_left);
  } else {
    s.sh = p.stride_h, s.sw = p.stride_w;
    s.pt = p.pad_top, s.pl = p.pad_left;
  }
  s.groups = p.groups;
  const std::int64_t cin_g = dgrad ? p.k_per_group() : p.c_per_group();
  const std::int64_t cout_g = dgrad ? p.c_per_group() : p.k_per_group();
  // A pixel's channels of the block's groups are at most 256 16-byte units (one per thread).
  if (cin_g > 2048 || cout_g > 2048) {
    if (reason) {
      *reason = std::string(dgrad ? "k / groups = " : "c / groups = ") + str(cin_g) + ", " +
                (dgrad ? "c / groups = " : "k / groups = ") + str(cout_g) +
                ": this kernel takes at most 2048 channels per group";
    }
    return std::nullopt;
  }
  s.cin_g = static_cast<int>(cin_g);
  s.cout_g = static_cast<int>(cout_g);
  s.cp = s.cin_g / 8;
  s.ps = odd(s.cp);
  s.n_tiles = s.cout_g / 8;
  const std::int64_t chunks = p.r * p.s * s.cp;
  const std::int64_t wrow = chunks | 1;
  const auto bytes = [&](std::int64_t gt, std::int64_t th, std::int64_t tw) {
    const std::int64_t weights = gt * s.cout_g * wrow * 16;
    const std::int64_t halo =
        gt * extent(th, s.sh, s.r, s.dh) * extent(tw, s.sw, s.s, s.dw) * s.ps * 16;
    const std::int64_t stage = th * tw * odd(static_cast<int>(gt * s.cout_g / 8)) * 16;
    const std::int64_t tables = round16((chunks + (th * tw + 15) / 16 * 16) * 4);
    return weights + 2 * halo + stage + tables;
  };
  // 64 input channels a block (128 bytes a pixel), at most 2048 output channels.
  const int most = static_cast<int>(
      std::clamp<std::int64_t>(std::min(kBlockChannels / cin_g, 2048 / cout_g), 1, p.groups));
  const auto blocking = choose_blocking(s.out_h, s.out_w, most, bytes);
  if (!blocking) {
    if (reason) {
      *reason = "one output pixel's tile needs " + str(bytes(1, 1, 1)) +
                " bytes of shared memory (filters and input window), more than the " +
                str(kMaxSharedOneBlock) + " this kernel can use";
    }
    return std::nullopt;
  }
  s.gt = blocking->first;
  s.th = blocking->second.first, s.tw = blocking->second.second;
  s.wrow = static_cast<int>(wrow);
  s.orow = odd(s.gt * s.cout_g / 8);
  s.halo_h = static_cast<int>(extent(s.th, s.sh, s.r, s.dh));
  s.halo_w = static_cast<int>(extent(s.tw, s.sw, s.s, s.dw));
  s.tiles_h = (s.out_h + s.th - 1) / s.th;
  s.tiles_w = (s.out_w + s.tw - 1) / s.tw;
  s.tiles = p.n * s.tiles_h * s.tiles_w;
  s.m_tiles = (s.th * s.tw + 15) / 16;
  s.weight_bytes = static_cast<int>(std::int64_t{s.gt} * s.cout_g * wrow * 16);
  s.halo_bytes = static_cast<int>(std::int64_t{s.gt} * s.halo_h * s.halo_w * s.ps * 16);
  s.stage_bytes = s.th * s.tw * s.orow * 16;
  s.table_ints = static_cast<int>(chunks) + s.m_tiles * 16;
  const std::int64_t blocks_y = (p.groups + s.gt - 1) / s.gt;
  if (blocks_y > 65535) {
    if (reason) *reason = "groups / groups per block = " + str(blocks_y) + " exceeds the grid's 65535";
    return std::nullopt;
  }
  return s;
}

std::int64_t conv_shared_bytes(const ConvShape& s) {
  return std::int64_t{s.weight_bytes} + 2 * std::int64_t{s.halo_bytes} + s.stage_bytes +
         round16(std::int64_t{s.table_ints} * 4);
}

std::optional<std::string> conv_rejects(const ConvProblem& p, DataType type, bool dgrad) {
  if (auto reason = type_rejects(p, type)) return reason;
  if (auto reason = common_rejects(p)) return reason;
  if (dgrad && (p.stride_h != 1 || p.stride_w != 1)) {
    return "stride " + str(p.stride_h) + "x" + str(p.stride_w) +
           ": dgrad runs here at stride 1 only (the CUDA-core grouped kernel takes strided dgrad)";
  }
  std::string reason;
  if (!conv_shape(p, dgrad, &reason)) return reason;
  return std::nullopt;
}

// Blocks of `kernel` with `shared` bytes that fit on one multiprocessor at once.
int blocks_per_sm(const void* kernel, std::int64_t shared) {
  // Per call rather than once: the attributes belong to the current device.
  if (shared > 48 * 1024) {
    CONVGRAD_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(shared)));
  }
  CONVGRAD_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                           cudaSharedmemCarveoutMaxShared));
  int blocks = 0;
  CONVGRAD_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &blocks, kernel, kThreads, static_cast<std::size_t>(shared)));
  return std::max(blocks, 1);
}

bool vectors(const TensorView& v) { return special::vector_ok(v, 8); }

template <class T>
void conv_run(const ConvProblem& problem, const core::Operands& o, bool dgrad) {
  const TensorView& in = dgrad ? o.y : o.x;
  const TensorView& out = dgrad ? o.x : o.y;
  const std::optional<ConvShape> shape = conv_shape(problem, dgrad, nullptr);
  if (!shape) throw Unsupported("grouped tensor-core kernel run on a problem it rejects");
  const ConvShape& s = *shape;
  const bool bias = !dgrad && problem.with_bias && !o.b.empty();
  const ConvArgs args{{in.data, in.strides[0], in.strides[1], in.strides[2]},
                      out.data,
                      out.strides[0],
                      out.strides[1],
                      out.strides[2],
                      static_cast<const std::uint16_t*>(o.w.data),
                      o.w.strides[0],
                      o.w.strides[1],
                      o.w.strides[2],
                      o.w.strides[3],
                      !dgrad && vectors(o.w),
                      bias ? static_cast<const float*>(o.b.data) : nullptr,
                      bias ? o.b.strides[0] : 0};
  const std::int64_t shared = conv_shared_bytes(s);
  auto* kernel = conv_kernel<T>;
  const int per_sm = blocks_per_sm(reinterpret_cast<const void*>(kernel), shared);
  const std::int64_t blocks_y = (problem.groups + s.gt - 1) / s.gt;
  // One wave of blocks, each walking its share of the tiles.
  const std::int64_t blocks_x = std::clamp<std::int64_t>(
      std::int64_t{special::multiprocessors()} * per_sm / blocks_y, 1, s.tiles);
  kernel<<<dim3(static_cast<unsigned>(blocks_x), static_cast<unsigned>(blocks_y)), kThreads,
           static_cast<std::size_t>(shared), current_stream()>>>(s, args);
}

// ---- wgrad ----------------------------------------------------------------------------------

std::optional<WgradShape> wgrad_shape(const ConvProblem& p, bool with_db, std::string* reason) {
  WgradShape s{};
  s.n = p.n, s.k = p.k;
  s.h = static_cast<int>(p.h), s.w = static_cast<int>(p.w);
  s.p = static_cast<int>(p.p), s.q = static_cast<int>(p.q);
  s.r = static_cast<int>(p.r), s.s = static_cast<int>(p.s);
  s.sh = p.stride_h, s.sw = p.stride_w, s.dh = p.dilation_h, s.dw = p.dilation_w;
  s.pt = p.pad_top, s.pl = p.pad_left;
  s.groups = p.groups;
  s.with_db = with_db;
  // Rows of the M side: taps x channel chunks, and the ones chunk for db (always counted, so
  // that the tiling does not depend on the bias).
  const std::int64_t cp = p.c_per_group() / 8;
  const std::int64_t kp = p.k_per_group() / 8;
  const std::int64_t row_chunks = p.r * p.s * cp + 1;
  const std::int64_t m_tiles = (row_chunks + 1) / 2;
  const std::int64_t mgroups = (m_tiles + kWgradM - 1) / kWgradM;
  const std::int64_t per_group = mgroups * kp;
  if (per_group > kWarps * kMaxWarpTiles) {
    if (reason) {
      *reason = str(per_group) + " warp tiles of 80 x 8 per group (r x s x c / groups + 8 rows, " +
                "k / groups columns), more than the " + str(kWarps * kMaxWarpTiles) +
                " a block holds in registers";
    }
    return std::nullopt;
  }
  s.cg = static_cast<int>(p.c_per_group());
  s.kg = static_cast<int>(p.k_per_group());
  s.cp = static_cast<int>(cp), s.ps = odd(s.cp);
  s.kp = static_cast<int>(kp), s.kps = odd(s.kp);
  s.n_tiles = s.kp;
  s.m_tiles = static_cast<int>(m_tiles);
  s.mgroups = static_cast<int>(mgroups);
  const auto bytes = [&](std::int64_t gt, std::int64_t th, std::int64_t tw) {
    const std::int64_t halo =
        gt * extent(th, s.sh, s.r, s.dh) * extent(tw, s.sw, s.s, s.dw) * s.ps * 16;
    const std::int64_t mpix = (th * tw + 15) / 16 * 16;
    return kConstBytes + round16(mpix * 4) + 2 * (halo + gt * mpix * s.kps * 16);
  };
  const int most =
      static_cast<int>(std::clamp<std::int64_t>(kWarps / per_group, 1, p.groups));
  const auto blocking = choose_blocking(p.p, p.q, most, bytes);
  if (!blocking) {
    if (reason) {
      *reason = "one output pixel's tile needs " + str(bytes(1, 1, 1)) +
                " bytes of shared memory (input window and dy), more than the " +
                str(kMaxSharedOneBlock) + " this kernel can use";
    }
    return std::nullopt;
  }
  s.gt = blocking->first;
  s.th = blocking->second.first, s.tw = blocking->second.second;
  s.units = static_cast<int>(s.gt * per_group);
  s.halo_h = static_cast<int>(extent(s.th, s.sh, s.r, s.dh));
  s.halo_w = static_cast<int>(extent(s.tw, s.sw, s.s, s.dw));
  s.tiles_h = static_cast<int>((p.p + s.th - 1) / s.th);
  s.tiles_w = static_cast<int>((p.q + s.tw - 1) / s.tw);
  s.tiles = p.n * s.tiles_h * s.tiles_w;
  s.mpix = (s.th * s.tw + 15) / 16 * 16;
  s.table_bytes = static_cast<int>(round16(std::int64_t{s.mpix} * 4));
  s.halo_bytes = static_cast<int>(std::int64_t{s.gt} * s.halo_h * s.halo_w * s.ps * 16);
  s.dy_bytes = s.gt * s.mpix * s.kps * 16;
  const std::int64_t blocks_y = (p.groups + s.gt - 1) / s.gt;
  if (blocks_y > 65535) {
    if (reason) *reason = "groups / groups per block = " + str(blocks_y) + " exceeds the grid's 65535";
    return std::nullopt;
  }
  s.split_floats = p.k * p.r * p.s * s.cg + p.k;
  return s;
}

std::optional<std::string> wgrad_rejects(const ConvProblem& p, DataType type) {
  if (auto reason = type_rejects(p, type)) return reason;
  if (auto reason = common_rejects(p)) return reason;
  std::string reason;
  if (!wgrad_shape(p, true, &reason)) return reason;
  return std::nullopt;
}

template <class T>
void wgrad_run(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  const bool with_db = !o.b.empty();
  std::optional<WgradShape> shape = wgrad_shape(problem, with_db, nullptr);
  if (!shape) throw Unsupported("grouped tensor-core kernel run on a problem it rejects");
  WgradShape& s = *shape;
  const std::int64_t shared =
      kConstBytes + s.table_bytes + 2 * (std::int64_t{s.halo_bytes} + s.dy_bytes);
  auto* kernel = s.units > kWarps ? wgrad_kernel<T, 2> : wgrad_kernel<T, 1>;
  // At most two blocks per multiprocessor: more splits cost more in the reduction than they
  // gain (resnext50_grouped_3x3 on the H100: 1, 2, 4 blocks per SM took 48.6, 42.9, 47.7 us).
  const int per_sm = std::min(2, blocks_per_sm(reinterpret_cast<const void*>(kernel), shared));
  const std::int64_t blocks_y = (problem.groups + s.gt - 1) / s.gt;
  // One wave of blocks; each split of the tiles writes its own fp32 partials.
  std::int64_t splits = std::clamp<std::int64_t>(
      std::int64_t{special::multiprocessors()} * per_sm / blocks_y, 1, s.tiles);
  s.per_split = (s.tiles + splits - 1) / splits;
  splits = (s.tiles + s.per_split - 1) / s.per_split;
  float* partials = special::workspace(static_cast<std::size_t>(splits * s.split_floats));
  const Image x{o.x.data, o.x.strides[0], o.x.strides[1], o.x.strides[2]};
  const Image dy{o.y.data, o.y.strides[0], o.y.strides[1], o.y.strides[2]};
  kernel<<<dim3(static_cast<unsigned>(splits), static_cast<unsigned>(blocks_y)), kThreads,
           static_cast<std::size_t>(shared), current_stream()>>>(s, x, dy, partials);
  special::reduce_wgrad_partials(problem, o, partials, splits, s.split_floats, accumulate);
}

template <class F>
void with_type(DataType type, F&& f) {
  if (type == DataType::bfloat16) {
    f(__nv_bfloat16{});
  } else {
    f(__half{});
  }
}

}  // namespace

std::optional<std::string> grouped_tc_rejects_fprop_bf16(const ConvProblem& p) {
  return conv_rejects(p, DataType::bfloat16, false);
}
std::optional<std::string> grouped_tc_rejects_fprop_f16(const ConvProblem& p) {
  return conv_rejects(p, DataType::float16, false);
}
std::optional<std::string> grouped_tc_rejects_dgrad_bf16(const ConvProblem& p) {
  return conv_rejects(p, DataType::bfloat16, true);
}
std::optional<std::string> grouped_tc_rejects_dgrad_f16(const ConvProblem& p) {
  return conv_rejects(p, DataType::float16, true);
}
std::optional<std::string> grouped_tc_rejects_wgrad_bf16(const ConvProblem& p) {
  return wgrad_rejects(p, DataType::bfloat16);
}
std::optional<std::string> grouped_tc_rejects_wgrad_f16(const ConvProblem& p) {
  return wgrad_rejects(p, DataType::float16);
}

namespace {

using Rejects = std::optional<std::string> (*)(const ConvProblem&);
using Run = void (*)(const ConvProblem&, const core::Operands&, bool);

// Views the tensor cores cannot read: the CUDA-core grouped kernel where it takes the problem,
// else the direct one.
void fall_back(const ConvProblem& problem, const core::Operands& o, bool accumulate,
               Rejects grouped_rejects, Run grouped, Run direct) {
  (grouped_rejects(problem) ? direct : grouped)(problem, o, accumulate);
}

}  // namespace

void grouped_tc_fprop(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  if (!vectors(o.x) || !vectors(o.y)) {
    fall_back(problem, o, accumulate, grouped_rejects_fprop, grouped_fprop, fprop_direct);
    return;
  }
  with_type(problem.x_type, [&](auto tag) { conv_run<decltype(tag)>(problem, o, false); });
  finish_launches();
}

void grouped_tc_dgrad(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  if (!vectors(o.x) || !vectors(o.y)) {
    fall_back(problem, o, accumulate, grouped_rejects_dgrad, grouped_dgrad, dgrad_direct);
    return;
  }
  with_type(problem.x_type, [&](auto tag) { conv_run<decltype(tag)>(problem, o, true); });
  finish_launches();
}

void grouped_tc_wgrad(const ConvProblem& problem, const core::Operands& o, bool accumulate) {
  if (!vectors(o.x) || !vectors(o.y)) {
    fall_back(problem, o, accumulate, grouped_rejects_wgrad, grouped_wgrad, wgrad_direct);
    return;
  }
  with_type(problem.x_type, [&](auto tag) { wgrad_run<decltype(tag)>(problem, o, accumulate); });
  finish_launches();
}

}  // namespace convgrad::cuda
