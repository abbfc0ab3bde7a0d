// SPDX-License-Identifier: Apache-2.0
// The depthwise, grouped, few-channel and split-wgrad kernels of the cuda backend, each forced by
// name (RunOptions::kernel) so that the test checks that kernel and not a fallback, against the
// reference on random problems of its class: float32, float16 and bfloat16 storage in turn, one
// problem in four through strided views, outputs poisoned with NaN, wgrad run twice (bit for bit
// the same) and once more accumulating into non-zero dw and db. Every rejects() reason is
// exercised. CONVGRAD_GPU_PROBLEMS scales the suites down (compute-sanitizer runs).
#include <gtest/gtest.h>

#include <array>
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

using test::DeviceMirror;
using test::Layout;
using test::StridedTensor;

// fp32 accumulation in different orders over at most a few thousand terms of uniform data.
constexpr double kFp32Tolerance = 1e-5;
// 16-bit storage: each side rounds its output once (2^-8 of the value in bfloat16).
constexpr double kLowPrecisionTolerance = 1e-2;

std::int64_t uniform(std::mt19937_64& rng, std::int64_t lo, std::int64_t hi) {
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
}

// Channel counts that are often whole 16-byte vectors (the vectorised paths) and often not.
std::int64_t channels(std::mt19937_64& rng, std::int64_t most) {
  return uniform(rng, 0, 1) == 0 ? 8 * uniform(rng, 1, most / 8) : uniform(rng, 1, most);
}

// Geometry (sizes, stride, dilation, pads, negative ones too) from the shared draw, channels of
// the kernel class: the channel counts and groups do not enter p, q or the pad rules.
enum class Kind { depthwise, depthwise3x3, grouped, few_channel, any };

ConvProblem draw(std::mt19937_64& rng, Kind kind, std::size_t index) {
  test::DrawSpec spec;
  spec.max_size = 16;
  spec.max_channels = 40;
  ConvProblem p = test::draw_problem(rng, spec, index);
  switch (kind) {
    case Kind::depthwise: {
      p.c = channels(rng, 40);
      p.groups = static_cast<std::int32_t>(p.c);
      p.k = p.c * (uniform(rng, 0, 2) == 0 ? uniform(rng, 2, 3) : 1);
      break;
    }
    case Kind::depthwise3x3: {
      // What the 3x3 kernels take: 3x3, stride 1 or 2 both ways, dilation 1, multiplier 1,
      // whole vectors of channels (4 in float32, 8 otherwise); pads from -1 to 2 on each side.
      const std::int64_t vec = index % 3 == 0 ? 4 : 8;
      p.c = p.k = vec * uniform(rng, 1, 8);
      p.groups = static_cast<std::int32_t>(p.c);
      p.n = uniform(rng, 1, 3);
      p.h = uniform(rng, 1, 24);
      p.w = uniform(rng, 1, 24);
      p.r = p.s = 3;
      p.stride_h = p.stride_w = static_cast<std::int32_t>(uniform(rng, 1, 2));
      p.dilation_h = p.dilation_w = 1;
      const auto pad = [&] { return static_cast<std::int32_t>(uniform(rng, -1, 2)); };
      do {
        p.pad_top = pad(), p.pad_bottom = pad(), p.pad_left = pad(), p.pad_right = pad();
      } while (p.h + p.pad_top + p.pad_bottom < 3 || p.w + p.pad_left + p.pad_right < 3);
      derive_output_size(p);
      break;
    }
    case Kind::grouped: {
      p.groups = static_cast<std::int32_t>(uniform(rng, 2, 8));
      p.c = p.groups * (uniform(rng, 0, 2) == 0 ? 8 : uniform(rng, 2, 12));
      p.k = p.groups * channels(rng, 16);
      break;
    }
    case Kind::few_channel: {
      p.groups = 1;
      p.c = uniform(rng, 1, 4);
      p.k = channels(rng, 72);
      break;
    }
    case Kind::any: {
      // The shared draw's mix (dense, grouped, depthwise), with wide filter counts now and then
      // for the 64-row tiles.
      if (p.groups == 1 && uniform(rng, 0, 2) == 0) p.k = uniform(rng, 48, 100);
      break;
    }
  }
  constexpr std::array<DataType, 3> types{DataType::float32, DataType::float16,
                                          DataType::bfloat16};
  p.x_type = p.w_type = p.y_type = types[index % 3];
  return p;
}

// The reference's outputs are not checked for NaN here: the suites against the reference do.
bool check(const char* name, const StridedTensor& got, const StridedTensor& want, double tolerance,
           double& max_error) {
  return test::expect_close(name, "the kernel", got, want, tolerance, max_error,
                            test::ReferenceCheck::unchecked);
}

// `kernels` forces each direction's kernel by glob; std::nullopt leaves that direction out.
void run_suite(const char* name, std::uint64_t salt, Kind kind, const test::Kernels& kernels,
               std::int64_t wanted) {
  const std::int64_t problems = test::problem_count(wanted);
  std::mt19937_64 rng = test::make_rng(salt);
  test::Tally tally;
  std::int64_t strided = 0;
  for (std::size_t index = 0; tally.more(problems); ++index) {
    const ConvProblem p = draw(rng, kind, index);
    const Layout layout = index % 4 == 3 ? Layout::strided : Layout::dense;
    SCOPED_TRACE(test::describe(p) + (layout == Layout::strided ? " [strided views]" : "") + "; " +
                 test::repro_hint());
    const test::CudaCheck check{
        .kernels = kernels,
        .tolerance = p.x_type == DataType::float32 ? kFp32Tolerance : kLowPrecisionTolerance,
        .backend = "the kernel",
        .reference = test::ReferenceCheck::unchecked};
    if (tally.add(test::check_problem(p, layout, check, rng, tally.max_error))) {
      strided += layout == Layout::strided;
    }
  }
  std::cout << "[cuda special kernels] " << name << ": " << tally.ran << " problems, " << strided
            << " through strided views, " << tally.redrawn << " redrawn; largest relative error "
            << tally.max_error << "\n";
  tally.expect_done(problems);
}

TEST(CudaSpecialKernels, Depthwise) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite("Depthwise", 0x5e1a01, Kind::depthwise,
            {"cuda.fprop.depthwise.*", "cuda.dgrad.depthwise.*", "cuda.wgrad.depthwise.*"}, 300);
}

// The 3x3 kernels with compile-time taps, forced by name (views that break the channel vectors
// go to the generic kernels inside them, so those problems check the fallback).
TEST(CudaSpecialKernels, Depthwise3x3) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite("Depthwise3x3", 0x5e1a06, Kind::depthwise3x3,
            {"cuda.fprop.depthwise3x3.*", "cuda.dgrad.depthwise3x3.*", "cuda.wgrad.depthwise3x3.*"},
            300);
}

TEST(CudaSpecialKernels, Grouped) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite("Grouped", 0x5e1a02, Kind::grouped,
            {"cuda.fprop.grouped.*", "cuda.dgrad.grouped.*", "cuda.wgrad.grouped.*"}, 300);
}

TEST(CudaSpecialKernels, FewChannel) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite("FewChannel", 0x5e1a03, Kind::few_channel,
            {"cuda.fprop.few_channel.*", "cuda.dgrad.few_channel.*", "cuda.wgrad.split.*"}, 300);
}

TEST(CudaSpecialKernels, SplitWgrad) {
  CONVGRAD_REQUIRE_CUDA();
  run_suite("SplitWgrad", 0x5e1a04, Kind::any, {std::nullopt, std::nullopt, "cuda.wgrad.split.*"},
            300);
}

// Larger problems than the random draws reach, so that the split reductions use many splits and
// the vectorised depthwise path runs on full rows: the suite's layers at a small batch.
TEST(CudaSpecialKernels, LayerShapes) {
  CONVGRAD_REQUIRE_CUDA();
  struct Shape {
    const char* text;
    bool simt_fprop_dgrad;  // false: a dense layer, whose fprop and dgrad are not ours
  };
  const std::vector<Shape> shapes{{"mb2ic96ih30oc96kh3sh2ph1g96", true},
                                  {"mb2ic24ih20oc24kh3ph1g24", true},
                                  {"mb1ic3ih40oc16kh7sh2ph3", true},
                                  {"mb2ic32ih14oc32kh3ph1g4", true},
                                  {"mb2ic64ih12oc64kh3ph1", false}};
  std::mt19937_64 rng = test::make_rng(0x5e1a05);
  for (const Shape& shape : shapes) {
    for (const DataType type : {DataType::float32, DataType::bfloat16}) {
      ConvProblem p = parse_problem(shape.text);
      const std::string fprop_glob = shape.simt_fprop_dgrad ? "cuda.fprop.*.simt.*" : "";
      const std::string dgrad_glob = shape.simt_fprop_dgrad ? "cuda.dgrad.*.simt.*" : "";
      p.x_type = p.w_type = p.y_type = type;
      SCOPED_TRACE(test::describe(p));
      const double tolerance = type == DataType::float32 ? kFp32Tolerance : kLowPrecisionTolerance;
      StridedTensor x(type, test::image_dims(p), Layout::dense, rng), w(type, test::filter_dims(p), Layout::dense, rng);
      StridedTensor dy(type, test::output_dims(p), Layout::dense, rng);
      StridedTensor b(DataType::float32, test::bias_dims(p), Layout::dense, rng);
      for (StridedTensor* t : {&x, &w, &dy, &b}) t->fill_uniform(rng);
      StridedTensor ry(type, test::output_dims(p), Layout::dense, rng), rdx(type, test::image_dims(p), Layout::dense, rng);
      StridedTensor rdw(type, test::filter_dims(p), Layout::dense, rng), rdb(DataType::float32, test::bias_dims(p), Layout::dense, rng);
      StridedTensor gy_(type, test::output_dims(p), Layout::dense, rng), gdx_(type, test::image_dims(p), Layout::dense, rng);
      StridedTensor gdw_(type, test::filter_dims(p), Layout::dense, rng), gdb_(DataType::float32, test::bias_dims(p), Layout::dense, rng);
      fprop(p, x.view(), w.view(), b.view(), ry.view(), test::run_on("ref"));
      dgrad(p, dy.view(), w.view(), rdx.view(), test::run_on("ref"));
      wgrad(p, x.view(), dy.view(), rdw.view(), rdb.view(), test::run_on("ref"));
      {
        const DeviceMirror gx(x), gw(w), gb(b), gdy(dy);
        DeviceMirror gy(gy_), gdx(gdx_), gdw(gdw_), gdb(gdb_);
        for (DeviceMirror* out : {&gy, &gdx, &gdw, &gdb}) out->poison();
        fprop(p, gx.view(), gw.view(), gb.view(), gy.view(), test::run_on("cuda", fprop_glob));
        dgrad(p, gdy.view(), gw.view(), gdx.view(), test::run_on("cuda", dgrad_glob));
        wgrad(p, gx.view(), gdy.view(), gdw.view(), gdb.view(), test::run_on("cuda", "cuda.wgrad.*.simt.*"));
        gy.download(gy_);
        gdx.download(gdx_);
        gdw.download(gdw_);
        gdb.download(gdb_);
      }
      double max_error = 0.0;
      check("fprop y", gy_, ry, tolerance, max_error);
      check("dgrad dx", gdx_, rdx, tolerance, max_error);
      check("wgrad dw", gdw_, rdw, tolerance, max_error);
      check("wgrad db", gdb_, rdb, tolerance, max_error);
    }
  }
}

// Each reason a kernel gives for passing a problem over, through the dispatcher's message when
// that kernel is forced.
void expect_rejected(const std::string& problem_text, Direction direction, const std::string& glob,
                     const std::string& reason, DataType y_type = DataType::float32) {
  ConvProblem p = parse_problem(problem_text);
  p.y_type = y_type;
  test::expect_refused(p, direction, glob, reason);
}

TEST(CudaSpecialKernels, RejectReasons) {
  CONVGRAD_REQUIRE_CUDA();
  const char* mixed = "x and y storage types differ";
  // Depthwise.
  expect_rejected("mb1ic8ih8oc8kh3g2", Direction::fprop, "cuda.fprop.depthwise.*", "not depthwise");
  expect_rejected("mb1ic8ih8oc8kh3g8", Direction::wgrad, "cuda.wgrad.depthwise.*", mixed,
                  DataType::float16);
  expect_rejected("mb1ic8ih50oc8kh40kw40g8", Direction::fprop, "cuda.fprop.depthwise.*",
                  "taps: more than the");
  expect_rejected("mb1ic2ih8oc4000kh1g2", Direction::dgrad, "cuda.dgrad.depthwise.*",
                  "channel multiplier");
  expect_rejected("mb1ic2ih8oc400kh3g2", Direction::dgrad, "cuda.dgrad.depthwise.*",
                  "do not fit in shared memory");
  expect_rejected("g805306368mb1ic805306368ih1oc805306368kh1", Direction::fprop,
                  "cuda.fprop.depthwise.*", "weight slices");
  expect_rejected("g8mb1ic8ih1073741824iw1oc8kh1", Direction::wgrad, "cuda.wgrad.depthwise.*",
                  "2^30");
  expect_rejected("g8mb300000ih100iw100ic8oc8kh3ph1", Direction::fprop, "cuda.fprop.depthwise.*",
                  "work items");
  // Depthwise 3x3.
  expect_rejected("mb1ic8ih8oc8kh3g2", Direction::fprop, "cuda.fprop.depthwise3x3.*",
                  "not depthwise");
  expect_rejected("mb1ic8ih8oc16kh3ph1g8", Direction::dgrad, "cuda.dgrad.depthwise3x3.*",
                  "the 3x3 kernels take 1");
  expect_rejected("mb1ic8ih8oc8kh5ph1g8", Direction::wgrad, "cuda.wgrad.depthwise3x3.*",
                  "not 3x3");
  expect_rejected("mb1ic8ih8oc8kh3ph1dh1g8", Direction::fprop, "cuda.fprop.depthwise3x3.*",
                  "dilated filter");
  expect_rejected("mb1ic8ih8oc8kh3sh3ph1g8", Direction::dgrad, "cuda.dgrad.depthwise3x3.*",
                  "take 1x1 or 2x2");
  expect_rejected("mb1ic8ih8oc8kh3sh2sw1ph1g8", Direction::fprop, "cuda.fprop.depthwise3x3.*",
                  "take 1x1 or 2x2");
  expect_rejected("mb1ic6ih8oc6kh3ph1g6", Direction::wgrad, "cuda.wgrad.depthwise3x3.*",
                  "channel vectors");
  expect_rejected("mb1ic8ih8oc8kh3g8", Direction::fprop, "cuda.fprop.depthwise3x3.*", mixed,
                  DataType::float16);
  // Grouped.
  expect_rejected("g2mb300000ih100iw100ic4oc4kh3ph1", Direction::dgrad, "cuda.dgrad.grouped.*",
                  "work items");
  expect_rejected("g2mb1ic4ih1073741824iw1oc4kh1", Direction::fprop, "cuda.fprop.grouped.*",
                  "2^30");
  expect_rejected("g2mb1ic4ih1073741824iw1oc4kh1", Direction::wgrad, "cuda.wgrad.grouped.*",
                  "2^30");
  expect_rejected("mb1ic8ih8oc8kh3", Direction::wgrad, "cuda.wgrad.grouped.*", "not grouped");
  expect_rejected("mb1ic8ih8oc8kh3g8", Direction::wgrad, "cuda.wgrad.grouped.*", "depthwise");
  expect_rejected("g2mb1ic262144ih3oc262144kh3", Direction::wgrad, "cuda.wgrad.grouped.*",
                  "above the grid");
  expect_rejected("mb1ic8ih8oc8kh3g2", Direction::wgrad, "cuda.wgrad.grouped.*", mixed,
                  DataType::float16);
  expect_rejected("mb1ic8ih8oc8kh3", Direction::fprop, "cuda.fprop.grouped.*", "not grouped");
  expect_rejected("mb1ic8ih8oc8kh3g8", Direction::dgrad, "cuda.dgrad.grouped.*", "depthwise");
  expect_rejected("mb1ic4096ih8oc64kh7g2", Direction::fprop, "cuda.fprop.grouped.*",
                  "shared memory");
  expect_rejected("mb1ic131072ih2oc131072kh1g65536", Direction::fprop, "cuda.fprop.grouped.*",
                  "exceeds the grid");
  expect_rejected("mb1ic8ih8oc8kh3g2", Direction::dgrad, "cuda.dgrad.grouped.*", mixed,
                  DataType::bfloat16);
  // Few channels.
  expect_rejected("mb1ic5ih8oc8kh3", Direction::fprop, "cuda.fprop.few_channel.*", "more than the");
  expect_rejected("mb1ic4ih8oc8kh3g2", Direction::dgrad, "cuda.dgrad.few_channel.*", "grouped");
  expect_rejected("mb1ic3ih8oc4096kh7", Direction::dgrad, "cuda.dgrad.few_channel.*",
                  "shared memory");
  expect_rejected("mb1ic3ih8oc8kh3", Direction::fprop, "cuda.fprop.few_channel.*", mixed,
                  DataType::float16);
  // Split wgrad.
  expect_rejected("mb1ic8ih8oc8kh3", Direction::wgrad, "cuda.wgrad.split.*", mixed,
                  DataType::bfloat16);
  expect_rejected("mb1ic1048576ih1oc1048576kh1g1048576", Direction::wgrad, "cuda.wgrad.split.*",
                  "exceeds the grid");
}

}  // namespace
}  // namespace convgrad
