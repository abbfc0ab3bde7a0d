// SPDX-License-Identifier: Apache-2.0
// The CPU backend. It currently holds the always-correct generic direct kernels (float32
// arithmetic on packed dense copies, threaded); the SIMD kernels of issue #3 go before them in
// the list.
#pragma once

#include "core/kernel.hpp"

namespace convgrad::cpu {

const core::BackendEntry& backend();

}  // namespace convgrad::cpu
