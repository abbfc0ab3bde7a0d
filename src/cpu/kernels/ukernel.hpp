// SPDX-License-Identifier: Apache-2.0
// The register-blocked micro-kernel every GEMM-shaped kernel here ends in:
//   C[m][v*L + i] (+)= sum over segments, sum over l < len of A[m*a_ms + l*a_ls] * B[l*b_ls + v*L +
//   i]
// for M rows and NV vectors of L lanes. A list of segments (one per filter tap, or one per image
// row) lets the accumulators stay in registers across a whole reduction that is not contiguous in
// memory, which is what turns a convolution into an implicit GEMM without an im2col copy.
#pragma once

#include <array>
#include <cstdint>

#include "cpu/kernels/simd.hpp"

namespace convgrad::cpu::kern {

struct Segment {
  const float* a;
  const float* b;
  std::int64_t len;
};

enum class Init : std::uint8_t { zero, load, bias };

/// One call's operands besides the segments.
struct Tile {
  std::int64_t a_off, b_off;  ///< added to every segment's pointers (the tile's row and column)
  std::int64_t a_ms, a_ls, b_ls;
  float* c;
  std::int64_t c_ms;
  Init init;
  const float* bias;  ///< NV*L values when init == bias
  int active;         ///< valid lanes of the NV*L columns (stores and loads beyond are masked)
  bool mask_b;        ///< B rows end at `active` lanes (not padded): mask the loads
};

template <class V, int M, int NV>
void ukernel(const Segment* segs, std::int64_t nseg, const Tile& t) {
  constexpr int L = V::lanes;
  typename V::mask masks[NV];
  typename V::mask bmasks[NV];
  for (int v = 0; v < NV; ++v) {
    masks[v] = V::first(t.active - v * L);
    // Lanes past `active` only feed accumulator lanes that are never stored, so padded B rows
    // are read whole; unpadded ones are masked only to stay inside their buffer.
    bmasks[v] = t.mask_b ? masks[v] : V::first(L);
  }
  typename V::reg acc[M][NV];
#pragma GCC unroll 32
  for (int m = 0; m < M; ++m) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      if (t.init == Init::zero) {
        acc[m][v] = V::zero();
      } else if (t.init == Init::bias) {
        acc[m][v] = V::load(t.bias + v * L);
      } else {
        acc[m][v] = V::load(t.c + m * t.c_ms + v * L, masks[v]);
      }
    }
  }
  for (std::int64_t sg = 0; sg < nseg; ++sg) {
    const float* a = segs[sg].a + t.a_off;
    const float* b = segs[sg].b + t.b_off;
    const std::int64_t len = segs[sg].len;
    for (std::int64_t l = 0; l < len; ++l) {
      typename V::reg bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        bv[v] = V::load(b + v * L, bmasks[v]);
      }
#pragma GCC unroll 32
      for (int m = 0; m < M; ++m) {
        const typename V::reg av = V::bcast(a + m * t.a_ms);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[m][v] = V::fma(av, bv[v], acc[m][v]);
      }
      a += t.a_ls;
      b += t.b_ls;
    }
  }
#pragma GCC unroll 32
  for (int m = 0; m < M; ++m) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) V::store(t.c + m * t.c_ms + v * L, acc[m][v], masks[v]);
  }
}

using UkernelFn = void (*)(const Segment*, std::int64_t, const Tile&);

/// Rows per tile that keep NV*M accumulators, the NV B vectors and a broadcast in registers.
template <class V>
constexpr int max_rows(int nv) {
  const int fit = (V::registers - nv - 1) / nv;
  const int cap = V::registers == 32 ? 24 : 12;
  return fit < cap ? fit : cap;
}

template <class V, int NV, int... Ms>
constexpr std::array<UkernelFn, sizeof...(Ms) + 1> table_of(std::integer_sequence<int, Ms...>) {
  return {nullptr, &ukernel<V, Ms + 1, NV>...};
}

/// The micro-kernel for NV vectors (1, 2 or 4) and 1 <= m <= max_rows<V>(NV) rows.
template <class V>
UkernelFn ukernel_for(int nv, int m) {
  static constexpr auto t1 = table_of<V, 1>(std::make_integer_sequence<int, max_rows<V>(1)>{});
  static constexpr auto t2 = table_of<V, 2>(std::make_integer_sequence<int, max_rows<V>(2)>{});
  static constexpr auto t4 = table_of<V, 4>(std::make_integer_sequence<int, max_rows<V>(4)>{});
  return nv == 1   ? t1[static_cast<std::size_t>(m)]
         : nv == 2 ? t2[static_cast<std::size_t>(m)]
                   : t4[static_cast<std::size_t>(m)];
}

}  // namespace convgrad::cpu::kern
