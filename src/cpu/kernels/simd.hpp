// SPDX-License-Identifier: Apache-2.0
// Vector traits the kernel templates are written against. Only the per-ISA translation units,
// compiled with that ISA's flags, include this file; every kernel function is a template on the
// traits type, so instantiations of different ISAs never share a symbol.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace convgrad::cpu::simd {

#if defined(__AVX512F__)
struct Avx512 {
  static constexpr int lanes = 16;
  static constexpr int registers = 32;
  using reg = __m512;
  using mask = __mmask16;
  static mask first(int n) noexcept {
    return n >= 16 ? mask(0xffff) : n <= 0 ? mask(0) : mask((1u << n) - 1u);
  }
  static reg zero() noexcept { return _mm512_setzero_ps(); }
  static reg set1(float v) noexcept { return _mm512_set1_ps(v); }
  static reg load(const float* p) noexcept { return _mm512_loadu_ps(p); }
  static reg load(const float* p, mask m) noexcept { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, reg v) noexcept { _mm512_storeu_ps(p, v); }
  static void store(float* p, reg v, mask m) noexcept { _mm512_mask_storeu_ps(p, m, v); }
  static reg bcast(const float* p) noexcept { return _mm512_set1_ps(*p); }
  static reg fma(reg a, reg b, reg c) noexcept { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) noexcept { return _mm512_add_ps(a, b); }
  static float hsum(reg v) noexcept { return _mm512_reduce_add_ps(v); }
  /// A vector widened to double, for sums that must not lose the low bits (the bias gradient).
  struct Wide {
    __m512d lo, hi;
  };
  static Wide wide_zero() noexcept { return {_mm512_setzero_pd(), _mm512_setzero_pd()}; }
  static Wide wide_add(Wide a, reg v) noexcept {
    // maskz forms throughout: the plain ones trip GCC 12's -Wmaybe-uninitialized.
    const __m256 lo = _mm512_maskz_extractf32x8_ps(0xff, v, 0);
    const __m256 hi = _mm512_maskz_extractf32x8_ps(0xff, v, 1);
    return {_mm512_add_pd(a.lo, _mm512_maskz_cvtps_pd(0xff, lo)),
            _mm512_add_pd(a.hi, _mm512_maskz_cvtps_pd(0xff, hi))};
  }
  static void wide_store(double* p, Wide a) noexcept {
    _mm512_storeu_pd(p, a.lo);
    _mm512_storeu_pd(p + 8, a.hi);
  }
  using index = __m512i;
  static index load_index(const std::int32_t* p) noexcept { return _mm512_loadu_si512(p); }
  /// Lane i of the result is lane idx[i] of v.
  static reg permute(reg v, index idx) noexcept {
    return _mm512_maskz_permutexvar_ps(0xffff, idx, v);
  }
};
#endif

#if defined(__AVX2__) && defined(__FMA__)
struct Avx2 {
  static constexpr int lanes = 8;
  static constexpr int registers = 16;
  using reg = __m256;
  using mask = __m256i;
  static mask first(int n) noexcept {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static reg zero() noexcept { return _mm256_setzero_ps(); }
  static reg set1(float v) noexcept { return _mm256_set1_ps(v); }
  static reg load(const float* p) noexcept { return _mm256_loadu_ps(p); }
  static reg load(const float* p, mask m) noexcept { return _mm256_maskload_ps(p, m); }
  static void store(float* p, reg v) noexcept { _mm256_storeu_ps(p, v); }
  static void store(float* p, reg v, mask m) noexcept { _mm256_maskstore_ps(p, m, v); }
  static reg bcast(const float* p) noexcept { return _mm256_broadcast_ss(p); }
  static reg fma(reg a, reg b, reg c) noexcept { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) noexcept { return _mm256_add_ps(a, b); }
  static float hsum(reg v) noexcept {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  struct Wide {
    __m256d lo, hi;
  };
  static Wide wide_zero() noexcept { return {_mm256_setzero_pd(), _mm256_setzero_pd()}; }
  static Wide wide_add(Wide a, reg v) noexcept {
    return {_mm256_add_pd(a.lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v))),
            _mm256_add_pd(a.hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)))};
  }
  static void wide_store(double* p, Wide a) noexcept {
    _mm256_storeu_pd(p, a.lo);
    _mm256_storeu_pd(p + 4, a.hi);
  }
  using index = __m256i;
  static index load_index(const std::int32_t* p) noexcept {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static reg permute(reg v, index idx) noexcept { return _mm256_permutevar8x32_ps(v, idx); }
};
#endif

}  // namespace convgrad::cpu::simd
