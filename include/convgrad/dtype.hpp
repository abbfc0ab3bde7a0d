// SPDX-License-Identifier: Apache-2.0
// Storage data types and the host-side conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace convgrad {

/// Element type of a tensor in memory. Arithmetic is always at least float32.
/// MPS: `MPSDataType` (float32, float16; bfloat16 is ours).
enum class DataType : std::uint8_t { float32, float16, bfloat16 };

/// How the GPU backend may trade accuracy for speed with float32 storage; the CPU backends always
/// compute in fp32 or better and accept every mode. 16-bit storage always accumulates in fp32.
/// - exact_fp32 (default): fp32 products and sums on CUDA cores;
/// - tf32: tensor cores on operands rounded to 10 mantissa bits (relative error about 1e-3);
/// - fp32_accurate: tensor cores as 3xTF32 (each operand split into two tf32 parts, three
///   products; within 1e-5 of the fp32 result), fprop and dgrad; wgrad stays exact.
enum class MathMode : std::uint8_t { exact_fp32, tf32, fp32_accurate };

std::size_t size_of(DataType type) noexcept;
/// Short name used on the command line and in problem strings: "f32", "f16", "bf16".
std::string_view to_string(DataType type) noexcept;
std::optional<DataType> parse_data_type(std::string_view name) noexcept;
std::string_view to_string(MathMode mode) noexcept;

/// Round-to-nearest-even conversions; NaN stays NaN, overflow goes to infinity.
std::uint16_t float_to_half(float value) noexcept;
float half_to_float(std::uint16_t bits) noexcept;
std::uint16_t float_to_bfloat16(float value) noexcept;
float bfloat16_to_float(std::uint16_t bits) noexcept;

/// Reads element `index` of an array of `type` as float.
float load_as_float(const void* data, DataType type, std::int64_t index) noexcept;
/// Writes `value`, rounded to `type`, into element `index`.
void store_from_float(void* data, DataType type, std::int64_t index, float value) noexcept;

}  // namespace convgrad
