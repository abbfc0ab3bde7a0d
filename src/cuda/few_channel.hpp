// SPDX-License-Identifier: Apache-2.0
// Convolutions with few input channels (C <= 4, groups = 1), such as a network's first layer on
// RGB images: fprop and dgrad through the shared-memory-weight gather of grouped.cu, whose dgrad
// keeps all of a warp's threads on one stride phase and 8 pixels x 4 channels per thread; wgrad
// goes to the deterministic split wgrad (wgrad_split.cu).
#pragma once

#include <optional>
#include <string>

#include "core/kernel.hpp"

namespace convgrad::cuda {

/// The largest input channel count the few-channel kernels take.
inline constexpr std::int64_t kFewChannels = 4;

std::optional<std::string> few_channel_rejects_fprop(const ConvProblem& problem);
std::optional<std::string> few_channel_rejects_dgrad(const ConvProblem& problem);
void few_channel_fprop(const ConvProblem& problem, const core::Operands& operands, bool accumulate);
void few_channel_dgrad(const ConvProblem& problem, const core::Operands& operands, bool accumulate);

}  // namespace convgrad::cuda
