// SPDX-License-Identifier: Apache-2.0
// The GPU side of `convgrad bench`: operands in device memory shared by our kernels and the
// baseline, one stream, and the timing loop (CUDA events around each call, calls back to back).
// Compiled only with the CUDA backend (CONVGRAD_BENCH_WITH_CUDA).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "convgrad/problem.hpp"

namespace convgrad::tool {

/// The outputs of one side, in device memory, in the problem's storage types (db: float32).
struct DeviceOutputs {
  void* y = nullptr;
  void* dx = nullptr;
  void* dw = nullptr;
  float* db = nullptr;
};

/// x, w, b, dy of one problem in device memory (uniform in [-1, 1] by splitmix64 from `seed`, as
/// the CPU bench draws them, rounded to the storage types; b is float32), and two sets of outputs:
/// ours and the baseline's, so that the check compares two independent answers.
class DeviceOperands {
 public:
  DeviceOperands(const ConvProblem& problem, std::uint64_t seed);
  ~DeviceOperands();
  DeviceOperands(const DeviceOperands&) = delete;
  DeviceOperands& operator=(const DeviceOperands&) = delete;

  void* x = nullptr;
  void* w = nullptr;
  float* b = nullptr;
  void* dy = nullptr;
  DeviceOutputs ours, theirs;

  /// Fills every output of both sides with all-one bytes: NaN in float32, float16 and bfloat16,
  /// so that an element a side does not write fails the check.
  void poison();
  /// The output of `direction` (wgrad: dw) of one side, as float.
  std::vector<float> read(const DeviceOutputs& side, Direction direction) const;
  /// db of one side.
  std::vector<float> read_bias_gradient(const DeviceOutputs& side) const;

 private:
  ConvProblem problem_;
  std::vector<void*> blocks_;
  void* allocate(std::int64_t elements, DataType type);
};

/// A stream the bench owns (non-blocking), for our kernels and the baseline alike.
class BenchStream {
 public:
  BenchStream();
  ~BenchStream();
  BenchStream(const BenchStream&) = delete;
  BenchStream& operator=(const BenchStream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize();

 private:
  cudaStream_t stream_ = nullptr;
};

/// One side of the comparison: its steps (ours: one call; cuDNN: the convolution, then its bias
/// pass) and, after timing, for each step and timed run the time from the side's start to the end
/// of that step.
struct GpuContender {
  std::vector<std::function<void()>> steps;
  std::vector<std::vector<double>> ms;  // [step][run]
};

/// `warmup` untimed rounds, then `reps` timed ones; each round runs every side in turn (ABAB...).
/// Everything is enqueued on `stream` without waiting in between (our kernels through
/// cuda::StreamBinding, the baseline through its handle's stream); an event is recorded before
/// each side's first step and after each of its steps, and the stream is waited for at the end.
/// Throws DeviceError on a CUDA error.
void time_on_stream(const std::vector<GpuContender*>& sides, int warmup, int reps,
                    BenchStream& stream);

}  // namespace convgrad::tool
