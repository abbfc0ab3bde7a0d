// SPDX-License-Identifier: Apache-2.0
// The loops of src/cpu/convert.hpp, written once over a per-ISA traits type C that supplies
//   lanes, load(float*), store(float*, reg), from_storage(const uint16_t*, type) -> reg,
//   to_storage(reg, type, uint16_t*)  (rounded and NaN-patched like store_from_float).
// The tails and float32 rows go through the scalar definitions, which the vector steps match bit
// for bit, so a row's result does not depend on where the vector part ends.
#pragma once

#include <cstdint>

#include "convgrad/dtype.hpp"

namespace convgrad::cpu::kern {

template <class C>
void convert_to_f32(const void* source, DataType type, std::int64_t count,
                    float* destination) noexcept {
  std::int64_t i = 0;
  if (type != DataType::float32) {
    const auto* in = static_cast<const std::uint16_t*>(source);
    for (; i + C::lanes <= count; i += C::lanes) {
      C::store(destination + i, C::from_storage(in + i, type));
    }
  }
  for (; i < count; ++i) destination[i] = load_as_float(source, type, i);
}

template <class C>
void convert_from_f32(const float* source, std::int64_t count, DataType type, void* destination,
                      bool accumulate) noexcept {
  std::int64_t i = 0;
  if (type != DataType::float32) {
    auto* out = static_cast<std::uint16_t*>(destination);
    for (; i + C::lanes <= count; i += C::lanes) {
      auto v = C::load(source + i);
      if (accumulate) v = C::add(C::from_storage(out + i, type), v);
      C::to_storage(v, type, out + i);
    }
  }
  for (; i < count; ++i) {
    const float value = accumulate ? load_as_float(destination, type, i) + source[i] : source[i];
    store_from_float(destination, type, i, value);
  }
}

}  // namespace convgrad::cpu::kern
