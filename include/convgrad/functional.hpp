// SPDX-License-Identifier: Apache-2.0
// The functional face: one call per direction on a ConvProblem and tensor views. The MPS-like
// objects translate themselves into these calls, so both faces run the same path.
#pragma once

#include <string>
#include <vector>

#include "convgrad/problem.hpp"
#include "convgrad/tensor_view.hpp"

namespace convgrad {

struct RunOptions {
  /// "cpu" (default), "ref" (the double-accumulating oracle) or "cuda".
  std::string backend = "cpu";
  /// Glob over kernel names ("cpu.dgrad.*"); empty picks the first kernel that accepts the problem.
  std::string kernel;
  /// wgrad only: add into dw and db instead of overwriting them (how a gradient state sums over
  /// the images of a batch).
  bool accumulate = false;
};

/// y = conv(x, w) + b. `b` may be empty (no bias, or `problem.with_bias == false`).
/// Throws InvalidArgument before touching `y` when anything disagrees with `problem`.
void fprop(const ConvProblem& problem, const TensorView& x, const TensorView& w,
           const TensorView& b, const TensorView& y, const RunOptions& options = {});

/// dx = dL/dx given dy. Every element of dx is written (zero where no tap reaches it).
void dgrad(const ConvProblem& problem, const TensorView& dy, const TensorView& w,
           const TensorView& dx, const RunOptions& options = {});

/// dw = dL/dw and, when `db` is not empty, db = sum of dy over N, P, Q. `db` must be float32.
void wgrad(const ConvProblem& problem, const TensorView& x, const TensorView& dy,
           const TensorView& dw, const TensorView& db, const RunOptions& options = {});

/// Checks a problem and its operands without running anything; throws InvalidArgument.
/// `where` prefixes the message (the API call the user made).
void validate(const ConvProblem& problem, Direction direction, const TensorView& x,
              const TensorView& w, const TensorView& b, const TensorView& y,
              const char* where);

/// Name of the kernel `options` would pick for `problem` (for tests, the CLI and benchmarks).
std::string kernel_name(const ConvProblem& problem, Direction direction,
                        const RunOptions& options = {});

/// The backends compiled into this build and, for each, whether it can run here and why not.
struct BackendInfo {
  std::string name;
  bool available = false;
  std::string reason;  ///< empty when available
  std::vector<std::string> kernels;
};
std::vector<BackendInfo> list_backends();

}  // namespace convgrad
