// SPDX-License-Identifier: Apache-2.0
// Storage conversion with AVX2 and F16C, 8 elements a step; the tail and the float32 rows go
// through the scalar definitions, which these match bit for bit.
#include <immintrin.h>

#include "cpu/kernels/convert_rows.hpp"
#include "cpu/kernels/entry.hpp"

namespace convgrad::cpu::avx2 {
namespace {

// 8 int32 lanes, each < 2^16, to 8 uint16 in order (packus works per 128-bit half).
__m128i narrow(__m256i v) noexcept {
  const __m256i packed = _mm256_packus_epi32(v, v);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

// NaN lanes patched to the scalar functions' results (see the AVX-512 file).
__m128i to_half(__m256 v) noexcept {
  const __m128i half = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256i bits = _mm256_castps_si256(v);
  const __m256i quiet = _mm256_or_si256(
      _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x8000)),
      _mm256_set1_epi32(0x7e00));
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  const __m128i nan16 = narrow(_mm256_srli_epi32(nan, 16));
  return _mm_blendv_epi8(half, narrow(quiet), nan16);
}

__m128i to_bfloat16(__m256 v) noexcept {
  const __m256i bits = _mm256_castps_si256(v);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(
      _mm256_add_epi32(bits, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  return narrow(_mm256_blendv_epi8(rounded, quiet, nan));
}

__m256 from_storage(const std::uint16_t* p, DataType type) noexcept {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (type == DataType::float16) return _mm256_cvtph_ps(raw);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

struct Avx2Convert {
  static constexpr int lanes = 8;
  static __m256 load(const float* p) noexcept { return _mm256_loadu_ps(p); }
  static void store(float* p, __m256 v) noexcept { _mm256_storeu_ps(p, v); }
  static __m256 add(__m256 a, __m256 b) noexcept { return _mm256_add_ps(a, b); }
  static __m256 from_storage(const std::uint16_t* p, DataType type) noexcept {
    return avx2::from_storage(p, type);
  }
  static void to_storage(__m256 v, DataType type, std::uint16_t* p) noexcept {
    const __m128i packed = type == DataType::float16 ? to_half(v) : to_bfloat16(v);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
  }
};

}  // namespace

void convert_to_f32(const void* source, DataType type, std::int64_t count,
                    float* destination) noexcept {
  kern::convert_to_f32<Avx2Convert>(source, type, count, destination);
}

void convert_from_f32(const float* source, std::int64_t count, DataType type, void* destination,
                      bool accumulate) noexcept {
  kern::convert_from_f32<Avx2Convert>(source, count, type, destination, accumulate);
}

}  // namespace convgrad::cpu::avx2
