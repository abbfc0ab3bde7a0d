// SPDX-License-Identifier: Apache-2.0
#include "bench_gpu_probe.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "convgrad/errors.hpp"
#include "cuda/check.hpp"
#include "dispatch/memory.hpp"

namespace convgrad::tool {
namespace {

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw DeviceError(std::string("cuBLAS error ") + cublasGetStatusName(status) + " in " + what);
  }
}

std::string cuda_version_text(int version) {
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

// Device memory released on every path out, errors included.
class DeviceBlock {
 public:
  explicit DeviceBlock(std::size_t bytes)
      : pointer_(dispatch::allocate(DeviceKind::cuda, 0, bytes)) {}
  ~DeviceBlock() { dispatch::release(DeviceKind::cuda, pointer_); }
  DeviceBlock(const DeviceBlock&) = delete;
  DeviceBlock& operator=(const DeviceBlock&) = delete;
  void* get() const { return pointer_; }

 private:
  void* pointer_;
};

class Stream {
 public:
  Stream() { CONVGRAD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(stream_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// Each call between two events, back to back on one stream; the median of the timed ones.
template <class Call>
double median_event_ms(cudaStream_t stream, int warmup, int reps, const Call& call) {
  for (int i = 0; i < warmup; ++i) call();
  std::vector<cudaEvent_t> events(static_cast<std::size_t>(reps) + 1);
  for (cudaEvent_t& event : events) CONVGRAD_CUDA_CHECK(cudaEventCreate(&event));
  std::vector<float> ms(static_cast<std::size_t>(reps));
  try {
    // One event between two calls ends the first and starts the second: no gap is timed twice.
    CONVGRAD_CUDA_CHECK(cudaEventRecord(events[0], stream));
    for (int i = 0; i < reps; ++i) {
      call();
      CONVGRAD_CUDA_CHECK(cudaEventRecord(events[static_cast<std::size_t>(i) + 1], stream));
    }
    CONVGRAD_CUDA_CHECK(cudaStreamSynchronize(stream));
    for (std::size_t i = 0; i < ms.size(); ++i) {
      CONVGRAD_CUDA_CHECK(cudaEventElapsedTime(&ms[i], events[i], events[i + 1]));
    }
  } catch (...) {
    for (cudaEvent_t event : events) cudaEventDestroy(event);
    throw;
  }
  for (cudaEvent_t event : events) cudaEventDestroy(event);
  std::sort(ms.begin(), ms.end());
  const std::size_t mid = ms.size() / 2;
  return ms.size() % 2 == 1 ? ms[mid] : 0.5 * (ms[mid - 1] + ms[mid]);
}

// splitmix64 in [-1, 1] in the storage type: the probe must not run on zeros (a matrix unit is
// faster on them).
std::vector<unsigned char> random_matrix(std::int64_t count, DataType storage) {
  std::vector<unsigned char> bytes(static_cast<std::size_t>(count) * size_of(storage));
  std::uint64_t state = 12345;
  for (std::int64_t i = 0; i < count; ++i) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const float value = static_cast<float>(static_cast<std::int64_t>(z >> 40) - (1 << 23)) /
                        static_cast<float>(1 << 23);
    store_from_float(bytes.data(), storage, i, value);
  }
  return bytes;
}

}  // namespace

GpuInfo gpu_info() {
  cudaDeviceProp prop{};
  CONVGRAD_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  GpuInfo info;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.multiprocessors = prop.multiProcessorCount;
  info.memory_gib = static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0);
  info.l2_mib = prop.l2CacheSize / (1024 * 1024);
  int driver = 0, runtime = 0;
  CONVGRAD_CUDA_CHECK(cudaDriverGetVersion(&driver));
  CONVGRAD_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  info.driver = cuda_version_text(driver);
  info.runtime = cuda_version_text(runtime);
  int major = 0, minor = 0, patch = 0;
  check_cublas(cublasGetProperty(MAJOR_VERSION, &major), "cublasGetProperty");
  check_cublas(cublasGetProperty(MINOR_VERSION, &minor), "cublasGetProperty");
  check_cublas(cublasGetProperty(PATCH_LEVEL, &patch), "cublasGetProperty");
  info.cublas = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  return info;
}

GemmProbe measure_gemm_rate(DataType storage, bool tf32) {
  // 8192^3 fills an H100 many times over (4096 tiles of 128x128) and lasts 1.4 ms in bf16.
  constexpr int n = 8192;
  const std::int64_t count = std::int64_t{n} * n;
  const std::size_t bytes = static_cast<std::size_t>(count) * size_of(storage);
  const std::vector<unsigned char> host = random_matrix(count, storage);
  DeviceBlock a(bytes), b(bytes), c(bytes);
  dispatch::copy_to_device(DeviceKind::cuda, a.get(), host.data(), bytes);
  dispatch::copy_to_device(DeviceKind::cuda, b.get(), host.data(), bytes);
  const cudaDataType_t type = storage == DataType::bfloat16  ? CUDA_R_16BF
                              : storage == DataType::float16 ? CUDA_R_16F
                                                             : CUDA_R_32F;
  const cublasComputeType_t compute =
      storage == DataType::float32 && tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;

  Stream stream;
  cublasHandle_t handle = nullptr;
  check_cublas(cublasCreate(&handle), "cublasCreate");
  GemmProbe probe;
  try {
    check_cublas(cublasSetStream(handle, stream.get()), "cublasSetStream");
    const float alpha = 1.0f / n, beta = 0.0f;  // keeps C in range for f16
    const auto gemm = [&] {
      check_cublas(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a.get(), type,
                                n, b.get(), type, n, &beta, c.get(), type, n, compute,
                                CUBLAS_GEMM_DEFAULT),
                   "cublasGemmEx");
    };
    probe.median_ms = median_event_ms(stream.get(), 5, 20, gemm);
  } catch (...) {
    cublasDestroy(handle);
    throw;
  }
  cublasDestroy(handle);
  probe.n = n;
  probe.tflops = 2.0 * n * static_cast<double>(n) * n / (probe.median_ms * 1e9);
  const std::string name(to_string(storage));
  probe.what = "cublasGemmEx " + name + " x " + name + " -> " + name +
               (compute == CUBLAS_COMPUTE_32F_FAST_TF32 ? ", TF32 tensor ops" : ", fp32 compute") +
               ", " + std::to_string(n) + "^3";
  return probe;
}

CopyProbe measure_copy_bandwidth() {
  constexpr std::size_t bytes = std::size_t{1} << 30;  // far beyond the L2
  DeviceBlock source(bytes), destination(bytes);
  dispatch::fill_bytes(DeviceKind::cuda, source.get(), 0x5a, bytes);
  Stream stream;
  CopyProbe probe;
  probe.gib = 1.0;
  probe.median_ms = median_event_ms(stream.get(), 3, 20, [&] {
    CONVGRAD_CUDA_CHECK(cudaMemcpyAsync(destination.get(), source.get(), bytes,
                                        cudaMemcpyDeviceToDevice, stream.get()));
  });
  probe.gbps = 2.0 * static_cast<double>(bytes) / (probe.median_ms * 1e6);
  return probe;
}

}  // namespace convgrad::tool
