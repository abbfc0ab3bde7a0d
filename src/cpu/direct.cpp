// SPDX-License-Identifier: Apache-2.0
// Generic direct kernels: every problem, any view and storage type. Inputs are packed to dense
// float32 first; the innermost loops run over a contiguous channel axis without a reduction so
// that the compiler can vectorise them.
#include <vector>

#include "core/parallel.hpp"
#include "cpu/generic.hpp"
#include "cpu/pack.hpp"

namespace convgrad::cpu {

void fprop_direct(const ConvProblem& p, const core::Operands& o, bool) {
  const std::vector<float> x = pack_dense(o.x);
  const std::vector<float> w = pack_dense(o.w);
  const std::int64_t cg = p.c_per_group(), kg = p.k_per_group();
  // Weights transposed to [R][S][C/g][K] so the inner loop runs over output channels.
  std::vector<float> wt(w.size());
  for (std::int64_t k = 0; k < p.k; ++k)
    for (std::int64_t rsc = 0; rsc < p.r * p.s * cg; ++rsc)
      wt[rsc * p.k + k] = w[k * p.r * p.s * cg + rsc];
  std::vector<float> bias(static_cast<std::size_t>(p.k), 0.0f);
  if (p.with_bias && !o.b.empty()) bias = pack_dense(o.b);
  std::vector<float> y(static_cast<std::size_t>(p.n * p.p * p.q * p.k));
  core::parallel_for(p.n * p.p, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t np = begin; np < end; ++np) {
      const std::int64_t n = np / p.p, oh = np % p.p;
      for (std::int64_t ow = 0; ow < p.q; ++ow) {
        float* acc = y.data() + (np * p.q + ow) * p.k;
        for (std::int64_t k = 0; k < p.k; ++k) acc[k] = bias[k];
        for (std::int64_t r = 0; r < p.r; ++r) {
          const std::int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
          if (ih < 0 || ih >= p.h) continue;
          for (std::int64_t s = 0; s < p.s; ++s) {
            const std::int64_t iw = ow * p.stride_w - p.pad_left + s * p.dilation_w;
            if (iw < 0 || iw >= p.w) continue;
            const float* xp = x.data() + ((n * p.h + ih) * p.w + iw) * p.c;
            for (std::int64_t g = 0; g < p.groups; ++g) {
              for (std::int64_t c = 0; c < cg; ++c) {
                const float xv = xp[g * cg + c];
                const float* wp = wt.data() + ((r * p.s + s) * cg + c) * p.k + g * kg;
                float* ap = acc + g * kg;
                for (std::int64_t k = 0; k < kg; ++k) ap[k] += xv * wp[k];
              }
            }
          }
        }
      }
    }
  });
  unpack_dense(y, o.y);
}

void dgrad_direct(const ConvProblem& p, const core::Operands& o, bool) {
  const std::vector<float> dy = pack_dense(o.y);
  const std::vector<float> w = pack_dense(o.w);
  const std::int64_t cg = p.c_per_group(), kg = p.k_per_group();
  std::vector<float> dx(static_cast<std::size_t>(p.n * p.h * p.w * p.c));
  core::parallel_for(p.n * p.h, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t nh = begin; nh < end; ++nh) {
      const std::int64_t n = nh / p.h, ih = nh % p.h;
      for (std::int64_t iw = 0; iw < p.w; ++iw) {
        float* acc = dx.data() + (nh * p.w + iw) * p.c;
        for (std::int64_t c = 0; c < p.c; ++c) acc[c] = 0.0f;
        for (std::int64_t r = 0; r < p.r; ++r) {
          const std::int64_t th = ih + p.pad_top - r * p.dilation_h;
          if (th < 0 || th % p.stride_h != 0 || th / p.stride_h >= p.p) continue;
          const std::int64_t oh = th / p.stride_h;
          for (std::int64_t s = 0; s < p.s; ++s) {
            const std::int64_t tw = iw + p.pad_left - s * p.dilation_w;
            if (tw < 0 || tw % p.stride_w != 0 || tw / p.stride_w >= p.q) continue;
            const std::int64_t ow = tw / p.stride_w;
            const float* dyp = dy.data() + ((n * p.p + oh) * p.q + ow) * p.k;
            for (std::int64_t k = 0; k < p.k; ++k) {
              const float dyv = dyp[k];
              const float* wp = w.data() + ((k * p.r + r) * p.s + s) * cg;
              float* ap = acc + (k / kg) * cg;
              for (std::int64_t c = 0; c < cg; ++c) ap[c] += dyv * wp[c];
            }
          }
        }
      }
    }
  });
  unpack_dense(dx, o.x);
}

void wgrad_direct(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  const std::vector<float> x = pack_dense(o.x);
  const std::vector<float> dy = pack_dense(o.y);
  const std::int64_t cg = p.c_per_group(), kg = p.k_per_group();
  std::vector<float> dw = accumulate
                              ? pack_dense(o.w)
                              : std::vector<float>(static_cast<std::size_t>(p.k * p.r * p.s * cg));
  const bool with_db = !o.b.empty();
  std::vector<float> db =
      with_db && accumulate ? pack_dense(o.b) : std::vector<float>(static_cast<std::size_t>(p.k));
  // Each output row of an image is summed into a partial buffer that is then added to dw: a
  // plain running sum over N*P*Q terms loses about log2(N*P*Q) bits (lenet's 50,176 terms
  // reached 1e-5 relative error); partial sums keep the error near that of one row.
  const std::int64_t taps = p.r * p.s * cg;
  core::parallel_for(p.k, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> partial(static_cast<std::size_t>(taps));
    for (std::int64_t k = begin; k < end; ++k) {
      const std::int64_t g = k / kg;
      float* dwk = dw.data() + k * taps;
      double bias_sum = 0.0;
      for (std::int64_t n = 0; n < p.n; ++n) {
        for (std::int64_t oh = 0; oh < p.p; ++oh) {
          std::fill(partial.begin(), partial.end(), 0.0f);
          // db is often a small difference of large sums, added in accumulate mode to a value of
          // similar size: summed in double and rounded once, as the SIMD kernels' db is.
          double bias_partial = 0.0;
          for (std::int64_t ow = 0; ow < p.q; ++ow) {
            const float dyv = dy[static_cast<std::size_t>(((n * p.p + oh) * p.q + ow) * p.k + k)];
            bias_partial += dyv;
            for (std::int64_t r = 0; r < p.r; ++r) {
              const std::int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
              if (ih < 0 || ih >= p.h) continue;
              for (std::int64_t s = 0; s < p.s; ++s) {
                const std::int64_t iw = ow * p.stride_w - p.pad_left + s * p.dilation_w;
                if (iw < 0 || iw >= p.w) continue;
                const float* xp = x.data() + ((n * p.h + ih) * p.w + iw) * p.c + g * cg;
                float* pp = partial.data() + (r * p.s + s) * cg;
                for (std::int64_t c = 0; c < cg; ++c) pp[c] += dyv * xp[c];
              }
            }
          }
          for (std::int64_t t = 0; t < taps; ++t) dwk[t] += partial[static_cast<std::size_t>(t)];
          bias_sum += bias_partial;
        }
      }
      if (with_db) {
        float& out = db[static_cast<std::size_t>(k)];
        out = static_cast<float>(static_cast<double>(out) + bias_sum);
      }
    }
  });
  unpack_dense(dw, o.w);
  if (with_db) unpack_dense(db, o.b);
}

}  // namespace convgrad::cpu
