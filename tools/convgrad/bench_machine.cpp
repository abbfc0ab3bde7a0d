// SPDX-License-Identifier: Apache-2.0
#include "bench_machine.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CONVGRAD_BENCH_X86 1
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "core/parallel.hpp"

#ifndef CONVGRAD_BENCH_COMMIT
#define CONVGRAD_BENCH_COMMIT "unknown"
#endif
#ifndef CONVGRAD_BENCH_BUILD_TYPE
#define CONVGRAD_BENCH_BUILD_TYPE "unknown"
#endif

namespace convgrad::tool {
namespace {

// Twelve independent chains hide the FMA latency on every x86 core we know (4 cycles, at most two
// FMA pipes: 8 chains in flight suffice). acc * a + b with |a| < 1 stays finite and normal, so no
// denormal or overflow slows the loop.
constexpr int kChains = 12;

#ifdef CONVGRAD_BENCH_X86
// The library is built for baseline x86-64, so the wide loops are compiled for their ISA one
// function at a time and chosen at run time.
__attribute__((target("avx512f"))) float fma_loop_avx512(std::int64_t iterations) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
  for (std::int64_t i = 0; i < iterations; ++i) {
    // Unrolled, the array becomes twelve registers; rolled, GCC keeps it in memory.
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  for (int j = 1; j < kChains; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  // A store rather than _mm512_reduce_add_ps, on which GCC 12 warns falsely (-Wuninitialized).
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc[0]);
  float sum = 0;
  for (const float lane : lanes) sum += lane;
  return sum;
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(std::int64_t iterations) {
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(static_cast<float>(j));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
  for (std::int64_t i = 0; i < iterations; ++i) {
    // Unrolled, the array becomes twelve registers; rolled, GCC keeps it in memory.
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  for (int j = 1; j < kChains; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc[0]);
  float sum = 0;
  for (const float lane : lanes) sum += lane;
  return sum;
}

#endif  // CONVGRAD_BENCH_X86

// Plain C++ for CPUs without AVX2 and FMA, or not x86: whatever the compiler makes of it for the
// baseline target (SSE multiplies and adds on x86-64).
float fma_loop_scalar(std::int64_t iterations) {
  float acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = static_cast<float>(j);
  for (std::int64_t i = 0; i < iterations; ++i) {
    // Unrolled, the array becomes twelve registers; rolled, GCC keeps it in memory.
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = acc[j] * 0.999f + 0.001f;
  }
  float sum = 0;
  for (const float value : acc) sum += value;
  return sum;
}

struct Loop {
  const char* isa;
  int lanes;
  float (*run)(std::int64_t);
};

Loop widest_loop() {
#ifdef CONVGRAD_BENCH_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {"avx512", 16, fma_loop_avx512};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return {"avx2", 8, fma_loop_avx2};
  }
#endif
  return {"scalar", 1, fma_loop_scalar};
}

double seconds(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

double thread_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

// Keeps the loops' results alive so that the compiler cannot drop them.
volatile float sink;

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

PeakProbe measure_peak(int threads) {
  const Loop loop = widest_loop();
  threads = std::max(threads, 1);
  // Sized from a short single-thread run so that each measurement lasts about 0.1 s whatever the
  // CPU: long enough for the clock to settle, short enough to repeat.
  std::int64_t iterations = 1 << 20;
  const auto start = std::chrono::steady_clock::now();
  sink = loop.run(iterations);
  const double calibration = seconds(std::chrono::steady_clock::now() - start);
  iterations = std::max<std::int64_t>(
      iterations, static_cast<std::int64_t>(static_cast<double>(iterations) * 0.1 /
                                            std::max(calibration, 1e-6)));

  std::vector<float> results(static_cast<std::size_t>(threads));
  std::vector<double> busy(static_cast<std::size_t>(threads));
  const double flops_per_thread = 2.0 * kChains * loop.lanes * static_cast<double>(iterations);
  double best = 0, best_wall = 0;
  for (int trial = 0; trial < 4; ++trial) {
    const auto begin = std::chrono::steady_clock::now();
    core::parallel_for(threads, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t t = first; t < last; ++t) {
        const double start_cpu = thread_cpu_seconds();
        results[static_cast<std::size_t>(t)] = loop.run(iterations);
        busy[static_cast<std::size_t>(t)] = thread_cpu_seconds() - start_cpu;
      }
    });
    const double elapsed = seconds(std::chrono::steady_clock::now() - begin);
    double rate = 0;
    for (const double cpu : busy) rate += flops_per_thread / std::max(cpu, 1e-9);
    best = std::max(best, rate * 1e-9);
    best_wall = std::max(best_wall, flops_per_thread * threads / elapsed * 1e-9);
  }
  for (const float r : results) sink = r;

  PeakProbe probe;
  probe.isa = loop.isa;
  probe.threads = threads;
  probe.gflops = best;
  probe.gflops_per_thread = best / threads;
  probe.wall_gflops = best_wall;
  return probe;
}

MachineInfo machine_info() {
  MachineInfo info;
  info.logical_cpus = static_cast<int>(std::thread::hardware_concurrency());
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  while (std::getline(cpuinfo, line)) {
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && info.cpu.empty()) info.cpu = value;
    if (key == "flags" && flags.empty()) {
      std::istringstream words(value);
      std::string flag;
      while (words >> flag) {
        // Only what decides which kernels run: SIMD width, FMA, 16-bit float support.
        if (flag.starts_with("avx") || flag.starts_with("amx") || flag == "fma" || flag == "f16c" ||
            flag == "sse4_2") {
          flags.insert(flag);
        }
      }
    }
  }
  if (info.cpu.empty()) info.cpu = "unknown";
  info.isa.assign(flags.begin(), flags.end());
#if defined(__GNUC__) && !defined(__clang__)
  info.compiler = "GCC " __VERSION__;
#else
  info.compiler = __VERSION__;  // Clang's already names the compiler
#endif
  info.build_type = CONVGRAD_BENCH_BUILD_TYPE;
  info.commit = CONVGRAD_BENCH_COMMIT;
  return info;
}

std::vector<double> load_average() {
  std::istringstream in(read_first_line("/proc/loadavg"));
  std::vector<double> load;
  double value = 0;
  for (int i = 0; i < 3 && in >> value; ++i) load.push_back(value);
  return load;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

}  // namespace convgrad::tool
