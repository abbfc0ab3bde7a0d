// SPDX-License-Identifier: Apache-2.0
// The generic deterministic wgrad: a tiled SGEMM per group with the N*P*Q reduction split over
// blocks into fp32 partials, added in a fixed order (no atomics), db in the same pass. It runs
// every grouping, f32/f16/bf16 storage with one type for x and dy, any view strides; the direct
// wgrad stays behind it in the kernel list for what it rejects.
#pragma once

#include <optional>
#include <string>

#include "core/kernel.hpp"

namespace convgrad::cuda {

std::optional<std::string> wgrad_split_rejects(const ConvProblem& problem);
void wgrad_split(const ConvProblem& problem, const core::Operands& operands, bool accumulate);

}  // namespace convgrad::cuda
