// SPDX-License-Identifier: Apache-2.0
// A kernel is a table entry: what it computes, whether it accepts a problem (and why not), how to
// run it. Backends publish ordered lists of these, the always-correct generic kernel last.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "convgrad/problem.hpp"
#include "core/operands.hpp"

namespace convgrad::core {

struct KernelInfo {
  std::string_view name;  ///< <backend>.<direction>.<algorithm>.<target>.<dtype>
  Direction direction;
  /// nullopt when the kernel can run the problem; otherwise the reason it cannot.
  std::optional<std::string> (*rejects)(const ConvProblem& problem);
  /// Runs a validated problem. `accumulate` (wgrad only) adds into dw and db.
  void (*run)(const ConvProblem& problem, const Operands& operands, bool accumulate);
};

/// A backend as the dispatcher sees it.
struct BackendEntry {
  std::string_view name;
  DeviceKind device;
  /// True when the backend can run here; otherwise `reason` says why.
  bool (*available)(std::string* reason);
  std::span<const KernelInfo> (*kernels)();
};

}  // namespace convgrad::core
