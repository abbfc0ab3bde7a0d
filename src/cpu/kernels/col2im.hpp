// SPDX-License-Identifier: Apache-2.0
// dgrad for images with few channels (c < 8, e.g. an RGB first layer): vectorising over c would
// leave most lanes empty, so each dy row is first multiplied by the whole filter,
//   G[ow][(r, s, c)] = sum_k dy[n, oh, ow, k] * w[k][r][s][c],
// a GEMM whose columns are the r*s*c filter entries (147 for 7x7x3), and G is then added into
// the dx rows it covers. With dilation_w == 1 the (s, c) entries of one r are a contiguous run
// of a dx row, so the scatter is a few vector adds per pixel.
#pragma once

#include <algorithm>
#include <cstdint>

#include "convgrad/problem.hpp"
#include "core/operands.hpp"
#include "core/parallel.hpp"
#include "cpu/kernels/conv_gemm.hpp"
#include "cpu/operand_io.hpp"

namespace convgrad::cpu::kern {

template <class V>
void dgrad_col2im(const ConvProblem& p, const core::Operands& o) {
  constexpr int L = V::lanes;
  const std::int64_t cols = p.r * p.s * p.c;
  const int nv = cols <= L ? 1 : 2;
  const std::int64_t nb = nv * L, jblocks = ceil_div(cols, nb), ldg = jblocks * nb;
  // [j block][k][lanes]: filter rows are already (r, s, c)-ordered, only blocked here.
  float* packed = scratch(Scratch::packed_weights, jblocks * p.k * nb);
  for (std::int64_t jb = 0; jb < jblocks; ++jb) {
    for (std::int64_t k = 0; k < p.k; ++k) {
      for (std::int64_t j = 0; j < nb; ++j) {
        const std::int64_t col = jb * nb + j;
        const std::int64_t rs = col / p.c;
        packed[(jb * p.k + k) * nb + j] =
            col < cols ? load_view(o.w, k, rs / p.s, rs % p.s, col % p.c) : 0.0f;
      }
    }
  }
  const ImageF32 dy = input_f32(o.y, Scratch::input_a);
  const OutputF32 out = output_f32(o.x, Scratch::output);
  const ImageF32& dx = out.image;
  const int mmax = max_rows<V>(nv);
  const std::int64_t rows = p.n * p.h;
  const std::int64_t parts = std::min<std::int64_t>(core::num_threads(), rows);
  // Each part owns a range of dx rows and computes every dy row that reaches them; the ranges
  // are cut at image boundaries when the batch allows, so no G row is computed twice.
  const bool by_image = p.n % parts == 0;
  core::parallel_for(parts, [&](std::int64_t begin, std::int64_t end) {
    float* g = scratch(Scratch::segments, p.q * ldg + 64);
    for (std::int64_t part = begin; part < end; ++part) {
      const std::int64_t row_a = by_image ? p.n * part / parts * p.h : rows * part / parts;
      const std::int64_t row_b =
          by_image ? p.n * (part + 1) / parts * p.h : rows * (part + 1) / parts;
      for (std::int64_t row = row_a; row < row_b; ++row) {
        float* dxrow = dx.data + dx.at(row / p.h, row % p.h, 0);
        for (std::int64_t iw = 0; iw < p.w; ++iw) std::fill_n(dxrow + iw * dx.s[2], p.c, 0.0f);
      }
      for (std::int64_t n = row_a / p.h; n * p.h < row_b; ++n) {
        const std::int64_t ih_a = std::max(row_a - n * p.h, std::int64_t{0});
        const std::int64_t ih_b = std::min(row_b - n * p.h, p.h);
        // dy rows whose taps land in [ih_a, ih_b).
        const std::int64_t oh_a = std::max<std::int64_t>(
            0, ceil_div(ih_a + p.pad_top - (p.r - 1) * p.dilation_h, p.stride_h));
        const std::int64_t oh_b =
            std::min<std::int64_t>(p.p, floor_div(ih_b - 1 + p.pad_top, p.stride_h) + 1);
        for (std::int64_t oh = oh_a; oh < oh_b; ++oh) {
          const float* dyrow = dy.data + dy.at(n, oh, 0);
          Tile t{0, 0, dy.s[2], 1, nb, nullptr, ldg, Init::zero, nullptr, 0, false};
          for (std::int64_t jb = 0; jb < jblocks; ++jb) {
            const Segment seg{dyrow, packed + jb * p.k * nb, p.k};
            t.active = static_cast<int>(std::min(nb, cols - jb * nb));
            const std::int64_t tiles = ceil_div(p.q, mmax);
            for (std::int64_t i = 0; i < tiles; ++i) {
              const std::int64_t a = p.q * i / tiles, b = p.q * (i + 1) / tiles;
              t.a_off = a * dy.s[2];
              t.c = g + a * ldg + jb * nb;
              ukernel_for<V>(nv, static_cast<int>(b - a))(&seg, 1, t);
            }
          }
          for (std::int64_t r = 0; r < p.r; ++r) {
            const std::int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
            if (ih < ih_a || ih >= ih_b) continue;
            float* dxrow = dx.data + dx.at(n, ih, 0);
            for (std::int64_t ow = 0; ow < p.q; ++ow) {
              const std::int64_t iw0 = ow * p.stride_w - p.pad_left;
              const std::int64_t s_lo = std::max<std::int64_t>(0, -iw0);
              const std::int64_t s_hi = std::min<std::int64_t>(p.s, p.w - iw0);
              if (s_hi <= s_lo) continue;
              const float* src = g + ow * ldg + (r * p.s + s_lo) * p.c;
              float* dst = dxrow + (iw0 + s_lo) * dx.s[2];
              if (dx.s[2] == p.c) {
                const std::int64_t span = (s_hi - s_lo) * p.c;
                for (std::int64_t e = 0; e < span; e += L) {
                  const auto mask = V::first(static_cast<int>(std::min<std::int64_t>(L, span - e)));
                  V::store(dst + e, V::add(V::load(dst + e, mask), V::load(src + e, mask)), mask);
                }
              } else {
                for (std::int64_t s = 0; s < s_hi - s_lo; ++s) {
                  for (std::int64_t c = 0; c < p.c; ++c) dst[s * dx.s[2] + c] += src[s * p.c + c];
                }
              }
            }
          }
        }
      }
    }
  });
  finish_output(out, o.x, false);
}

}  // namespace convgrad::cpu::kern
