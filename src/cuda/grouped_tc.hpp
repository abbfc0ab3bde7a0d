// SPDX-License-Identifier: Apache-2.0
// Grouped convolutions on the tensor cores (mma.sync m16n8k16, fp32 accumulation) for float16 and
// bfloat16 storage with channels per group a multiple of 8 (grouped_tc.cu). What they reject
// goes to the CUDA-core grouped kernels (grouped.hpp) further down the kernel list.
#pragma once

#include <optional>
#include <string>

#include "core/kernel.hpp"

namespace convgrad::cuda {

/// Reasons these kernels pass a problem over: not grouped, storage other than one 16-bit type
/// for x, w and y (and `type` for this entry), channels per group not a multiple of 8, a tile
/// too large for shared memory, image sides of 2^30, grids over their limits; dgrad also takes
/// stride 1 only, wgrad at most 16 warp tiles per group.
std::optional<std::string> grouped_tc_rejects_fprop_bf16(const ConvProblem& problem);
std::optional<std::string> grouped_tc_rejects_fprop_f16(const ConvProblem& problem);
std::optional<std::string> grouped_tc_rejects_dgrad_bf16(const ConvProblem& problem);
std::optional<std::string> grouped_tc_rejects_dgrad_f16(const ConvProblem& problem);
std::optional<std::string> grouped_tc_rejects_wgrad_bf16(const ConvProblem& problem);
std::optional<std::string> grouped_tc_rejects_wgrad_f16(const ConvProblem& problem);

/// Views whose channel rows are not whole aligned 16-byte vectors (unit channel stride, strides
/// multiples of 8 elements, 16-byte aligned base) run on the CUDA-core grouped kernels instead.
void grouped_tc_fprop(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
void grouped_tc_dgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
/// Deterministic: fp32 partials per split of the pixels, summed in a fixed order; db in the
/// same pass; `accumulate` adds into dw and db.
void grouped_tc_wgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate);

}  // namespace convgrad::cuda
