// SPDX-License-Identifier: Apache-2.0
#include "support/backend_compare.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace convgrad::test {

RunOptions run_on(const char* backend, const std::string& kernel, bool accumulate) {
  RunOptions options;
  options.backend = backend;
  options.kernel = kernel;
  options.accumulate = accumulate;
  return options;
}

std::array<std::int64_t, 4> image_dims(const ConvProblem& p) { return {p.n, p.h, p.w, p.c}; }
std::array<std::int64_t, 4> filter_dims(const ConvProblem& p) {
  return {p.k, p.r, p.s, p.c_per_group()};
}
std::array<std::int64_t, 4> output_dims(const ConvProblem& p) { return {p.n, p.p, p.q, p.k}; }
std::array<std::int64_t, 4> bias_dims(const ConvProblem& p) { return {p.k, 1, 1, 1}; }

void fill(StridedTensor& tensor, Data data, std::mt19937_64& rng) {
  if (data == Data::integers) {
    tensor.fill_integers(rng, 3);
  } else {
    tensor.fill_uniform(rng);
  }
}

bool expect_close(const char* name, const char* backend, const StridedTensor& got,
                  const StridedTensor& want, double tolerance, double& max_error,
                  ReferenceCheck reference) {
  const std::vector<float> got_values = got.gather();
  const std::vector<float> want_values = want.gather();
  const double error = relative_error(got_values, want_values);
  max_error = std::max(max_error, error);
  const std::int64_t unwritten = count_nan(got_values);
  const std::int64_t outside = got.outside_written();
  EXPECT_EQ(unwritten, 0) << name << ": " << backend << " left elements unwritten";
  EXPECT_EQ(outside, 0) << name << ": " << backend << " wrote outside its view";
  if (reference == ReferenceCheck::written) {
    EXPECT_EQ(count_nan(want_values), 0) << name << ": the reference left elements unwritten";
  }
  EXPECT_LE(error, tolerance) << name << ": relative error of " << backend << " to the reference";
  return unwritten == 0 && outside == 0 && error <= tolerance;
}

bool same_bits(const StridedTensor& a, const StridedTensor& b) {
  const std::vector<float> x = a.gather(), y = b.gather();
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

}  // namespace convgrad::test
