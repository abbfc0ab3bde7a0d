// SPDX-License-Identifier: Apache-2.0
// The always-correct generic direct kernels (src/cpu/direct.cpp): any problem, any view and
// storage type, float32 arithmetic. They close every direction's list in kernel_list.cpp.
#pragma once

#include "convgrad/problem.hpp"
#include "core/operands.hpp"

namespace convgrad::cpu {

void fprop_direct(const ConvProblem& p, const core::Operands& o, bool accumulate);
void dgrad_direct(const ConvProblem& p, const core::Operands& o, bool accumulate);
void wgrad_direct(const ConvProblem& p, const core::Operands& o, bool accumulate);

}  // namespace convgrad::cpu
