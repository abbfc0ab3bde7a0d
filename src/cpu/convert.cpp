// SPDX-License-Identifier: Apache-2.0
#include "cpu/convert.hpp"

#include "cpu/isa.hpp"
#include "cpu/kernels/entry.hpp"

namespace convgrad::cpu {
namespace {

void generic_to_f32(const void* source, DataType type, std::int64_t count,
                    float* destination) noexcept {
  for (std::int64_t i = 0; i < count; ++i) destination[i] = load_as_float(source, type, i);
}

void generic_from_f32(const float* source, std::int64_t count, DataType type, void* destination,
                      bool accumulate) noexcept {
  for (std::int64_t i = 0; i < count; ++i) {
    const float value = accumulate ? load_as_float(destination, type, i) + source[i] : source[i];
    store_from_float(destination, type, i, value);
  }
}

struct Converters {
  decltype(&generic_to_f32) to_f32;
  decltype(&generic_from_f32) from_f32;
};

const Converters& converters() noexcept {
  static const Converters chosen = [] {
    if (!lacks_avx512()) return Converters{avx512::convert_to_f32, avx512::convert_from_f32};
    if (!lacks_avx2()) return Converters{avx2::convert_to_f32, avx2::convert_from_f32};
    return Converters{generic_to_f32, generic_from_f32};
  }();
  return chosen;
}

}  // namespace

void convert_to_f32(const void* source, DataType type, std::int64_t count,
                    float* destination) noexcept {
  converters().to_f32(source, type, count, destination);
}

void convert_from_f32(const float* source, std::int64_t count, DataType type, void* destination,
                      bool accumulate) noexcept {
  converters().from_f32(source, count, type, destination, accumulate);
}

}  // namespace convgrad::cpu
