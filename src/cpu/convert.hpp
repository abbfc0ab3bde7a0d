// SPDX-License-Identifier: Apache-2.0
// Storage conversion of contiguous runs (a row of channels) between float16 / bfloat16 / float32
// and the float32 the kernels compute in, with the widest instructions this CPU has (F16C,
// AVX-512). The bits are those of load_as_float / store_from_float on every ISA, so results do not
// depend on the machine: round to nearest even, subnormals kept, NaN quieted the same way.
#pragma once

#include <cstdint>

#include "convgrad/dtype.hpp"

namespace convgrad::cpu {

void convert_to_f32(const void* source, DataType type, std::int64_t count,
                    float* destination) noexcept;
/// destination[i] = round(source[i]), or round(destination[i] + source[i]) with `accumulate`.
void convert_from_f32(const float* source, std::int64_t count, DataType type, void* destination,
                      bool accumulate) noexcept;

}  // namespace convgrad::cpu
