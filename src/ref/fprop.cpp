// SPDX-License-Identifier: Apache-2.0
#include "core/parallel.hpp"
#include "ref/backend.hpp"

namespace convgrad::ref {

void fprop(const ConvProblem& p, const core::Operands& o, bool /*accumulate*/) {
  const TensorView& x = o.x;
  const TensorView& w = o.w;
  const TensorView& y = o.y;
  const bool bias = p.with_bias && !o.b.empty();
  const std::int64_t cg = p.c_per_group();
  const std::int64_t kg = p.k_per_group();
  core::parallel_for(p.n * p.p, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t np = begin; np < end; ++np) {
      const std::int64_t n = np / p.p;
      const std::int64_t oh = np % p.p;
      for (std::int64_t ow = 0; ow < p.q; ++ow) {
        for (std::int64_t k = 0; k < p.k; ++k) {
          const std::int64_t g = k / kg;
          double sum = bias ? load_as_float(o.b.data, DataType::float32, o.b.offset(k, 0, 0, 0))
                            : 0.0;
          for (std::int64_t r = 0; r < p.r; ++r) {
            const std::int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
            if (ih < 0 || ih >= p.h) continue;
            for (std::int64_t s = 0; s < p.s; ++s) {
              const std::int64_t iw = ow * p.stride_w - p.pad_left + s * p.dilation_w;
              if (iw < 0 || iw >= p.w) continue;
              for (std::int64_t c = 0; c < cg; ++c) {
                const double xv = load_as_float(x.data, x.type, x.offset(n, ih, iw, g * cg + c));
                const double wv = load_as_float(w.data, w.type, w.offset(k, r, s, c));
                sum += xv * wv;
              }
            }
          }
          store_from_float(y.data, y.type, y.offset(n, oh, ow, k), static_cast<float>(sum));
        }
      }
    }
  });
}

}  // namespace convgrad::ref
