// SPDX-License-Identifier: Apache-2.0
// Depthwise convolution kernels (groups == C, any channel multiplier), memory-bound by design:
// see depthwise.cu. wgrad is deterministic (fixed-order split reduction, no atomics) and
// produces db in the same pass.
#pragma once

#include <optional>
#include <string>

#include "core/kernel.hpp"

namespace convgrad::cuda {

std::optional<std::string> depthwise_rejects(const ConvProblem& problem);
void depthwise_fprop(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
void depthwise_dgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
void depthwise_wgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate);

// 3x3 filters, stride 1 or 2, dilation 1, channel multiplier 1, whole 16-byte channel vectors:
// compile-time taps and register tiles (the common MobileNet layers). Views that break the
// vectors fall back to the generic kernels above.
std::optional<std::string> depthwise3x3_rejects(const ConvProblem& problem);
void depthwise3x3_fprop(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
void depthwise3x3_dgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
void depthwise3x3_wgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate);

}  // namespace convgrad::cuda
