// SPDX-License-Identifier: Apache-2.0
// The cuda backend against the reference on random problems: all three directions plus wgrad's
// accumulate mode, dense and strided views, float32, float16, bfloat16 and mixed storage. Device
// outputs are poisoned with NaN before each run, so an element a kernel forgets stays NaN; the
// bytes around each view are checked untouched; wgrad runs twice and must agree bit for bit.
// CONVGRAD_GPU_PROBLEMS scales the suites down (compute-sanitizer runs).
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <iostream>
#include <map>
#include <random>
#include <string>

#include "convgrad/functional.hpp"
#include "convgrad/problem.hpp"
#include "gpu/gpu_support.hpp"
#include "support/backend_compare.hpp"
#include "support/oracle_support.hpp"

namespace convgrad {
namespace {

using test::Data;
using test::Layout;

// fp32 accumulation on both sides in different orders over at most a few hundred terms of
// uniform data stays near 1e-6 of the largest output.
constexpr double kFp32Tolerance = 1e-5;
// Integer data: every partial sum is an integer below 2^24, exact in any order.
constexpr double kIntegerTolerance = 0.0;
// 16-bit storage: each side rounds its output once, by up to 2^-8 of the value in bfloat16, so
// the two differ by at most 0.0078 of the largest output.
constexpr double kLowPrecisionTolerance = 1e-2;

enum class Types { float32, float16, bfloat16, mixed };

struct SuiteSpec {
  const char* name;
  std::uint64_t salt;
  std::int64_t problems;
  Types types;
  Data data = Data::uniform;
  double tolerance = kFp32Tolerance;
};

void set_types(ConvProblem& p, Types types, std::mt19937_64& rng) {
  constexpr std::array<DataType, 3> all{DataType::float32, DataType::float16, DataType::bfloat16};
  switch (types) {
    case Types::float32:
      p.x_type = p.w_type = p.y_type = DataType::float32;
      return;
    case Types::float16:
      p.x_type = p.w_type = p.y_type = DataType::float16;
      return;
    case Types::bfloat16:
      p.x_type = p.w_type = p.y_type = DataType::bfloat16;
      return;
    case Types::mixed:
      break;
  }
  const auto any = [&] { return all[std::uniform_int_distribution<std::size_t>(0, 2)(rng)]; };
  p.x_type = any();
  p.w_type = any();
  p.y_type = any();
}

void run_suite(const SuiteSpec& spec) {
  const std::int64_t problems = test::problem_count(spec.problems);
  std::mt19937_64 rng = test::make_rng(spec.salt);
  test::DrawSpec draw;
  test::Census census;
  std::map<std::string, std::int64_t> kernels;
  test::Tally tally;
  std::int64_t strided = 0;
  const test::CudaCheck check{
      .kernels = {"", "", ""}, .tolerance = spec.tolerance, .data = spec.data};
  for (std::size_t index = 0; tally.more(problems); ++index) {
    ConvProblem p = test::draw_problem(rng, draw, index);
    set_types(p, spec.types, rng);
    // One problem in four through strided views of larger buffers.
    const Layout layout = index % 4 == 3 ? Layout::strided : Layout::dense;
    SCOPED_TRACE(test::describe(p) + (layout == Layout::strided ? " [strided views]" : "") + "; " +
                 test::repro_hint());
    if (!tally.add(test::check_problem(p, layout, check, rng, tally.max_error))) continue;
    strided += layout == Layout::strided;
    census.add(p);
    for (const Direction direction : {Direction::fprop, Direction::dgrad, Direction::wgrad}) {
      ++kernels[kernel_name(p, direction, test::run_on("cuda"))];
    }
  }
  std::cout << "[cuda vs ref] " << spec.name << ": " << tally.ran
            << " problems x 3 directions (+ wgrad accumulate, wgrad twice), " << strided
            << " through strided views, " << tally.redrawn
            << " redrawn as mostly zero; largest relative error " << tally.max_error
            << "\n  kernels:";
  for (const auto& [kernel, count] : kernels) std::cout << " " << kernel << " " << count;
  std::cout << "\n  census: " << census.summary() << "\n";
  tally.expect_done(problems);
  if (problems >= 100) {
    for (const std::string& feature : test::required_features()) {
      EXPECT_GT(census.count(feature), 0) << "no problem with " << feature << " ran";
    }
  }
}

TEST(CudaVsRef, Float32) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite({.name = "Float32", .salt = 0xc0da01, .problems = 500, .types = Types::float32});
}

TEST(CudaVsRef, Float16) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite({.name = "Float16",
             .salt = 0xc0da02,
             .problems = 500,
             .types = Types::float16,
             .tolerance = kLowPrecisionTolerance});
}

TEST(CudaVsRef, Bfloat16) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite({.name = "Bfloat16",
             .salt = 0xc0da03,
             .problems = 500,
             .types = Types::bfloat16,
             .tolerance = kLowPrecisionTolerance});
}

TEST(CudaVsRef, MixedTypes) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite({.name = "MixedTypes",
             .salt = 0xc0da04,
             .problems = 200,
             .types = Types::mixed,
             .tolerance = kLowPrecisionTolerance});
}

TEST(CudaVsRef, Float32IntegersExact) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite({.name = "Float32IntegersExact",
             .salt = 0xc0da05,
             .problems = 200,
             .types = Types::float32,
             .data = Data::integers,
             .tolerance = kIntegerTolerance});
}

}  // namespace
}  // namespace convgrad
