// SPDX-License-Identifier: Apache-2.0
// What the tensor-core entries share (defined in tensor_core.cu): the storage kinds, which CUTLASS
// op a GEMM shape takes, the checks every entry makes, the workspaces, and the dense runs that the
// 3xTF32 entries (accurate.cu) and the explicit-im2col entries (im2col_gemm.cu) call on the
// problems they build from the caller's.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "core/kernel.hpp"
#include "cuda/tc/cutlass_ops.hpp"

namespace convgrad::cuda::tc {

enum class Kind { f16, bf16, tf32 };

constexpr DataType storage(Kind kind) {
  return kind == Kind::f16 ? DataType::float16
                           : kind == Kind::bf16 ? DataType::bfloat16 : DataType::float32;
}
// Elements per 16 bytes: TMA moves rows of whole 16-byte units.
constexpr std::int64_t alignment(Kind kind) { return kind == Kind::tf32 ? 4 : 8; }

const CutlassOps& fprop_ops(Kind kind, std::int64_t output_channels, std::int64_t reduction);
ConvShape fprop_shape(const ConvProblem& p);

/// Storage types and math mode of the kind.
std::optional<std::string> storage_rejects(const ConvProblem& p, Kind kind);
/// storage_rejects, groups = 1, 16-byte channel rows, pads >= 0, extents
/// in 32 bits.
std::optional<std::string> common_rejects(const ConvProblem& p, Kind kind);
std::optional<std::string> fprop_rejects(const ConvProblem& p, Kind kind);
std::optional<std::string> dgrad_rejects(const ConvProblem& p, Kind kind);
std::optional<std::string> wgrad_rejects(const ConvProblem& p, Kind kind);

bool aligned16(const void* pointer);
/// Dense in the order of its dims and 16-byte aligned: what TMA reads.
bool packed(const TensorView& v);
/// No bias, or a dense 16-byte-aligned float32 vector, as the CUTLASS epilogue reads it.
bool bias_readable(const TensorView& b);
/// `bytes` rounded up to 256, so that the next piece carved from one workspace stays aligned.
constexpr std::size_t aligned_bytes(std::int64_t bytes) {
  return static_cast<std::size_t>((bytes + 255) / 256 * 256);
}

/// A grow-only device buffer per thread, device, stream and slot. A run holds its `run` slot;
/// an entry that builds operands for a run it then calls keeps them in the `operands` slot.
enum class Slot { run, operands };
void* workspace(std::size_t bytes, cudaStream_t stream, Slot slot = Slot::run);

/// One part of dgrad's reduction over k: `k` channels of dy (pointing at the first of them in
/// pixel 0; pixels lie the problem's k apart) and their filters, packed [k][r][s][c].
struct KChunk {
  const void* dy;
  const void* w;
  std::int64_t k;
};

void fprop_run(Kind kind, const ConvProblem& p, const core::Operands& o, bool accumulate);
void dgrad_run(Kind kind, const ConvProblem& p, const core::Operands& o, bool accumulate);
/// dgrad of p into packed dx as the sum of its k chunks' dgrads, each after the first added in
/// float32 (so more than one chunk takes float32 storage).
void dgrad_chunks_run(Kind kind, const ConvProblem& p, void* dx, std::span<const KChunk> chunks);
/// wgrad of `gemm` (f16 or bf16) over packed x and dy into dw and db (db empty: none), summed in
/// a fixed order. dw is written for its first dw.dims[3] channels only: the rest of gemm.c is
/// padding the caller added for alignment.
void wgrad_gemm(Kind kind, const ConvProblem& gemm, const void* x, const void* dy,
                const TensorView& dw, const TensorView& db, bool accumulate);

}  // namespace convgrad::cuda::tc
