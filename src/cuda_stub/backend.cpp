// SPDX-License-Identifier: Apache-2.0
// Built instead of src/cuda/ when no CUDA compiler was found: the backend exists, says why it
// cannot run, and offers no kernels.
#include "cuda/backend.hpp"

namespace convgrad::cuda {
namespace {
bool unavailable(std::string* reason) {
  if (reason) *reason = "convgrad was built without CUDA (nvcc not found at configure time)";
  return false;
}
std::span<const core::KernelInfo> no_kernels() { return {}; }
}  // namespace

const core::BackendEntry& backend() {
  static const core::BackendEntry entry{"cuda", DeviceKind::cuda, unavailable, no_kernels};
  return entry;
}

}  // namespace convgrad::cuda
