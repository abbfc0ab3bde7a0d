// SPDX-License-Identifier: Apache-2.0
// What the suites that hold a backend to the reference share: run options, the tensor shapes of a
// problem, input fills, and the comparison of one output.
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <string>

#include "convgrad/functional.hpp"
#include "convgrad/problem.hpp"
#include "support/oracle_support.hpp"

namespace convgrad::test {

/// Options that run on `backend`, forced to `kernel` (a glob; empty lets the backend choose).
RunOptions run_on(const char* backend, const std::string& kernel = {}, bool accumulate = false);

std::array<std::int64_t, 4> image_dims(const ConvProblem& p);
std::array<std::int64_t, 4> filter_dims(const ConvProblem& p);
std::array<std::int64_t, 4> output_dims(const ConvProblem& p);
std::array<std::int64_t, 4> bias_dims(const ConvProblem& p);

/// Uniform data, or small integers whose sums are exact in any order.
enum class Data : std::uint8_t { uniform, integers };
void fill(StridedTensor& tensor, Data data, std::mt19937_64& rng);

/// Whether expect_close also requires the reference to have written every element.
enum class ReferenceCheck : std::uint8_t { written, unchecked };

/// Holds `got`, written by `backend` (named in the messages), to the reference's `want`: no
/// element left NaN (outputs start poisoned), nothing written outside the view, relative error
/// within `tolerance`. Raises `max_error` to the error seen; returns whether all held.
bool expect_close(const char* name, const char* backend, const StridedTensor& got,
                  const StridedTensor& want, double tolerance, double& max_error,
                  ReferenceCheck reference = ReferenceCheck::written);

/// The two views hold the same values, bit for bit.
bool same_bits(const StridedTensor& a, const StridedTensor& b);

}  // namespace convgrad::test
