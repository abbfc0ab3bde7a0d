// SPDX-License-Identifier: Apache-2.0
#include "bench_cuda.hpp"

#include <algorithm>
#include <cstddef>

#include "cuda/check.hpp"
#include "cuda/stream.hpp"
#include "dispatch/memory.hpp"

namespace convgrad::tool {
namespace {

// The same splitmix64 grid as the CPU bench and `run`: exact in float32, symmetric about 0.
std::vector<unsigned char> random_tensor(std::int64_t count, DataType type, std::uint64_t& state) {
  std::vector<unsigned char> bytes(static_cast<std::size_t>(count) * size_of(type));
  for (std::int64_t i = 0; i < count; ++i) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    constexpr std::int64_t kHalf = std::int64_t{1} << 23;
    const float value = static_cast<float>(static_cast<std::int64_t>(z >> 40) - kHalf) /
                        static_cast<float>(kHalf);
    store_from_float(bytes.data(), type, i, value);
  }
  return bytes;
}

std::vector<float> read_as_float(const void* device, DataType type, std::int64_t count) {
  std::vector<unsigned char> bytes(static_cast<std::size_t>(count) * size_of(type));
  dispatch::copy_to_host(DeviceKind::cuda, bytes.data(), device, bytes.size());
  std::vector<float> values(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    values[static_cast<std::size_t>(i)] = load_as_float(bytes.data(), type, i);
  }
  return values;
}

}  // namespace

void* DeviceOperands::allocate(std::int64_t elements, DataType type) {
  const std::size_t bytes = static_cast<std::size_t>(elements) * size_of(type);
  blocks_.push_back(nullptr);  // reserved first, so that a failed allocation leaks nothing
  blocks_.back() = dispatch::allocate(DeviceKind::cuda, 0, bytes);
  return blocks_.back();
}

DeviceOperands::DeviceOperands(const ConvProblem& p, std::uint64_t seed) : problem_(p) {
  try {
    const std::int64_t xs = x_elements(p), ws = w_elements(p), ys = y_elements(p);
    x = allocate(xs, p.x_type);
    w = allocate(ws, p.w_type);
    b = static_cast<float*>(allocate(p.k, DataType::float32));
    dy = allocate(ys, p.y_type);
    for (DeviceOutputs* side : {&ours, &theirs}) {
      side->y = allocate(ys, p.y_type);
      side->dx = allocate(xs, p.x_type);
      side->dw = allocate(ws, p.w_type);
      side->db = static_cast<float*>(allocate(p.k, DataType::float32));
    }
    // Drawn in the CPU bench's order x, w, b, dy.
    const auto upload = [&](void* device, std::int64_t count, DataType type) {
      const std::vector<unsigned char> host = random_tensor(count, type, seed);
      dispatch::copy_to_device(DeviceKind::cuda, device, host.data(), host.size());
    };
    upload(x, xs, p.x_type);
    upload(w, ws, p.w_type);
    upload(b, p.k, DataType::float32);
    upload(dy, ys, p.y_type);
  } catch (...) {
    for (void* block : blocks_) dispatch::release(DeviceKind::cuda, block);
    throw;
  }
}

DeviceOperands::~DeviceOperands() {
  for (void* block : blocks_) dispatch::release(DeviceKind::cuda, block);
}

void DeviceOperands::poison() {
  const ConvProblem& p = problem_;
  for (const DeviceOutputs* side : {&ours, &theirs}) {
    dispatch::fill_bytes(DeviceKind::cuda, side->y, 0xff,
                         static_cast<std::size_t>(y_elements(p)) * size_of(p.y_type));
    dispatch::fill_bytes(DeviceKind::cuda, side->dx, 0xff,
                         static_cast<std::size_t>(x_elements(p)) * size_of(p.x_type));
    dispatch::fill_bytes(DeviceKind::cuda, side->dw, 0xff,
                         static_cast<std::size_t>(w_elements(p)) * size_of(p.w_type));
    dispatch::fill_bytes(DeviceKind::cuda, side->db, 0xff,
                         static_cast<std::size_t>(p.k) * sizeof(float));
  }
}

std::vector<float> DeviceOperands::read(const DeviceOutputs& side, Direction direction) const {
  const ConvProblem& p = problem_;
  switch (direction) {
    case Direction::fprop:
      return read_as_float(side.y, p.y_type, y_elements(p));
    case Direction::dgrad:
      return read_as_float(side.dx, p.x_type, x_elements(p));
    case Direction::wgrad:
      break;
  }
  return read_as_float(side.dw, p.w_type, w_elements(p));
}

std::vector<float> DeviceOperands::read_bias_gradient(const DeviceOutputs& side) const {
  return read_as_float(side.db, DataType::float32, problem_.k);
}

BenchStream::BenchStream() {
  CONVGRAD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

BenchStream::~BenchStream() { cudaStreamDestroy(stream_); }

void BenchStream::synchronize() { CONVGRAD_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void time_on_stream(const std::vector<GpuContender*>& sides, int warmup, int reps,
                    BenchStream& stream) {
  // Our kernels launch on the bench's stream and return without waiting, as cuDNN's do.
  const cuda::StreamBinding binding(stream.get());
  for (int i = 0; i < warmup; ++i) {
    for (GpuContender* side : sides) {
      for (const auto& step : side->steps) step();
    }
  }
  std::size_t per_round = 0;
  for (const GpuContender* side : sides) per_round += side->steps.size() + 1;
  std::vector<cudaEvent_t> events(per_round * static_cast<std::size_t>(reps), nullptr);
  const auto destroy = [&] {
    for (cudaEvent_t event : events) {
      if (event != nullptr) cudaEventDestroy(event);
    }
  };
  try {
    for (cudaEvent_t& event : events) CONVGRAD_CUDA_CHECK(cudaEventCreate(&event));
    std::size_t next = 0;
    for (int r = 0; r < reps; ++r) {
      for (GpuContender* side : sides) {
        CONVGRAD_CUDA_CHECK(cudaEventRecord(events[next++], stream.get()));
        for (const auto& step : side->steps) {
          step();
          CONVGRAD_CUDA_CHECK(cudaEventRecord(events[next++], stream.get()));
        }
      }
    }
    stream.synchronize();
    next = 0;
    for (GpuContender* side : sides) {
      side->ms.assign(side->steps.size(), {});
    }
    for (int r = 0; r < reps; ++r) {
      for (GpuContender* side : sides) {
        const cudaEvent_t start = events[next++];
        for (std::size_t s = 0; s < side->steps.size(); ++s) {
          float ms = 0;
          CONVGRAD_CUDA_CHECK(cudaEventElapsedTime(&ms, start, events[next++]));
          side->ms[s].push_back(ms);
        }
      }
    }
  } catch (...) {
    destroy();
    throw;
  }
  destroy();
}

}  // namespace convgrad::tool
