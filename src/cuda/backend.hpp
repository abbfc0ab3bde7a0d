// SPDX-License-Identifier: Apache-2.0
// The CUDA backend as the dispatcher sees it (kernels: src/cuda/direct.hpp; more with issue #4).
#pragma once

#include "core/kernel.hpp"

namespace convgrad::cuda {

const core::BackendEntry& backend();

}  // namespace convgrad::cuda
