// SPDX-License-Identifier: Apache-2.0
// MathMode::fp32_accurate on the tensor cores (3xTF32), for float32 storage: fprop and dgrad.
// wgrad has no such kernel (wgmma reads tf32 only K-major; wgrad's operands are MN-major) and
// stays with the exact fp32 kernels.
#pragma once

#include <optional>
#include <string>

#include "core/kernel.hpp"

namespace convgrad::cuda::tc {

std::optional<std::string> accurate_fprop_rejects(const ConvProblem& p);
std::optional<std::string> accurate_dgrad_rejects(const ConvProblem& p);
void accurate_fprop(const ConvProblem& p, const core::Operands& o, bool accumulate);
void accurate_dgrad(const ConvProblem& p, const core::Operands& o, bool accumulate);

}  // namespace convgrad::cuda::tc
