// SPDX-License-Identifier: Apache-2.0
// What `convgrad bench` reports about the machine: the peak it measures itself (an FMA loop on
// every thread) and the facts that make two benchmark runs comparable or not.
#pragma once

#include <string>
#include <vector>

namespace convgrad::tool {

struct PeakProbe {
  std::string isa;  ///< "avx512", "avx2" or "scalar" (plain C++): the widest FMA here
  int threads = 0;  ///< threads that ran the loop at once
  /// What the cores do while they run the loop: each thread's FMAs over its own CPU time, summed
  /// over the threads (best of a few runs). Other processes on the machine do not lower it.
  double gflops = 0;
  double gflops_per_thread = 0;
  /// The same FMAs over wall time: what this process got. Far below `gflops` on a loaded machine.
  double wall_gflops = 0;
};

/// Float32 FMA throughput on `threads` threads (through core::parallel_for, the pool our kernels
/// use). Takes about half a second.
PeakProbe measure_peak(int threads);

struct MachineInfo {
  std::string cpu;  ///< "model name" of /proc/cpuinfo
  int logical_cpus = 0;
  std::vector<std::string> isa;  ///< the SIMD flags of /proc/cpuinfo that matter here
  std::string compiler;
  std::string build_type;  ///< CMAKE_BUILD_TYPE of this build
  std::string commit;      ///< `git rev-parse --short HEAD` when configured, or "unknown"
};
MachineInfo machine_info();

/// The three numbers of /proc/loadavg; empty where it cannot be read.
std::vector<double> load_average();

/// UTC, ISO 8601, to the second.
std::string utc_now();

}  // namespace convgrad::tool
