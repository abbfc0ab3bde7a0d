// SPDX-License-Identifier: Apache-2.0
// Few-channel layers (C < 8: a network's first layer). Both kernels work on a zero-padded copy of
// x, in which every tap of every output pixel is in range: no border pixels, whose taps the
// implicit GEMM checks one by one (with a 5x5 filter, 4 of a 28-wide row's pixels).
//
// fprop: the implicit GEMM on the padded copy, where the S taps of a filter row are one segment.
//
// wgrad: the implicit GEMM's columns are input channels, 3 of 16 lanes here (it ran
// resnet50_conv1 at 17% of peak, lenet_small at 6%). This kernel turns the GEMM around. For each filter row r:
//   dwT[r][s*C + c][k] = sum over pixels of x[n][oh*sh + r*dh][ow*sw + s][c] * dy[n][oh][ow][k]
// rows = the S*C taps of the filter row (adjacent floats of x, dilation_w == 1), columns = k
// (all lanes busy), reduction over output pixels: one segment per output row.
#pragma once

#include <algorithm>
#include <cstdint>

#include "convgrad/problem.hpp"
#include "core/operands.hpp"
#include "core/parallel.hpp"
#include "cpu/kernels/conv_gemm.hpp"
#include "cpu/kernels/ukernel.hpp"
#include "cpu/operand_io.hpp"

namespace convgrad::cpu::kern {

/// x as a dense float32 image with the problem's pads (>= 0) added as zeros, in `slot`.
inline float* padded_copy(const ConvProblem& p, const TensorView& view, Scratch slot) {
  const std::int64_t hp = p.h + p.pad_top + p.pad_bottom, wp = p.w + p.pad_left + p.pad_right;
  const std::int64_t c = p.c;
  const ImageF32 x = input_f32(view, Scratch::input_a);
  float* xp = scratch(slot, p.n * hp * wp * c);
  core::parallel_for(p.n * hp, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t n = row / hp, ih = row % hp - p.pad_top;
      float* dst = xp + row * wp * c;
      std::fill_n(dst, wp * c, 0.0f);
      if (ih < 0 || ih >= p.h) continue;
      for (std::int64_t iw = 0; iw < p.w; ++iw) {
        std::copy_n(x.data + x.at(n, ih, iw), c, dst + (iw + p.pad_left) * c);
      }
    }
  });
  return xp;
}

template <class V>
void fprop_few_channel(const ConvProblem& p, const core::Operands& o) {
  ConvProblem padded = p;
  padded.h = p.h + p.pad_top + p.pad_bottom;
  padded.w = p.w + p.pad_left + p.pad_right;
  padded.pad_top = padded.pad_left = padded.pad_bottom = padded.pad_right = 0;
  padded.x_type = DataType::float32;
  core::Operands operands = o;
  // Not a slot fprop_gemm uses: it packs weights into packed_weights, x stays in place.
  operands.x = dense_view(padded_copy(p, o.x, Scratch::partials), DataType::float32, p.n,
                          padded.h, padded.w, p.c);
  fprop_gemm<V>(padded, operands);
}

template <class V>
void wgrad_few_channel(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  constexpr int L = V::lanes;
  const std::int64_t c = p.c, k = p.k, width = p.s * c;
  // Four vectors of k only where 32 registers leave room for several rows beside them.
  const int nv = k <= L ? 1 : (k <= 2 * L || V::registers < 32) ? 2 : 4;
  const std::int64_t nb = nv * L, kblocks = ceil_div(k, nb);
  const int mmax = max_rows<V>(nv);
  const std::int64_t mtiles = ceil_div(width, mmax);

  // The output size keeps every window inside the padded copy.
  const std::int64_t hp = p.h + p.pad_top + p.pad_bottom, wp = p.w + p.pad_left + p.pad_right;
  const float* xp = padded_copy(p, o.x, Scratch::packed_weights);
  const ImageF32 dy = input_f32(o.y, Scratch::input_b);

  // One segment per (r, n, oh): the output row's q pixels.
  const std::int64_t runs = p.n * p.p;
  Segment* table = reinterpret_cast<Segment*>(
      scratch(Scratch::table, p.r * runs * static_cast<std::int64_t>(sizeof(Segment) / 4 + 1)));
  for (std::int64_t r = 0; r < p.r; ++r) {
    for (std::int64_t np = 0; np < runs; ++np) {
      const std::int64_t n = np / p.p, oh = np % p.p;
      const std::int64_t ih = oh * p.stride_h + r * p.dilation_h;
      table[r * runs + np] = {xp + (n * hp + ih) * wp * c, dy.data + dy.at(n, oh, 0), p.q};
    }
  }

  // dwT[r][s*C + c][k], zeroed by the first chunk.
  float* dwt = scratch(Scratch::partials, p.r * width * k);
  const std::int64_t bytes_per_run = p.q * (p.stride_w * c + k) * 4;
  const std::int64_t chunk =
      std::max<std::int64_t>(1, (512 << 10) / std::max<std::int64_t>(bytes_per_run, 1));
  const std::int64_t tiles = p.r * mtiles * kblocks;
  core::parallel_for(tiles, [&](std::int64_t begin, std::int64_t end) {
    Tile t{0, 0, 1, p.stride_w * c, dy.s[2], nullptr, k, Init::zero, nullptr, 0, true};
    for (std::int64_t c0 = 0; c0 < runs; c0 += chunk) {
      const std::int64_t count = std::min(chunk, runs - c0);
      for (std::int64_t tile = begin; tile < end; ++tile) {
        const std::int64_t kb = tile % kblocks;
        const std::int64_t mt = (tile / kblocks) % mtiles;
        const std::int64_t r = tile / kblocks / mtiles;
        const std::int64_t m_begin = width * mt / mtiles, m_end = width * (mt + 1) / mtiles;
        t.a_off = m_begin;
        t.b_off = kb * nb;
        t.active = static_cast<int>(std::min(nb, k - kb * nb));
        t.c = dwt + (r * width + m_begin) * k + kb * nb;
        t.init = c0 > 0 ? Init::load : Init::zero;
        ukernel_for<V>(nv, static_cast<int>(m_end - m_begin))(table + r * runs + c0, count, t);
      }
    }
  });

  // Back to KRSC, then into dw (converted, added when accumulating).
  float* dense = scratch(Scratch::output, k * p.r * width);
  core::parallel_for(k, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t kk = begin; kk < end; ++kk) {
      for (std::int64_t rm = 0; rm < p.r * width; ++rm) dense[kk * p.r * width + rm] = dwt[rm * k + kk];
    }
  });
  const OutputF32 out{{dense, {p.r * width, width, c}}, false};
  finish_output(out, o.w, accumulate);
  if (p.with_bias && !o.b.empty()) bias_gradient<V>(p, dy, o.b, accumulate);
}

}  // namespace convgrad::cpu::kern
