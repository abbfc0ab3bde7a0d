// SPDX-License-Identifier: Apache-2.0
// A CUTLASS sm90 GEMM (persistent, two consumer warp groups, TMA loads and stores) behind a plain
// interface, for the column GEMMs whose reduction is too short for the convolution kernels'
// non-persistent schedule: D[m][n] = sum over k of A[m][k] * B[n][k], A and B 16-bit and K-major,
// D float32 and column-major (D[n * ldd + m]), so that the columns of one output channel are
// contiguous (col2im reads them along the pixels).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <optional>
#include <string>

namespace convgrad::cuda::tc {

struct GemmShape {
  long long m, n, k;
  long long ldd;  ///< elements between D's columns: >= m, a multiple of 4 (16-byte TMA rows)
};

struct GemmOps {
  std::optional<std::string> (*can_implement)(const GemmShape& shape);
  /// Bytes of device workspace the persistent scheduler needs.
  std::size_t (*workspace_bytes)(const GemmShape& shape);
  void (*run)(const GemmShape& shape, const void* a, const void* b, float* d, void* workspace,
              cudaStream_t stream);
};

extern const GemmOps gemm_f16_colmajor_f32, gemm_bf16_colmajor_f32;

}  // namespace convgrad::cuda::tc
