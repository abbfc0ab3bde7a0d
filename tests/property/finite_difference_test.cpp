// SPDX-License-Identifier: Apache-2.0
// The reference gradients against differences of the reference forward pass. With a fixed
// random g and L(x, w, b) = sum(fprop(x, w, b) * g), dx, dw and db are the gradients of L. The
// convolution is linear in each operand, so a central difference along any direction v has no
// truncation error: (L(x + v) - L(x - v)) / 2 = <dx, v> exactly, and the only errors left are
// the roundings of stored values, which the data below makes zero or bounds tightly. This needs
// nothing but the reference itself, so it runs in every build, oneDNN or not.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "convgrad/functional.hpp"
#include "convgrad/problem.hpp"
#include "support/oracle_support.hpp"
#include "support/tensors.hpp"

namespace convgrad {
namespace {

using test::HostTensor;

// Unit roundoff of float32 storage.
constexpr double kUnitRoundoff = 0x1p-24;

enum class Data {
  // Integers in [-3, 3]: every product and sum below is an integer far under 2^24, so each
  // stored output is exact and the difference must equal the inner product exactly.
  integers,
  // Multiples of 2^-12 in [-1, 1]: x +- v stays exact in float32 and the reference's double
  // sums are exact (26-bit products, at most a few thousand terms), so the single rounding of
  // each stored output is the only error; see `bound` below.
  dyadic,
};

const char* to_string(Data data) { return data == Data::integers ? "integers" : "dyadic"; }

void fill(HostTensor& tensor, Data data, std::mt19937_64& rng) {
  if (data == Data::integers) {
    tensor.fill_integers(rng, 3);
    return;
  }
  std::uniform_int_distribution<int> dist(-4096, 4096);
  for (std::int64_t i = 0; i < tensor.size(); ++i) tensor.set(i, dist(rng) / 4096.0f);
}

RunOptions reference() {
  RunOptions options;
  options.backend = "ref";
  return options;
}

enum Operand : std::size_t { kX, kW, kB, kOperands };
constexpr std::array<const char*, kOperands> kOperandNames{"x", "w", "b"};

struct Loss {
  double value = 0.0;
  double magnitude = 0.0;  // sum |y * g|: scales the rounding error of `value`
};

// One problem with its operands, g, and the reference gradients of L.
class Case {
 public:
  Case(const ConvProblem& problem, Data data, std::mt19937_64& rng)
      : p_(problem),
        operands_{HostTensor(p_.x_type, p_.n, p_.h, p_.w, p_.c),
                  HostTensor(p_.w_type, p_.k, p_.r, p_.s, p_.c_per_group()),
                  HostTensor(DataType::float32, p_.k, 1, 1, 1)},
        g_(p_.y_type, p_.n, p_.p, p_.q, p_.k) {
    for (HostTensor& operand : operands_) fill(operand, data, rng);
    fill(g_, data, rng);
    HostTensor dx(p_.x_type, p_.n, p_.h, p_.w, p_.c);
    HostTensor dw(p_.w_type, p_.k, p_.r, p_.s, p_.c_per_group());
    HostTensor db(DataType::float32, p_.k, 1, 1, 1);
    for (HostTensor* out : {&dx, &dw, &db}) out->poison();
    dgrad(p_, g_.view(), operands_[kW].view(), dx.view(), reference());
    wgrad(p_, operands_[kX].view(), g_.view(), dw.view(), p_.with_bias ? db.view() : TensorView{},
          reference());
    gradients_ = {dx.to_floats(), dw.to_floats(), db.to_floats()};
  }

  const ConvProblem& problem() const { return p_; }
  const std::vector<float>& gradient(Operand which) const { return gradients_[which]; }
  std::int64_t size(Operand which) const { return operands_[which].size(); }

  // L with operand `which` moved by sign * v.
  Loss loss(Operand which, const std::vector<float>& v, float sign) const {
    const HostTensor& base = operands_[which];
    const auto& d = base.view().dims;
    HostTensor moved(base.type(), d[0], d[1], d[2], d[3]);
    for (std::int64_t i = 0; i < base.size(); ++i) {
      moved.set(i, base.get(i) + sign * v[static_cast<std::size_t>(i)]);
    }
    const auto pick = [&](Operand o) -> const HostTensor& {
      return o == which ? moved : operands_[o];
    };
    HostTensor y(p_.y_type, p_.n, p_.p, p_.q, p_.k);
    y.poison();
    fprop(p_, pick(kX).view(), pick(kW).view(), p_.with_bias ? pick(kB).view() : TensorView{},
          y.view(), reference());
    Loss loss;
    for (std::int64_t i = 0; i < y.size(); ++i) {
      const double term = static_cast<double>(y.get(i)) * g_.get(i);
      loss.value += term;
      loss.magnitude += std::abs(term);
    }
    return loss;
  }

 private:
  ConvProblem p_;
  std::array<HostTensor, kOperands> operands_;
  HostTensor g_;
  std::array<std::vector<float>, kOperands> gradients_;
};

struct Comparison {
  double difference = 0.0;  // (L(+v) - L(-v)) / 2
  double product = 0.0;     // <gradient, v>
  double bound = 0.0;       // largest |difference - product| that rounding explains
};

// Each stored y_j is y_j (1 + d_j) with |d_j| <= u, so L(+-v) is off by at most u * sum|y g|
// (the double sums add a relative 1e-13 at most) and the half difference by u times the mean of
// the two magnitudes; each stored gradient element is off by u of itself, so <gradient, v> by
// u * sum|gradient v|. Twice the sum of both is the tolerance: a slack of 2 over the bound, and
// still a relative 1e-7 where any indexing mistake moves the result by whole terms.
Comparison compare(const Case& c, Operand which, const std::vector<float>& v) {
  const Loss plus = c.loss(which, v, 1.0f);
  const Loss minus = c.loss(which, v, -1.0f);
  const std::vector<float>& gradient = c.gradient(which);
  Comparison out;
  double product_magnitude = 0.0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double term = static_cast<double>(gradient[i]) * v[i];
    out.product += term;
    product_magnitude += std::abs(term);
  }
  out.difference = (plus.value - minus.value) / 2.0;
  out.bound = 2.0 * kUnitRoundoff * ((plus.magnitude + minus.magnitude) / 2.0 + product_magnitude);
  return out;
}

// Returns whether every comparison of one problem held.
// `worst` collects the largest miss relative to its bound, to show how much slack the bound has.
bool check_case(const Case& c, Data data, std::mt19937_64& rng, double& worst) {
  const ConvProblem& p = c.problem();
  bool ok = true;
  const auto expect = [&](const Comparison& cmp, const std::string& what) {
    const double miss = std::abs(cmp.difference - cmp.product);
    if (cmp.bound > 0.0) worst = std::max(worst, miss / cmp.bound);
    const double allowed = data == Data::integers ? 0.0 : cmp.bound;
    EXPECT_LE(miss, allowed) << what << ": central difference " << cmp.difference
                             << " vs gradient product " << cmp.product;
    ok &= miss <= allowed;
  };
  const std::array<std::vector<bool>, kOperands> masks{
      test::reached(p, Direction::dgrad), test::reached(p, Direction::wgrad),
      std::vector<bool>(static_cast<std::size_t>(p.k), true)};
  for (const Operand which : {kX, kW, kB}) {
    if (which == kB && !p.with_bias) continue;
    const std::string name = std::string("d") + kOperandNames[which];
    const std::vector<float>& gradient = c.gradient(which);
    EXPECT_EQ(test::count_nan(gradient), 0) << name << " has unwritten (NaN) elements";
    EXPECT_FALSE(test::mostly_zero_where(gradient, masks[which]))
        << name << " is mostly zeros where taps reach";

    // A random direction: every element at once.
    HostTensor direction(DataType::float32, c.size(which), 1, 1, 1);
    fill(direction, data, rng);
    expect(compare(c, which, direction.to_floats()), name + " along a random direction");

    // Single elements: the first and last (where padding and group edges bite), two that taps
    // reach and one that none reaches (its gradient and difference must both be zero).
    std::vector<std::int64_t> picks{0, c.size(which) - 1};
    std::vector<std::int64_t> reached_at, unreached_at;
    for (std::int64_t i = 0; i < c.size(which); ++i) {
      (masks[which][static_cast<std::size_t>(i)] ? reached_at : unreached_at).push_back(i);
    }
    const auto pick_from = [&](const std::vector<std::int64_t>& from, int count) {
      for (int i = 0; i < count && !from.empty(); ++i) {
        picks.push_back(from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng)]);
      }
    };
    pick_from(reached_at, 2);
    pick_from(unreached_at, 1);
    for (const std::int64_t at : picks) {
      std::vector<float> unit(static_cast<std::size_t>(c.size(which)), 0.0f);
      unit[static_cast<std::size_t>(at)] = 1.0f;
      expect(compare(c, which, unit), name + "[" + std::to_string(at) + "]");
    }
  }
  return ok;
}

// Whether the gradients carry too little to check: mostly zero where taps reach, which happens
// when no tap reaches the image or when small integers cancel in a short sum.
bool degenerate(const Case& c) {
  const ConvProblem& p = c.problem();
  return test::mostly_zero_where(c.gradient(kX), test::reached(p, Direction::dgrad)) ||
         test::mostly_zero_where(c.gradient(kW), test::reached(p, Direction::wgrad)) ||
         (p.with_bias && test::mostly_zero(c.gradient(kB)));
}

void run_suite(Data data, std::uint64_t salt, std::int64_t count) {
  std::mt19937_64 rng = test::make_rng(salt);
  test::DrawSpec spec;
  spec.max_size = 9;
  spec.max_channels = 12;
  spec.max_batch = 3;
  spec.negative_pad_rate = 0.35;
  test::Census census;
  std::int64_t ran = 0, redrawn = 0, failures = 0;
  double worst = 0.0;
  for (std::size_t index = 0; ran < count && failures < 10; ++index) {
    ConvProblem p = test::draw_problem(rng, spec, index);
    SCOPED_TRACE(test::describe(p) + " [" + to_string(data) + "]; " + test::repro_hint());
    try {
      const Case c(p, data, rng);
      if (degenerate(c)) {
        ++redrawn;
        continue;
      }
      ++ran;
      census.add(p);
      if (!check_case(c, data, rng, worst)) ++failures;
    } catch (const std::exception& error) {
      ADD_FAILURE() << "the reference threw: " << error.what();
      ++failures;
    }
  }
  std::cout << "[finite difference] " << to_string(data) << ": " << ran << " problems, " << redrawn
            << " redrawn as mostly zero; largest miss " << worst
            << " of the rounding bound\n  census: " << census.summary() << "\n";
  EXPECT_LT(failures, 10) << "stopped after 10 failing problems";
  for (const std::string& feature : test::required_features()) {
    EXPECT_GT(census.count(feature), 0) << "no problem with " << feature << " ran";
  }
}

TEST(FiniteDifference, IntegerDataIsExact) { run_suite(Data::integers, 0xfd01, 150); }

TEST(FiniteDifference, DyadicDataWithinRoundingBound) { run_suite(Data::dyadic, 0xfd02, 150); }

// Shapes a random draw reaches rarely, each at the edge of one rule.
TEST(FiniteDifference, EdgeShapes) {
  struct Shape {
    std::int64_t n, h, w, c, k, r, s;
    std::int32_t stride_h, stride_w, dilation_h, dilation_w;
    std::int32_t pad_top, pad_bottom, pad_left, pad_right, groups;
  };
  const std::vector<Shape> shapes{
      // Stride larger than the dilated kernel: rows of dx no window touches.
      {2, 9, 8, 3, 4, 1, 2, 3, 3, 1, 1, 0, 0, 0, 0, 1},
      // Dilation and stride sharing a factor: every other row only.
      {1, 9, 9, 4, 6, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1},
      // Negative pads on all four sides with stride 3, dilation 3.
      {2, 11, 10, 2, 3, 2, 3, 3, 2, 3, 2, -2, -1, -1, -3, 1},
      // Pads one short of the dilated kernel: corner windows see a single tap.
      {1, 4, 5, 3, 2, 3, 3, 1, 2, 2, 1, 4, 4, 2, 2, 1},
      // Depthwise, multiplier 3, stride 2, asymmetric pads.
      {3, 7, 6, 5, 15, 3, 2, 2, 2, 1, 2, 1, 0, 0, 2, 5},
      // Grouped with odd group widths, 1-pixel image, kernel fully in padding but one tap.
      {2, 1, 1, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3},
      // Wide image, one row, kernel spanning it with negative start and positive end pad.
      {1, 1, 12, 7, 5, 1, 4, 1, 3, 1, 3, 0, 0, -2, 5, 1},
  };
  std::mt19937_64 rng = test::make_rng(0xfd03);
  for (const Shape& s : shapes) {
    ConvProblem p;
    p.n = s.n;
    p.h = s.h;
    p.w = s.w;
    p.c = s.c;
    p.k = s.k;
    p.r = s.r;
    p.s = s.s;
    p.stride_h = s.stride_h;
    p.stride_w = s.stride_w;
    p.dilation_h = s.dilation_h;
    p.dilation_w = s.dilation_w;
    p.pad_top = s.pad_top;
    p.pad_bottom = s.pad_bottom;
    p.pad_left = s.pad_left;
    p.pad_right = s.pad_right;
    p.groups = s.groups;
    derive_output_size(p);
    for (const Data data : {Data::integers, Data::dyadic}) {
      SCOPED_TRACE(test::describe(p) + " [" + to_string(data) + "]; " + test::repro_hint());
      // The shape is the point here, so cancelling data is redrawn instead of the problem.
      Case c(p, data, rng);
      for (int attempt = 0; attempt < 20 && degenerate(c); ++attempt) c = Case(p, data, rng);
      double worst = 0.0;
      check_case(c, data, rng, worst);
    }
  }
}

}  // namespace
}  // namespace convgrad
