// SPDX-License-Identifier: Apache-2.0
// Few-channel entries: the problem class and its reasons; the kernel is grouped.cu's gather, whose
// narrow slice (4 output channels, 8 pixels per thread) fits dgrad's C <= 4 outputs. wgrad goes to
// the split wgrad, which measured faster on resnet50_conv1 than grouped.cu's tiled wgrad.
#include "cuda/few_channel.hpp"

#include "cuda/grouped.hpp"

namespace convgrad::cuda {
namespace {

std::optional<std::string> few_channel_class(const ConvProblem& problem) {
  if (problem.groups != 1) return "grouped (groups = " + std::to_string(problem.groups) + ")";
  if (problem.c > kFewChannels) {
    return "c = " + std::to_string(problem.c) + " is more than the " +
           std::to_string(kFewChannels) + " channels of the few-channel kernels";
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> few_channel_rejects_fprop(const ConvProblem& problem) {
  if (auto reason = few_channel_class(problem)) return reason;
  return gather_rejects(problem, Direction::fprop);
}

std::optional<std::string> few_channel_rejects_dgrad(const ConvProblem& problem) {
  if (auto reason = few_channel_class(problem)) return reason;
  return gather_rejects(problem, Direction::dgrad);
}

void few_channel_fprop(const ConvProblem& problem, const core::Operands& operands, bool) {
  gather_run(problem, operands, Direction::fprop);
}

void few_channel_dgrad(const ConvProblem& problem, const core::Operands& operands, bool) {
  gather_run(problem, operands, Direction::dgrad);
}

}  // namespace convgrad::cuda
