// SPDX-License-Identifier: Apache-2.0
// Depthwise convolution (groups == c, k == c * m) as stencils vectorised over channels: in NHWC
// the channels of one pixel are contiguous, so a vector holds L output channels and each filter
// tap is one FMA with a per-channel weight vector. With a channel multiplier m > 1, output channel
// k reads input channel k / m: the input vector is expanded with a lane permutation.
#pragma once

#include <algorithm>
#include <cstdint>

#include "convgrad/problem.hpp"
#include "core/operands.hpp"
#include "core/parallel.hpp"
#include "cpu/kernels/conv_gemm.hpp"
#include "cpu/kernels/simd.hpp"
#include "cpu/operand_io.hpp"

namespace convgrad::cpu::kern {

/// Per k block: the weights [tap][k] (k padded to whole vectors), the bias and, for m > 1, the
/// permutation that spreads input channels over output lanes.
template <class V>
struct DepthwisePack {
  std::int64_t kp = 0;  ///< padded k
  float* w = nullptr;   ///< [tap][kp]
  float* bias = nullptr;
  std::int32_t* index = nullptr;  ///< [k block][L]

  DepthwisePack(const ConvProblem& p, const core::Operands& o, bool pack_weights) {
    constexpr int L = V::lanes;
    // Padded to whole groups of four vectors, the unit the weight gradient works in.
    const std::int64_t m = p.k / p.c, taps = p.r * p.s, blocks = ceil_div(p.k, 4 * L) * 4;
    kp = blocks * L;
    w = scratch(Scratch::packed_weights, taps * kp + kp + blocks * L);
    bias = w + taps * kp;
    index = reinterpret_cast<std::int32_t*>(bias + kp);
    for (std::int64_t k = 0; k < kp; ++k) {
      bias[k] = p.with_bias && !o.b.empty() && k < p.k && pack_weights ? load_view(o.b, k, 0, 0, 0)
                                                                       : 0.0f;
      if (pack_weights) {
        for (std::int64_t t = 0; t < taps; ++t) {
          w[t * kp + k] = k < p.k ? load_view(o.w, k, t / p.s, t % p.s, 0) : 0.0f;
        }
      }
      const std::int64_t c0 = (k / L) * L / m;
      index[k] = static_cast<std::int32_t>(std::min<std::int64_t>(k / m - c0, L - 1));
    }
  }

  /// Input vector of k block `kb` at pixel `px` (pointer to its channel 0).
  template <bool kExpand>
  typename V::reg x(const float* px, std::int64_t kb, std::int64_t m, std::int64_t c) const {
    constexpr int L = V::lanes;
    if constexpr (kExpand) {
      const std::int64_t c0 = kb * L / m;
      const auto mask = V::first(static_cast<int>(std::min<std::int64_t>(L, c - c0)));
      return V::permute(V::load(px + c0, mask), V::load_index(index + kb * L));
    } else {
      return V::load(px + kb * L,
                     V::first(static_cast<int>(std::min<std::int64_t>(L, c - kb * L))));
    }
  }
};

/// One filter tap of a stencil row: input pixel u sits at `in + u * in_step` (element offset),
/// valid for u in [lo, hi); `w` holds the tap's weights for every k.
struct StencilTap {
  std::int64_t in;
  const float* w;
  std::int64_t lo, hi;
};

/// Output pixels u .. u + kPixels - 1 of a row, every k block: sums the taps into registers,
/// channel blocks innermost so that each pixel's channels are read in memory order.
template <class V, bool kExpand, int kPixels, bool kBorder>
void stencil_block(const DepthwisePack<V>& pack, const ConvProblem& p, const float* in,
                   std::int64_t in_step, const StencilTap* taps, std::int64_t ntaps, std::int64_t u,
                   float* out, std::int64_t out_step, bool bias) {
  constexpr int L = V::lanes;
  const std::int64_t m = p.k / p.c, blocks = ceil_div(p.k, L);
  for (std::int64_t kb = 0; kb < blocks; ++kb) {
    const auto store_mask = V::first(static_cast<int>(std::min<std::int64_t>(L, p.k - kb * L)));
    typename V::reg acc[kPixels];
    for (int j = 0; j < kPixels; ++j) acc[j] = bias ? V::load(pack.bias + kb * L) : V::zero();
    for (std::int64_t t = 0; t < ntaps; ++t) {
      if (kBorder && (u < taps[t].lo || u >= taps[t].hi)) continue;
      const typename V::reg wv = V::load(taps[t].w + kb * L);
      for (int j = 0; j < kPixels; ++j) {
        const float* px = in + taps[t].in + (u + j) * in_step;
        acc[j] = V::fma(pack.template x<kExpand>(px, kb, m, p.c), wv, acc[j]);
      }
    }
    for (int j = 0; j < kPixels; ++j)
      V::store(out + (u + j) * out_step + kb * L, acc[j], store_mask);
  }
}

/// Pixels [0, npx) of one output row: border pixels check each tap, the interior (where every
/// tap is valid) runs eight or four pixels at a time so that each weight load feeds as many FMAs.
template <class V, bool kExpand>
void stencil_row(const DepthwisePack<V>& pack, const ConvProblem& p, const float* in,
                 std::int64_t in_step, const StencilTap* taps, std::int64_t ntaps, std::int64_t npx,
                 float* out, std::int64_t out_step, bool bias) {
  std::int64_t lo = 0, hi = npx;
  for (std::int64_t t = 0; t < ntaps; ++t) {
    lo = std::max(lo, taps[t].lo);
    hi = std::min(hi, taps[t].hi);
  }
  lo = std::min(lo, npx);
  hi = std::max(hi, lo);
  std::int64_t u = 0;
  for (; u < lo; ++u) {
    stencil_block<V, kExpand, 1, true>(pack, p, in, in_step, taps, ntaps, u, out, out_step, bias);
  }
  // Eight independent accumulators cover the FMA latency on two pipes; four left half idle.
  for (; u + 8 <= hi; u += 8) {
    stencil_block<V, kExpand, 8, false>(pack, p, in, in_step, taps, ntaps, u, out, out_step, bias);
  }
  for (; u + 4 <= hi; u += 4) {
    stencil_block<V, kExpand, 4, false>(pack, p, in, in_step, taps, ntaps, u, out, out_step, bias);
  }
  for (; u < hi; ++u) {
    stencil_block<V, kExpand, 1, false>(pack, p, in, in_step, taps, ntaps, u, out, out_step, bias);
  }
  for (; u < npx; ++u) {
    stencil_block<V, kExpand, 1, true>(pack, p, in, in_step, taps, ntaps, u, out, out_step, bias);
  }
}

static inline StencilTap* tap_buffer(std::int64_t count) {
  return reinterpret_cast<StencilTap*>(
      scratch(Scratch::segments, count * static_cast<std::int64_t>(sizeof(StencilTap) / 4 + 1)));
}

template <class V, bool kExpand>
void fprop_depthwise_impl(const ConvProblem& p, const core::Operands& o) {
  const DepthwisePack<V> pack(p, o, true);
  const ImageF32 x = input_f32(o.x, Scratch::input_a);
  const OutputF32 out = output_f32(o.y, Scratch::output);
  const ImageF32& y = out.image;
  const bool bias = p.with_bias && !o.b.empty();
  core::parallel_for(p.n * p.p, [&](std::int64_t begin, std::int64_t end) {
    StencilTap* taps = tap_buffer(p.r * p.s);
    for (std::int64_t np = begin; np < end; ++np) {
      const std::int64_t n = np / p.p, oh = np % p.p;
      std::int64_t ntaps = 0;
      for (std::int64_t r = 0; r < p.r; ++r) {
        const std::int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
        if (ih < 0 || ih >= p.h) continue;
        for (std::int64_t s = 0; s < p.s; ++s) {
          const std::int64_t off = p.pad_left - s * p.dilation_w;  // iw = ow * stride_w - off
          taps[ntaps++] = {x.at(n, ih, 0) - off * x.s[2], pack.w + (r * p.s + s) * pack.kp,
                           std::max<std::int64_t>(0, ceil_div(off, p.stride_w)),
                           std::min<std::int64_t>(p.q, floor_div(p.w - 1 + off, p.stride_w) + 1)};
        }
      }
      stencil_row<V, kExpand>(pack, p, x.data, p.stride_w * x.s[2], taps, ntaps, p.q,
                              y.data + y.at(n, oh, 0), y.s[2], bias);
    }
  });
  finish_output(out, o.y, false);
}

/// dgrad with multiplier 1 is a stencil over dy: dx columns of one stride phase read dy at
/// consecutive columns through the taps s that reach that phase.
template <class V>
void dgrad_depthwise_phases(const ConvProblem& p, const core::Operands& o) {
  const DepthwisePack<V> pack(p, o, true);
  const ImageF32 dy = input_f32(o.y, Scratch::input_a);
  const OutputF32 out = output_f32(o.x, Scratch::output);
  const ImageF32& dx = out.image;
  core::parallel_for(p.n * p.h, [&](std::int64_t begin, std::int64_t end) {
    StencilTap* taps = tap_buffer(p.r * p.s);
    for (std::int64_t nh = begin; nh < end; ++nh) {
      const std::int64_t n = nh / p.h, ih = nh % p.h;
      for (std::int64_t phase = 0; phase < std::min<std::int64_t>(p.stride_w, p.w); ++phase) {
        std::int64_t ntaps = 0;
        for (std::int64_t r = 0; r < p.r; ++r) {
          const std::int64_t th = ih + p.pad_top - r * p.dilation_h;
          if (th < 0 || th % p.stride_h != 0 || th / p.stride_h >= p.p) continue;
          for (std::int64_t s = 0; s < p.s; ++s) {
            const std::int64_t tw = phase + p.pad_left - s * p.dilation_w;
            if (tw - floor_div(tw, p.stride_w) * p.stride_w != 0) continue;
            const std::int64_t base = floor_div(tw, p.stride_w);
            taps[ntaps++] = {dy.at(n, th / p.stride_h, 0) + base * dy.s[2],
                             pack.w + (r * p.s + s) * pack.kp, -base, p.q - base};
          }
        }
        stencil_row<V, false>(pack, p, dy.data, dy.s[2], taps, ntaps,
                              ceil_div(p.w - phase, p.stride_w), dx.data + dx.at(n, ih, phase),
                              p.stride_w * dx.s[2], false);
      }
    }
  });
  finish_output(out, o.x, false);
}

template <class V, bool kExpand>
void dgrad_depthwise_impl(const ConvProblem& p, const core::Operands& o) {
  constexpr int L = V::lanes;
  const DepthwisePack<V> pack(p, o, true);
  const ImageF32 dy = input_f32(o.y, Scratch::input_a);
  const OutputF32 out = output_f32(o.x, Scratch::output);
  const ImageF32& dx = out.image;
  const std::int64_t m = p.k / p.c, blocks = ceil_div(p.k, L), taps = p.r * p.s;
  core::parallel_for(p.n * p.h, [&](std::int64_t begin, std::int64_t end) {
    // Per dx pixel: dy pixel offsets and weight offsets of the taps that reach it.
    auto* offsets = reinterpret_cast<std::int64_t*>(scratch(Scratch::segments, 4 * taps + pack.kp));
    float* ksum = reinterpret_cast<float*>(offsets + 2 * taps);
    for (std::int64_t nh = begin; nh < end; ++nh) {
      const std::int64_t n = nh / p.h, ih = nh % p.h;
      for (std::int64_t iw = 0; iw < p.w; ++iw) {
        std::int64_t count = 0;
        for (std::int64_t r = 0; r < p.r; ++r) {
          const std::int64_t th = ih + p.pad_top - r * p.dilation_h;
          if (th < 0 || th % p.stride_h != 0 || th / p.stride_h >= p.p) continue;
          for (std::int64_t s = 0; s < p.s; ++s) {
            const std::int64_t tw = iw + p.pad_left - s * p.dilation_w;
            if (tw < 0 || tw % p.stride_w != 0 || tw / p.stride_w >= p.q) continue;
            offsets[2 * count] = dy.at(n, th / p.stride_h, tw / p.stride_w);
            offsets[2 * count + 1] = (r * p.s + s) * pack.kp;
            ++count;
          }
        }
        float* dxp = dx.data + dx.at(n, ih, iw);
        for (std::int64_t kb = 0; kb < blocks; ++kb) {
          const auto mask = V::first(static_cast<int>(std::min<std::int64_t>(L, p.k - kb * L)));
          typename V::reg acc[2] = {V::zero(), V::zero()};
          for (std::int64_t t = 0; t < count; ++t) {
            acc[t & 1] = V::fma(V::load(dy.data + offsets[2 * t] + kb * L, mask),
                                V::load(pack.w + offsets[2 * t + 1] + kb * L), acc[t & 1]);
          }
          if constexpr (kExpand) {
            V::store(ksum + kb * L, V::add(acc[0], acc[1]));
          } else {
            V::store(dxp + kb * L, V::add(acc[0], acc[1]), mask);
          }
        }
        if constexpr (kExpand) {
          // dx[c] sums the m output channels c*m .. c*m+m-1 that read it.
          for (std::int64_t c = 0; c < p.c; ++c) {
            float sum = 0.0f;
            for (std::int64_t j = 0; j < m; ++j) sum += ksum[c * m + j];
            dxp[c] = sum;
          }
        }
      }
    }
  });
  finish_output(out, o.x, false);
}

template <class V, bool kExpand>
void wgrad_depthwise_impl(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  constexpr int L = V::lanes;
  const DepthwisePack<V> pack(p, o, false);
  const ImageF32 x = input_f32(o.x, Scratch::input_a);
  const ImageF32 dy = input_f32(o.y, Scratch::input_b);
  const std::int64_t m = p.k / p.c, blocks = ceil_div(p.k, L), taps = p.r * p.s;
  const std::int64_t rows = p.n * p.p;
  const std::int64_t parts = std::min<std::int64_t>(core::num_threads(), rows);
  // Each part sums its rows into private [tap][k] and [k] partials; the parts are added at the
  // end, which costs (taps + 1) * k per part, nothing next to the pixels.
  const std::int64_t stride = (taps + 1) * pack.kp;
  float* partials = scratch(Scratch::partials, parts * stride);
  core::parallel_for(parts, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t part = begin; part < end; ++part) {
      float* acc_w = partials + part * stride;
      float* acc_b = acc_w + taps * pack.kp;
      std::fill(acc_w, acc_w + stride, 0.0f);
      for (std::int64_t np = rows * part / parts; np < rows * (part + 1) / parts; ++np) {
        const std::int64_t n = np / p.p, oh = np % p.p;
        const float* dyrow = dy.data + dy.at(n, oh, 0);
        for (std::int64_t ow = 0; ow < p.q; ++ow) {
          for (std::int64_t kb = 0; kb < blocks; ++kb) {
            const auto mask = V::first(static_cast<int>(std::min<std::int64_t>(L, p.k - kb * L)));
            V::store(acc_b + kb * L,
                     V::add(V::load(acc_b + kb * L), V::load(dyrow + ow * dy.s[2] + kb * L, mask)));
          }
        }
        for (std::int64_t r = 0; r < p.r; ++r) {
          const std::int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
          if (ih < 0 || ih >= p.h) continue;
          const float* xrow = x.data + x.at(n, ih, 0);
          // Four channel vectors by up to three taps of accumulators in registers; a pixel's
          // channels are read in memory order.
          for (std::int64_t kb0 = 0; kb0 < blocks; kb0 += 4) {
            typename V::mask masks[4];
            for (int v = 0; v < 4; ++v) {
              masks[v] = V::first(static_cast<int>(std::min<std::int64_t>(L, p.k - (kb0 + v) * L)));
            }
            for (std::int64_t s0 = 0; s0 < p.s; s0 += 3) {
              std::int64_t lo[3], hi[3], off[3];
              std::int64_t first = p.q, last = 0;
              for (int si = 0; si < 3; ++si) {
                off[si] = p.pad_left - (s0 + si) * p.dilation_w;
                lo[si] = std::max<std::int64_t>(0, ceil_div(off[si], p.stride_w));
                hi[si] = s0 + si < p.s ? std::min<std::int64_t>(
                                             p.q, floor_div(p.w - 1 + off[si], p.stride_w) + 1)
                                       : 0;
                if (hi[si] > lo[si]) {
                  first = std::min(first, lo[si]);
                  last = std::max(last, hi[si]);
                }
              }
              typename V::reg acc[3][4];
              for (int si = 0; si < 3; ++si) {
                for (int v = 0; v < 4; ++v) acc[si][v] = V::zero();
              }
              for (std::int64_t ow = first; ow < last; ++ow) {
                typename V::reg d[4];
                for (int v = 0; v < 4; ++v) {
                  d[v] = V::load(dyrow + ow * dy.s[2] + (kb0 + v) * L, masks[v]);
                }
                for (int si = 0; si < 3; ++si) {
                  if (ow < lo[si] || ow >= hi[si]) continue;
                  const float* px = xrow + (ow * p.stride_w - off[si]) * x.s[2];
                  for (int v = 0; v < 4; ++v) {
                    acc[si][v] =
                        V::fma(d[v], pack.template x<kExpand>(px, kb0 + v, m, p.c), acc[si][v]);
                  }
                }
              }
              for (int si = 0; si < 3 && s0 + si < p.s; ++si) {
                float* dst = acc_w + (r * p.s + s0 + si) * pack.kp + kb0 * L;
                for (int v = 0; v < 4; ++v) {
                  V::store(dst + v * L, V::add(V::load(dst + v * L), acc[si][v]));
                }
              }
            }
          }
        }
      }
    }
  });
  const OutputF32 out = output_f32(o.w, Scratch::output);
  const bool add_in_place = accumulate && out.in_place;
  const bool with_db = p.with_bias && !o.b.empty();
  for (std::int64_t k = 0; k < p.k; ++k) {
    for (std::int64_t t = 0; t <= taps; ++t) {
      if (t == taps && !with_db) break;
      float sum = 0.0f;
      for (std::int64_t part = 0; part < parts; ++part) {
        sum += partials[part * stride + t * pack.kp + k];
      }
      if (t == taps) {
        float* db = static_cast<float*>(o.b.data) + k * o.b.strides[0];
        *db = accumulate ? *db + sum : sum;
      } else {
        float* dw = out.image.data + out.image.at(k, t / p.s, t % p.s);
        *dw = add_in_place ? *dw + sum : sum;
      }
    }
  }
  finish_output(out, o.w, accumulate);
}

template <class V>
void fprop_depthwise(const ConvProblem& p, const core::Operands& o) {
  p.k == p.c ? fprop_depthwise_impl<V, false>(p, o) : fprop_depthwise_impl<V, true>(p, o);
}
template <class V>
void dgrad_depthwise(const ConvProblem& p, const core::Operands& o) {
  p.k == p.c ? dgrad_depthwise_phases<V>(p, o) : dgrad_depthwise_impl<V, true>(p, o);
}
template <class V>
void wgrad_depthwise(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  p.k == p.c ? wgrad_depthwise_impl<V, false>(p, o, accumulate)
             : wgrad_depthwise_impl<V, true>(p, o, accumulate);
}

}  // namespace convgrad::cpu::kern
