// SPDX-License-Identifier: Apache-2.0
#include "ref/backend.hpp"

#include <array>

namespace convgrad::ref {
namespace {

std::optional<std::string> accepts_all(const ConvProblem&) { return std::nullopt; }

constexpr std::array<core::KernelInfo, 3> kernel_list{{
    {"ref.fprop.loops.any.any", Direction::fprop, accepts_all, fprop},
    {"ref.dgrad.loops.any.any", Direction::dgrad, accepts_all, dgrad},
    {"ref.wgrad.loops.any.any", Direction::wgrad, accepts_all, wgrad},
}};

bool always_available(std::string*) { return true; }
std::span<const core::KernelInfo> kernels() { return kernel_list; }

}  // namespace

const core::BackendEntry& backend() {
  static const core::BackendEntry entry{"ref", DeviceKind::cpu, always_available, kernels};
  return entry;
}

}  // namespace convgrad::ref
