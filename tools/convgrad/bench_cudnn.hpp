// SPDX-License-Identifier: Apache-2.0
// cuDNN as the GPU bench's baseline, through its legacy C API (cudnnConvolutionForward,
// BackwardData, BackwardFilter, BackwardBias; still in cuDNN 9's cudnn_cnn.h): NHWC tensors,
// KRSC (NHWC) filters, groups, fp32 compute, the algorithm picked by cudnnFind*AlgorithmEx on the
// bench's own buffers. Compiled only when CMake finds cuDNN (CONVGRAD_BENCH_WITH_CUDNN);
// cmd_bench.cpp refuses `--baseline cudnn` otherwise.
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_cuda.hpp"
#include "convgrad/problem.hpp"

namespace convgrad::tool {

/// cuDNN cannot run the problem (negative pads, an output size its formula does not give, or no
/// algorithm that runs in the bench's precision).
class CudnnRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CudnnConvolution {
 public:
  /// Reads x, w, b, dy of `operands` and writes into `operands.theirs`, on `stream`. The math
  /// type follows the problem: tensor ops for float16/bfloat16 storage and for MathMode::tf32,
  /// CUDNN_FMA_MATH (no TF32) otherwise. Runs the algorithm search, which writes the outputs.
  /// Throws CudnnRefused, or DeviceError for a failure of cuDNN itself.
  CudnnConvolution(const ConvProblem& problem, Direction direction,
                   const DeviceOperands& operands, cudaStream_t stream);
  ~CudnnConvolution();
  CudnnConvolution(const CudnnConvolution&) = delete;
  CudnnConvolution& operator=(const CudnnConvolution&) = delete;

  /// Enqueues the convolution (alpha 1, beta 0) on the stream.
  void enqueue();
  /// Enqueues the bias pass that a framework adds: fprop y += b (cudnnAddTensor), wgrad db
  /// (cudnnConvolutionBackwardBias); dgrad has none.
  void enqueue_bias();
  bool has_bias_pass() const;
  /// "IMPLICIT_PRECOMP_GEMM, tensor ops, 1.5 MiB workspace" and the like.
  std::string algorithm() const;
  /// Set when the bias pass runs in the storage type because cuDNN refused float32 there.
  std::string bias_note() const;
  /// db of the last bias pass (wgrad), as float; waits for the stream.
  std::vector<float> bias_gradient() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// "9.19.0 (built with 9.19.0)".
std::string cudnn_version();

}  // namespace convgrad::tool
