// SPDX-License-Identifier: Apache-2.0
// Grouped convolutions (1 < groups < C): a shared-memory-weight direct gather on CUDA cores for
// fprop and dgrad, and a register-tiled deterministic wgrad (grouped.cu). The same kernels run the
// few-channel problems (few_channel.cu).
#pragma once

#include <optional>
#include <string>

#include "core/kernel.hpp"

namespace convgrad::cuda {

/// What the gather cannot run in `direction` (fprop or dgrad) whatever the grouping: a weight
/// slice too large for shared memory, too many slices for the grid, mixed x/y storage types.
std::optional<std::string> gather_rejects(const ConvProblem& problem, Direction direction);
void gather_run(const ConvProblem& problem, const core::Operands& operands, Direction direction);

/// wgrad of small groups (8 x 8 register tiles per tap, deterministic split over N*P*Q, db in the
/// same pass); what it cannot run: image sides of 2^30, a grid over 2^31 blocks, mixed types.
std::optional<std::string> tile_wgrad_rejects(const ConvProblem& problem);
void tile_wgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate);

std::optional<std::string> grouped_rejects_fprop(const ConvProblem& problem);
std::optional<std::string> grouped_rejects_wgrad(const ConvProblem& problem);
void grouped_wgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
std::optional<std::string> grouped_rejects_dgrad(const ConvProblem& problem);
void grouped_fprop(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
void grouped_dgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate);

}  // namespace convgrad::cuda
