// SPDX-License-Identifier: Apache-2.0
// The CPU backend: SIMD kernels chosen by problem class and by the ISA found at run time
// (src/cpu/kernel_list.cpp), ending in the always-correct generic direct kernels.
#pragma once

#include "core/kernel.hpp"

namespace convgrad::cpu {

const core::BackendEntry& backend();

}  // namespace convgrad::cpu
