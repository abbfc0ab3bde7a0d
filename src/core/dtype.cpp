// SPDX-License-Identifier: Apache-2.0
#include "convgrad/dtype.hpp"

#include <bit>
#include <cmath>
#include <cstring>

namespace convgrad {

std::size_t size_of(DataType type) noexcept { return type == DataType::float32 ? 4 : 2; }

std::string_view to_string(DataType type) noexcept {
  switch (type) {
    case DataType::float32: return "f32";
    case DataType::float16: return "f16";
    case DataType::bfloat16: return "bf16";
  }
  return "?";
}

std::optional<DataType> parse_data_type(std::string_view name) noexcept {
  if (name == "f32" || name == "float32") return DataType::float32;
  if (name == "f16" || name == "float16") return DataType::float16;
  if (name == "bf16" || name == "bfloat16") return DataType::bfloat16;
  return std::nullopt;
}

std::string_view to_string(MathMode mode) noexcept {
  switch (mode) {
    case MathMode::exact_fp32: return "exact_fp32";
    case MathMode::tf32: return "tf32";
    case MathMode::fp32_accurate: return "fp32_accurate";
  }
  return "?";
}

std::uint16_t float_to_half(float value) noexcept {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t sign = (bits >> 16) & 0x8000u;
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
  if (magnitude >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow
  if (magnitude < 0x38800000u) {
    // Subnormal half (or zero): add 0.5 so that the float adder does the rounding to nearest even
    // at the half-subnormal quantum of 2^-24.
    const float rounded = std::bit_cast<float>(magnitude) + 0.5f;
    return static_cast<std::uint16_t>(sign | (std::bit_cast<std::uint32_t>(rounded) - 0x3f000000u));
  }
  const std::uint32_t odd = (magnitude >> 13) & 1u;
  std::uint32_t result = magnitude + 0xc8000fffu + odd;  // rebias exponent, round to nearest even
  return static_cast<std::uint16_t>(sign | (result >> 13));
}

float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    const float value = std::ldexp(static_cast<float>(mantissa), -24);
    return std::bit_cast<float>(std::bit_cast<std::uint32_t>(value) | sign);
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

std::uint16_t float_to_bfloat16(float value) noexcept {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  const std::uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding) >> 16);
}

float bfloat16_to_float(std::uint16_t bits) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

float load_as_float(const void* data, DataType type, std::int64_t index) noexcept {
  switch (type) {
    case DataType::float32: return static_cast<const float*>(data)[index];
    case DataType::float16: return half_to_float(static_cast<const std::uint16_t*>(data)[index]);
    case DataType::bfloat16:
      return bfloat16_to_float(static_cast<const std::uint16_t*>(data)[index]);
  }
  return 0.0f;
}

void store_from_float(void* data, DataType type, std::int64_t index, float value) noexcept {
  switch (type) {
    case DataType::float32: static_cast<float*>(data)[index] = value; return;
    case DataType::float16:
      static_cast<std::uint16_t*>(data)[index] = float_to_half(value);
      return;
    case DataType::bfloat16:
      static_cast<std::uint16_t*>(data)[index] = float_to_bfloat16(value);
      return;
  }
}

}  // namespace convgrad
