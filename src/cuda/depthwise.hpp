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

}  // namespace convgrad::cuda
