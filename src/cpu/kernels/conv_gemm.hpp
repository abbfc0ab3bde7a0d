// SPDX-License-Identifier: Apache-2.0
// Implicit-GEMM convolution on NHWC float32, all three directions, any stride, dilation, padding
// (negative included) and groups. Each output row is cut into border pixels, whose taps must be
// checked one by one, and an interior where every tap is in range and tiles of up to
// max_rows pixels run the register-blocked micro-kernel with one segment per filter tap.
//   fprop: rows = output pixels, columns = k, reduction over (r, s, c); weights packed
//   [r][s][c][k]. dgrad: rows = dx pixels of one stride phase, columns = c, reduction over the taps
//   that reach
//          that phase and k; the inserted zeros of a strided convolution are never visited.
//   wgrad: rows = k, columns = c, one GEMM per tap over the pixels, in pixel chunks that fit L2.
#pragma once

#include <algorithm>
#include <cstdint>

#include "convgrad/problem.hpp"
#include "core/operands.hpp"
#include "core/parallel.hpp"
#include "cpu/kernels/ukernel.hpp"
#include "cpu/operand_io.hpp"

namespace convgrad::cpu::kern {

static inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
static inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return -floor_div(-a, b); }

static inline Segment* segment_buffer(std::int64_t count) {
  return reinterpret_cast<Segment*>(
      scratch(Scratch::segments, count * static_cast<std::int64_t>(sizeof(Segment) / 4 + 1)));
}

/// Runs pixels [u_begin, u_end) of one output row: `build(u0, border, segs)` fills the segments
/// of the tile starting at pixel u0 (checking each tap when `border`) and returns their number
/// and `tile_at(u0)` places the tile. Pixels in [lo, hi) are interior.
template <class V, class Build, class Place>
void run_row(std::int64_t u_begin, std::int64_t u_end, std::int64_t lo, std::int64_t hi, int nv,
             Segment* segs, Tile& t, const Build& build, const Place& place) {
  lo = std::clamp(lo, u_begin, u_end);
  hi = std::clamp(hi, lo, u_end);
  const UkernelFn one = ukernel_for<V>(nv, 1);
  for (std::int64_t u = u_begin; u < lo; ++u) {
    place(u, t);
    one(segs, build(u, true, segs), t);
  }
  const std::int64_t interior = hi - lo;
  if (interior > 0) {
    // Equal tiles: 56 pixels run as 4 x 14 rather than 24 + 24 + 8.
    const int mmax = max_rows<V>(nv);
    const std::int64_t tiles = ceil_div(interior, mmax);
    const std::int64_t nseg = build(lo, false, segs);
    // The reduction is cut into slices of at most kSlice steps of one segment, each run over all
    // tiles of the row before the next: a slice's B rows (kSlice * nb floats, 16 KiB) then stay
    // in L1 across the tiles instead of a whole 3x3x256 filter panel streaming from L2 per tile.
    // Accumulators are reloaded once per slice, a few percent of a slice's FMAs.
    constexpr std::int64_t kSlice = 128;
    const Init first_init = t.init;
    std::int64_t slices = 0;
    for (std::int64_t sg = 0; sg < nseg; ++sg) slices += ceil_div(segs[sg].len, kSlice);
    const bool sliced = slices > 1 && tiles > 1;
    Segment slice = nseg > 0 ? segs[0] : Segment{nullptr, nullptr, 0};
    std::int64_t sg = 0, step = 0;
    do {
      if (sliced) {
        const std::int64_t len = std::min(kSlice, segs[sg].len - step);
        slice = {segs[sg].a + step * t.a_ls, segs[sg].b + step * t.b_ls, len};
      }
      for (std::int64_t i = 0; i < tiles; ++i) {
        const std::int64_t a = lo + interior * i / tiles, b = lo + interior * (i + 1) / tiles;
        place(a, t);
        t.a_off = (a - lo) * t.a_ms;
        ukernel_for<V>(nv, static_cast<int>(b - a))(sliced ? &slice : segs, sliced ? 1 : nseg, t);
      }
      if (!sliced) break;
      t.init = Init::load;
      step += slice.len;
      if (step >= segs[sg].len) {
        ++sg;
        step = 0;
      }
    } while (sg < nseg);
    t.init = first_init;
    t.a_off = 0;
  }
  for (std::int64_t u = hi; u < u_end; ++u) {
    place(u, t);
    one(segs, build(u, true, segs), t);
  }
}

/// How many pieces to cut each output row into so that small batches still feed every thread.
static inline std::int64_t row_pieces(std::int64_t rows, std::int64_t row_len, int mmax) {
  const std::int64_t want = 8 * core::num_threads();
  if (rows >= want) return 1;
  return std::clamp<std::int64_t>(ceil_div(want, rows), 1, ceil_div(row_len, 2 * mmax));
}

template <class V>
void fprop_gemm(const ConvProblem& p, const core::Operands& o) {
  constexpr int L = V::lanes;
  const std::int64_t groups = p.groups, cg = p.c_per_group(), kg = p.k_per_group();
  const int nv = kg <= L ? 1 : 2;
  const std::int64_t nb = nv * L, kblocks = ceil_div(kg, nb);
  const std::int64_t taps = p.r * p.s, wblock = taps * cg * nb;
  float* packed = scratch(Scratch::packed_weights, groups * kblocks * (wblock + nb));
  float* bias = packed + groups * kblocks * wblock;
  const bool with_bias = p.with_bias && !o.b.empty();
  const bool float_rows = o.w.type == DataType::float32 && o.w.strides[3] == 1;
  core::parallel_for(groups * kblocks, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t gk = begin; gk < end; ++gk) {
      const std::int64_t k0 = (gk / kblocks) * kg + (gk % kblocks) * nb;
      const std::int64_t width = std::min(nb, kg - (gk % kblocks) * nb);
      float* dst = packed + gk * wblock;
      if (width < nb) std::fill_n(dst, wblock, 0.0f);
      // Filter rows are read in order (each written with a stride of nb lanes): the transpose
      // is bound by the reads, which is what matters for 2048 x 512 filters.
      for (std::int64_t j = 0; j < width; ++j) {
        for (std::int64_t rs = 0; rs < taps; ++rs) {
          float* d = dst + rs * cg * nb + j;
          if (float_rows) {
            const float* src =
                static_cast<const float*>(o.w.data) + o.w.offset(k0 + j, rs / p.s, rs % p.s, 0);
            for (std::int64_t c = 0; c < cg; ++c) d[c * nb] = src[c];
          } else {
            for (std::int64_t c = 0; c < cg; ++c) {
              d[c * nb] = load_view(o.w, k0 + j, rs / p.s, rs % p.s, c);
            }
          }
        }
      }
      for (std::int64_t j = 0; j < nb; ++j) {
        bias[gk * nb + j] = with_bias && j < width ? load_view(o.b, k0 + j, 0, 0, 0) : 0.0f;
      }
    }
  });
  const ImageF32 x = input_f32(o.x, Scratch::input_a);
  const OutputF32 out = output_f32(o.y, Scratch::output);
  const ImageF32& y = out.image;
  // Interior columns: every tap s lands inside the image.
  const std::int64_t q_lo = std::max<std::int64_t>(0, ceil_div(p.pad_left, p.stride_w));
  const std::int64_t q_hi =
      floor_div(p.w - 1 + p.pad_left - (p.s - 1) * p.dilation_w, p.stride_w) + 1;
  // Taps s of one filter row are adjacent in x when pixels hold exactly one group's channels.
  const bool merge_taps = p.dilation_w == 1 && x.s[2] == cg;
  const int mmax = max_rows<V>(nv);
  const std::int64_t rows = groups * kblocks * p.n * p.p;
  const std::int64_t pieces = row_pieces(rows, p.q, mmax);
  core::parallel_for(rows * pieces, [&](std::int64_t begin, std::int64_t end) {
    Segment* segs = segment_buffer(taps);
    Tile t{0,
           0,
           p.stride_w * x.s[2],
           1,
           nb,
           nullptr,
           y.s[2],
           with_bias ? Init::bias : Init::zero,
           nullptr,
           0,
           false};
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t piece = item % pieces, row = item / pieces;
      const std::int64_t gk = row / (p.n * p.p), np = row % (p.n * p.p);
      const std::int64_t g = gk / kblocks, kb = gk % kblocks;
      const std::int64_t n = np / p.p, oh = np % p.p;
      const float* wbase = packed + gk * wblock;
      t.bias = bias + gk * nb;
      t.active = static_cast<int>(std::min(nb, kg - kb * nb));
      const std::int64_t ih0 = oh * p.stride_h - p.pad_top;
      const std::int64_t r_lo = std::max<std::int64_t>(0, ceil_div(-ih0, p.dilation_h));
      const std::int64_t r_hi = std::min<std::int64_t>(p.r, ceil_div(p.h - ih0, p.dilation_h));
      const float* xrow = x.data + n * x.s[0] + g * cg;
      auto build = [&](std::int64_t ow, bool border, Segment* sg) {
        std::int64_t count = 0;
        for (std::int64_t r = r_lo; r < r_hi; ++r) {
          const std::int64_t ih = ih0 + r * p.dilation_h;
          if (!border && merge_taps) {
            // The S taps of filter row r read one contiguous run of S * cg floats of x and of
            // the packed filter: one segment instead of S, which for C = 3 or 1 is what keeps
            // the micro-kernel's loop from being all segment overhead.
            const std::int64_t iw = ow * p.stride_w - p.pad_left;
            sg[count++] = {xrow + ih * x.s[1] + iw * x.s[2], wbase + r * p.s * cg * nb, p.s * cg};
            continue;
          }
          for (std::int64_t s = 0; s < p.s; ++s) {
            const std::int64_t iw = ow * p.stride_w - p.pad_left + s * p.dilation_w;
            if (border && (iw < 0 || iw >= p.w)) continue;
            sg[count++] = {xrow + ih * x.s[1] + iw * x.s[2], wbase + (r * p.s + s) * cg * nb, cg};
          }
        }
        return count;
      };
      float* yrow = y.data + n * y.s[0] + oh * y.s[1] + g * kg + kb * nb;
      auto place = [&](std::int64_t ow, Tile& tile) { tile.c = yrow + ow * y.s[2]; };
      run_row<V>(p.q * piece / pieces, p.q * (piece + 1) / pieces, q_lo, q_hi, nv, segs, t, build,
                 place);
    }
  });
  finish_output(out, o.y, false);
}

template <class V>
void dgrad_gemm(const ConvProblem& p, const core::Operands& o) {
  constexpr int L = V::lanes;
  const std::int64_t groups = p.groups, cg = p.c_per_group(), kg = p.k_per_group();
  const int nv = cg <= L ? 1 : 2;
  const std::int64_t nb = nv * L, cblocks = ceil_div(cg, nb);
  const std::int64_t taps = p.r * p.s, wblock = taps * kg * nb;
  // dx = dy * W reads B rows w[k][r][s][c0 .. c0 + nb). They are contiguous in KRSC, but used in
  // place consecutive rows sit r*s*c floats apart, a multiple of 1 KiB for c = 256 or 512, and
  // map to a handful of L1 sets; packed [g][c block][r][s][k][lanes] they are one stream.
  float* packed = scratch(Scratch::packed_weights, groups * cblocks * wblock);
  const ImageF32 wk = input_f32(o.w, Scratch::input_b);
  core::parallel_for(groups * cblocks, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t gc = begin; gc < end; ++gc) {
      const std::int64_t g = gc / cblocks, c0 = (gc % cblocks) * nb;
      const std::int64_t width = std::min(nb, cg - c0);
      float* dst = packed + gc * wblock;
      for (std::int64_t rsk = 0; rsk < taps * kg; ++rsk) {
        const std::int64_t rs = rsk / kg, k = rsk % kg;
        const float* src = wk.data + wk.at(g * kg + k, rs / p.s, rs % p.s) + c0;
        std::copy_n(src, width, dst + rsk * nb);
        std::fill(dst + rsk * nb + width, dst + (rsk + 1) * nb, 0.0f);
      }
    }
  });
  const ImageF32 dy = input_f32(o.y, Scratch::input_a);
  const OutputF32 out = output_f32(o.x, Scratch::output);
  const ImageF32& dx = out.image;
  const int mmax = max_rows<V>(nv);
  const std::int64_t rows = groups * cblocks * p.n * p.h;
  const std::int64_t pieces = row_pieces(rows, ceil_div(p.w, p.stride_w), mmax);
  core::parallel_for(rows * pieces, [&](std::int64_t begin, std::int64_t end) {
    Segment* segs = segment_buffer(taps);
    Tile t{0, 0, dy.s[2], 1, nb, nullptr, p.stride_w * dx.s[2], Init::zero, nullptr, 0, false};
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t piece = item % pieces, row = item / pieces;
      const std::int64_t gc = row / (p.n * p.h), nh = row % (p.n * p.h);
      const std::int64_t g = gc / cblocks, cb = gc % cblocks;
      const std::int64_t n = nh / p.h, ih = nh % p.h;
      const float* wbase = packed + gc * wblock;
      t.active = static_cast<int>(std::min(nb, cg - cb * nb));
      const float* dyimg = dy.data + n * dy.s[0] + g * kg;
      float* dxrow = dx.data + n * dx.s[0] + ih * dx.s[1] + g * cg + cb * nb;
      for (std::int64_t phase = 0; phase < std::min<std::int64_t>(p.stride_w, p.w); ++phase) {
        // dx columns phase + stride_w * u all read dy through the same taps s, at ow = base + u.
        const std::int64_t npx = ceil_div(p.w - phase, p.stride_w);
        std::int64_t u_lo = 0, u_hi = npx;
        for (std::int64_t s = 0; s < p.s; ++s) {
          const std::int64_t tw = phase + p.pad_left - s * p.dilation_w;
          if (tw - floor_div(tw, p.stride_w) * p.stride_w != 0) continue;
          const std::int64_t base = floor_div(tw, p.stride_w);
          u_lo = std::max(u_lo, -base);
          u_hi = std::min(u_hi, p.q - base);
        }
        auto build = [&](std::int64_t u, bool border, Segment* sg) {
          std::int64_t count = 0;
          for (std::int64_t r = 0; r < p.r; ++r) {
            const std::int64_t th = ih + p.pad_top - r * p.dilation_h;
            if (th < 0 || th % p.stride_h != 0 || th / p.stride_h >= p.p) continue;
            const float* dyrow = dyimg + (th / p.stride_h) * dy.s[1];
            for (std::int64_t s = 0; s < p.s; ++s) {
              const std::int64_t tw = phase + p.pad_left - s * p.dilation_w;
              if (tw - floor_div(tw, p.stride_w) * p.stride_w != 0) continue;
              const std::int64_t ow = floor_div(tw, p.stride_w) + u;
              if (border && (ow < 0 || ow >= p.q)) continue;
              sg[count++] = {dyrow + ow * dy.s[2], wbase + (r * p.s + s) * kg * nb, kg};
            }
          }
          return count;
        };
        auto place = [&](std::int64_t u, Tile& tile) {
          tile.c = dxrow + (phase + p.stride_w * u) * dx.s[2];
        };
        run_row<V>(npx * piece / pieces, npx * (piece + 1) / pieces, u_lo, u_hi, nv, segs, t, build,
                   place);
      }
    }
  });
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
