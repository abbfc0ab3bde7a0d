// SPDX-License-Identifier: Apache-2.0
// The tensor-core grouped kernels (src/cuda/grouped_tc.cu), each forced by name
// (RunOptions::kernel) so that the test checks that kernel and not the CUDA-core one after it,
// against the reference on random grouped problems with float16 and bfloat16 storage in turn:
// channels per group 8 to 32 (multiples of 8), any stride, dilation and padding (negative pads
// too; dgrad at stride 1), outputs poisoned with NaN, wgrad run twice (bit for bit the same) and
// once more accumulating into non-zero dw and db. Every fourth problem goes through strided
// views, which these kernels hand to the CUDA-core kernels: those check the fallback, and 300
// problems per kernel class run on dense views. Larger layer shapes make blocks walk several
// tiles; every rejects() reason is exercised. CONVGRAD_GPU_PROBLEMS scales the suites down.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "convgrad/errors.hpp"
#include "convgrad/functional.hpp"
#include "convgrad/problem.hpp"
#include "gpu/gpu_support.hpp"
#include "support/backend_compare.hpp"
#include "support/oracle_support.hpp"

namespace convgrad {
namespace {

using test::Layout;

// 16-bit storage: each side rounds its output once (2^-8 of the value in bfloat16).
constexpr double kTolerance = 1e-2;

std::int64_t uniform(std::mt19937_64& rng, std::int64_t lo, std::int64_t hi) {
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
}

// Channels per group: mostly 8 and 16 (the resnext shapes), sometimes 24 and 32.
std::int64_t per_group(std::mt19937_64& rng) {
  const std::int64_t pick = uniform(rng, 0, 5);
  return pick < 3 ? 8 : pick < 5 ? 16 : 8 * uniform(rng, 3, 4);
}

// The wgrad kernel keeps at most 16 warp tiles of 80 (tap, channel) rows x 8 filters per group
// in registers (grouped_tc.hpp); draws past that are the rejects test's.
bool wgrad_fits(const ConvProblem& p) {
  const std::int64_t rows = p.r * p.s * (p.c_per_group() / 8) + 1;
  const std::int64_t m_tiles = (rows + 1) / 2;
  return (m_tiles + 4) / 5 * (p.k_per_group() / 8) <= 16;
}

// Geometry from the shared draw (sizes to 20, kernels to 5, strides and dilations to 3, pads
// below zero too), then grouped channels; dgrad at stride 1.
ConvProblem draw(std::mt19937_64& rng, Direction direction, std::size_t index) {
  test::DrawSpec spec;
  spec.max_size = 20;
  ConvProblem p = test::draw_problem(rng, spec, index);
  if (direction == Direction::dgrad) {
    p.stride_h = p.stride_w = 1;
    derive_output_size(p);
  }
  // Up to 12 groups, so that a block's group tile is sometimes only partly filled.
  p.groups = static_cast<std::int32_t>(uniform(rng, 0, 3) == 0 ? uniform(rng, 9, 12) : uniform(rng, 2, 8));
  do {
    p.c = p.groups * per_group(rng);
    p.k = p.groups * per_group(rng);
  } while (direction == Direction::wgrad && !wgrad_fits(p));
  p.x_type = p.w_type = p.y_type = index % 2 == 0 ? DataType::bfloat16 : DataType::float16;
  return p;
}

test::CudaCheck check_for(Direction direction) {
  test::Kernels kernels;
  const std::string glob = "cuda." + std::string(to_string(direction)) + ".grouped.tc.*";
  if (direction == Direction::fprop) kernels.fprop = glob;
  if (direction == Direction::dgrad) kernels.dgrad = glob;
  if (direction == Direction::wgrad) kernels.wgrad = glob;
  return {.kernels = kernels,
          .tolerance = kTolerance,
          .backend = "the tensor-core grouped kernel",
          .reference = test::ReferenceCheck::unchecked};
}

void run_suite(const char* name, std::uint64_t salt, Direction direction, std::int64_t wanted) {
  const std::int64_t problems = test::problem_count(wanted);
  std::mt19937_64 rng = test::make_rng(salt);
  const test::CudaCheck check = check_for(direction);
  // Dense views run the tensor-core kernel; the strided ones check its fallback.
  test::Tally dense, strided;
  for (std::size_t index = 0; dense.more(problems) && strided.failures < 10; ++index) {
    const ConvProblem p = draw(rng, direction, index);
    const Layout layout = index % 4 == 3 ? Layout::strided : Layout::dense;
    SCOPED_TRACE(test::describe(p) + (layout == Layout::strided ? " [strided views]" : "") + "; " +
                 test::repro_hint());
    (layout == Layout::dense ? dense : strided)
        .add(test::check_problem(p, layout, check, rng, dense.max_error));
  }
  std::cout << "[cuda grouped tc] " << name << ": " << dense.ran << " problems on dense views, "
            << strided.ran << " through strided views, " << dense.redrawn + strided.redrawn
            << " redrawn; largest relative error " << dense.max_error << "\n";
  dense.expect_done(problems);
  EXPECT_LT(strided.failures, 10);
}

TEST(CudaGroupedTc, Fprop) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite("Fprop", 0x67c001, Direction::fprop, 300);
}

TEST(CudaGroupedTc, Dgrad) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite("Dgrad", 0x67c002, Direction::dgrad, 300);
}

TEST(CudaGroupedTc, Wgrad) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite("Wgrad", 0x67c003, Direction::wgrad, 300);
}

// Layer shapes the random draws do not reach: the resnext layer at a small batch, and images
// large enough that blocks walk several tiles (the double-buffered window loads) and wgrad
// splits its pixels over many blocks.
TEST(CudaGroupedTc, LayerShapes) {
  CONVGRAD_REQUIRE_CUDA();
  const std::vector<const char*> shapes{"g32mb2ic256ih28oc256kh3ph1",
                                        "g8mb16ic64ih56oc64kh3ph1",
                                        "g4mb4ic64ih60oc64kh3sh2ph1",
                                        "g16mb8ic256ih14oc256kh3ph1"};
  std::mt19937_64 rng = test::make_rng(0x67c004);
  double max_error = 0.0;
  for (const char* shape : shapes) {
    for (const DataType type : {DataType::bfloat16, DataType::float16}) {
      ConvProblem p = parse_problem(shape);
      p.x_type = p.w_type = p.y_type = type;
      for (const Direction direction : {Direction::fprop, Direction::dgrad, Direction::wgrad}) {
        if (direction == Direction::dgrad && p.stride_h != 1) continue;
        SCOPED_TRACE(test::describe(p) + " " + std::string(to_string(direction)));
        EXPECT_EQ(test::check_problem(p, Layout::dense, check_for(direction), rng, max_error),
                  test::Outcome::passed);
      }
    }
  }
  std::cout << "[cuda grouped tc] LayerShapes: largest relative error " << max_error << "\n";
}

// Each reason a kernel gives for passing a problem over, through the dispatcher's message when
// that kernel is forced.
void expect_rejected(const std::string& problem_text, Direction direction,
                     const std::string& reason, DataType type = DataType::bfloat16) {
  ConvProblem p = parse_problem(problem_text);
  p.x_type = p.w_type = p.y_type = type;
  test::expect_refused(p, direction, "cuda." + std::string(to_string(direction)) + ".grouped.tc.bf16",
                       reason);
}

TEST(CudaGroupedTc, RejectReasons) {
  CONVGRAD_REQUIRE_CUDA();
  for (const Direction direction : {Direction::fprop, Direction::dgrad, Direction::wgrad}) {
    SCOPED_TRACE(std::string(to_string(direction)));
    expect_rejected("g2mb1ic16ih8oc16kh3ph1", direction, "takes bf16 for all three",
                    DataType::float16);
    expect_rejected("g2mb1ic16ih8oc16kh3ph1", direction, "takes bf16 for all three",
                    DataType::float32);
    expect_rejected("mb1ic16ih8oc16kh3ph1", direction, "not grouped");
    expect_rejected("g2mb1ic12ih8oc16kh3ph1", direction, "c / groups = 6");
    expect_rejected("g2mb1ic16ih8oc12kh3ph1", direction, "k / groups = 6");
    expect_rejected("g2mb1ic16ih1073741824iw1oc16kh1", direction, "2^30 (32-bit coordinates)");
    expect_rejected("g2mb1ic1073741824ih1oc16kh1", direction, "32-bit channel indices");
    expect_rejected("g600000mb1ic4800000ih1oc4800000kh1", direction, "exceeds the grid");
    // A dilated window too wide for shared memory even for one output pixel.
    expect_rejected("g2mb1ic16ih201oc16kh3dh99", direction, "bytes of shared memory");
  }
  // Filters too large for shared memory even for one group (fprop and dgrad stage every tap).
  expect_rejected("g2mb1ic512ih8oc16kh7ph3", Direction::fprop, "bytes of shared memory");
  expect_rejected("g2mb1ic16ih8oc512kh7ph3", Direction::dgrad, "bytes of shared memory");
  expect_rejected("g2mb1ic16ih8oc16kh3sh2ph1", Direction::dgrad, "stride 2x2");
  expect_rejected("g2mb1ic128ih8oc128kh3ph1", Direction::wgrad, "warp tiles");
  expect_rejected("g2mb1ic8192ih1oc16kh1", Direction::fprop, "at most 2048 channels per group");
  expect_rejected("g2mb1ic16ih1oc8192kh1", Direction::dgrad, "at most 2048 channels per group");
}

}  // namespace
}  // namespace convgrad
