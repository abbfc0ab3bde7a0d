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
    const std::int64_t m = p.k / p.c, taps = p.r * p.s, blocks = ceil_div(p.k, L);
    kp = blocks * L;
    w = scratch(Scratch::packed_weights, taps * kp + kp + blocks * L);
    bias = w + taps * kp;
    index = reinterpret_cast<std::int32_t*>(bias + kp);
    for (std::int64_t k = 0; k < kp; ++k) {
      bias[k] = p.with_bias && !o.b.empty() && k < p.k && pack_weights
                    ? load_view(o.b, k, 0, 0, 0)
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
      return V::load(px + kb * L, V::first(static_cast<int>(std::min<std::int64_t>(L, c - kb * L))));
    }
  }
};

template <class V, bool kExpand>
void fprop_depthwise_impl(const ConvProblem& p, const core::Operands& o) {
  constexpr int L = V::lanes;
  const DepthwisePack<V> pack(p, o, true);
  const ImageF32 x = input_f32(o.x, Scratch::input_a);
  const OutputF32 out = output_f32(o.y, Scratch::output);
  const ImageF32& y = out.image;
  const std::int64_t m = p.k / p.c, blocks = ceil_div(p.k, L);
  const std::int64_t q_lo = std::max<std::int64_t>(0, ceil_div(p.pad_left, p.stride_w));
  const std::int64_t q_hi = std::clamp<std::int64_t>(
      floor_div(p.w - 1 + p.pad_left - (p.s - 1) * p.dilation_w, p.stride_w) + 1, 0, p.q);
  core::parallel_for(p.n * p.p, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t np = begin; np < end; ++np) {
      const std::int64_t n = np / p.p, oh = np % p.p;
      const std::int64_t ih0 = oh * p.stride_h - p.pad_top;
      const std::int64_t r_lo = std::max<std::int64_t>(0, ceil_div(-ih0, p.dilation_h));
      const std::int64_t r_hi = std::min<std::int64_t>(p.r, ceil_div(p.h - ih0, p.dilation_h));
      const float* ximg = x.data + n * x.s[0];
      float* yrow = y.data + n * y.s[0] + oh * y.s[1];
      for (std::int64_t kb = 0; kb < blocks; ++kb) {
        const auto store_mask = V::first(static_cast<int>(std::min<std::int64_t>(L, p.k - kb * L)));
        const typename V::reg bias = V::load(pack.bias + kb * L);
        const float* wk = pack.w + kb * L;
        // Four pixels at a time share each weight vector load.
        auto block = [&]<int kPixels>(std::int64_t ow, bool border) {
          typename V::reg acc[kPixels];
          for (int j = 0; j < kPixels; ++j) acc[j] = bias;
          for (std::int64_t r = r_lo; r < r_hi; ++r) {
            const float* xrow = ximg + (ih0 + r * p.dilation_h) * x.s[1];
            for (std::int64_t s = 0; s < p.s; ++s) {
              const typename V::reg wv = V::load(wk + (r * p.s + s) * pack.kp);
              const std::int64_t iw = ow * p.stride_w - p.pad_left + s * p.dilation_w;
              if (border && (iw < 0 || iw >= p.w)) continue;
              for (int j = 0; j < kPixels; ++j) {
                const float* px = xrow + (iw + j * p.stride_w) * x.s[2];
                acc[j] = V::fma(pack.template x<kExpand>(px, kb, m, p.c), wv, acc[j]);
              }
            }
          }
          for (int j = 0; j < kPixels; ++j) V::store(yrow + (ow + j) * y.s[2] + kb * L, acc[j], store_mask);
        };
        const std::int64_t lo = std::min(q_lo, p.q), hi = std::max(q_hi, lo);
        for (std::int64_t ow = 0; ow < lo; ++ow) block.template operator()<1>(ow, true);
        std::int64_t ow = lo;
        for (; ow + 4 <= hi; ow += 4) block.template operator()<4>(ow, false);
        for (; ow < hi; ++ow) block.template operator()<1>(ow, false);
        for (ow = hi; ow < p.q; ++ow) block.template operator()<1>(ow, true);
      }
    }
  });
  finish_output(out, o.y, false);
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
        for (std::int64_t kb = 0; kb < blocks; ++kb) {
          const auto mask = V::first(static_cast<int>(std::min<std::int64_t>(L, p.k - kb * L)));
          typename V::reg db = V::zero();
          for (std::int64_t ow = 0; ow < p.q; ++ow) {
            db = V::add(db, V::load(dyrow + ow * dy.s[2] + kb * L, mask));
          }
          V::store(acc_b + kb * L, V::add(V::load(acc_b + kb * L), db));
          for (std::int64_t r = 0; r < p.r; ++r) {
            const std::int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
            if (ih < 0 || ih >= p.h) continue;
            const float* xrow = x.data + x.at(n, ih, 0);
            for (std::int64_t s = 0; s < p.s; ++s) {
              const std::int64_t off = p.pad_left - s * p.dilation_w;
              const std::int64_t lo = std::max<std::int64_t>(0, ceil_div(off, p.stride_w));
              const std::int64_t hi =
                  std::min<std::int64_t>(p.q, floor_div(p.w - 1 + off, p.stride_w) + 1);
              typename V::reg acc[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
              for (std::int64_t ow = lo; ow < hi; ++ow) {
                const float* px = xrow + (ow * p.stride_w - off) * x.s[2];
                acc[ow & 3] = V::fma(V::load(dyrow + ow * dy.s[2] + kb * L, mask),
                                     pack.template x<kExpand>(px, kb, m, p.c), acc[ow & 3]);
              }
              float* dst = acc_w + (r * p.s + s) * pack.kp + kb * L;
              V::store(dst, V::add(V::load(dst), V::add(V::add(acc[0], acc[1]),
                                                        V::add(acc[2], acc[3]))));
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
      for (std::int64_t part = 0; part < parts; ++part) sum += partials[part * stride + t * pack.kp + k];
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
  p.k == p.c ? dgrad_depthwise_impl<V, false>(p, o) : dgrad_depthwise_impl<V, true>(p, o);
}
template <class V>
void wgrad_depthwise(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  p.k == p.c ? wgrad_depthwise_impl<V, false>(p, o, accumulate)
             : wgrad_depthwise_impl<V, true>(p, o, accumulate);
}

}  // namespace convgrad::cpu::kern
