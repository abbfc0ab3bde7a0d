// SPDX-License-Identifier: Apache-2.0
// What the running CPU supports, read once with CPUID. The library itself is built for baseline
// x86-64; kernels compiled for a wider ISA ask here in rejects() before they are allowed to run.
#pragma once

#include <optional>
#include <string>

namespace convgrad::cpu {

struct IsaFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512_bf16 = false;
};

/// The features of this machine. CONVGRAD_CPU_ISA=avx2 or =generic hides the wider ones, so that
/// the narrower dispatch can be exercised on a machine that has more.
const IsaFeatures& isa_features() noexcept;

/// nullopt when the AVX-512 kernels (F, BW, VL, DQ and FMA) can run here; otherwise the reason.
std::optional<std::string> lacks_avx512();
/// nullopt when the AVX2 kernels (AVX2, FMA, F16C) can run here; otherwise the reason.
std::optional<std::string> lacks_avx2();

}  // namespace convgrad::cpu
