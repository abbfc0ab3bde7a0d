// SPDX-License-Identifier: Apache-2.0
// The reference backend: plain loops, double accumulation, 64-bit indexing. It defines the right
// answer; it is checked against oneDNN and by finite differences, never tuned.
#pragma once

#include "core/kernel.hpp"

namespace convgrad::ref {

const core::BackendEntry& backend();

void fprop(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
void dgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
void wgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate);

}  // namespace convgrad::ref
