// SPDX-License-Identifier: Apache-2.0
#include "core/parallel.hpp"
#include "ref/backend.hpp"

namespace convgrad::ref {

// Parallel over output channels: each dw and db element is owned by one thread and summed in a
// fixed order, so the result does not depend on the thread count.
void wgrad(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  const TensorView& x = o.x;
  const TensorView& dw = o.w;
  const TensorView& dy = o.y;
  const TensorView& db = o.b;
  const std::int64_t cg = p.c_per_group();
  const std::int64_t kg = p.k_per_group();
  core::parallel_for(p.k, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t k = begin; k < end; ++k) {
      const std::int64_t g = k / kg;
      for (std::int64_t r = 0; r < p.r; ++r) {
        for (std::int64_t s = 0; s < p.s; ++s) {
          for (std::int64_t c = 0; c < cg; ++c) {
            const std::int64_t at = dw.offset(k, r, s, c);
            double sum = accumulate ? load_as_float(dw.data, dw.type, at) : 0.0;
            for (std::int64_t n = 0; n < p.n; ++n) {
              for (std::int64_t oh = 0; oh < p.p; ++oh) {
                const std::int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
                if (ih < 0 || ih >= p.h) continue;
                for (std::int64_t ow = 0; ow < p.q; ++ow) {
                  const std::int64_t iw = ow * p.stride_w - p.pad_left + s * p.dilation_w;
                  if (iw < 0 || iw >= p.w) continue;
                  const double xv =
                      load_as_float(x.data, x.type, x.offset(n, ih, iw, g * cg + c));
                  const double dyv = load_as_float(dy.data, dy.type, dy.offset(n, oh, ow, k));
                  sum += xv * dyv;
                }
              }
            }
            store_from_float(dw.data, dw.type, at, static_cast<float>(sum));
          }
        }
      }
      if (!db.empty()) {
        const std::int64_t at = db.offset(k, 0, 0, 0);
        double sum = accumulate ? load_as_float(db.data, db.type, at) : 0.0;
        for (std::int64_t n = 0; n < p.n; ++n)
          for (std::int64_t oh = 0; oh < p.p; ++oh)
            for (std::int64_t ow = 0; ow < p.q; ++ow)
              sum += load_as_float(dy.data, dy.type, dy.offset(n, oh, ow, k));
        store_from_float(db.data, db.type, at, static_cast<float>(sum));
      }
    }
  });
}

}  // namespace convgrad::ref
