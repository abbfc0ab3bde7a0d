// SPDX-License-Identifier: Apache-2.0
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

#include "cuda/check.hpp"
#include "cuda/special_common.cuh"
#include "cuda/stream.hpp"

namespace convgrad::cuda::special {

bool vector_ok(const TensorView& view, int vec) {
  const auto bytes = static_cast<std::uintptr_t>(vec) * size_of(view.type);
  return view.strides[3] == 1 && view.strides[0] % vec == 0 && view.strides[1] % vec == 0 &&
         view.strides[2] % vec == 0 && reinterpret_cast<std::uintptr_t>(view.data) % bytes == 0;
}

std::optional<std::string> reject_mixed_image_types(const ConvProblem& problem) {
  if (problem.x_type != problem.y_type) {
    return std::string("x and y storage types differ (") + std::string(to_string(problem.x_type)) +
           ", " + std::string(to_string(problem.y_type)) + "): the direct kernels take mixes";
  }
  return std::nullopt;
}

namespace {

// Thread (element, group) adds the splits group, group + kReduceGroups, ... in order, then one
// thread per element adds the groups in order: the same bits on every run for a given split
// count. One thread walking hundreds of splits, one dependent load after another, cost more than
// the split wgrads it finished; here 32 short walks per element are in flight.
constexpr int kReduceGroups = 32;

__global__ void __launch_bounds__(32 * kReduceGroups)
    reduce_kernel(const float* partials, std::int64_t splits, std::int64_t split_floats,
                  std::int64_t k, std::int64_t r, std::int64_t s, std::int64_t cg, void* dw,
                  DataType dw_type, std::int64_t w0, std::int64_t w1, std::int64_t w2,
                  std::int64_t w3, float* db, std::int64_t b0, bool accumulate,
                  std::int64_t total) {
  // Double sums, rounded once with the accumulated value: under accumulate, dw0 + sum may cancel
  // to far below either, and float partial sums would then leave their rounding in plain view.
  __shared__ double part[kReduceGroups][33];
  const int element = static_cast<int>(threadIdx.x) % 32;
  const int group = static_cast<int>(threadIdx.x) / 32;
  const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * 32 + element;
  double sum = 0.0;
  if (e < total) {
#pragma unroll 4
    for (std::int64_t split = group; split < splits; split += kReduceGroups) {
      sum += partials[split * split_floats + e];
    }
  }
  part[group][element] = sum;
  __syncthreads();
  if (group != 0 || e >= total) return;
  double all = 0.0;
#pragma unroll
  for (int g = 0; g < kReduceGroups; ++g) all += part[g][element];
  const std::int64_t dw_count = k * r * s * cg;
  if (e < dw_count) {
    const std::int64_t c = e % cg;
    std::int64_t t = e / cg;
    const std::int64_t si = t % s;
    t /= s;
    const std::int64_t ri = t % r;
    const std::int64_t ki = t / r;
    const std::int64_t at = ki * w0 + ri * w1 + si * w2 + c * w3;
    const double value = accumulate ? load_any(dw, dw_type, at) + all : all;
    store_any(dw, dw_type, at, static_cast<float>(value));
  } else {
    float* out = db + (e - dw_count) * b0;
    *out = static_cast<float>(accumulate ? *out + all : all);
  }
}

struct Block {
  float* data = nullptr;
  std::size_t count = 0;
};

std::mutex& workspace_mutex() {
  static std::mutex mutex;
  return mutex;
}

// Never freed: the blocks live as long as the process, like a cached allocator's pool, and
// freeing them from a static destructor could run after the CUDA runtime has shut down.
std::map<std::pair<int, cudaStream_t>, Block>& workspace_blocks() {
  static auto* blocks = new std::map<std::pair<int, cudaStream_t>, Block>();
  return *blocks;
}

}  // namespace

float* workspace(std::size_t count) {
  int device = 0;
  CONVGRAD_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(workspace_mutex());
  Block& block = workspace_blocks()[{device, current_stream()}];
  if (block.count < count) {
    if (block.data != nullptr) CONVGRAD_CUDA_CHECK(cudaFree(block.data));
    block.data = nullptr;
    block.count = 0;
    // Round up so that a run of slightly growing problems does not reallocate every time.
    const std::size_t grown = count + count / 4 + 1024;
    void* data = nullptr;
    CONVGRAD_CUDA_CHECK(cudaMalloc(&data, grown * sizeof(float)));
    block.data = static_cast<float*>(data);
    block.count = grown;
  }
  return block.data;
}

void reduce_wgrad_partials(const ConvProblem& p, const core::Operands& o, const float* partials,
                           std::int64_t splits, std::int64_t split_floats, bool accumulate) {
  const bool bias = !o.b.empty();
  const std::int64_t total = p.k * p.r * p.s * p.c_per_group() + (bias ? p.k : 0);
  // 32 elements a block; the grid's x limit (2^31 - 1 blocks) is far above any filter.
  const std::int64_t blocks = (total + 31) / 32;
  reduce_kernel<<<static_cast<unsigned>(blocks), 32 * kReduceGroups, 0, current_stream()>>>(
      partials, splits, split_floats, p.k, p.r, p.s, p.c_per_group(), o.w.data, o.w.type,
      o.w.strides[0], o.w.strides[1], o.w.strides[2], o.w.strides[3],
      bias ? static_cast<float*>(o.b.data) : nullptr, bias ? o.b.strides[0] : 0, accumulate,
      total);
}

int multiprocessors() {
  int device = 0;
  CONVGRAD_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mutex;
  static std::map<int, int> counts;
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = counts.find(device);
  if (it == counts.end()) {
    int count = 0;
    CONVGRAD_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    it = counts.emplace(device, count).first;
  }
  return it->second;
}

}  // namespace convgrad::cuda::special
