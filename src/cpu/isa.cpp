// SPDX-License-Identifier: Apache-2.0
#include "cpu/isa.hpp"

#include <cstdlib>
#include <string_view>

namespace convgrad::cpu {

const IsaFeatures& isa_features() noexcept {
  static const IsaFeatures features = [] {
    IsaFeatures f;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    // GCC 12 knows no f16c or avx512bf16 names for __builtin_cpu_supports; AVX2 machines all have
    // F16C, and nothing here uses the bf16 instructions yet.
    f.f16c = f.avx2;
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
    f.avx512dq = __builtin_cpu_supports("avx512dq");
#endif
    if (const char* cap = std::getenv("CONVGRAD_CPU_ISA")) {
      const std::string_view name(cap);
      if (name == "avx2" || name == "generic") {
        f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512_bf16 = false;
      }
      if (name == "generic") f.avx2 = f.fma = f.f16c = false;
    }
    return f;
  }();
  return features;
}

std::optional<std::string> lacks_avx512() {
  const IsaFeatures& f = isa_features();
  if (!f.avx512f) return "needs avx512f";
  if (!f.avx512bw || !f.avx512vl || !f.avx512dq) return "needs avx512bw, avx512vl and avx512dq";
  if (!f.fma) return "needs fma";
  return std::nullopt;
}

std::optional<std::string> lacks_avx2() {
  const IsaFeatures& f = isa_features();
  if (!f.avx2) return "needs avx2";
  if (!f.fma) return "needs fma";
  return std::nullopt;
}

}  // namespace convgrad::cpu
