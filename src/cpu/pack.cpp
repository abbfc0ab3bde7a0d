// SPDX-License-Identifier: Apache-2.0
#include "cpu/pack.hpp"

#include "core/parallel.hpp"

namespace convgrad::cpu {

std::vector<float> pack_dense(const TensorView& v) {
  const auto& d = v.dims;
  std::vector<float> dense(static_cast<std::size_t>(d[0] * d[1] * d[2] * d[3]));
  core::parallel_for(d[0] * d[1], [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t ab = begin; ab < end; ++ab) {
      const std::int64_t a = ab / d[1], b = ab % d[1];
      float* out = dense.data() + ab * d[2] * d[3];
      for (std::int64_t c = 0; c < d[2]; ++c)
        for (std::int64_t e = 0; e < d[3]; ++e)
          out[c * d[3] + e] = load_as_float(v.data, v.type, v.offset(a, b, c, e));
    }
  });
  return dense;
}

void unpack_dense(const std::vector<float>& dense, const TensorView& v) {
  const auto& d = v.dims;
  core::parallel_for(d[0] * d[1], [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t ab = begin; ab < end; ++ab) {
      const std::int64_t a = ab / d[1], b = ab % d[1];
      const float* in = dense.data() + ab * d[2] * d[3];
      for (std::int64_t c = 0; c < d[2]; ++c)
        for (std::int64_t e = 0; e < d[3]; ++e)
          store_from_float(v.data, v.type, v.offset(a, b, c, e), in[c * d[3] + e]);
    }
  });
}

}  // namespace convgrad::cpu
