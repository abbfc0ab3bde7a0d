// SPDX-License-Identifier: Apache-2.0
// GPU test helpers: the skip rule (no CUDA device: skipped with the reason, never passed),
// device copies of the host test tensors, and one random problem through the reference and the
// cuda backend, which the suites against the reference share.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>

#include "convgrad/device.hpp"
#include "convgrad/device_buffer.hpp"
#include "convgrad/functional.hpp"
#include "support/backend_compare.hpp"
#include "support/oracle_support.hpp"

namespace convgrad::test {

/// Empty when the cuda backend can run here; otherwise why not ("no CUDA device: ...").
inline std::string cuda_unavailable() {
  for (const BackendInfo& info : list_backends()) {
    if (info.name == "cuda") return info.available ? std::string() : info.reason;
  }
  return "no CUDA device: the cuda backend is not compiled in";
}

/// The first statement of every GPU test: CI has no GPU and must show these as skipped.
#define CONVGRAD_REQUIRE_CUDA()                                                             \
  do {                                                                                      \
    if (const std::string reason = ::convgrad::test::cuda_unavailable(); !reason.empty()) { \
      GTEST_SKIP() << reason;                                                               \
    }                                                                                       \
  } while (false)

/// The bytes of a StridedTensor's view (from its first element to the end of its extent, slack
/// included) on the GPU, with the same strides. Downloading copies them back over the host
/// buffer, so the host side can check every viewed element and everything around it.
class DeviceMirror {
 public:
  explicit DeviceMirror(const StridedTensor& host)
      : bytes_(static_cast<std::size_t>(host.view().extent) * size_of(host.view().type)),
        buffer_(Device::cuda(), bytes_) {
    buffer_.copy_from_host(host.view().data, bytes_);
    view_ = host.view();
    view_.data = buffer_.data();
    view_.device = DeviceKind::cuda;
  }
  const TensorView& view() const { return view_; }
  /// 0xFF bytes: NaN in float32, float16 and bfloat16 alike.
  void poison() { buffer_.fill_bytes(0xFF); }
  void download(StridedTensor& host) const { buffer_.copy_to_host(host.view().data, bytes_); }

 private:
  std::size_t bytes_;
  DeviceBuffer buffer_;
  TensorView view_;
};

/// `wanted`, or CONVGRAD_GPU_PROBLEMS when that is a positive count: compute-sanitizer runs
/// scale the suites down with it.
std::int64_t problem_count(std::int64_t wanted);

/// The kernel each direction runs with (RunOptions::kernel): std::nullopt leaves the direction
/// out, "" lets the backend choose.
struct Kernels {
  std::optional<std::string> fprop, dgrad, wgrad;
};

/// The inputs of one problem; dw0 and db0 are where accumulate mode starts.
struct Inputs {
  StridedTensor x, w, b, dy, dw0, db0;
};

/// The outputs of one backend on one problem; dw_acc and db_acc start as dw0 and db0, dw2 and db2
/// hold wgrad's second run.
struct Outputs {
  StridedTensor y, dx, dw, db, dw_acc, db_acc, dw2, db2;
};

/// How a suite holds the cuda backend to the reference.
struct CudaCheck {
  Kernels kernels;
  double tolerance;
  Data data = Data::uniform;
  const char* backend = "the cuda backend";  ///< in the messages
  ReferenceCheck reference = ReferenceCheck::written;
};

enum class Outcome : std::uint8_t { passed, mismatched, threw, redrawn };

/// One problem through the reference and then the cuda backend, device outputs poisoned with NaN
/// first, wgrad run twice (the same bits both times) and once more accumulating. A problem whose
/// reference output is mostly zero where taps reach is `redrawn`: it would hide the arithmetic.
/// `before_cuda` runs first on the cuda side, its exceptions counted as the backend's.
Outcome check_problem(const ConvProblem& p, Layout layout, const CudaCheck& check,
                      std::mt19937_64& rng, double& max_error,
                      const std::function<void()>& before_cuda = {});

/// `kernel` (forced through RunOptions::kernel) refuses `p` in `direction` with a message that
/// contains `reason`.
void expect_refused(const ConvProblem& p, Direction direction, const std::string& kernel,
                    const std::string& reason);

/// A suite's count of problems by outcome; it stops after 10 failing problems.
struct Tally {
  std::int64_t ran = 0, redrawn = 0, failures = 0;
  double max_error = 0.0;
  bool more(std::int64_t problems) const { return ran < problems && failures < 10; }
  /// Counts `outcome`; returns whether the problem ran (passed or not).
  bool add(Outcome outcome);
  /// The suite ran all of its problems without stopping early.
  void expect_done(std::int64_t problems) const;
};

}  // namespace convgrad::test
