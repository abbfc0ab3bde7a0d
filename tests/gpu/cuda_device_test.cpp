// SPDX-License-Identifier: Apache-2.0
// The cuda backend's plumbing: device memory and its errors, the device rule of the functional
// face, kernel choice, and larger problems than the random suites draw (long wgrad reductions,
// grids of many blocks) against the reference and for run-to-run determinism.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "convgrad/device.hpp"
#include "convgrad/device_buffer.hpp"
#include "convgrad/errors.hpp"
#include "convgrad/functional.hpp"
#include "gpu/gpu_support.hpp"
#include "support/oracle_support.hpp"
#include "support/tensors.hpp"

namespace convgrad {
namespace {

using test::DeviceMirror;
using test::Layout;
using test::StridedTensor;

RunOptions cuda_options(bool accumulate = false) {
  RunOptions options;
  options.backend = "cuda";
  options.accumulate = accumulate;
  return options;
}

std::size_t free_device_memory() {
  std::size_t free = 0, total = 0;
  EXPECT_EQ(cudaMemGetInfo(&free, &total), cudaSuccess);
  return free;
}

TEST(CudaDevice, ReportsWhyItIsUnavailableOrRuns) {
  const std::string reason = test::cuda_unavailable();
  if (!reason.empty()) {
    // The message CI shows for every skipped GPU test.
    EXPECT_EQ(reason.rfind("no CUDA device", 0), 0u) << reason;
    EXPECT_THROW(Device::cuda(), Unsupported);
    GTEST_SKIP() << reason;
  }
  const Device device = Device::cuda();
  EXPECT_EQ(device.kind(), DeviceKind::cuda);
  EXPECT_EQ(device.backend(), "cuda");
}

TEST(CudaDevice, OutOfMemoryIsADeviceErrorAndLeaksNothing) {
  CONVGRAD_REQUIRE_CUDA();
  const Device device = Device::cuda();
  { DeviceBuffer warm(device, 1 << 20); }  // the context and allocator exist before measuring
  const std::size_t before = free_device_memory();
  constexpr std::size_t kAbsurd = std::size_t{1} << 50;  // 1 PiB
  for (int attempt = 0; attempt < 3; ++attempt) {
    try {
      DeviceBuffer buffer(device, kAbsurd);
      FAIL() << "allocated 1 PiB";
    } catch (const DeviceError& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find("cudaMalloc of 1125899906842624 bytes failed: out of memory"),
                std::string::npos)
          << message;
    }
  }
  EXPECT_EQ(free_device_memory(), before);
  // The failure left no error behind for the next launch to report.
  const ConvProblem p = make_problem(1, 5, 5, 3, 4, 3, 3, 1, 1);
  DeviceBuffer x(device, x_elements(p) * 4), w(device, w_elements(p) * 4),
      y(device, y_elements(p) * 4);
  x.fill_bytes(0);
  w.fill_bytes(0);
  ConvProblem no_bias = p;
  no_bias.with_bias = false;
  EXPECT_NO_THROW(fprop(no_bias, x.dense_view(DataType::float32, 1, 5, 5, 3),
                        w.dense_view(DataType::float32, 4, 3, 3, 3), {},
                        y.dense_view(DataType::float32, 1, 5, 5, 4), cuda_options()));
}

TEST(CudaDevice, BufferCopiesRoundTripAndCheckRanges) {
  CONVGRAD_REQUIRE_CUDA();
  DeviceBuffer buffer(Device::cuda(), 1000);
  EXPECT_EQ(buffer.kind(), DeviceKind::cuda);
  EXPECT_EQ(buffer.size(), 1000u);
  std::vector<unsigned char> in(1000), out(1000, 0);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<unsigned char>(i * 7);
  buffer.copy_from_host(in.data(), in.size());
  buffer.copy_to_host(out.data(), out.size());
  EXPECT_EQ(in, out);
  buffer.copy_from_host(in.data(), 10, 990);
  buffer.copy_to_host(out.data(), 10, 990);
  EXPECT_EQ(std::memcmp(in.data(), out.data(), 10), 0);
  EXPECT_THROW(buffer.copy_from_host(in.data(), 11, 990), InvalidArgument);
  EXPECT_THROW(buffer.copy_to_host(out.data(), 1, 1000), InvalidArgument);
  buffer.fill_bytes(0xFF);
  std::vector<float> poisoned(250);
  buffer.copy_to_host(poisoned.data(), 1000);
  for (const float value : poisoned) EXPECT_TRUE(std::isnan(value));
  DeviceBuffer moved = std::move(buffer);
  EXPECT_TRUE(buffer.empty());  // NOLINT(bugprone-use-after-move): the moved-from state
  EXPECT_EQ(moved.size(), 1000u);
}

TEST(CudaDevice, TensorsMustLiveOnTheBackendsDevice) {
  CONVGRAD_REQUIRE_CUDA();
  ConvProblem p = make_problem(1, 4, 4, 2, 2, 3, 3, 1, 1);
  p.with_bias = false;
  test::ProblemTensors host(p);
  EXPECT_THROW(fprop(p, host.x.view(), host.w.view(), {}, host.y.view(), cuda_options()),
               InvalidArgument);
  DeviceBuffer x(Device::cuda(), x_elements(p) * 4), w(Device::cuda(), w_elements(p) * 4),
      y(Device::cuda(), y_elements(p) * 4);
  RunOptions cpu;
  EXPECT_THROW(fprop(p, x.dense_view(DataType::float32, 1, 4, 4, 2),
                     w.dense_view(DataType::float32, 2, 3, 3, 2), {},
                     y.dense_view(DataType::float32, 1, 4, 4, 2), cpu),
               InvalidArgument);
}

// The generic kernels close the list, and a problem the specialised kernels all refuse (storage
// types mixed between x and y) falls through to them.
TEST(CudaDevice, GenericKernelsAreListedAndChosen) {
  CONVGRAD_REQUIRE_CUDA();
  std::vector<std::string> kernels;
  for (const BackendInfo& info : list_backends()) {
    if (info.name == "cuda") kernels = info.kernels;
  }
  ASSERT_GE(kernels.size(), 3u);
  EXPECT_EQ(kernels[kernels.size() - 3], "cuda.fprop.direct.any.any");
  EXPECT_EQ(kernels[kernels.size() - 2], "cuda.dgrad.direct.any.any");
  EXPECT_EQ(kernels[kernels.size() - 1], "cuda.wgrad.direct.any.any");
  ConvProblem p = make_problem(2, 9, 9, 6, 6, 3, 3, 2, 1, 2, 3);
  p.x_type = DataType::float32;
  p.y_type = DataType::float16;
  EXPECT_EQ(kernel_name(p, Direction::fprop, cuda_options()), "cuda.fprop.direct.any.any");
  EXPECT_EQ(kernel_name(p, Direction::dgrad, cuda_options()), "cuda.dgrad.direct.any.any");
  EXPECT_EQ(kernel_name(p, Direction::wgrad, cuda_options()), "cuda.wgrad.direct.any.any");
}

// Problems larger than the random suites: many blocks per grid, wgrad reductions over tens of
// thousands of positions, grouped and depthwise, float32 against the reference and float16 and
// bfloat16 for determinism.
struct Larger {
  ConvProblem problem;
  DataType type;
};

std::vector<Larger> larger_problems() {
  std::vector<Larger> result;
  ConvProblem dense = make_problem(4, 30, 30, 24, 32, 3, 3, 1, 1);
  ConvProblem strided = make_problem(2, 33, 31, 16, 16, 5, 5, 2, 2, 2);
  strided.pad_bottom = -1;
  derive_output_size(strided);
  ConvProblem grouped = make_problem(3, 20, 20, 32, 48, 3, 3, 1, 1, 1, 4);
  ConvProblem depthwise = make_problem(8, 40, 40, 16, 32, 3, 3, 1, 1, 1, 16);
  ConvProblem pointwise = make_problem(16, 48, 48, 8, 8, 1, 1);
  for (ConvProblem p : {dense, strided, grouped, depthwise, pointwise}) {
    for (DataType type : {DataType::float32, DataType::float16, DataType::bfloat16}) {
      p.x_type = p.w_type = p.y_type = type;
      result.push_back({p, type});
    }
  }
  return result;
}

TEST(CudaDevice, LargerProblemsMatchTheReferenceAndRepeatBitForBit) {
  CONVGRAD_REQUIRE_CUDA();
  std::mt19937_64 rng = test::make_rng(0xc0da10);
  for (const auto& [p, type] : larger_problems()) {
    SCOPED_TRACE(test::describe(p) + "; " + test::repro_hint());
    const double tolerance = type == DataType::float32 ? 1e-5 : 1e-2;
    const std::array<std::int64_t, 4> xd{p.n, p.h, p.w, p.c}, wd{p.k, p.r, p.s, p.c_per_group()},
        yd{p.n, p.p, p.q, p.k}, bd{p.k, 1, 1, 1};
    StridedTensor x(type, xd, Layout::dense, rng), w(type, wd, Layout::dense, rng),
        b(DataType::float32, bd, Layout::dense, rng), dy(type, yd, Layout::dense, rng);
    for (StridedTensor* t : {&x, &w, &b, &dy}) t->fill_uniform(rng);
    StridedTensor ref_y(type, yd, Layout::dense, rng), ref_dx(type, xd, Layout::dense, rng),
        ref_dw(type, wd, Layout::dense, rng), ref_db(DataType::float32, bd, Layout::dense, rng);
    RunOptions ref;
    ref.backend = "ref";
    fprop(p, x.view(), w.view(), b.view(), ref_y.view(), ref);
    dgrad(p, dy.view(), w.view(), ref_dx.view(), ref);
    wgrad(p, x.view(), dy.view(), ref_dw.view(), ref_db.view(), ref);

    StridedTensor y(type, yd, Layout::dense, rng), dx(type, xd, Layout::dense, rng),
        dw(type, wd, Layout::dense, rng), db(DataType::float32, bd, Layout::dense, rng),
        dw2(type, wd, Layout::dense, rng), db2(DataType::float32, bd, Layout::dense, rng);
    const DeviceMirror gx(x), gw(w), gb(b), gdy(dy);
    DeviceMirror gy(y), gdx(dx), gdw(dw), gdb(db);
    for (DeviceMirror* out : {&gy, &gdx, &gdw, &gdb}) out->poison();
    fprop(p, gx.view(), gw.view(), gb.view(), gy.view(), cuda_options());
    dgrad(p, gdy.view(), gw.view(), gdx.view(), cuda_options());
    wgrad(p, gx.view(), gdy.view(), gdw.view(), gdb.view(), cuda_options());
    gy.download(y);
    gdx.download(dx);
    gdw.download(dw);
    gdb.download(db);
    gdw.poison();
    gdb.poison();
    wgrad(p, gx.view(), gdy.view(), gdw.view(), gdb.view(), cuda_options());
    gdw.download(dw2);
    gdb.download(db2);

    const std::pair<const StridedTensor*, const StridedTensor*> pairs[] = {
        {&y, &ref_y}, {&dx, &ref_dx}, {&dw, &ref_dw}, {&db, &ref_db}};
    const char* names[] = {"y", "dx", "dw", "db"};
    for (int i = 0; i < 4; ++i) {
      const std::vector<float> got = pairs[i].first->gather();
      EXPECT_EQ(test::count_nan(got), 0) << names[i] << " has unwritten elements";
      EXPECT_LE(test::relative_error(got, pairs[i].second->gather()), tolerance) << names[i];
    }
    const std::vector<float> a = dw.gather(), a2 = dw2.gather(), c = db.gather(), c2 = db2.gather();
    EXPECT_EQ(std::memcmp(a.data(), a2.data(), a.size() * sizeof(float)), 0)
        << "wgrad dw differs between two runs";
    EXPECT_EQ(std::memcmp(c.data(), c2.data(), c.size() * sizeof(float)), 0)
        << "wgrad db differs between two runs";
  }
}

}  // namespace
}  // namespace convgrad
