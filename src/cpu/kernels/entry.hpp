// SPDX-License-Identifier: Apache-2.0
// Entry points of the per-ISA translation units (src/cpu/isa/<isa>/*.cpp), the only symbols the
// baseline code calls. Each runs a validated problem; call one only after its ISA check passed.
#pragma once

#include "convgrad/problem.hpp"
#include "core/operands.hpp"

#define CONVGRAD_CPU_ISA_ENTRIES                                                        \
  void fprop_gemm(const ConvProblem& p, const core::Operands& o, bool accumulate);      \
  void dgrad_gemm(const ConvProblem& p, const core::Operands& o, bool accumulate);      \
  void wgrad_gemm(const ConvProblem& p, const core::Operands& o, bool accumulate);      \
  void fprop_depthwise(const ConvProblem& p, const core::Operands& o, bool accumulate); \
  void dgrad_depthwise(const ConvProblem& p, const core::Operands& o, bool accumulate); \
  void wgrad_depthwise(const ConvProblem& p, const core::Operands& o, bool accumulate); \
  void dgrad_col2im(const ConvProblem& p, const core::Operands& o, bool accumulate);      \
  void fprop_few_channel(const ConvProblem& p, const core::Operands& o, bool accumulate); \
  void wgrad_few_channel(const ConvProblem& p, const core::Operands& o, bool accumulate); \
  void convert_to_f32(const void* source, DataType type, std::int64_t count,            \
                      float* destination) noexcept;                                     \
  void convert_from_f32(const float* source, std::int64_t count, DataType type,         \
                        void* destination, bool accumulate) noexcept;

namespace convgrad::cpu {
namespace avx512 {
CONVGRAD_CPU_ISA_ENTRIES
}  // namespace avx512
namespace avx2 {
CONVGRAD_CPU_ISA_ENTRIES
}  // namespace avx2
}  // namespace convgrad::cpu

#undef CONVGRAD_CPU_ISA_ENTRIES
