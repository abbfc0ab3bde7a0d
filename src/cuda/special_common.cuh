// SPDX-License-Identifier: Apache-2.0
// Pieces shared by the depthwise, grouped, few-channel and split-wgrad kernels: typed loads and
// stores with fp32 math, 16-byte vector loads, the storage-type switch that picks a template
// instance, and the grow-only workspace of the deterministic reductions. A header (not a .cu)
// because src/CMakeLists.txt globs cuda/*.cu and these are device templates.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "convgrad/problem.hpp"
#include "convgrad/tensor_view.hpp"
#include "core/operands.hpp"

namespace convgrad::cuda::special {

template <class T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float to_float<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

// Round to nearest even, as the reference's store_from_float does.
template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Weights and the fp32 results of the reductions: their storage type is a run-time value
// (uniform over the grid), read once per block or per element, so no template instance per type.
__device__ __forceinline__ float load_any(const void* base, DataType type, std::int64_t i) {
  switch (type) {
    case DataType::float16:
      return __half2float(static_cast<const __half*>(base)[i]);
    case DataType::bfloat16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
    case DataType::float32:
      break;
  }
  return static_cast<const float*>(base)[i];
}

__device__ __forceinline__ void store_any(void* base, DataType type, std::int64_t i, float v) {
  switch (type) {
    case DataType::float16:
      static_cast<__half*>(base)[i] = __float2half_rn(v);
      return;
    case DataType::bfloat16:
      static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v);
      return;
    case DataType::float32:
      break;
  }
  static_cast<float*>(base)[i] = v;
}

// VEC consecutive elements; one 16-byte access when VEC * sizeof(T) == 16, else scalar ones.
template <class T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

template <class T, int VEC>
__device__ __forceinline__ void load_vec(const T* p, float (&out)[VEC]) {
  const Pack<T, VEC> pack = *reinterpret_cast<const Pack<T, VEC>*>(p);
#pragma unroll
  for (int i = 0; i < VEC; ++i) out[i] = to_float(pack.v[i]);
}

template <class T, int VEC>
__device__ __forceinline__ void store_vec(T* p, const float (&in)[VEC]) {
  Pack<T, VEC> pack;
#pragma unroll
  for (int i = 0; i < VEC; ++i) pack.v[i] = from_float<T>(in[i]);
  *reinterpret_cast<Pack<T, VEC>*>(p) = pack;
}

/// Elements per 16-byte vector of a storage type.
inline int vector_width(DataType type) { return type == DataType::float32 ? 4 : 8; }

/// Whether a view's channel axis (axis 3) can be read `vec` elements at a time from channel
/// offsets that are multiples of `vec`: unit channel stride, the other strides and the base
/// aligned to a whole vector.
bool vector_ok(const TensorView& view, int vec);

/// Runs f(T{}) with T the C++ type of a storage type.
template <class F>
void with_storage(DataType type, F&& f) {
  switch (type) {
    case DataType::float16:
      f(__half{});
      return;
    case DataType::bfloat16:
      f(__nv_bfloat16{});
      return;
    case DataType::float32:
      break;
  }
  f(float{});
}

/// The kernels template on one storage type for x and y (w is read at run time type); a mix of
/// x and y types goes to the direct kernels.
std::optional<std::string> reject_mixed_image_types(const ConvProblem& problem);

/// fp32 scratch of at least `count` floats for the calling thread's current stream on the
/// current device. Grow-only and cached per (device, stream): work on one stream runs in order,
/// so a later launch cannot overwrite partials an earlier one still reads; growing frees the old
/// block with cudaFree, which waits for the device.
float* workspace(std::size_t count);

/// The last step of every split wgrad: `partials` holds `splits` blocks of `split_floats` floats,
/// each the dense [K][R][S][C/groups] dw sums of one split followed by K db sums. Each dw and db
/// element adds its splits in a fixed order (splits g, g + 32, ... for each of 32 groups, then the
/// groups in order: the same bits on every run), then is stored in dw's type, added to what dw and
/// db hold when `accumulate`. Launches on current_stream(); the caller
/// calls finish_launches().
void reduce_wgrad_partials(const ConvProblem& problem, const core::Operands& operands,
                           const float* partials, std::int64_t splits, std::int64_t split_floats,
                           bool accumulate);

/// Multiprocessors of the current device (cached per device).
int multiprocessors();

}  // namespace convgrad::cuda::special
