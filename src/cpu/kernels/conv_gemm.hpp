// SPDX-License-Identifier: Apache-2.0
// Implicit-GEMM convolution on NHWC float32, all three directions, any stride, dilation, padding
// (negative included) and groups, ending in the register-blocked micro-kernel (ukernel.hpp).
//   fprop: rows = output pixels, columns = k, reduction over (r, s, c); filter blocks packed per
//          thread as [r][s][c][k lanes] (pack_weights.hpp).
//   dgrad: rows = dx pixels of one stride phase, columns = c, reduction over the taps that reach
//          that phase and k; the inserted zeros of a strided convolution are never visited.
//          Filter blocks packed per thread as [r][s][k][c lanes].
//   Both run on grid_gemm: the output grid of a phase is cut into rectangles with the same taps
//   inside the image (the interior, the border columns, the top and bottom rows), each tiled so
//   that no pixel runs alone through the micro-kernel.
//   wgrad: rows = k, columns = c, one GEMM per tap over the pixels, in pixel chunks that fit L2.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#include "convgrad/problem.hpp"
#include "core/operands.hpp"
#include "core/parallel.hpp"
#include "cpu/kernels/pack_weights.hpp"
#include "cpu/kernels/ukernel.hpp"
#include "cpu/operand_io.hpp"

namespace convgrad::cpu::kern {

static inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
static inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return -floor_div(-a, b); }

/// Vectors of the register tile for `cols` output columns. Four where 32 registers leave room for
/// six rows beside them: each reduction step then feeds 24 FMAs from 4 loads of B and 6
/// broadcasts of A (14 x 2: 28 FMAs from 16), A is read once per 64 columns, and six rows of A a
/// multiple of 4 KiB apart (1x1 fprop with c = 1024 or 2048) still fit one 8-way L1 set, where 14
/// evict each other (measured on L1-resident data: 97% of peak against 55%).
template <class V>
constexpr int vectors_for(std::int64_t cols) {
  return cols <= V::lanes ? 1 : (cols <= 2 * V::lanes || V::registers < 32) ? 2 : 4;
}

/// One filter tap along one axis of an output grid: grid point i reads A at i * a_step + off,
/// which lies inside the image for i in [lo, hi) (empty when the tap never reaches this phase).
struct AxisTap {
  std::int64_t off, lo, hi;
};

/// One axis (rows or columns) of an output grid: the pixels of one stride phase of dx (dgrad) or
/// all of y (fprop).
struct Axis {
  std::int64_t size = 0;    ///< grid points
  std::int64_t a_step = 0;  ///< A elements between neighbouring grid points
  std::int64_t c_step = 0;  ///< C elements between neighbouring grid points
  std::int64_t c_off = 0;   ///< C elements before grid point 0 (the phase)
  AxisTap* taps = nullptr;  ///< one per filter row (column)
};

/// Where B lives: tap (r, s), reduction index l at base + r * r_step + s * s_step + l * ls.
struct BSource {
  const float* base;
  std::int64_t r_step, s_step, ls;
  const float* bias;  ///< nb values (Init::bias)
};

/// Intervals of [begin, end) on which the same taps of `axis` are inside the image: the sorted
/// distinct values of begin, end and every lo and hi between them, written to `cuts`.
static inline std::int64_t axis_cuts(const Axis& axis, std::int64_t taps, std::int64_t begin,
                                     std::int64_t end, std::int64_t* cuts) {
  std::int64_t count = 0;
  cuts[count++] = begin;
  cuts[count++] = end;
  for (std::int64_t t = 0; t < taps; ++t) {
    for (const std::int64_t v : {axis.taps[t].lo, axis.taps[t].hi}) {
      if (v > begin && v < end) cuts[count++] = v;
    }
  }
  std::sort(cuts, cuts + count);
  return std::unique(cuts, cuts + count) - cuts;
}

/// Floats of B that one tile's A rows are run against before the next tile: the column blocks of
/// a group (half of a 1 MiB L2; 256 KiB measured 3% slower on unet_decoder_3x3 dgrad).
constexpr std::int64_t kGroupFloats = 128 << 10;

/// Floats of B per slice of the reduction, which every tile of an item runs before the next
/// slice; accumulators are stored and reloaded between slices. Packed B streams well from L2, so
/// a slice is sized for L2, not L1: with 384 KiB deeplab_aspp_dilated dgrad (AVX-512) took 43-47
/// ms against 49-52 ms with 32 KiB, and resnet50_res4_3x3 fprop (AVX2) 4.7-4.8 ms against 5.0.
constexpr std::int64_t kSliceFloats = 96 << 10;

/// The shape of an implicit GEMM over output grids, as fprop and dgrad describe it.
struct GridGemm {
  std::int64_t images = 1, groups = 1;
  std::int64_t cols = 1;  ///< C columns per group (k for fprop, c for dgrad)
  std::int64_t len = 1;   ///< reduction per tap (c per group for fprop, k per group for dgrad)
  std::int64_t r = 1, s = 1;
  std::int64_t phases_h = 1, phases_w = 1;
  std::int64_t rows_max = 1, cols_max = 1;  ///< the largest phase's grid
  Init init = Init::zero;
};

/// Runs an implicit GEMM over the output grid of every (column block, image, stride phase).
/// `axes(ph, pw, rows, cols)` fills the two axes of a phase; `a_image(n, g)` is A of image n and
/// group g at channel 0, `c_image(n, g, col0)` C's first element of a column block;
/// `b_source(gc_first, gc_last)` prepares (packs) the blocks a thread will use and
/// `b_block(prepared, gc)` is one block's BSource.
///
/// Work is split into items (group of column blocks, image, phase, block of grid rows, piece of
/// the columns), one parallel region per call (waking the pool costs tens of microseconds on
/// this project's VM), contiguous runs of items per thread, so that a thread's items share B
/// blocks. Each item is cut into cells, rectangles of the grid on which the same taps are inside
/// the image; a cell runs as tiles along its rows (the interior) or along its columns (the border
/// columns, where a row of tiles would be one pixel wide), so that no pixel runs a one-row tile.
/// Each tile runs every column block of its group in turn while its A rows are in L1, so that A
/// is read once per group of blocks rather than once per block.
template <class V, class Axes, class AImage, class CImage, class Prepare, class Block>
void grid_gemm(const GridGemm& gg, const Axes& axes, const AImage& a_image, const CImage& c_image,
               const Prepare& b_source, const Block& b_block) {
  constexpr int L = V::lanes;
  const int nv = vectors_for<V>(gg.cols);
  const std::int64_t nb = nv * L, blocks = ceil_div(gg.cols, nb);
  const int mmax = max_rows<V>(nv);
  const std::int64_t taps = gg.r * gg.s;
  // Groups of column blocks, as many blocks each as keep their B rows within an L2 budget, and
  // of equal sizes (within one), so that items cost alike.
  const std::int64_t block_floats = taps * gg.len * nb;
  const std::int64_t group_max =
      std::clamp<std::int64_t>(kGroupFloats / std::max<std::int64_t>(block_floats, 1), 1, blocks);
  const std::int64_t col_groups = ceil_div(blocks, group_max);
  // The reduction in units of (tap, chunk of len), and slices of units; accumulators are stored
  // and reloaded between slices.
  const std::int64_t chunk = std::clamp<std::int64_t>(kSliceFloats / nb, 1, gg.len);
  const std::int64_t chunks = ceil_div(gg.len, chunk), units = taps * chunks;
  const std::int64_t per_slice = std::max<std::int64_t>(1, kSliceFloats / (chunk * nb));
  const std::int64_t slices = ceil_div(units, per_slice);
  // Items: enough for every thread to have several, rows before columns.
  const std::int64_t base_items = gg.groups * col_groups * gg.images * gg.phases_h * gg.phases_w;
  const std::int64_t want = 8 * core::num_threads();
  const std::int64_t row_blocks =
      std::clamp<std::int64_t>(ceil_div(want, base_items), 1, ceil_div(gg.rows_max, mmax));
  const std::int64_t col_pieces =
      base_items * row_blocks >= want
          ? 1
          : std::clamp<std::int64_t>(ceil_div(want, base_items * row_blocks), 1,
                                     ceil_div(gg.cols_max, 2 * mmax));
  const std::int64_t items = base_items * row_blocks * col_pieces;
  const std::int64_t per_cg = items / (gg.groups * col_groups);
  // Column blocks (g * blocks + block) of an item's group.
  const auto first_block = [&](std::int64_t item) {
    const std::int64_t cgi = item / per_cg;
    return (cgi / col_groups) * blocks + blocks * (cgi % col_groups) / col_groups;
  };
  const auto last_block = [&](std::int64_t item) {
    const std::int64_t cgi = item / per_cg;
    return (cgi / col_groups) * blocks + blocks * (cgi % col_groups + 1) / col_groups - 1;
  };

  core::parallel_for(items, [&](std::int64_t begin, std::int64_t end) {
    const auto prepared = b_source(first_block(begin), last_block(end - 1));
    // Per-thread tables: row and column taps, cuts, one slice's segments.
    constexpr std::int64_t kWords = sizeof(std::int64_t) / sizeof(float);
    const std::int64_t words = kWords * (3 * (gg.r + gg.s) + 2 * (gg.r + gg.s) + 8) +
                               units * static_cast<std::int64_t>(sizeof(Segment) / sizeof(float));
    auto* table = reinterpret_cast<std::int64_t*>(scratch(Scratch::segments, words));
    Axis rows, cols;
    rows.taps = reinterpret_cast<AxisTap*>(table);
    cols.taps = rows.taps + gg.r;
    std::int64_t* row_cuts = reinterpret_cast<std::int64_t*>(cols.taps + gg.s);
    std::int64_t* col_cuts = row_cuts + 2 * gg.r + 4;
    Segment* segs = reinterpret_cast<Segment*>(col_cuts + 2 * gg.s + 4);
    std::int64_t phase = -1;
    Tile t{0, 0, 0, 1, 0, nullptr, 0, gg.init, nullptr, 0, false};

    for (std::int64_t item = begin; item < end; ++item) {
      std::int64_t rest = item;
      const std::int64_t piece = rest % col_pieces;
      rest /= col_pieces;
      const std::int64_t rb = rest % row_blocks;
      rest /= row_blocks;
      const std::int64_t pw = rest % gg.phases_w;
      rest /= gg.phases_w;
      const std::int64_t ph = rest % gg.phases_h;
      rest /= gg.phases_h;
      const std::int64_t n = rest % gg.images;
      const std::int64_t g = rest / gg.images / col_groups;
      const std::int64_t gc_begin = first_block(item), gc_end = last_block(item) + 1;
      if (ph * gg.phases_w + pw != phase) {
        phase = ph * gg.phases_w + pw;
        axes(ph, pw, rows, cols);
      }
      const std::int64_t i0 = rows.size * rb / row_blocks, i1 = rows.size * (rb + 1) / row_blocks;
      const std::int64_t j0 = cols.size * piece / col_pieces;
      const std::int64_t j1 = cols.size * (piece + 1) / col_pieces;
      if (i0 >= i1 || j0 >= j1) continue;
      const std::int64_t nrc = axis_cuts(rows, gg.r, i0, i1, row_cuts);
      const std::int64_t ncc = axis_cuts(cols, gg.s, j0, j1, col_cuts);
      const float* a_img = a_image(n, g);
      const std::int64_t col_begin = (gc_begin - g * blocks) * nb;
      float* c_img = c_image(n, g, col_begin) + rows.c_off + cols.c_off;
      const BSource b = b_block(prepared, gc_begin);
      t.b_ls = b.ls;
      // One tile, every column block of the group: B and the output columns move by block.
      const auto run = [&](int m, const Segment* sg, std::int64_t count, float* c) {
        const UkernelFn fn = ukernel_for<V>(nv, m);
        for (std::int64_t gc = gc_begin; gc < gc_end; ++gc) {
          const BSource bg = b_block(prepared, gc);
          const std::int64_t col0 = (gc - g * blocks) * nb;
          t.b_off = bg.base - b.base;
          t.bias = bg.bias;
          t.c = c + (col0 - col_begin);
          t.active = static_cast<int>(std::min(nb, gg.cols - col0));
          fn(sg, count, t);
        }
      };
      for (std::int64_t slice = 0; slice < slices; ++slice) {
        const std::int64_t u_begin = slice * per_slice;
        const std::int64_t u_end = std::min(units, u_begin + per_slice);
        t.init = slice == 0 ? gg.init : Init::load;
        for (std::int64_t ri = 0; ri + 1 < nrc; ++ri) {
          const std::int64_t ia = row_cuts[ri], ib = row_cuts[ri + 1];
          for (std::int64_t ci = 0; ci + 1 < ncc; ++ci) {
            const std::int64_t ja = col_cuts[ci], jb = col_cuts[ci + 1];
            // The cell's segments in this slice, A at the cell's first pixel; adjacent ones
            // (the S taps of a filter row when they are adjacent in x) merged.
            std::int64_t nseg = 0;
            for (std::int64_t u = u_begin; u < u_end; ++u) {
              const std::int64_t rs = u / chunks, k0 = (u % chunks) * chunk;
              const std::int64_t r = rs / gg.s, s = rs % gg.s;
              const AxisTap& rt = rows.taps[r];
              const AxisTap& ct = cols.taps[s];
              if (rt.lo > ia || rt.hi < ib || ct.lo > ja || ct.hi < jb) continue;
              const std::int64_t kl = std::min(chunk, gg.len - k0);
              const float* a = a_img + (rt.off + ia * rows.a_step + ct.off + ja * cols.a_step + k0);
              const float* bp = b.base + (r * b.r_step + s * b.s_step + k0 * b.ls);
              if (nseg > 0) {
                Segment& last = segs[nseg - 1];
                if (last.a + last.len == a && last.b + last.len * b.ls == bp) {
                  last.len += kl;
                  continue;
                }
              }
              segs[nseg++] = {a, bp, kl};
            }
            if (nseg == 0 && slice > 0) continue;
            const std::int64_t h = ib - ia, w = jb - ja;
            const std::int64_t along_rows = ceil_div(w, mmax), along_cols = ceil_div(h, mmax);
            float* c_cell = c_img + ia * rows.c_step + ja * cols.c_step;
            if (w * along_cols < h * along_rows) {
              // Tiles down the columns: a narrow cell (border columns).
              t.a_ms = rows.a_step;
              t.c_ms = rows.c_step;
              for (std::int64_t j = 0; j < w; ++j) {
                for (std::int64_t q = 0; q < along_cols; ++q) {
                  const std::int64_t m0 = h * q / along_cols, m1 = h * (q + 1) / along_cols;
                  t.a_off = m0 * rows.a_step + j * cols.a_step;
                  run(static_cast<int>(m1 - m0), segs, nseg,
                      c_cell + m0 * rows.c_step + j * cols.c_step);
                }
              }
            } else {
              // Equal tiles along the rows: 56 pixels run as 4 x 14 rather than 24 + 24 + 8.
              t.a_ms = cols.a_step;
              t.c_ms = cols.c_step;
              for (std::int64_t i = 0; i < h; ++i) {
                for (std::int64_t q = 0; q < along_rows; ++q) {
                  const std::int64_t m0 = w * q / along_rows, m1 = w * (q + 1) / along_rows;
                  t.a_off = i * rows.a_step + m0 * cols.a_step;
                  run(static_cast<int>(m1 - m0), segs, nseg,
                      c_cell + i * rows.c_step + m0 * cols.c_step);
                }
              }
            }
          }
        }
      }
    }
  });
}

template <class V>
void fprop_gemm(const ConvProblem& p, const core::Operands& o) {
  constexpr int L = V::lanes;
  const std::int64_t cg = p.c_per_group(), kg = p.k_per_group();
  const std::int64_t nb = vectors_for<V>(kg) * L, kblocks = ceil_div(kg, nb);
  const std::int64_t taps = p.r * p.s, wblock = taps * cg * nb;
  const bool with_bias = p.with_bias && !o.b.empty();
  const bool float_rows = o.w.type == DataType::float32 && o.w.strides[3] == 1;
  const ImageF32 x = input_f32(o.x, Scratch::input_a);
  const OutputF32 out = output_f32(o.y, Scratch::output);
  const ImageF32& y = out.image;

  GridGemm gg;
  gg.images = p.n;
  gg.groups = p.groups;
  gg.cols = kg;
  gg.len = cg;
  gg.r = p.r;
  gg.s = p.s;
  gg.rows_max = p.p;
  gg.cols_max = p.q;
  gg.init = with_bias ? Init::bias : Init::zero;
  // Output pixel (i, j) reads x at row i * stride_h - pad_top + r * dilation_h; tap r is inside
  // for the i where that row is in [0, h).
  auto axes = [&](std::int64_t, std::int64_t, Axis& rows, Axis& cols) {
    const auto fill = [](Axis& a, std::int64_t size, std::int64_t in, std::int64_t taps_n,
                         std::int64_t stride, std::int64_t pad, std::int64_t dilation,
                         std::int64_t x_step, std::int64_t y_step) {
      a.size = size;
      a.a_step = stride * x_step;
      a.c_step = y_step;
      a.c_off = 0;
      for (std::int64_t t = 0; t < taps_n; ++t) {
        const std::int64_t shift = t * dilation - pad;
        const std::int64_t lo = std::clamp<std::int64_t>(ceil_div(-shift, stride), 0, size);
        const std::int64_t hi =
            std::clamp<std::int64_t>(floor_div(in - 1 - shift, stride) + 1, lo, size);
        a.taps[t] = {shift * x_step, lo, hi};
      }
    };
    fill(rows, p.p, p.h, p.r, p.stride_h, p.pad_top, p.dilation_h, x.s[1], y.s[1]);
    fill(cols, p.q, p.w, p.s, p.stride_w, p.pad_left, p.dilation_w, x.s[2], y.s[2]);
  };
  auto a_image = [&](std::int64_t n, std::int64_t g) -> const float* {
    return x.data + n * x.s[0] + g * cg;
  };
  auto c_image = [&](std::int64_t n, std::int64_t g, std::int64_t k0) {
    return y.data + n * y.s[0] + g * kg + k0;
  };
  // Each thread packs the filter blocks of its own items, [r][s][c][nb lanes of k] then nb bias
  // values, into its own scratch.
  auto prepare = [&](std::int64_t gk_first, std::int64_t gk_last) {
    float* packed = scratch(Scratch::packed_weights, (gk_last - gk_first + 1) * (wblock + nb));
    for (std::int64_t gk = gk_first; gk <= gk_last; ++gk) {
      const std::int64_t k0 = (gk / kblocks) * kg + (gk % kblocks) * nb;
      const std::int64_t width = std::min(nb, kg - (gk % kblocks) * nb);
      float* dst = packed + (gk - gk_first) * (wblock + nb);
      if (float_rows) {
        const float* w = static_cast<const float*>(o.w.data) + o.w.offset(k0, 0, 0, 0);
        const std::int64_t tap_step = o.w.strides[2];
        if (o.w.strides[1] == p.s * tap_step) {
          pack_transposed<V>(w, o.w.strides[0], taps, tap_step, cg, width, nb, dst);
        } else {
          for (std::int64_t r = 0; r < p.r; ++r) {
            pack_transposed<V>(w + r * o.w.strides[1], o.w.strides[0], p.s, tap_step, cg, width, nb,
                               dst + r * p.s * cg * nb);
          }
        }
      } else {
        for (std::int64_t rs = 0; rs < taps; ++rs) {
          for (std::int64_t c = 0; c < cg; ++c) {
            float* d = dst + (rs * cg + c) * nb;
            for (std::int64_t j = 0; j < nb; ++j) {
              d[j] = j < width ? load_view(o.w, k0 + j, rs / p.s, rs % p.s, c) : 0.0f;
            }
          }
        }
      }
      float* bias = dst + wblock;
      for (std::int64_t j = 0; j < nb; ++j) {
        bias[j] = with_bias && j < width ? load_view(o.b, k0 + j, 0, 0, 0) : 0.0f;
      }
    }
    return std::pair<const float*, std::int64_t>{packed, gk_first};
  };
  auto block = [&](const std::pair<const float*, std::int64_t>& prepared, std::int64_t gk) {
    const float* base = prepared.first + (gk - prepared.second) * (wblock + nb);
    return BSource{base, p.s * cg * nb, cg * nb, nb, base + wblock};
  };
  grid_gemm<V>(gg, axes, a_image, c_image, prepare, block);
  finish_output(out, o.y, false);
}

template <class V>
void dgrad_gemm(const ConvProblem& p, const core::Operands& o) {
  constexpr int L = V::lanes;
  const std::int64_t cg = p.c_per_group(), kg = p.k_per_group();
  const std::int64_t nb = vectors_for<V>(cg) * L, cblocks = ceil_div(cg, nb);
  const std::int64_t taps = p.r * p.s, wblock = taps * kg * nb;
  const ImageF32 wk = input_f32(o.w, Scratch::input_b);
  const ImageF32 dy = input_f32(o.y, Scratch::input_a);
  const OutputF32 out = output_f32(o.x, Scratch::output);
  const ImageF32& dx = out.image;

  GridGemm gg;
  gg.images = p.n;
  gg.groups = p.groups;
  gg.cols = cg;
  gg.len = kg;
  gg.r = p.r;
  gg.s = p.s;
  gg.phases_h = std::min<std::int64_t>(p.stride_h, p.h);
  gg.phases_w = std::min<std::int64_t>(p.stride_w, p.w);
  gg.rows_max = ceil_div(p.h, p.stride_h);
  gg.cols_max = ceil_div(p.w, p.stride_w);
  gg.init = Init::zero;
  // dx pixels ph + stride * i of one phase read, through the taps r with
  // (ph + pad - r * dilation) % stride == 0, dy rows i + (ph + pad - r * dilation) / stride: the
  // inserted zeros of a strided convolution are never visited.
  auto axes = [&](std::int64_t ph, std::int64_t pw, Axis& rows, Axis& cols) {
    const auto fill = [](Axis& a, std::int64_t phase, std::int64_t in, std::int64_t out_size,
                         std::int64_t taps_n, std::int64_t stride, std::int64_t pad,
                         std::int64_t dilation, std::int64_t dy_step, std::int64_t dx_step) {
      a.size = ceil_div(in - phase, stride);
      a.a_step = dy_step;
      a.c_step = stride * dx_step;
      a.c_off = phase * dx_step;
      for (std::int64_t t = 0; t < taps_n; ++t) {
        const std::int64_t th = phase + pad - t * dilation;
        const std::int64_t base = floor_div(th, stride);
        if (th != base * stride) {
          a.taps[t] = {0, 0, 0};
          continue;
        }
        const std::int64_t lo = std::clamp<std::int64_t>(-base, 0, a.size);
        const std::int64_t hi = std::clamp<std::int64_t>(out_size - base, lo, a.size);
        a.taps[t] = {base * dy_step, lo, hi};
      }
    };
    fill(rows, ph, p.h, p.p, p.r, p.stride_h, p.pad_top, p.dilation_h, dy.s[1], dx.s[1]);
    fill(cols, pw, p.w, p.q, p.s, p.stride_w, p.pad_left, p.dilation_w, dy.s[2], dx.s[2]);
  };
  auto a_image = [&](std::int64_t n, std::int64_t g) -> const float* {
    return dy.data + n * dy.s[0] + g * kg;
  };
  auto c_image = [&](std::int64_t n, std::int64_t g, std::int64_t c0) {
    return dx.data + n * dx.s[0] + g * cg + c0;
  };
  // B rows w[k][r][s][c0 .. c0 + nb) lie r*s*c floats apart in KRSC; each thread copies the
  // blocks of its own items into [r][s][k][nb], one stream (lanes past c zero). Read in place,
  // AVX2's 64-byte rows ran resnet50_res5_1x1_reduce dgrad in 7.5 ms against 5.7 ms packed, and
  // AVX-512's deeplab_aspp_dilated in 44-45 ms against 41-42 ms.
  auto prepare = [&](std::int64_t gc_first, std::int64_t gc_last) {
    float* packed = scratch(Scratch::packed_weights, (gc_last - gc_first + 1) * wblock);
    for (std::int64_t gc = gc_first; gc <= gc_last; ++gc) {
      const std::int64_t g = gc / cblocks, c0 = (gc % cblocks) * nb;
      const int width = static_cast<int>(std::min(nb, cg - c0));
      float* dst = packed + (gc - gc_first) * wblock;
      for (std::int64_t rs = 0; rs < taps; ++rs) {
        for (std::int64_t k = 0; k < kg; ++k) {
          const float* src = wk.data + wk.at(g * kg + k, rs / p.s, rs % p.s) + c0;
          float* d = dst + (rs * kg + k) * nb;
          for (int v = 0; v < nb; v += L) V::store(d + v, V::load(src + v, V::first(width - v)));
        }
      }
    }
    return std::pair<const float*, std::int64_t>{packed, gc_first};
  };
  auto block = [&](const std::pair<const float*, std::int64_t>& prepared, std::int64_t gc) {
    const float* base = prepared.first + (gc - prepared.second) * wblock;
    return BSource{base, p.s * kg * nb, kg * nb, nb, nullptr};
  };
  grid_gemm<V>(gg, axes, a_image, c_image, prepare, block);
  finish_output(out, o.x, false);
}

/// db[k] = sum of dy over n, p, q (float32 view), added to db when `accumulate`. Summed in double:
/// db is often a small difference of large sums, and in accumulate mode it is added to a value of
/// similar size, so float32 partial sums would show in its relative error.
template <class V>
void bias_gradient(const ConvProblem& p, const ImageF32& dy, const TensorView& db,
                   bool accumulate) {
  constexpr int L = V::lanes;
  const std::int64_t chunks = ceil_div(p.k, L);
  core::parallel_for(chunks, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t ch = begin; ch < end; ++ch) {
      const auto mask = V::first(static_cast<int>(std::min<std::int64_t>(L, p.k - ch * L)));
      typename V::Wide sum[2] = {V::wide_zero(), V::wide_zero()};
      for (std::int64_t n = 0; n < p.n; ++n) {
        for (std::int64_t oh = 0; oh < p.p; ++oh) {
          const float* row = dy.data + dy.at(n, oh, 0) + ch * L;
          for (std::int64_t ow = 0; ow < p.q; ++ow) {
            sum[ow & 1] = V::wide_add(sum[ow & 1], V::load(row + ow * dy.s[2], mask));
          }
        }
      }
      double lanes[2][L];
      V::wide_store(lanes[0], sum[0]);
      V::wide_store(lanes[1], sum[1]);
      for (std::int64_t j = 0; j < std::min<std::int64_t>(L, p.k - ch * L); ++j) {
        float* dst = static_cast<float*>(db.data) + (ch * L + j) * db.strides[0];
        const double total = lanes[0][j] + lanes[1][j];
        *dst = static_cast<float>(accumulate ? *dst + total : total);
      }
    }
  });
}

template <class V>
void wgrad_gemm(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  constexpr int L = V::lanes;
  const std::int64_t groups = p.groups, cg = p.c_per_group(), kg = p.k_per_group();
  const int nv = cg <= L ? 1 : cg <= 2 * L ? 2 : 4;
  const std::int64_t nb = nv * L, cblocks = ceil_div(cg, nb);
  const int mmax = max_rows<V>(nv);
  const std::int64_t ktiles = ceil_div(kg, mmax), taps = p.r * p.s;
  const ImageF32 x = input_f32(o.x, Scratch::input_a);
  const ImageF32 dy = input_f32(o.y, Scratch::input_b);
  const OutputF32 out = output_f32(o.w, Scratch::output);
  const ImageF32& dw = out.image;
  const bool add_in_place = accumulate && out.in_place;

  // Per tap, the pixel runs of every output row whose input pixels are inside the image, cut
  // into pieces of at most `piece` pixels so that a chunk of pieces stays in L2 for all tiles.
  constexpr std::int64_t piece = 256;
  const std::int64_t per_row = ceil_div(p.q, piece);
  const std::int64_t runs = p.n * p.p * per_row;
  Segment* table = reinterpret_cast<Segment*>(
      scratch(Scratch::table, taps * runs * static_cast<std::int64_t>(sizeof(Segment) / 4 + 1)));
  core::parallel_for(taps, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t rs = begin; rs < end; ++rs) {
      const std::int64_t r = rs / p.s, s = rs % p.s;
      const std::int64_t off = p.pad_left - s * p.dilation_w;
      const std::int64_t lo = std::max<std::int64_t>(0, ceil_div(off, p.stride_w));
      const std::int64_t hi = std::min<std::int64_t>(p.q, floor_div(p.w - 1 + off, p.stride_w) + 1);
      Segment* dst = table + rs * runs;
      for (std::int64_t np = 0; np < p.n * p.p; ++np) {
        const std::int64_t n = np / p.p, oh = np % p.p;
        const std::int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
        const bool valid = ih >= 0 && ih < p.h && hi > lo;
        for (std::int64_t i = 0; i < per_row; ++i) {
          const std::int64_t a = std::max(lo, i * piece), b = std::min(hi, (i + 1) * piece);
          Segment& sg = dst[np * per_row + i];
          if (!valid || b <= a) {
            sg = {dy.data, x.data, 0};
            continue;
          }
          sg = {dy.data + dy.at(n, oh, a), x.data + x.at(n, ih, a * p.stride_w - off), b - a};
        }
      }
    }
  });

  // Chunks of runs sized so that their x and dy rows (about 512 KiB) stay in L2 across tiles.
  const std::int64_t bytes_per_run = std::min(piece, p.q) * (p.c + p.k) * 4;
  const std::int64_t chunk =
      std::max<std::int64_t>(1, (512 << 10) / std::max<std::int64_t>(bytes_per_run, 1));
  const std::int64_t tiles = groups * ktiles * cblocks * taps;
  core::parallel_for(tiles, [&](std::int64_t begin, std::int64_t end) {
    Tile t{0, 0, 1, dy.s[2], p.stride_w * x.s[2], nullptr, 0, Init::zero, nullptr, 0, true};
    for (std::int64_t c0 = 0; c0 < std::max<std::int64_t>(runs, 1); c0 += chunk) {
      const std::int64_t count = std::max<std::int64_t>(0, std::min(chunk, runs - c0));
      for (std::int64_t tile = begin; tile < end; ++tile) {
        // Taps innermost in the numbering: consecutive tiles of one thread share dy columns.
        const std::int64_t rs = tile % taps;
        const std::int64_t cb = (tile / taps) % cblocks;
        const std::int64_t kt = (tile / taps / cblocks) % ktiles;
        const std::int64_t g = tile / taps / cblocks / ktiles;
        const std::int64_t k_begin = kg * kt / ktiles, k_end = kg * (kt + 1) / ktiles;
        t.a_off = g * kg + k_begin;
        t.b_off = g * cg + cb * nb;
        t.active = static_cast<int>(std::min(nb, cg - cb * nb));
        t.c = dw.data + dw.at(g * kg + k_begin, rs / p.s, rs % p.s) + cb * nb;
        t.c_ms = dw.s[0];
        t.init = c0 > 0 || add_in_place ? Init::load : Init::zero;
        ukernel_for<V>(nv, static_cast<int>(k_end - k_begin))(table + rs * runs + c0, count, t);
      }
    }
  });
  finish_output(out, o.w, accumulate);
  if (p.with_bias && !o.b.empty()) bias_gradient<V>(p, dy, o.b, accumulate);
}

}  // namespace convgrad::cpu::kern
