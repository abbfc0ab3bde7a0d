// SPDX-License-Identifier: Apache-2.0
// The CUDA backend's always-correct generic kernels: direct loops, one output element per thread
// (fprop, dgrad) or per warp (wgrad), fp32 accumulation, 64-bit indexing, any view strides and
// any mix of float32, float16 and bfloat16 storage. The tensor-core kernels come before them in
// the kernel list; these take whatever the others reject.
#pragma once

#include "core/kernel.hpp"

namespace convgrad::cuda {

void fprop_direct(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
void dgrad_direct(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
/// Deterministic: each dw and db element is summed by one warp in a fixed order, no atomics.
void wgrad_direct(const ConvProblem& problem, const core::Operands& operands, bool accumulate);

}  // namespace convgrad::cuda
