// SPDX-License-Identifier: Apache-2.0
// Storage conversion with AVX-512 (and F16C's 512-bit forms), 16 elements a step; the tail and
// the float32 rows go through the scalar definitions, which these match bit for bit.
#include <immintrin.h>

// GCC 12's unmasked AVX-512 integer intrinsics merge into _mm512_undefined_*(), which its
// -Wmaybe-uninitialized then reports inside the header; the kernels avoid it with maskz forms,
// which would bury this short file in masks.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "cpu/kernels/convert_rows.hpp"
#include "cpu/kernels/entry.hpp"

namespace convgrad::cpu::avx512 {
namespace {

// The scalar float_to_half / float_to_bfloat16 return sign | 0x7e00 and (bits >> 16) | 0x40 for
// NaN; the instructions keep more of the payload, so NaN lanes are patched to agree.
__m256i to_half(__m512 v) noexcept {
  const __m256i half = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i quiet = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(bits, 16),
                                                         _mm512_set1_epi32(0x8000)),
                                        _mm512_set1_epi32(0x7e00));
  return _mm256_mask_mov_epi16(half, nan, _mm512_cvtepi32_epi16(quiet));
}

__m256i to_bfloat16(__m512 v) noexcept {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet));
}

__m512 from_storage(const std::uint16_t* p, DataType type) noexcept {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if (type == DataType::float16) return _mm512_cvtph_ps(raw);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

struct Avx512Convert {
  static constexpr int lanes = 16;
  static __m512 load(const float* p) noexcept { return _mm512_loadu_ps(p); }
  static void store(float* p, __m512 v) noexcept { _mm512_storeu_ps(p, v); }
  static __m512 add(__m512 a, __m512 b) noexcept { return _mm512_add_ps(a, b); }
  static __m512 from_storage(const std::uint16_t* p, DataType type) noexcept {
    return avx512::from_storage(p, type);
  }
  static void to_storage(__m512 v, DataType type, std::uint16_t* p) noexcept {
    const __m256i packed = type == DataType::float16 ? to_half(v) : to_bfloat16(v);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), packed);
  }
};

}  // namespace

void convert_to_f32(const void* source, DataType type, std::int64_t count,
                    float* destination) noexcept {
  kern::convert_to_f32<Avx512Convert>(source, type, count, destination);
}

void convert_from_f32(const float* source, std::int64_t count, DataType type, void* destination,
                      bool accumulate) noexcept {
  kern::convert_from_f32<Avx512Convert>(source, count, type, destination, accumulate);
}

}  // namespace convgrad::cpu::avx512
