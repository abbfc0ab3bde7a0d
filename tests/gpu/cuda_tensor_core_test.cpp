// SPDX-License-Identifier: Apache-2.0
// The tensor-core kernels (src/cuda/tc, CUTLASS sm90) against the reference on random dense
// problems they accept, each kernel forced by name (RunOptions::kernel) so that a fallback cannot
// pass for it. Device outputs are poisoned with NaN before each run; wgrad runs twice and must
// agree bit for bit; wgrad's accumulate mode is checked too. Every reason the kernels give for
// refusing a problem is exercised once. Skipped where no device is, or where the build has no
// CUTLASS (the kernels are then absent). CONVGRAD_GPU_PROBLEMS scales the suites down.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <iostream>
#include <optional>
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

// 16-bit storage: each side rounds its output once (2^-8 of the value in bfloat16).
constexpr double kLowPrecisionTolerance = 1e-2;
// tf32 operands keep 10 mantissa bits: products err by about 2^-11 each, and the sums of a few
// hundred random-sign terms stay well under 1e-3 of the largest output.
constexpr double kTf32Tolerance = 1e-3;
// 3xTF32 keeps about 21 bits of each product (issue #4: fp32-accurate mode within 1e-5).
constexpr double kAccurateTolerance = 1e-5;

std::string tensor_core_unavailable() {
  if (std::string reason = test::cuda_unavailable(); !reason.empty()) return reason;
  for (const BackendInfo& info : list_backends()) {
    if (info.name != "cuda") continue;
    for (const std::string& kernel : info.kernels) {
      if (kernel.find(".igemm.") != std::string::npos) return {};
    }
  }
  return "the cuda backend was built without CUTLASS: no tensor-core kernels";
}

#define CONVGRAD_REQUIRE_TENSOR_CORES()                                                  \
  do {                                                                                   \
    if (const std::string reason = tensor_core_unavailable(); !reason.empty()) {         \
      GTEST_SKIP() << reason;                                                            \
    }                                                                                    \
  } while (false)

std::string kernel_for(Direction direction, DataType type) {
  const char* suffix = type == DataType::bfloat16 ? "bf16" : type == DataType::float16 ? "f16" : "tf32";
  return "cuda." + std::string(to_string(direction)) + ".igemm.sm90a." + suffix;
}

// A dense problem the kernels accept: c and k multiples of 8, pads in [0, dilated extent),
// stride 1 two times in three, else 2 or 3 (dgrad then runs as one fprop per stride phase). One
// problem in eight is larger, so that several output tiles, several wgrad slices and long
// reductions are covered.
ConvProblem draw(std::mt19937_64& rng, std::size_t index) {
  const auto uniform = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  const bool large = index % 8 == 7;
  for (;;) {
    ConvProblem p;
    p.n = uniform(1, large ? 12 : 4);
    p.c = 8 * uniform(1, large ? 24 : 6);
    p.k = 8 * uniform(1, large ? 24 : 6);
    p.r = uniform(1, 5);
    p.s = uniform(1, 5);
    p.h = uniform(1, large ? 24 : 12);
    p.w = uniform(1, large ? 24 : 12);
    const int stride = uniform(0, 2) == 0 ? static_cast<int>(uniform(2, 3)) : 1;
    p.stride_h = stride;
    p.stride_w = uniform(0, 3) == 0 ? static_cast<int>(uniform(1, 3)) : stride;
    p.dilation_h = static_cast<int>(uniform(0, 3) == 0 ? uniform(2, 3) : 1);
    p.dilation_w = static_cast<int>(uniform(0, 3) == 0 ? uniform(2, 3) : 1);
    p.pad_top = static_cast<int>(uniform(0, p.dilated_r() - 1));
    p.pad_bottom = static_cast<int>(uniform(0, p.dilated_r() - 1));
    p.pad_left = static_cast<int>(uniform(0, p.dilated_s() - 1));
    p.pad_right = static_cast<int>(uniform(0, p.dilated_s() - 1));
    p.with_bias = uniform(0, 3) != 0;
    if (p.h + p.pad_top + p.pad_bottom < p.dilated_r() ||
        p.w + p.pad_left + p.pad_right < p.dilated_s()) {
      continue;
    }
    derive_output_size(p);
    return p;
  }
}

struct Suite {
  const char* name;
  std::uint64_t salt;
  DataType type;
  MathMode math;
  double tolerance;
  test::Kernels kernels;  ///< forced per direction; nullopt leaves the direction out
  ConvProblem (*draw)(std::mt19937_64&, std::size_t) = nullptr;
};

test::Kernels igemm_kernels(DataType type) {
  // The tensor cores take no float32 wgrad.
  const bool has_wgrad = type != DataType::float32;
  return {kernel_for(Direction::fprop, type), kernel_for(Direction::dgrad, type),
          has_wgrad ? std::optional(kernel_for(Direction::wgrad, type)) : std::nullopt};
}

bool check(const char* name, const StridedTensor& got, const StridedTensor& want, double tolerance,
           double& max_error) {
  return test::expect_close(name, "the tensor-core kernels", got, want, tolerance, max_error);
}

void run_suite(const Suite& suite, std::int64_t wanted = 500) {
  const std::int64_t problems = test::problem_count(wanted);
  std::mt19937_64 rng = test::make_rng(suite.salt);
  const bool has_wgrad = suite.kernels.wgrad.has_value();
  test::Tally tally;
  for (std::size_t index = 0; tally.more(problems); ++index) {
    ConvProblem p = suite.draw != nullptr ? suite.draw(rng, index) : draw(rng, index);
    p.x_type = p.w_type = p.y_type = suite.type;
    p.math = suite.math;
    SCOPED_TRACE(test::describe(p) + "; " + test::repro_hint());
    const test::CudaCheck check{.kernels = suite.kernels,
                                .tolerance = suite.tolerance,
                                .backend = "the tensor-core kernels"};
    // The generator draws only problems these kernels take: a refusal is a failure.
    const auto accepted = [&] {
      const std::string& forced = *suite.kernels.fprop;
      EXPECT_EQ(kernel_name(p, Direction::fprop, test::run_on("cuda", forced)), forced);
    };
    tally.add(test::check_problem(p, Layout::dense, check, rng, tally.max_error, accepted));
  }
  const std::int64_t wgrads = has_wgrad ? tally.ran : 0;
  std::cout << "[tensor cores vs ref] " << suite.name << ": " << tally.ran << " fprop, "
            << tally.ran << " dgrad, " << wgrads << " wgrad (twice, and accumulating); "
            << tally.redrawn << " redrawn as mostly zero; largest relative error "
            << tally.max_error << "\n";
  tally.expect_done(problems);
}

TEST(CudaTensorCore, Bfloat16) {
  CONVGRAD_REQUIRE_TENSOR_CORES();
  run_suite({"Bfloat16", 0x7c0001, DataType::bfloat16, MathMode::exact_fp32, kLowPrecisionTolerance,
             igemm_kernels(DataType::bfloat16)});
}

TEST(CudaTensorCore, Float16) {
  CONVGRAD_REQUIRE_TENSOR_CORES();
  run_suite({"Float16", 0x7c0002, DataType::float16, MathMode::tf32, kLowPrecisionTolerance,
             igemm_kernels(DataType::float16)});
}

TEST(CudaTensorCore, Tf32) {
  CONVGRAD_REQUIRE_TENSOR_CORES();
  run_suite({"Tf32", 0x7c0003, DataType::float32, MathMode::tf32, kTf32Tolerance,
             igemm_kernels(DataType::float32)});
}

// fp32_accurate: fprop and dgrad on the tensor cores as 3xTF32; wgrad stays exact on CUDA cores
// (the backend's choice, so the suite checks it too).
TEST(CudaTensorCore, Fp32Accurate3xTf32) {
  CONVGRAD_REQUIRE_TENSOR_CORES();
  run_suite({"Fp32Accurate3xTf32", 0x7c0006, DataType::float32, MathMode::fp32_accurate,
             kAccurateTolerance,
             {"cuda.fprop.igemm3xtf32.sm90a.f32", "cuda.dgrad.igemm3xtf32.sm90a.f32", ""}});
}

// Reductions far longer than one 3xTF32 chunk (4,608 terms, and a dilated one), where one
// tensor-core accumulator alone would miss 1e-5.
TEST(CudaTensorCore, Fp32AccurateLongReductions) {
  CONVGRAD_REQUIRE_TENSOR_CORES();
  std::mt19937_64 rng = test::make_rng(0x7c000b);
  const test::CudaCheck check{.kernels = {"cuda.fprop.igemm3xtf32.sm90a.f32",
                                          "cuda.dgrad.igemm3xtf32.sm90a.f32", std::nullopt},
                              .tolerance = kAccurateTolerance,
                              .backend = "the tensor-core kernels"};
  for (ConvProblem p : {make_problem(2, 14, 14, 512, 256, 3, 3, 1, 1),
                        make_problem(1, 33, 33, 512, 64, 3, 3, 1, 6, 6)}) {
    p.math = MathMode::fp32_accurate;
    p.with_bias = true;
    SCOPED_TRACE(test::describe(p) + "; " + test::repro_hint());
    double max_error = 0.0;
    EXPECT_EQ(test::check_problem(p, Layout::dense, check, rng, max_error), test::Outcome::passed);
    std::cout << "[tensor cores vs ref] 3xTF32 " << test::describe(p) << ": relative error "
              << max_error << "\n";
  }
}

// Few input channels (c not a multiple of the 16-byte row), k a multiple of 8: the column GEMMs.
// Every stride, dilation and padding (negative pads too); one problem in eight is larger.
ConvProblem draw_few_channels(std::mt19937_64& rng, std::size_t index, std::int64_t row) {
  const auto uniform = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  const bool large = index % 8 == 7;
  for (;;) {
    ConvProblem p;
    p.n = uniform(1, large ? 6 : 3);
    p.c = uniform(1, 2 * row);
    if (p.c % row == 0) continue;
    p.k = 8 * uniform(1, large ? 12 : 4);
    p.r = uniform(1, 7);
    p.s = uniform(1, 7);
    p.h = uniform(1, large ? 40 : 14);
    p.w = uniform(1, large ? 40 : 14);
    p.stride_h = static_cast<int>(uniform(0, 1) == 0 ? uniform(2, 3) : 1);
    p.stride_w = static_cast<int>(uniform(0, 3) == 0 ? uniform(1, 3) : p.stride_h);
    p.dilation_h = static_cast<int>(uniform(0, 3) == 0 ? uniform(2, 3) : 1);
    p.dilation_w = static_cast<int>(uniform(0, 3) == 0 ? uniform(2, 3) : 1);
    p.pad_top = static_cast<int>(uniform(-1, p.dilated_r() - 1));
    p.pad_bottom = static_cast<int>(uniform(-1, p.dilated_r() - 1));
    p.pad_left = static_cast<int>(uniform(-1, p.dilated_s() - 1));
    p.pad_right = static_cast<int>(uniform(-1, p.dilated_s() - 1));
    p.with_bias = uniform(0, 3) != 0;
    if (p.h + p.pad_top + p.pad_bottom < p.dilated_r() ||
        p.w + p.pad_left + p.pad_right < p.dilated_s()) {
      continue;
    }
    derive_output_size(p);
    return p;
  }
}

ConvProblem draw_few_channels_16bit(std::mt19937_64& rng, std::size_t index) {
  return draw_few_channels(rng, index, 8);
}
ConvProblem draw_few_channels_tf32(std::mt19937_64& rng, std::size_t index) {
  return draw_few_channels(rng, index, 4);
}

// tf32 has the fprop only.
test::Kernels column_kernels(const char* suffix, bool sixteen_bit) {
  const std::string s(suffix);
  return {"cuda.fprop.im2col.sm90a." + s,
          sixteen_bit ? std::optional("cuda.dgrad.col2im.sm90a." + s) : std::nullopt,
          sixteen_bit ? std::optional("cuda.wgrad.im2col.sm90a." + s) : std::nullopt};
}

TEST(CudaTensorCore, FewChannelColumnsBfloat16) {
  CONVGRAD_REQUIRE_TENSOR_CORES();
  run_suite({"FewChannelColumnsBfloat16", 0x7c0007, DataType::bfloat16, MathMode::exact_fp32,
             kLowPrecisionTolerance, column_kernels("bf16", true), draw_few_channels_16bit},
            300);
}

TEST(CudaTensorCore, FewChannelColumnsFloat16) {
  CONVGRAD_REQUIRE_TENSOR_CORES();
  run_suite({"FewChannelColumnsFloat16", 0x7c0008, DataType::float16, MathMode::exact_fp32,
             kLowPrecisionTolerance, column_kernels("f16", true), draw_few_channels_16bit},
            300);
}

TEST(CudaTensorCore, FewChannelColumnsTf32) {
  CONVGRAD_REQUIRE_TENSOR_CORES();
  run_suite({"FewChannelColumnsTf32", 0x7c0009, DataType::float32, MathMode::tf32,
             kTf32Tolerance, column_kernels("tf32", false), draw_few_channels_tf32},
            300);
}

// Images whose columns fill more than one chunk (two images' worth of float32 columns is over
// the 32 MiB chunk): three images run as two chunks in fprop and dgrad.
TEST(CudaTensorCore, FewChannelColumnsAcrossChunks) {
  CONVGRAD_REQUIRE_TENSOR_CORES();
  std::mt19937_64 rng = test::make_rng(0x7c000a);
  ConvProblem p = make_problem(3, 367, 367, 1, 8, 5, 5);
  p.x_type = p.w_type = p.y_type = DataType::bfloat16;
  SCOPED_TRACE(test::describe(p) + "; " + test::repro_hint());
  const test::CudaCheck check{.kernels = column_kernels("bf16", true),
                              .tolerance = kLowPrecisionTolerance,
                              .backend = "the tensor-core kernels"};
  double max_error = 0.0;
  EXPECT_EQ(test::check_problem(p, Layout::dense, check, rng, max_error), test::Outcome::passed);
}

// The layers of the benchmark suite the kernels take, once each at full size, bf16: the large
// shapes the random suites do not reach (many tiles, 32-image wgrad slices).
TEST(CudaTensorCore, SuiteLayerShapesBfloat16) {
  CONVGRAD_REQUIRE_TENSOR_CORES();
  std::mt19937_64 rng = test::make_rng(0x7c0004);
  // resnet50_res4_3x3 at batch 4, resnet50_res5_1x1_reduce at batch 8, res2-like, a 1x1
  // stride 2 (dgrad: a phase no tap reaches, written as zeros), resnet50_res3_3x3_s2 at batch 2.
  std::vector<ConvProblem> problems = {make_problem(4, 14, 14, 256, 256, 3, 3, 1, 1),
                                       make_problem(8, 7, 7, 2048, 512, 1, 1),
                                       make_problem(16, 28, 28, 64, 64, 3, 3, 1, 1),
                                       make_problem(2, 20, 20, 128, 64, 1, 1, 2, 0),
                                       make_problem(2, 56, 56, 128, 128, 3, 3, 2, 1)};
  for (ConvProblem& p : problems) {
    p.x_type = p.w_type = p.y_type = DataType::bfloat16;
    SCOPED_TRACE(test::describe(p) + "; " + test::repro_hint());
    StridedTensor x(p.x_type, test::image_dims(p), Layout::dense, rng);
    StridedTensor w(p.w_type, test::filter_dims(p), Layout::dense, rng);
    StridedTensor dy(p.y_type, test::output_dims(p), Layout::dense, rng);
    StridedTensor b(DataType::float32, test::bias_dims(p), Layout::dense, rng);
    for (StridedTensor* t : {&x, &w, &dy, &b}) t->fill_uniform(rng);
    StridedTensor dw_ref(p.w_type, test::filter_dims(p), Layout::dense, rng);
    StridedTensor db_ref(DataType::float32, test::bias_dims(p), Layout::dense, rng);
    StridedTensor dw(p.w_type, test::filter_dims(p), Layout::dense, rng);
    StridedTensor db(DataType::float32, test::bias_dims(p), Layout::dense, rng);
    wgrad(p, x.view(), dy.view(), dw_ref.view(), db_ref.view(), test::run_on("ref"));
    {
      const DeviceMirror gx(x), gdy(dy);
      DeviceMirror gdw(dw), gdb(db);
      gdw.poison();
      gdb.poison();
      wgrad(p, gx.view(), gdy.view(), gdw.view(), gdb.view(),
            test::run_on("cuda", kernel_for(Direction::wgrad, p.x_type)));
      gdw.download(dw);
      gdb.download(db);
    }
    double max_error = 0.0;
    check("wgrad dw", dw, dw_ref, kLowPrecisionTolerance, max_error);
    check("wgrad db", db, db_ref, kLowPrecisionTolerance, max_error);
    {
      StridedTensor dx_ref(p.x_type, test::image_dims(p), Layout::dense, rng);
      StridedTensor dx(p.x_type, test::image_dims(p), Layout::dense, rng);
      dgrad(p, dy.view(), w.view(), dx_ref.view(), test::run_on("ref"));
      const DeviceMirror gdy(dy), gw(w);
      DeviceMirror gdx(dx);
      gdx.poison();
      dgrad(p, gdy.view(), gw.view(), gdx.view(), test::run_on("cuda", kernel_for(Direction::dgrad, p.x_type)));
      gdx.download(dx);
      check("dgrad dx", dx, dx_ref, kLowPrecisionTolerance, max_error);
    }
  }
}

// Views the TMA cannot read (not packed) go to the direct kernels from inside run(): still right.
TEST(CudaTensorCore, StridedViewsFallBackCorrectly) {
  CONVGRAD_REQUIRE_TENSOR_CORES();
  std::mt19937_64 rng = test::make_rng(0x7c0005);
  ConvProblem p = make_problem(2, 9, 7, 16, 24, 3, 3, 1, 1);
  p.x_type = p.w_type = p.y_type = DataType::bfloat16;
  StridedTensor x(p.x_type, test::image_dims(p), Layout::strided, rng);
  StridedTensor w(p.w_type, test::filter_dims(p), Layout::strided, rng);
  StridedTensor b(DataType::float32, test::bias_dims(p), Layout::strided, rng);
  for (StridedTensor* t : {&x, &w, &b}) t->fill_uniform(rng);
  StridedTensor y_ref(p.y_type, test::output_dims(p), Layout::strided, rng);
  StridedTensor y(p.y_type, test::output_dims(p), Layout::strided, rng);
  fprop(p, x.view(), w.view(), b.view(), y_ref.view(), test::run_on("ref"));
  const DeviceMirror gx(x), gw(w), gb(b);
  DeviceMirror gy(y);
  gy.poison();
  fprop(p, gx.view(), gw.view(), gb.view(), gy.view(), test::run_on("cuda", kernel_for(Direction::fprop, p.x_type)));
  gy.download(y);
  double max_error = 0.0;
  check("fprop y (strided views)", y, y_ref, kLowPrecisionTolerance, max_error);
}

// Each reason a tensor-core kernel gives for refusing a problem, once.
TEST(CudaTensorCore, EveryRejectReason) {
  CONVGRAD_REQUIRE_TENSOR_CORES();
  const auto refused = [](const ConvProblem& p, Direction direction, const std::string& kernel,
                          const std::string& reason) {
    test::expect_refused(p, direction, kernel, reason);
  };
  const auto bf16 = [](ConvProblem p) {
    p.x_type = p.w_type = p.y_type = DataType::bfloat16;
    return p;
  };
  const ConvProblem ok = bf16(make_problem(2, 10, 10, 16, 16, 3, 3, 1, 1));
  EXPECT_EQ(kernel_name(ok, Direction::fprop, test::run_on("cuda")), "cuda.fprop.igemm.sm90a.bf16");
  EXPECT_EQ(kernel_name(ok, Direction::dgrad, test::run_on("cuda")), "cuda.dgrad.igemm.sm90a.bf16");
  EXPECT_EQ(kernel_name(ok, Direction::wgrad, test::run_on("cuda")), "cuda.wgrad.igemm.sm90a.bf16");

  ConvProblem mixed = ok;
  mixed.w_type = DataType::float16;
  refused(mixed, Direction::fprop, "cuda.fprop.igemm.sm90a.bf16", "this kernel takes bf16");
  ConvProblem exact = make_problem(2, 10, 10, 16, 16, 3, 3, 1, 1);
  refused(exact, Direction::fprop, "cuda.fprop.igemm.sm90a.tf32", "MathMode::tf32");
  refused(bf16(make_problem(2, 10, 10, 16, 16, 3, 3, 1, 1, 1, 2)), Direction::fprop,
          "cuda.fprop.igemm.sm90a.bf16", "groups = 2");
  refused(bf16(make_problem(2, 10, 10, 12, 16, 3, 3, 1, 1)), Direction::fprop,
          "cuda.fprop.igemm.sm90a.bf16", "c = 12");
  refused(bf16(make_problem(2, 10, 10, 16, 20, 3, 3, 1, 1)), Direction::wgrad,
          "cuda.wgrad.igemm.sm90a.bf16", "k = 20");
  ConvProblem negative = ok;
  negative.pad_top = -1;
  derive_output_size(negative);
  refused(negative, Direction::fprop, "cuda.fprop.igemm.sm90a.bf16", "negative pads");
  refused(bf16(make_problem(1024, 1024, 1024, 8, 8, 1, 1)), Direction::fprop,
          "cuda.fprop.igemm.sm90a.bf16", "32-bit int");
  // A pad of 200 puts the im2col corner below TMA's -128.
  refused(bf16(make_problem(1, 16, 16, 16, 16, 5, 5, 1, 200, 60)), Direction::fprop,
          "cuda.fprop.igemm.sm90a.bf16", "can_implement refused");

  // 3xTF32 (fp32_accurate, float32 storage).
  ConvProblem accurate = make_problem(2, 10, 10, 16, 16, 3, 3, 1, 1);
  accurate.math = MathMode::fp32_accurate;
  EXPECT_EQ(kernel_name(accurate, Direction::fprop, test::run_on("cuda")),
            "cuda.fprop.igemm3xtf32.sm90a.f32");
  EXPECT_EQ(kernel_name(accurate, Direction::dgrad, test::run_on("cuda")),
            "cuda.dgrad.igemm3xtf32.sm90a.f32");
  refused(exact, Direction::fprop, "cuda.fprop.igemm3xtf32.sm90a.f32", "fp32_accurate only");
  refused(ok, Direction::dgrad, "cuda.dgrad.igemm3xtf32.sm90a.f32", "take float32");
  ConvProblem accurate_c6 = make_problem(2, 10, 10, 6, 16, 3, 3, 1, 1);
  accurate_c6.math = MathMode::fp32_accurate;
  refused(accurate_c6, Direction::fprop, "cuda.fprop.igemm3xtf32.sm90a.f32", "multiples of 4");
  ConvProblem accurate_wide = make_problem(1, 40, 40, 4, 4, 17, 17);
  accurate_wide.math = MathMode::fp32_accurate;
  refused(accurate_wide, Direction::dgrad, "cuda.dgrad.igemm3xtf32.sm90a.f32", "289 taps");

  // The column GEMMs (few input channels).
  const ConvProblem conv1 = bf16(make_problem(2, 32, 32, 3, 64, 7, 7, 2, 3));
  EXPECT_EQ(kernel_name(conv1, Direction::fprop, test::run_on("cuda")), "cuda.fprop.im2col.sm90a.bf16");
  EXPECT_EQ(kernel_name(conv1, Direction::dgrad, test::run_on("cuda")), "cuda.dgrad.col2im.sm90a.bf16");
  EXPECT_EQ(kernel_name(conv1, Direction::wgrad, test::run_on("cuda")), "cuda.wgrad.im2col.sm90a.bf16");
  refused(ok, Direction::fprop, "cuda.fprop.im2col.sm90a.bf16", "without columns");
  refused(bf16(make_problem(2, 10, 10, 3, 12, 3, 3, 1, 1)), Direction::dgrad,
          "cuda.dgrad.col2im.sm90a.bf16", "k = 12");
  refused(bf16(make_problem(2, 10, 10, 6, 16, 3, 3, 1, 1, 1, 2)), Direction::wgrad,
          "cuda.wgrad.im2col.sm90a.bf16", "column GEMMs are dense");
  refused(bf16(make_problem(1, 40, 40, 7, 16, 25, 25)), Direction::fprop,
          "cuda.fprop.im2col.sm90a.bf16", "tap table");
  refused(bf16(make_problem(1, std::int64_t{1} << 30, 4, 3, 16, 1, 1)), Direction::fprop,
          "cuda.fprop.im2col.sm90a.bf16", "32-bit indexing");
  refused(bf16(make_problem(1024, 224, 224, 3, 64, 7, 7, 2, 3)), Direction::wgrad,
          "cuda.wgrad.im2col.sm90a.bf16", "columns of the whole batch");
  refused(conv1, Direction::fprop, "cuda.fprop.im2col.sm90a.tf32", "this kernel takes f32");
}

}  // namespace
}  // namespace convgrad
