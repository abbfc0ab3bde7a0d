// SPDX-License-Identifier: Apache-2.0
// The functional face: validate once, choose a kernel, run it. Both public faces end here.
#include "convgrad/functional.hpp"

#include "convgrad/errors.hpp"
#include "core/validate.hpp"
#include "dispatch/registry.hpp"

namespace convgrad {
namespace {

void run(Direction direction, const ConvProblem& problem, const core::Operands& operands,
         const RunOptions& options, const char* where) {
  core::validate(problem, direction, operands, where);
  const core::BackendEntry& backend = dispatch::backend(options.backend);
  if (operands.x.device != backend.device) {
    throw InvalidArgument(where, "device", operands.x.device == DeviceKind::cpu ? "cpu" : "cuda",
                          "the tensors must live on the device of backend \"" +
                              options.backend + "\"",
                          to_string(problem));
  }
  const core::KernelInfo& kernel =
      dispatch::choose_kernel(backend, problem, direction, options.kernel);
  kernel.run(problem, operands, options.accumulate);
}

}  // namespace

void fprop(const ConvProblem& problem, const TensorView& x, const TensorView& w,
           const TensorView& b, const TensorView& y, const RunOptions& options) {
  run(Direction::fprop, problem, {x, w, b, y}, options, "fprop");
}

void dgrad(const ConvProblem& problem, const TensorView& dy, const TensorView& w,
           const TensorView& dx, const RunOptions& options) {
  run(Direction::dgrad, problem, {dx, w, {}, dy}, options, "dgrad");
}

void wgrad(const ConvProblem& problem, const TensorView& x, const TensorView& dy,
           const TensorView& dw, const TensorView& db, const RunOptions& options) {
  run(Direction::wgrad, problem, {x, dw, db, dy}, options, "wgrad");
}

void validate(const ConvProblem& problem, Direction direction, const TensorView& x,
              const TensorView& w, const TensorView& b, const TensorView& y, const char* where) {
  core::validate(problem, direction, {x, w, b, y}, where);
}

std::string kernel_name(const ConvProblem& problem, Direction direction,
                        const RunOptions& options) {
  core::validate_problem(problem, "kernel_name");
  const core::BackendEntry& backend = dispatch::backend(options.backend);
  return std::string(dispatch::choose_kernel(backend, problem, direction, options.kernel).name);
}

std::vector<BackendInfo> list_backends() {
  std::vector<BackendInfo> result;
  for (const core::BackendEntry* entry : dispatch::backends()) {
    BackendInfo info;
    info.name = entry->name;
    info.available = entry->available(&info.reason);
    for (const core::KernelInfo& kernel : entry->kernels()) info.kernels.emplace_back(kernel.name);
    result.push_back(std::move(info));
  }
  return result;
}

}  // namespace convgrad
