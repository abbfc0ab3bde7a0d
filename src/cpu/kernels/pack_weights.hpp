// SPDX-License-Identifier: Apache-2.0
// Filter packing for the implicit GEMM's fprop, where the GEMM's columns are output channels k
// but a KRSC filter holds each k's channels c contiguously: the packed block is the transpose,
// [r][s][c][nb lanes of k]. Transposed one vector-square at a time in registers, it reads and
// writes whole vectors; element by element, a 2048 x 512 filter took 10-14% of a 1x1 layer's
// time (each of the nb strided stores per c touching a different line).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "cpu/kernels/simd.hpp"

namespace convgrad::cpu::kern {

#if defined(__AVX512F__)
/// dst[c * ds + j] = src[j * ss + c] for j < rows and c < cols (both <= 16); rows past `rows`
/// read as zero, columns past `cols` are neither read nor written.
static inline void transpose_square(simd::Avx512, const float* src, std::int64_t ss, float* dst,
                                    std::int64_t ds, int rows, int cols) {
  const __mmask16 cmask = simd::Avx512::first(cols);
  __m512 r[16];
  for (int j = 0; j < 16; ++j) {
    r[j] = j < rows ? _mm512_maskz_loadu_ps(cmask, src + j * ss) : _mm512_setzero_ps();
  }
  // Three rounds of pairwise interleaves (32-bit, 64-bit, then 128-bit twice); maskz forms
  // throughout, as in simd.hpp: the plain ones trip GCC 12's -Wmaybe-uninitialized.
  __m512 t[16];
  for (int j = 0; j < 16; j += 2) {
    t[j] = _mm512_maskz_unpacklo_ps(0xffff, r[j], r[j + 1]);
    t[j + 1] = _mm512_maskz_unpackhi_ps(0xffff, r[j], r[j + 1]);
  }
  for (int j = 0; j < 16; j += 4) {
    r[j] = _mm512_castpd_ps(
        _mm512_maskz_unpacklo_pd(0xff, _mm512_castps_pd(t[j]), _mm512_castps_pd(t[j + 2])));
    r[j + 1] = _mm512_castpd_ps(
        _mm512_maskz_unpackhi_pd(0xff, _mm512_castps_pd(t[j]), _mm512_castps_pd(t[j + 2])));
    r[j + 2] = _mm512_castpd_ps(
        _mm512_maskz_unpacklo_pd(0xff, _mm512_castps_pd(t[j + 1]), _mm512_castps_pd(t[j + 3])));
    r[j + 3] = _mm512_castpd_ps(
        _mm512_maskz_unpackhi_pd(0xff, _mm512_castps_pd(t[j + 1]), _mm512_castps_pd(t[j + 3])));
  }
  // r[4q + e] now holds, in each 128-bit lane l, column 4l + e of rows 4q .. 4q + 3.
  for (int e = 0; e < 4; ++e) {
    t[e] = _mm512_maskz_shuffle_f32x4(0xffff, r[e], r[4 + e], 0x88);  // lanes 0, 2 of rows 0-3, 4-7
    t[4 + e] = _mm512_maskz_shuffle_f32x4(0xffff, r[e], r[4 + e], 0xdd);  // lanes 1, 3
    t[8 + e] = _mm512_maskz_shuffle_f32x4(0xffff, r[8 + e], r[12 + e], 0x88);
    t[12 + e] = _mm512_maskz_shuffle_f32x4(0xffff, r[8 + e], r[12 + e], 0xdd);
  }
  for (int e = 0; e < 4; ++e) {
    r[e] = _mm512_maskz_shuffle_f32x4(0xffff, t[e], t[8 + e], 0x88);            // column e
    r[8 + e] = _mm512_maskz_shuffle_f32x4(0xffff, t[e], t[8 + e], 0xdd);        // column 8 + e
    r[4 + e] = _mm512_maskz_shuffle_f32x4(0xffff, t[4 + e], t[12 + e], 0x88);   // column 4 + e
    r[12 + e] = _mm512_maskz_shuffle_f32x4(0xffff, t[4 + e], t[12 + e], 0xdd);  // column 12 + e
  }
  for (int c = 0; c < cols; ++c) _mm512_storeu_ps(dst + c * ds, r[c]);
}
#endif

#if defined(__AVX2__) && defined(__FMA__)
/// The 8 x 8 counterpart of the AVX-512 transpose above.
static inline void transpose_square(simd::Avx2, const float* src, std::int64_t ss, float* dst,
                                    std::int64_t ds, int rows, int cols) {
  const __m256i cmask = simd::Avx2::first(cols);
  __m256 r[8];
  for (int j = 0; j < 8; ++j) {
    r[j] = j < rows ? _mm256_maskload_ps(src + j * ss, cmask) : _mm256_setzero_ps();
  }
  __m256 t[8];
  for (int j = 0; j < 8; j += 2) {
    t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]);
    t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
  }
  for (int j = 0; j < 8; j += 4) {
    r[j] = _mm256_shuffle_ps(t[j], t[j + 2], 0x44);
    r[j + 1] = _mm256_shuffle_ps(t[j], t[j + 2], 0xee);
    r[j + 2] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0x44);
    r[j + 3] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0xee);
  }
  // r[4q + e] holds, in 128-bit lane l, column 4l + e of rows 4q .. 4q + 3.
  for (int e = 0; e < 4; ++e) {
    t[e] = _mm256_permute2f128_ps(r[e], r[4 + e], 0x20);
    t[4 + e] = _mm256_permute2f128_ps(r[e], r[4 + e], 0x31);
  }
  for (int c = 0; c < cols; ++c) _mm256_storeu_ps(dst + c * ds, t[c]);
}
#endif

/// Packs columns [k0, k0 + width) of a float32 KRSC filter whose channels are contiguous (row
/// stride `ks` floats between filters k, `taps` taps of `cg` channels each, `tap_stride` apart)
/// into dst[tap][c][nb], lanes past `width` zero.
template <class V>
void pack_transposed(const float* w, std::int64_t ks, std::int64_t taps, std::int64_t tap_stride,
                     std::int64_t cg, std::int64_t width, std::int64_t nb, float* dst) {
  constexpr int L = V::lanes;
  for (std::int64_t rs = 0; rs < taps; ++rs) {
    for (std::int64_t c = 0; c < cg; c += L) {
      const int cols = static_cast<int>(std::min<std::int64_t>(L, cg - c));
      for (std::int64_t j = 0; j < nb; j += L) {
        float* out = dst + (rs * cg + c) * nb + j;
        if (j >= width) {
          for (int i = 0; i < cols; ++i) std::fill_n(out + i * nb, L, 0.0f);
          continue;
        }
        const int rows = static_cast<int>(std::min<std::int64_t>(L, width - j));
        transpose_square(V{}, w + j * ks + rs * tap_stride + c, ks, out, nb, rows, cols);
      }
    }
  }
}

}  // namespace convgrad::cpu::kern
