// SPDX-License-Identifier: Apache-2.0
// The CUDA backend as the dispatcher sees it. Its kernels arrive with issue #4.
#pragma once

#include "core/kernel.hpp"

namespace convgrad::cuda {

const core::BackendEntry& backend();

}  // namespace convgrad::cuda
