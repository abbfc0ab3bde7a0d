// SPDX-License-Identifier: Apache-2.0
#include "core/parallel.hpp"
#include "ref/backend.hpp"

namespace convgrad::ref {

// Each dx element gathers the taps that read it, so every element is written exactly once and the
// result is independent of the thread count.
void dgrad(const ConvProblem& p, const core::Operands& o, bool /*accumulate*/) {
  const TensorView& dx = o.x;
  const TensorView& w = o.w;
  const TensorView& dy = o.y;
  const std::int64_t cg = p.c_per_group();
  const std::int64_t kg = p.k_per_group();
  core::parallel_for(p.n * p.h, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t nh = begin; nh < end; ++nh) {
      const std::int64_t n = nh / p.h;
      const std::int64_t ih = nh % p.h;
      for (std::int64_t iw = 0; iw < p.w; ++iw) {
        for (std::int64_t c = 0; c < p.c; ++c) {
          const std::int64_t g = c / cg;
          const std::int64_t cl = c % cg;
          double sum = 0.0;
          for (std::int64_t r = 0; r < p.r; ++r) {
            const std::int64_t th = ih + p.pad_top - r * p.dilation_h;
            if (th < 0 || th % p.stride_h != 0) continue;
            const std::int64_t oh = th / p.stride_h;
            if (oh >= p.p) continue;
            for (std::int64_t s = 0; s < p.s; ++s) {
              const std::int64_t tw = iw + p.pad_left - s * p.dilation_w;
              if (tw < 0 || tw % p.stride_w != 0) continue;
              const std::int64_t ow = tw / p.stride_w;
              if (ow >= p.q) continue;
              for (std::int64_t k = g * kg; k < (g + 1) * kg; ++k) {
                const double dyv = load_as_float(dy.data, dy.type, dy.offset(n, oh, ow, k));
                const double wv = load_as_float(w.data, w.type, w.offset(k, r, s, cl));
                sum += dyv * wv;
              }
            }
          }
          store_from_float(dx.data, dx.type, dx.offset(n, ih, iw, c), static_cast<float>(sum));
        }
      }
    }
  });
}

}  // namespace convgrad::ref
