// SPDX-License-Identifier: Apache-2.0
// The tensor-core kernels of the CUDA backend (issue #4): CUTLASS 3.x sm90 implicit GEMM, dense
// convolutions only, float16/bfloat16 storage (any math mode) and float32 storage under
// MathMode::tf32. src/cuda/backend.cu lists them before the generic direct kernels; they exist
// only in builds that found the CUTLASS headers (CONVGRAD_WITH_CUTLASS).
#pragma once

#include <span>

#include "core/kernel.hpp"

namespace convgrad::cuda::tc {

/// Fastest first: fprop, dgrad and wgrad for bf16, f16 and tf32 (no tf32 wgrad).
std::span<const core::KernelInfo> kernels();

}  // namespace convgrad::cuda::tc
