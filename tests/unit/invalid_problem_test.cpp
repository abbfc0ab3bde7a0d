// SPDX-License-Identifier: Apache-2.0
// Invalid problems and operands on the functional face: each rule of docs/errors.md that
// core::validate enforces is broken once, and the call must throw InvalidArgument naming the
// parameter, its value, the rule and the problem string, without touching any output byte.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "convgrad/errors.hpp"
#include "convgrad/functional.hpp"
#include "convgrad/problem.hpp"
#include "support/tensors.hpp"

namespace convgrad {
namespace {

using test::HostTensor;
using test::ProblemTensors;

constexpr unsigned char kPoison = 0xA5;

// What validation prints for `problem`; it prints a placeholder for one too broken to print.
std::string problem_text(const ConvProblem& problem) {
  try {
    return to_string(problem);
  } catch (...) {
    return "unprintable problem";
  }
}

void poison(const HostTensor& tensor) {
  std::memset(tensor.view().data, kPoison,
              static_cast<std::size_t>(tensor.size()) * size_of(tensor.type()));
}

// The parameter, value and problem string the error must carry.
struct Expected {
  std::string parameter;
  std::string value;
};

// Runs `call`, which must throw InvalidArgument for `problem`, and checks the four promises:
// type, parameter, value and problem string in the message, outputs byte-identical.
void expect_rejected(const std::function<void()>& call, const ConvProblem& problem,
                     const Expected& expected, const std::vector<const HostTensor*>& outputs,
                     const char* label) {
  SCOPED_TRACE(label);
  std::vector<std::vector<std::byte>> before;
  for (const HostTensor* output : outputs) {
    poison(*output);
    before.push_back(output->bytes());
  }
  try {
    call();
    ADD_FAILURE() << "no exception; expected InvalidArgument for " << expected.parameter;
  } catch (const InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.parameter(), expected.parameter) << what;
    EXPECT_EQ(e.value(), expected.value) << what;
    EXPECT_FALSE(e.rule().empty()) << what;
    EXPECT_NE(what.find(": " + expected.parameter + " = " + expected.value + ": "),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("[" + problem_text(problem) + "]"), std::string::npos) << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    EXPECT_EQ(outputs[i]->bytes(), before[i]) << "output " << i << " was written";
  }
}

// Buffers sized for a valid base problem: an invalid problem may have sizes that cannot be
// allocated, and its checks must fire before any view is used.
class InvalidProblem : public testing::Test {
 protected:
  InvalidProblem() : base_(make_problem(2, 5, 6, 4, 8, 3, 3, 1, 1)), t_(base_) {}

  // fprop, dgrad, wgrad and validate on the same views; for problem-level rules.
  void expect_all_directions_reject(const ConvProblem& problem, const Expected& expected) {
    const TensorView x = t_.x.view(), w = t_.w.view(), b = t_.b.view(), y = t_.y.view();
    expect_rejected([&] { fprop(problem, x, w, b, y); }, problem, expected, {&t_.y}, "fprop");
    expect_rejected([&] { dgrad(problem, y, w, x); }, problem, expected, {&t_.x}, "dgrad");
    expect_rejected([&] { wgrad(problem, x, y, w, b); }, problem, expected, {&t_.w, &t_.b},
                    "wgrad");
    expect_rejected([&] { validate(problem, Direction::fprop, x, w, b, y, "validate"); }, problem,
                    expected, {}, "validate");
  }

  ConvProblem base_;
  ProblemTensors t_;
};

TEST_F(InvalidProblem, ImageChannelsNotMatchingProblem) {
  // A view with one channel too many: the problem's c does not describe the image.
  HostTensor x(DataType::float32, base_.n, base_.h, base_.w, base_.c + 1);
  expect_rejected([&] { fprop(base_, x.view(), t_.w.view(), t_.b.view(), t_.y.view()); }, base_,
                  {"x.dims", "{2, 5, 6, 5}"}, {&t_.y}, "fprop x");
  HostTensor dy(DataType::float32, base_.n, base_.p, base_.q, base_.k - 1);
  expect_rejected([&] { dgrad(base_, dy.view(), t_.w.view(), t_.x.view()); }, base_,
                  {"dy.dims", "{2, 5, 6, 7}"}, {&t_.x}, "dgrad dy");
}

TEST_F(InvalidProblem, WeightShapeNotMatchingGroups) {
  // Weights laid out for groups = 1 while the problem has 2 groups: C/groups differs.
  ConvProblem p = make_problem(2, 5, 6, 4, 8, 3, 3, 1, 1, 1, 2);
  ProblemTensors t(p);
  expect_rejected([&] { fprop(p, t.x.view(), t_.w.view(), t.b.view(), t.y.view()); }, p,
                  {"w.dims", "{8, 3, 3, 4}"}, {&t.y}, "fprop");
}

TEST_F(InvalidProblem, GroupsNotDividingInputChannels) {
  ConvProblem p = base_;
  p.groups = 3;  // divides neither 4 nor 8; c is checked first
  expect_all_directions_reject(p, {"groups", "3"});
}

TEST_F(InvalidProblem, GroupsNotDividingOutputChannels) {
  ConvProblem p = base_;
  p.k = 6;
  p.groups = 4;  // divides c = 4, not k = 6
  expect_all_directions_reject(p, {"groups", "4"});
}

TEST_F(InvalidProblem, DepthwiseOutputsNotMultipleOfChannels) {
  // Depthwise is groups == c; k must then be a whole multiple of c (the channel multiplier).
  ConvProblem p = base_;
  p.groups = 4;
  p.k = 10;
  expect_all_directions_reject(p, {"groups", "4"});
}

TEST_F(InvalidProblem, GroupsBelowOne) {
  ConvProblem p = base_;
  p.groups = 0;
  expect_all_directions_reject(p, {"groups", "0"});
  p.groups = -2;
  expect_all_directions_reject(p, {"groups", "-2"});
}

TEST_F(InvalidProblem, BatchBelowOne) {
  ConvProblem p = base_;
  p.n = 0;
  expect_all_directions_reject(p, {"n", "0"});
}

TEST_F(InvalidProblem, ChannelsBelowOne) {
  ConvProblem p = base_;
  p.c = -4;
  expect_all_directions_reject(p, {"c", "-4"});
  p = base_;
  p.k = 0;
  expect_all_directions_reject(p, {"k", "0"});
}

TEST_F(InvalidProblem, ImageSizeBelowOne) {
  ConvProblem p = base_;
  p.h = 0;
  expect_all_directions_reject(p, {"h", "0"});
  p = base_;
  p.w = -1;
  expect_all_directions_reject(p, {"w", "-1"});
}

TEST_F(InvalidProblem, KernelSizeBelowOne) {
  ConvProblem p = base_;
  p.r = 0;
  expect_all_directions_reject(p, {"r", "0"});
  p = base_;
  p.s = -3;
  expect_all_directions_reject(p, {"s", "-3"});
}

TEST_F(InvalidProblem, StrideBelowOne) {
  ConvProblem p = base_;
  p.stride_h = 0;
  expect_all_directions_reject(p, {"stride_h", "0"});
  p = base_;
  p.stride_w = -2;
  expect_all_directions_reject(p, {"stride_w", "-2"});
}

TEST_F(InvalidProblem, DilationBelowOne) {
  // 0 is benchdnn's "dense"; ConvProblem counts from 1, so 0 is a caller mixing conventions.
  ConvProblem p = base_;
  p.dilation_h = 0;
  expect_all_directions_reject(p, {"dilation_h", "0"});
  p = base_;
  p.dilation_w = -1;
  expect_all_directions_reject(p, {"dilation_w", "-1"});
}

TEST_F(InvalidProblem, KernelLargerThanPaddedInput) {
  ConvProblem p = make_problem(2, 2, 6, 4, 8, 5, 3, 1, 1);  // 2 + 1 + 1 rows < 5 taps
  expect_all_directions_reject(p, {"r", "5"});
  p = make_problem(2, 5, 2, 4, 8, 3, 4, 1, 0, 1);  // 2 columns < 4 taps
  expect_all_directions_reject(p, {"s", "4"});
}

TEST_F(InvalidProblem, EmptyOutputFromNegativePadding) {
  // Negative pads are legal but may crop the input below one window.
  ConvProblem p = make_problem(2, 3, 6, 4, 8, 3, 3, 1, -1);  // 3 - 2 rows < 3 taps
  p.pad_left = p.pad_right = 0;
  derive_output_size(p);
  expect_all_directions_reject(p, {"r", "3"});
}

TEST_F(InvalidProblem, PaddingNotBelowKernelExtent) {
  ConvProblem p = base_;
  p.pad_top = 3;  // a 3-row window starting at -3 lies entirely in the padding
  derive_output_size(p);
  expect_all_directions_reject(p, {"pad_top", "3"});
  p = base_;
  p.pad_bottom = 4;
  derive_output_size(p);
  expect_all_directions_reject(p, {"pad_bottom", "4"});
  p = base_;
  p.pad_left = 3;
  derive_output_size(p);
  expect_all_directions_reject(p, {"pad_left", "3"});
  p = base_;
  p.pad_right = 3;
  derive_output_size(p);
  expect_all_directions_reject(p, {"pad_right", "3"});
}

TEST_F(InvalidProblem, PaddingNotBelowDilatedKernelExtent) {
  // With dilation 2 a 2-tap kernel spans 3 pixels: pad 2 is fine, pad 3 is not.
  ConvProblem p = make_problem(2, 5, 6, 4, 8, 2, 2, 1, 2, 2);
  ProblemTensors t(p);
  EXPECT_NO_THROW(
      validate(p, Direction::fprop, t.x.view(), t.w.view(), t.b.view(), t.y.view(), "validate"));
  p.pad_left = 3;
  derive_output_size(p);
  expect_all_directions_reject(p, {"pad_left", "3"});
}

TEST_F(InvalidProblem, OutputHeightNotMatchingFormula) {
  ConvProblem p = base_;
  p.p += 1;
  expect_all_directions_reject(p, {"p", "6"});
}

TEST_F(InvalidProblem, OutputWidthNotMatchingFormula) {
  ConvProblem p = base_;
  p.q -= 1;
  expect_all_directions_reject(p, {"q", "5"});
}

TEST_F(InvalidProblem, ImageElementCountOverflows) {
  // 2^20 each: n*h*w = 2^60 fits, times c = 2^80 does not.
  const std::int64_t big = std::int64_t{1} << 20;
  ConvProblem p = make_problem(big, big, big, big, 1, 1, 1);
  expect_all_directions_reject(p, {"n*h*w*c", "1152921504606846976 * 1048576"});
}

TEST_F(InvalidProblem, OutputElementCountOverflows) {
  const std::int64_t big = std::int64_t{1} << 31;
  ConvProblem p = make_problem(1, 1, 1, 1, big, 1, 1);
  p.n = big;
  p.h = p.p = 1 << 20;  // n*h*w*c = 2^51 fits; n*p*q*k = 2^82 does not
  expect_all_directions_reject(p, {"n*p*q*k", "2251799813685248 * 2147483648"});
}

TEST_F(InvalidProblem, WeightElementCountOverflows) {
  const std::int64_t big = std::int64_t{1} << 40;
  ConvProblem p = make_problem(1, 1, 1, big, big, 1, 1);
  expect_all_directions_reject(p, {"k*r*s*c/groups", "1099511627776 * 1099511627776"});
}

TEST_F(InvalidProblem, DilatedKernelExtentOverflows) {
  // (r - 1) * dilation wraps around int64 unless checked; the wrapped extent looked valid.
  ConvProblem p = base_;
  p.r = std::int64_t{1} << 62;
  p.dilation_h = 4;
  expect_all_directions_reject(p, {"r", "4611686018427387904"});
}

TEST_F(InvalidProblem, PaddedInputOverflows) {
  ConvProblem p = base_;
  p.h = std::numeric_limits<std::int64_t>::max();
  expect_all_directions_reject(p, {"h", "9223372036854775807"});
}

TEST_F(InvalidProblem, ViewReachOverflows) {
  // 4 rows of 2^62 elements reach element 2^64, which wraps to 0 and would pass the extent check.
  TensorView x = t_.x.view();
  x.strides = {0, std::int64_t{1} << 62, 0, 1};
  expect_rejected([&] { dgrad(base_, t_.y.view(), t_.w.view(), x); }, base_,
                  {"dx.strides", "{0, 4611686018427387904, 0, 1}"}, {&t_.x}, "dgrad dx");
}

TEST_F(InvalidProblem, MissingTensor) {
  TensorView w = t_.w.view();
  w.data = nullptr;
  expect_rejected([&] { fprop(base_, t_.x.view(), w, t_.b.view(), t_.y.view()); }, base_,
                  {"w", "null"}, {&t_.y}, "fprop");
  TensorView dy = t_.y.view();
  dy.data = nullptr;
  expect_rejected([&] { wgrad(base_, t_.x.view(), dy, t_.w.view(), t_.b.view()); }, base_,
                  {"dy", "null"}, {&t_.w, &t_.b}, "wgrad");
}

TEST_F(InvalidProblem, ViewTypeNotProblemType) {
  HostTensor dx(DataType::float16, base_.n, base_.h, base_.w, base_.c);
  expect_rejected([&] { dgrad(base_, t_.y.view(), t_.w.view(), dx.view()); }, base_,
                  {"dx.type", "f16"}, {&dx}, "dgrad dx");
  HostTensor dw(DataType::bfloat16, base_.k, base_.r, base_.s, base_.c);
  expect_rejected([&] { wgrad(base_, t_.x.view(), t_.y.view(), dw.view(), t_.b.view()); }, base_,
                  {"dw.type", "bf16"}, {&dw, &t_.b}, "wgrad dw");
  ConvProblem p = base_;
  p.y_type = DataType::float16;  // the problem says f16, the view is f32
  expect_rejected([&] { fprop(p, t_.x.view(), t_.w.view(), t_.b.view(), t_.y.view()); }, p,
                  {"y.type", "f32"}, {&t_.y}, "fprop y");
}

TEST_F(InvalidProblem, BiasNotFloat32) {
  HostTensor b(DataType::float16, base_.k, 1, 1, 1);
  expect_rejected([&] { fprop(base_, t_.x.view(), t_.w.view(), b.view(), t_.y.view()); }, base_,
                  {"b.type", "f16"}, {&t_.y}, "fprop");
  expect_rejected([&] { wgrad(base_, t_.x.view(), t_.y.view(), t_.w.view(), b.view()); }, base_,
                  {"db.type", "f16"}, {&t_.w, &b}, "wgrad");
}

TEST_F(InvalidProblem, BiasGivenWithoutWithBias) {
  ConvProblem p = base_;
  p.with_bias = false;
  expect_rejected([&] { fprop(p, t_.x.view(), t_.w.view(), t_.b.view(), t_.y.view()); }, p,
                  {"b", "given"}, {&t_.y}, "fprop");
  expect_rejected([&] { wgrad(p, t_.x.view(), t_.y.view(), t_.w.view(), t_.b.view()); }, p,
                  {"db", "given"}, {&t_.w, &t_.b}, "wgrad");
}

TEST_F(InvalidProblem, BiasWrongLength) {
  HostTensor b(DataType::float32, base_.k - 1, 1, 1, 1);
  expect_rejected([&] { fprop(base_, t_.x.view(), t_.w.view(), b.view(), t_.y.view()); }, base_,
                  {"b.dims", "{7, 1, 1, 1}"}, {&t_.y}, "fprop");
}

TEST_F(InvalidProblem, ViewExtentTooSmall) {
  TensorView y = t_.y.view();
  y.extent -= 1;  // the last element lies past the allocation
  expect_rejected([&] { fprop(base_, t_.x.view(), t_.w.view(), t_.b.view(), y); }, base_,
                  {"y.extent", std::to_string(y.extent)}, {&t_.y}, "fprop y");
  TensorView dw = t_.w.view();
  dw.strides[0] += 1;  // padded rows need more memory than the dense buffer has
  expect_rejected([&] { wgrad(base_, t_.x.view(), t_.y.view(), dw, t_.b.view()); }, base_,
                  {"dw.extent", std::to_string(dw.extent)}, {&t_.w, &t_.b}, "wgrad dw");
}

TEST_F(InvalidProblem, ViewNegativeStrides) {
  TensorView x = t_.x.view();
  x.strides[1] = -x.strides[1];
  expect_rejected([&] { dgrad(base_, t_.y.view(), t_.w.view(), x); }, base_,
                  {"dx.strides", "{120, -24, 4, 1}"}, {&t_.x}, "dgrad dx");
}

TEST_F(InvalidProblem, TensorsOnDifferentDevices) {
  TensorView w = t_.w.view();
  w.device = DeviceKind::cuda;
  expect_rejected([&] { fprop(base_, t_.x.view(), w, t_.b.view(), t_.y.view()); }, base_,
                  {"device", "cuda"}, {&t_.y}, "fprop");
}

TEST_F(InvalidProblem, TensorsNotOnBackendDevice) {
  // Every view claims CUDA memory but the cpu backend is asked to run: it must not dereference.
  TensorView x = t_.x.view(), w = t_.w.view(), b = t_.b.view(), y = t_.y.view();
  for (TensorView* v : {&x, &w, &b, &y}) v->device = DeviceKind::cuda;
  expect_rejected([&] { fprop(base_, x, w, b, y); }, base_, {"device", "cuda"}, {&t_.y}, "fprop");
}

TEST_F(InvalidProblem, UnknownBackendIsUnsupported) {
  // Not a caller's broken problem but a build without the backend: Unsupported, still no writes.
  RunOptions options;
  options.backend = "no-such-backend";
  poison(t_.y);
  const std::vector<std::byte> before = t_.y.bytes();
  EXPECT_THROW(fprop(base_, t_.x.view(), t_.w.view(), t_.b.view(), t_.y.view(), options),
               Unsupported);
  EXPECT_EQ(t_.y.bytes(), before);
}

}  // namespace
}  // namespace convgrad
