// SPDX-License-Identifier: Apache-2.0
// What `convgrad bench --backend cuda` reports about the GPU: the device's facts, and the two
// ceilings it measures itself before the layers: a large cuBLAS matrix product in the bench's
// precision (the rate "% of GEMM" refers to) and a device-to-device copy (the memory bandwidth).
// Compiled only with the CUDA backend (CONVGRAD_BENCH_WITH_CUDA).
#pragma once

#include <string>

#include "convgrad/dtype.hpp"

namespace convgrad::tool {

struct GpuInfo {
  std::string name;
  int compute_major = 0, compute_minor = 0;
  int multiprocessors = 0;
  double memory_gib = 0;
  int l2_mib = 0;
  std::string driver;   ///< "13.0": the CUDA version the driver supports
  std::string runtime;  ///< the CUDA runtime this program was built with
  std::string cublas;   ///< "13.0.2"
};
/// Device 0. Throws DeviceError when there is none.
GpuInfo gpu_info();

struct GemmProbe {
  std::string what;  ///< "cublasGemmEx bf16 x bf16 -> bf16, fp32 compute, 8192^3"
  int n = 0;
  double median_ms = 0;
  double tflops = 0;
};
/// C = A B, n x n x n, random operands in `storage`, fp32 accumulation (TF32 tensor ops when
/// `tf32`; plain fp32 FMA for float32 otherwise); median of 20 timed runs after 5, CUDA events.
GemmProbe measure_gemm_rate(DataType storage, bool tf32);

struct CopyProbe {
  double gib = 0;        ///< size of the copy
  double median_ms = 0;  ///< median of 20 timed runs after 3
  double gbps = 0;       ///< bytes read plus bytes written, over the median
};
/// cudaMemcpyAsync device to device.
CopyProbe measure_copy_bandwidth();

}  // namespace convgrad::tool
