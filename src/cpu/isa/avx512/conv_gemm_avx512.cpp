// SPDX-License-Identifier: Apache-2.0
// The implicit-GEMM kernels instantiated for AVX-512 (compiled with -mavx512f/bw/vl/dq).
#include "cpu/kernels/conv_gemm.hpp"
#include "cpu/kernels/entry.hpp"
#include "cpu/kernels/few_channel.hpp"

namespace convgrad::cpu::avx512 {

void fprop_gemm(const ConvProblem& p, const core::Operands& o, bool) {
  kern::fprop_gemm<simd::Avx512>(p, o);
}
void dgrad_gemm(const ConvProblem& p, const core::Operands& o, bool) {
  kern::dgrad_gemm<simd::Avx512>(p, o);
}
void wgrad_gemm(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  kern::wgrad_gemm<simd::Avx512>(p, o, accumulate);
}
void fprop_few_channel(const ConvProblem& p, const core::Operands& o, bool) {
  kern::fprop_few_channel<simd::Avx512>(p, o);
}
void wgrad_few_channel(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  kern::wgrad_few_channel<simd::Avx512>(p, o, accumulate);
}

}  // namespace convgrad::cpu::avx512
