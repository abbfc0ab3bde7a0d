// SPDX-License-Identifier: Apache-2.0
// Depthwise stencils and the few-channel dgrad, instantiated for AVX2 and FMA.
#include "cpu/kernels/col2im.hpp"
#include "cpu/kernels/depthwise.hpp"
#include "cpu/kernels/entry.hpp"

namespace convgrad::cpu::avx2 {

void fprop_depthwise(const ConvProblem& p, const core::Operands& o, bool) {
  kern::fprop_depthwise<simd::Avx2>(p, o);
}
void dgrad_depthwise(const ConvProblem& p, const core::Operands& o, bool) {
  kern::dgrad_depthwise<simd::Avx2>(p, o);
}
void wgrad_depthwise(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  kern::wgrad_depthwise<simd::Avx2>(p, o, accumulate);
}
void dgrad_col2im(const ConvProblem& p, const core::Operands& o, bool) {
  kern::dgrad_col2im<simd::Avx2>(p, o);
}

}  // namespace convgrad::cpu::avx2
