// SPDX-License-Identifier: Apache-2.0
// float16 and bfloat16 conversions: exhaustive over every 16-bit pattern, and rounding to nearest
// even checked against a double-precision model.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "convgrad/dtype.hpp"
#include "support/tensors.hpp"

namespace convgrad {
namespace {

TEST(DataTypes, NamesRoundTrip) {
  for (DataType t : {DataType::float32, DataType::float16, DataType::bfloat16}) {
    EXPECT_EQ(parse_data_type(to_string(t)), t);
  }
  EXPECT_FALSE(parse_data_type("f64").has_value());
  EXPECT_EQ(size_of(DataType::float32), 4u);
  EXPECT_EQ(size_of(DataType::bfloat16), 2u);
}

TEST(DataTypes, EveryHalfSurvivesARoundTrip) {
  for (std::uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const auto h = static_cast<std::uint16_t>(bits);
    const float f = half_to_float(h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(half_to_float(float_to_half(f)))) << bits;
      continue;
    }
    ASSERT_EQ(float_to_half(f), h) << "half bits " << bits;
  }
}

TEST(DataTypes, EveryBfloat16SurvivesARoundTrip) {
  for (std::uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const auto b = static_cast<std::uint16_t>(bits);
    const float f = bfloat16_to_float(b);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bfloat16_to_float(float_to_bfloat16(f))));
      continue;
    }
    ASSERT_EQ(float_to_bfloat16(f), b) << "bfloat16 bits " << bits;
  }
}

// The nearest representable value, ties to the even bit pattern, from the two neighbours.
template <typename ToBits, typename ToFloat>
void check_rounding(float value, ToBits to_bits, ToFloat to_float) {
  const std::uint16_t got = to_bits(value);
  const double exact = value;
  const double chosen = to_float(got);
  if (std::isinf(chosen)) return;  // overflow is checked separately
  for (int step : {-1, 1}) {
    const auto neighbour = static_cast<std::uint16_t>(got + step);
    const double other = to_float(neighbour);
    if (std::isnan(other) || std::signbit(other) != std::signbit(chosen)) continue;
    const double d_chosen = std::abs(chosen - exact), d_other = std::abs(other - exact);
    ASSERT_LE(d_chosen, d_other) << value;
    if (d_chosen == d_other) {
      ASSERT_EQ(got & 1, 0) << "tie not to even for " << value;
    }
  }
}

TEST(DataTypes, RandomFloatsRoundToNearestEven) {
  auto rng = test::make_rng(7);
  std::uniform_int_distribution<std::uint32_t> any;
  for (int i = 0; i < 200000; ++i) {
    float value = std::bit_cast<float>(any(rng));
    if (!std::isfinite(value)) continue;
    if (std::abs(value) < 65504.0f) check_rounding(value, float_to_half, half_to_float);
    if (std::abs(value) < 3.38e38f) check_rounding(value, float_to_bfloat16, bfloat16_to_float);
  }
}

TEST(DataTypes, OverflowAndSpecialValues) {
  EXPECT_EQ(float_to_half(1e6f), 0x7c00);
  EXPECT_EQ(float_to_half(-1e6f), 0xfc00);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // halfway to the next binade rounds up to inf
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);  // tie to even: zero
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(
      std::isnan(bfloat16_to_float(float_to_bfloat16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(float_to_bfloat16(std::numeric_limits<float>::infinity()), 0x7f80);
}

}  // namespace
}  // namespace convgrad
