// SPDX-License-Identifier: Apache-2.0
// The cuda backend against the reference on random problems: all three directions plus wgrad's
// accumulate mode, dense and strided views, float32, float16, bfloat16 and mixed storage. Device
// outputs are poisoned with NaN before each run, so an element a kernel forgets stays NaN; the
// bytes around each view are checked untouched; wgrad runs twice and must agree bit for bit.
// CONVGRAD_GPU_PROBLEMS scales the suites down (compute-sanitizer runs).
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "convgrad/errors.hpp"
#include "convgrad/functional.hpp"
#include "convgrad/problem.hpp"
#include "gpu/gpu_support.hpp"
#include "support/oracle_support.hpp"
#include "support/tensors.hpp"

namespace convgrad {
namespace {

using test::DeviceMirror;
using test::Layout;
using test::StridedTensor;

// fp32 accumulation on both sides in different orders over at most a few hundred terms of
// uniform data stays near 1e-6 of the largest output.
constexpr double kFp32Tolerance = 1e-5;
// Integer data: every partial sum is an integer below 2^24, exact in any order.
constexpr double kIntegerTolerance = 0.0;
// 16-bit storage: each side rounds its output once, by up to 2^-8 of the value in bfloat16, so
// the two differ by at most 0.0078 of the largest output.
constexpr double kLowPrecisionTolerance = 1e-2;

enum class Types { float32, float16, bfloat16, mixed };
enum class Data { uniform, integers };

struct SuiteSpec {
  const char* name;
  std::uint64_t salt;
  std::int64_t problems;
  Types types;
  Data data = Data::uniform;
  double tolerance = kFp32Tolerance;
};

std::int64_t problem_count(std::int64_t wanted) {
  if (const char* env = std::getenv("CONVGRAD_GPU_PROBLEMS")) {
    const long long value = std::atoll(env);
    if (value > 0) return value;
  }
  return wanted;
}

RunOptions on(const char* backend, bool accumulate = false) {
  RunOptions options;
  options.backend = backend;
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

// The outputs of one backend on one problem; dw_acc and db_acc start as dw0 and db0, dw2 and db2
// hold wgrad's second run.
struct Outputs {
  StridedTensor y, dx, dw, db, dw_acc, db_acc, dw2, db2;
};

// Compares one output with the reference's; returns whether it passed.
bool check(const char* name, const StridedTensor& got_tensor, const StridedTensor& want_tensor,
           double tolerance, double& max_error) {
  const std::vector<float> got = got_tensor.gather();
  const std::vector<float> want = want_tensor.gather();
  const double error = test::relative_error(got, want);
  max_error = std::max(max_error, error);
  const std::int64_t unwritten = test::count_nan(got);
  const std::int64_t outside = got_tensor.outside_written();
  EXPECT_EQ(unwritten, 0) << name << ": the cuda backend left elements unwritten";
  EXPECT_EQ(outside, 0) << name << ": the cuda backend wrote outside its view";
  EXPECT_EQ(test::count_nan(want), 0) << name << ": the reference left elements unwritten";
  EXPECT_LE(error, tolerance) << name << ": relative error of the cuda backend to the reference";
  return unwritten == 0 && outside == 0 && error <= tolerance;
}

bool same_bits(const StridedTensor& a, const StridedTensor& b) {
  const std::vector<float> x = a.gather(), y = b.gather();
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

void run_suite(const SuiteSpec& spec) {
  const std::int64_t problems = problem_count(spec.problems);
  std::mt19937_64 rng = test::make_rng(spec.salt);
  test::DrawSpec draw;
  test::Census census;
  std::map<std::string, std::int64_t> kernels;
  std::int64_t ran = 0, redrawn = 0, strided = 0, failures = 0;
  double max_error = 0.0;
  const TensorView no_tensor{};
  for (std::size_t index = 0; ran < problems && failures < 10; ++index) {
    ConvProblem p = test::draw_problem(rng, draw, index);
    set_types(p, spec.types, rng);
    // One problem in four through strided views of larger buffers.
    const Layout layout = index % 4 == 3 ? Layout::strided : Layout::dense;
    SCOPED_TRACE(test::describe(p) + (layout == Layout::strided ? " [strided views]" : "") + "; " +
                 test::repro_hint());

    StridedTensor x(p.x_type, image_dims(p), layout, rng);
    StridedTensor w(p.w_type, filter_dims(p), layout, rng);
    StridedTensor b(DataType::float32, bias_dims(p), layout, rng);
    StridedTensor dy(p.y_type, output_dims(p), layout, rng);
    for (StridedTensor* t : {&x, &w, &b, &dy}) fill(*t, spec.data, rng);
    StridedTensor dw0(p.w_type, filter_dims(p), Layout::dense, rng);
    StridedTensor db0(DataType::float32, bias_dims(p), Layout::dense, rng);
    fill(dw0, spec.data, rng);
    fill(db0, spec.data, rng);

    const auto outputs = [&] {
      Outputs out{StridedTensor(p.y_type, output_dims(p), layout, rng),
                  StridedTensor(p.x_type, image_dims(p), layout, rng),
                  StridedTensor(p.w_type, filter_dims(p), layout, rng),
                  StridedTensor(DataType::float32, bias_dims(p), layout, rng),
                  StridedTensor(p.w_type, filter_dims(p), layout, rng),
                  StridedTensor(DataType::float32, bias_dims(p), layout, rng),
                  StridedTensor(p.w_type, filter_dims(p), layout, rng),
                  StridedTensor(DataType::float32, bias_dims(p), layout, rng)};
      out.dw_acc.scatter(dw0.gather());
      out.db_acc.scatter(db0.gather());
      return out;
    };

    Outputs ref = outputs();
    try {
      const TensorView bias = p.with_bias ? b.view() : no_tensor;
      fprop(p, x.view(), w.view(), bias, ref.y.view(), on("ref"));
      dgrad(p, dy.view(), w.view(), ref.dx.view(), on("ref"));
      wgrad(p, x.view(), dy.view(), ref.dw.view(), p.with_bias ? ref.db.view() : no_tensor,
            on("ref"));
      wgrad(p, x.view(), dy.view(), ref.dw_acc.view(), p.with_bias ? ref.db_acc.view() : no_tensor,
            on("ref", true));
    } catch (const std::exception& error) {
      ADD_FAILURE() << "the reference threw: " << error.what();
      ++failures;
      continue;
    }
    if (test::mostly_zero_where(ref.y.gather(), test::reached(p, Direction::fprop)) ||
        test::mostly_zero_where(ref.dx.gather(), test::reached(p, Direction::dgrad)) ||
        test::mostly_zero_where(ref.dw.gather(), test::reached(p, Direction::wgrad))) {
      ++redrawn;  // windows wholly in the padding, or integer data cancelled: draw another
      continue;
    }

    Outputs gpu = outputs();
    try {
      const DeviceMirror gx(x), gw(w), gb(b), gdy(dy);
      DeviceMirror gy(gpu.y), gdx(gpu.dx), gdw(gpu.dw), gdb(gpu.db), gdw_acc(gpu.dw_acc),
          gdb_acc(gpu.db_acc), gdw2(gpu.dw2), gdb2(gpu.db2);
      for (DeviceMirror* out : {&gy, &gdx, &gdw, &gdb, &gdw2, &gdb2}) out->poison();
      const TensorView bias = p.with_bias ? gb.view() : no_tensor;
      fprop(p, gx.view(), gw.view(), bias, gy.view(), on("cuda"));
      dgrad(p, gdy.view(), gw.view(), gdx.view(), on("cuda"));
      wgrad(p, gx.view(), gdy.view(), gdw.view(), p.with_bias ? gdb.view() : no_tensor, on("cuda"));
      wgrad(p, gx.view(), gdy.view(), gdw2.view(), p.with_bias ? gdb2.view() : no_tensor,
            on("cuda"));
      wgrad(p, gx.view(), gdy.view(), gdw_acc.view(), p.with_bias ? gdb_acc.view() : no_tensor,
            on("cuda", true));
      gy.download(gpu.y);
      gdx.download(gpu.dx);
      gdw.download(gpu.dw);
      gdb.download(gpu.db);
      gdw2.download(gpu.dw2);
      gdb2.download(gpu.db2);
      gdw_acc.download(gpu.dw_acc);
      gdb_acc.download(gpu.db_acc);
    } catch (const std::exception& error) {
      ADD_FAILURE() << "the cuda backend threw: " << error.what();
      ++failures;
      continue;
    }
    ++ran;
    strided += layout == Layout::strided;
    census.add(p);
    for (const Direction direction : {Direction::fprop, Direction::dgrad, Direction::wgrad}) {
      ++kernels[kernel_name(p, direction, on("cuda"))];
    }

    bool ok = true;
    const double tol = spec.tolerance;
    ok &= check("fprop y", gpu.y, ref.y, tol, max_error);
    ok &= check("dgrad dx", gpu.dx, ref.dx, tol, max_error);
    ok &= check("wgrad dw", gpu.dw, ref.dw, tol, max_error);
    ok &= check("wgrad dw (accumulate)", gpu.dw_acc, ref.dw_acc, tol, max_error);
    EXPECT_TRUE(same_bits(gpu.dw, gpu.dw2)) << "wgrad dw differs between two runs";
    ok &= same_bits(gpu.dw, gpu.dw2);
    if (p.with_bias) {
      ok &= check("wgrad db", gpu.db, ref.db, tol, max_error);
      ok &= check("wgrad db (accumulate)", gpu.db_acc, ref.db_acc, tol, max_error);
      EXPECT_TRUE(same_bits(gpu.db, gpu.db2)) << "wgrad db differs between two runs";
      ok &= same_bits(gpu.db, gpu.db2);
    }
    if (!ok) ++failures;
  }
  std::cout << "[cuda vs ref] " << spec.name << ": " << ran << " problems x 3 directions (+ wgrad "
            << "accumulate, wgrad twice), " << strided << " through strided views, " << redrawn
            << " redrawn as mostly zero; largest relative error " << max_error << "\n  kernels:";
  for (const auto& [kernel, count] : kernels) std::cout << " " << kernel << " " << count;
  std::cout << "\n  census: " << census.summary() << "\n";
  EXPECT_LT(failures, 10) << "stopped after 10 failing problems";
  EXPECT_GE(ran, problems);
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
