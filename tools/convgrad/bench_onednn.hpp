// SPDX-License-Identifier: Apache-2.0
// oneDNN as the bench's baseline: one primitive per problem and direction, created and given its
// weights once, so that what is timed is the execution alone. Compiled only when CMake finds
// oneDNN (CONVGRAD_BENCH_WITH_ONEDNN); cmd_bench.cpp refuses `--baseline onednn` otherwise.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "convgrad/problem.hpp"

namespace convgrad::tool {

/// oneDNN has no implementation for the problem (its 2.6 rules: no negative start pads, end pads
/// above -stride).
class OnednnRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Dense float32 operands in convgrad's layouts: NHWC images, KRSC (OHWI per group) weights.
/// The primitive reads them in place; they must outlive it.
struct OnednnInputs {
  float* x = nullptr;
  float* w = nullptr;
  float* b = nullptr;
  float* dy = nullptr;
};

class OnednnConvolution {
 public:
  /// Throws OnednnRefused when oneDNN declines the problem.
  OnednnConvolution(const ConvProblem& problem, Direction direction, const OnednnInputs& inputs);
  ~OnednnConvolution();
  OnednnConvolution(const OnednnConvolution&) = delete;
  OnednnConvolution& operator=(const OnednnConvolution&) = delete;

  /// The timed part: the primitive's execution, waited for.
  void execute();
  /// y, dx or dw of the last execute() in convgrad's layout (dw reordered back from oneDNN's).
  std::vector<float> output() const;
  /// db of the last execute() (wgrad; empty otherwise).
  std::vector<float> bias_gradient() const;
  /// oneDNN's name of the implementation it chose, e.g. "brgconv:avx512_core".
  std::string implementation() const;
  /// The weights (or dw) layout it chose for format_tag::any, oneDNN-style: "ohwi",
  /// "OIhw16i16o", "Goihw16g".
  std::string weights_layout() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// Sets the thread count of oneDNN's runtime (OpenMP in Debian's build) before any primitive
/// exists; returns a note when it cannot (empty when it did).
std::string set_onednn_threads(int threads);

/// Threads oneDNN's runtime will use (omp_get_max_threads), or 0 when it cannot be asked.
int onednn_threads();

/// "2.6.3 (OpenMP)" and the like.
std::string onednn_version();

}  // namespace convgrad::tool
