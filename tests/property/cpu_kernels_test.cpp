// SPDX-License-Identifier: Apache-2.0
// Every kernel of the cpu backend, forced by name, against the reference on edge cases built from
// its own blocking: channel counts around the vector width (1, blk - 1, blk, blk + 1, 2 blk + 3),
// odd and prime image sizes around the micro-kernel's row tiles, strides larger than the filter,
// each pad side on its own (negative ones included), dilation, groups, depthwise multipliers,
// channel-window views with a large pixel stride, and float16/bfloat16 storage. Outputs are
// poisoned with NaN inside and around the view. A kernel that rejects a problem is skipped for it;
// a kernel that accepts none of its problems fails the test, unless it lacks its ISA here.
//
// Tolerances. Integer data in [-3, 3]: every product and partial sum is an integer below 2^24, so
// any summation order is exact and 16-bit outputs round the same exact value: the results must
// agree to 1e-6 (exactly, in practice). Uniform real data in [-1, 1]: float32 rounding errors of
// a sum of L terms grow like sqrt(L) ulps of the partial sums, so the relative error bound is
//   tol(L) = 1e-5 * max(1, sqrt(L / 64))
// with L the reduction length (fprop r*s*c/g, dgrad r*s*k/g, wgrad n*p*q), plus one rounding of
// the output (2^-8 for bfloat16, 2^-11 for float16) per side when it is stored in 16 bits.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "convgrad/errors.hpp"
#include "convgrad/functional.hpp"
#include "convgrad/problem.hpp"
#include "support/oracle_support.hpp"
#include "support/tensors.hpp"

namespace convgrad {
namespace {

// A 4-D view into a larger NaN-filled buffer: a leading offset (a channel window of a wider
// tensor) and `slack` extra elements after each innermost row (a large pixel stride).
class WindowTensor {
 public:
  WindowTensor(DataType type, std::array<std::int64_t, 4> dims, std::int64_t slack,
               std::int64_t offset)
      : dims_(dims), offset_(offset) {
    const std::int64_t s2 = dims[3] + slack;
    strides_ = {dims[1] * dims[2] * s2, dims[2] * s2, s2, 1};
    buffer_ = test::HostTensor(type, 1, 1, 1, offset + dims[0] * strides_[0] + 7);
    buffer_.poison();
    view_ = buffer_.view();
    view_.data = static_cast<std::byte*>(view_.data) + offset * size_of(type);
    view_.dims = dims;
    view_.strides = strides_;
    view_.extent = buffer_.size() - offset;
  }
  const TensorView& view() const { return view_; }
  std::int64_t index(std::int64_t i) const {
    const std::int64_t e = i % dims_[3], c = i / dims_[3] % dims_[2];
    const std::int64_t b = i / dims_[3] / dims_[2] % dims_[1],
                       a = i / dims_[3] / dims_[2] / dims_[1];
    return offset_ + a * strides_[0] + b * strides_[1] + c * strides_[2] + e;
  }
  std::int64_t size() const { return dims_[0] * dims_[1] * dims_[2] * dims_[3]; }
  std::vector<float> gather() const {
    std::vector<float> out(static_cast<std::size_t>(size()));
    for (std::int64_t i = 0; i < size(); ++i)
      out[static_cast<std::size_t>(i)] = buffer_.get(index(i));
    return out;
  }
  void fill(std::mt19937_64& rng, bool integers) {
    std::uniform_int_distribution<int> ints(-3, 3);
    std::uniform_real_distribution<float> reals(-1.0f, 1.0f);
    for (std::int64_t i = 0; i < size(); ++i) {
      buffer_.set(index(i), integers ? static_cast<float>(ints(rng)) : reals(rng));
    }
    if (size() > 0) buffer_.set(index(0), 1.0f);
  }
  void copy_from(const WindowTensor& other) {
    for (std::int64_t i = 0; i < size(); ++i) buffer_.set(index(i), other.buffer_.get(index(i)));
  }
  void poison() { buffer_.poison(); }
  // Elements outside the view that are no longer NaN (a kernel wrote past its view).
  std::int64_t outside_written() const {
    std::vector<bool> inside(static_cast<std::size_t>(buffer_.size()), false);
    for (std::int64_t i = 0; i < size(); ++i) inside[static_cast<std::size_t>(index(i))] = true;
    std::int64_t count = 0;
    for (std::int64_t i = 0; i < buffer_.size(); ++i) {
      count += !inside[static_cast<std::size_t>(i)] && !std::isnan(buffer_.get(i));
    }
    return count;
  }

 private:
  std::array<std::int64_t, 4> dims_, strides_{};
  std::int64_t offset_;
  test::HostTensor buffer_;
  TensorView view_;
};

Direction direction_of(const std::string& name) {
  if (name.find(".fprop.") != std::string::npos) return Direction::fprop;
  if (name.find(".dgrad.") != std::string::npos) return Direction::dgrad;
  return Direction::wgrad;
}

// Lanes of the kernel's vectors and rows of its largest register tile.
std::int64_t block_of(const std::string& name) {
  return name.find(".avx2.") != std::string::npos ? 8 : 16;
}

// The edge cases of a kernel with vector width `blk` (its micro-kernel tiles up to 24 rows).
std::vector<ConvProblem> edge_problems(std::int64_t blk, std::mt19937_64& rng) {
  const std::array<std::int64_t, 5> channels{1, blk - 1, blk, blk + 1, 2 * blk + 3};
  const std::array<std::int64_t, 9> sizes{1, 3, 5, 7, 11, 13, 17, 29, 31};
  std::vector<ConvProblem> out;
  std::size_t cursor = 0;
  auto next_size = [&] { return sizes[cursor++ % sizes.size()]; };
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  // Pads must stay below the dilated extent, and the padded image must hold one window.
  auto fit = [](std::int64_t size, std::int64_t extent, std::int32_t& before, std::int32_t& after) {
    before = std::min<std::int32_t>(before, static_cast<std::int32_t>(extent - 1));
    after = std::min<std::int32_t>(after, static_cast<std::int32_t>(extent - 1));
    while (size + before + after < extent) (after < extent - 1 ? after : before) += 1;
  };
  auto finish = [&](ConvProblem p) {
    fit(p.h, p.dilated_r(), p.pad_top, p.pad_bottom);
    fit(p.w, p.dilated_s(), p.pad_left, p.pad_right);
    derive_output_size(p);
    out.push_back(p);
  };
  // Dense: every pair of channel counts, with rotating sizes, filters, strides and pads (each
  // side drawn on its own, down to -2).
  for (std::int64_t c : channels) {
    for (std::int64_t k : channels) {
      ConvProblem p;
      p.n = out.size() % 2 == 0 ? 1 : 3;
      p.h = next_size();
      p.w = next_size();
      p.c = c;
      p.k = k;
      p.r = pick(1, 5);
      p.s = pick(1, 5);
      p.stride_h = static_cast<int>(pick(1, 3));
      p.stride_w = static_cast<int>(pick(1, 3));
      p.dilation_h = out.size() % 4 == 1 ? 2 : 1;
      p.dilation_w = out.size() % 4 == 2 ? 2 : 1;
      for (std::int32_t* pad : {&p.pad_top, &p.pad_bottom, &p.pad_left, &p.pad_right}) {
        *pad = static_cast<std::int32_t>(pick(-2, 2));
      }
      p.with_bias = out.size() % 3 != 0;
      finish(p);
    }
  }
  // 1x1 without padding (the GEMM kernels), stride 1 and 2, long rows that span several tiles.
  for (std::int64_t c : channels) {
    for (int stride : {1, 2}) {
      ConvProblem p;
      p.n = stride == 1 ? 3 : 1;
      p.h = next_size();
      p.w = 29;
      p.c = c;
      p.k = channels[static_cast<std::size_t>(pick(0, 4))];
      p.stride_h = p.stride_w = stride;
      finish(p);
    }
  }
  // Stride larger than the filter: rows and columns skipped entirely.
  for (std::int64_t r : {1, 2}) {
    ConvProblem p;
    p.n = 3;
    p.h = 13;
    p.w = 17;
    p.c = blk + 1;
    p.k = blk - 1 > 0 ? blk - 1 : 1;
    p.r = p.s = r;
    p.stride_h = 3;
    p.stride_w = 4;
    p.pad_left = 1;
    finish(p);
  }
  // Groups 2 and depthwise with multiplier 1 and 2.
  for (std::int64_t c : channels) {
    ConvProblem g;
    g.n = 3;
    g.h = next_size();
    g.w = next_size();
    g.groups = 2;
    g.c = 2 * c;
    g.k = 2 * channels[static_cast<std::size_t>(pick(0, 4))];
    g.r = g.s = 3;
    g.pad_top = 1;
    g.pad_right = 2;
    finish(g);
    for (std::int64_t m : {1, 2}) {
      ConvProblem d;
      d.n = m == 1 ? 1 : 3;
      d.h = next_size();
      d.w = 31;
      d.c = c;
      d.groups = static_cast<int>(c);
      d.k = c * m;
      d.r = pick(1, 5);
      d.s = pick(2, 5);
      d.stride_h = static_cast<int>(pick(1, 2));
      d.stride_w = static_cast<int>(pick(1, 2));
      d.dilation_w = m == 2 ? 2 : 1;
      d.pad_top = static_cast<int>(pick(-1, 2));
      d.pad_left = static_cast<int>(pick(-1, 2));
      d.pad_bottom = static_cast<int>(pick(0, 2));
      d.pad_right = static_cast<int>(pick(-1, 2));
      finish(d);
    }
  }
  // Few input channels with the large filters of first layers.
  for (std::int64_t c : {1, 2, 3, 7}) {
    ConvProblem p;
    p.n = c == 3 ? 3 : 1;
    p.h = 29;
    p.w = 31;
    p.c = c;
    p.k = channels[static_cast<std::size_t>(c % 5)];
    p.r = p.s = c == 1 ? 5 : 7;
    p.stride_h = p.stride_w = c == 1 ? 1 : 2;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = c == 1 ? 2 : 3;
    p.pad_right = -1;
    finish(p);
  }
  // 16-bit storage on a copy of every fifth problem.
  const std::size_t base = out.size();
  for (std::size_t i = 0; i < base; i += 5) {
    ConvProblem p = out[i];
    p.x_type = p.w_type = p.y_type = (i / 5) % 2 == 0 ? DataType::float16 : DataType::bfloat16;
    if ((i / 5) % 3 == 2) p.w_type = DataType::float32;
    out.push_back(p);
  }
  return out;
}

double unit_roundoff(DataType type) {
  switch (type) {
    case DataType::float16:
      return 0x1p-11;
    case DataType::bfloat16:
      return 0x1p-8;
    case DataType::float32:
      break;
  }
  return 0.0;
}

struct Tally {
  std::int64_t ran = 0, rejected = 0, compared = 0;
  double worst = 0.0;
};

// Runs `kernel` and the reference on one problem with one kind of data; returns false when the
// kernel rejected it.
bool check_one(const std::string& kernel, const ConvProblem& p, bool integers, std::mt19937_64& rng,
               Tally& tally) {
  const Direction dir = direction_of(kernel);
  const std::int64_t slack = integers ? 0 : 37;  // real data also runs through windowed views
  const std::int64_t offset = integers ? 0 : 5;
  const std::array<std::int64_t, 4> xd{p.n, p.h, p.w, p.c}, wd{p.k, p.r, p.s, p.c_per_group()},
      yd{p.n, p.p, p.q, p.k}, bd{p.k, 1, 1, 1};
  WindowTensor x(p.x_type, xd, slack, offset), w(p.w_type, wd, slack, offset);
  WindowTensor y(p.y_type, yd, slack, offset), b(DataType::float32, bd, 0, offset);
  for (WindowTensor* t : {&x, &w, &y, &b}) t->fill(rng, integers);
  // Outputs of each side, poisoned; dw starts from the same values for accumulate mode.
  WindowTensor out_cpu(dir == Direction::fprop   ? p.y_type
                       : dir == Direction::dgrad ? p.x_type
                                                 : p.w_type,
                       dir == Direction::fprop   ? yd
                       : dir == Direction::dgrad ? xd
                                                 : wd,
                       slack, offset);
  WindowTensor out_ref(dir == Direction::fprop   ? p.y_type
                       : dir == Direction::dgrad ? p.x_type
                                                 : p.w_type,
                       dir == Direction::fprop   ? yd
                       : dir == Direction::dgrad ? xd
                                                 : wd,
                       slack, offset);
  WindowTensor db_cpu(DataType::float32, bd, 0, offset), db_ref(DataType::float32, bd, 0, offset);
  const bool accumulate = dir == Direction::wgrad && !integers && tally.ran % 2 == 1;
  if (accumulate) {
    out_ref.fill(rng, false);
    out_cpu.copy_from(out_ref);
    db_ref.fill(rng, false);
    db_cpu.copy_from(db_ref);
  }
  const TensorView none{};
  const auto run = [&](const RunOptions& options, WindowTensor& out, WindowTensor& db) {
    switch (dir) {
      case Direction::fprop:
        fprop(p, x.view(), w.view(), p.with_bias ? b.view() : none, out.view(), options);
        break;
      case Direction::dgrad:
        dgrad(p, y.view(), w.view(), out.view(), options);
        break;
      case Direction::wgrad:
        wgrad(p, x.view(), y.view(), out.view(), p.with_bias ? db.view() : none, options);
        break;
    }
  };
  RunOptions forced;
  forced.backend = "cpu";
  forced.kernel = kernel;
  forced.accumulate = accumulate;
  try {
    run(forced, out_cpu, db_cpu);
  } catch (const Unsupported&) {
    ++tally.rejected;
    return false;
  }
  RunOptions reference;
  reference.backend = "ref";
  reference.accumulate = accumulate;
  run(reference, out_ref, db_ref);
  ++tally.ran;

  const std::int64_t length = dir == Direction::fprop   ? p.r * p.s * p.c_per_group()
                              : dir == Direction::dgrad ? p.r * p.s * p.k_per_group()
                                                        : p.n * p.p * p.q;
  const DataType out_type = dir == Direction::fprop   ? p.y_type
                            : dir == Direction::dgrad ? p.x_type
                                                      : p.w_type;
  const double tol = integers ? 1e-6
                              : 1e-5 * std::max(1.0, std::sqrt(length / 64.0)) +
                                    (accumulate ? 3.0 : 2.0) * unit_roundoff(out_type);
  const std::string where =
      kernel + " on " + to_string(p) + " (" + std::string(to_string(p.x_type)) + "/" +
      std::string(to_string(p.w_type)) + "/" + std::string(to_string(p.y_type)) +
      (integers ? ", integers" : ", reals") + (accumulate ? ", accumulate" : "") + "); " +
      test::repro_hint();
  const auto compare = [&](const char* what, const WindowTensor& got, const WindowTensor& want) {
    const std::vector<float> g = got.gather(), r = want.gather();
    const double error = test::relative_error(g, r);
    tally.worst = std::max(tally.worst, error);
    ++tally.compared;
    EXPECT_EQ(test::count_nan(g), 0) << what << " left unwritten elements: " << where;
    EXPECT_EQ(got.outside_written(), 0) << what << " written outside its view: " << where;
    EXPECT_LE(error, tol) << what << " relative error: " << where;
  };
  compare("output", out_cpu, out_ref);
  if (dir == Direction::wgrad && p.with_bias) compare("db", db_cpu, db_ref);
  return true;
}

TEST(CpuKernels, EveryKernelOnItsEdgeCases) {
  std::vector<std::string> kernels;
  for (const BackendInfo& info : list_backends()) {
    if (info.name == "cpu") kernels = info.kernels;
  }
  ASSERT_FALSE(kernels.empty()) << "the cpu backend lists no kernels";
  EXPECT_NE(kernels.back().find("generic"), std::string::npos)
      << "the last cpu kernel must be the generic one";
  std::mt19937_64 rng = test::make_rng(0xc4e1);
  std::int64_t total = 0;
  for (const std::string& kernel : kernels) {
    SCOPED_TRACE(kernel);
    const std::vector<ConvProblem> problems = edge_problems(block_of(kernel), rng);
    Tally tally;
    std::string isa_reason;
    for (const ConvProblem& p : problems) {
      bool accepted = false;
      for (bool integers : {true, false}) accepted = check_one(kernel, p, integers, rng, tally);
      if (!accepted && isa_reason.empty()) {
        try {
          (void)kernel_name(p, direction_of(kernel),
                            RunOptions{.backend = "cpu", .kernel = kernel});
        } catch (const Unsupported& error) {
          const std::string what = error.what();
          if (what.find("needs avx") != std::string::npos) isa_reason = what;
        }
      }
      if (::testing::Test::HasFailure()) break;
    }
    std::cout << "[cpu kernels] " << kernel << ": " << tally.ran << " runs on " << problems.size()
              << " problems, " << tally.rejected << " rejected, worst relative error "
              << tally.worst << "\n";
    total += tally.ran;
    if (tally.ran == 0 && !isa_reason.empty()) {
      std::cout << "  skipped: this machine lacks the ISA (" << isa_reason << ")\n";
      continue;
    }
    EXPECT_GT(tally.ran, 0) << kernel << " accepted none of its edge-case problems";
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_GT(total, 0);
}

}  // namespace
}  // namespace convgrad

namespace convgrad {
namespace {

// The few-channel kernels (fprop on a padded copy, col2im dgrad, the turned-around wgrad) see few problems of their class
// in the mixed suites, one dense draw in five and then only with c < 8: give them random problems
// of their own, on every ISA this machine has, with the kernel forced.
TEST(CpuKernels, FewChannelKernelsOnRandomProblems) {
  std::mt19937_64 rng = test::make_rng(0xfe7c);
  test::DrawSpec draw;
  draw.max_size = 24;
  draw.max_channels = 40;
  for (const char* kernel : {"cpu.fprop.fewc.avx512.f32", "cpu.fprop.fewc.avx2.f32",
                             "cpu.wgrad.fewc.avx512.f32", "cpu.wgrad.fewc.avx2.f32",
                             "cpu.dgrad.col2im.avx512.f32", "cpu.dgrad.col2im.avx2.f32"}) {
    SCOPED_TRACE(kernel);
    Tally tally;
    for (std::size_t index = 0; tally.ran + tally.rejected < 300; index += 5) {
      ConvProblem p = test::draw_problem(rng, draw, index);  // index % 5 == 0: dense
      p.c = std::uniform_int_distribution<std::int64_t>(1, 7)(rng);
      p.dilation_w = 1;
      // Pads in [0, extent): the validator refuses windows wholly in the padding.
      const auto clamp_pad = [](std::int32_t& pad, std::int64_t extent) {
        pad = std::clamp<std::int32_t>(pad, 0, static_cast<std::int32_t>(extent - 1));
      };
      clamp_pad(p.pad_top, p.dilated_r());
      clamp_pad(p.pad_bottom, p.dilated_r());
      clamp_pad(p.pad_left, p.dilated_s());
      clamp_pad(p.pad_right, p.dilated_s());
      if (p.h + p.pad_top + p.pad_bottom < p.dilated_r()) continue;
      if (p.w + p.pad_left + p.pad_right < p.dilated_s()) continue;
      derive_output_size(p);
      const bool integers = index % 2 == 0;
      if (!check_one(kernel, p, integers, rng, tally)) {
        const auto reason = [&]() -> std::string {
          try {
            (void)kernel_name(p, direction_of(kernel), RunOptions{.backend = "cpu", .kernel = kernel});
          } catch (const Unsupported& error) {
            return error.what();
          }
          return "";
        }();
        if (reason.find("needs avx") != std::string::npos) break;  // not this machine's ISA
        ADD_FAILURE() << kernel << " rejected a problem of its class: " << to_string(p) << ": "
                      << reason;
      }
      if (::testing::Test::HasFailure()) break;
    }
    std::cout << "[cpu kernels] " << kernel << ": " << tally.ran
              << " random few-channel problems, worst relative error " << tally.worst << "\n";
  }
}

}  // namespace
}  // namespace convgrad
