// SPDX-License-Identifier: Apache-2.0
// Padding policies: every row of mps-reference.md §7.3's worked table, through Padding::resolve
// and through a real forward + gradient encode (the gradient kernel's automatic offsets), plus
// the policy variants the table does not cover.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "api/api_support.hpp"

namespace convgrad {
namespace {

using apitest::close;
using apitest::Pads;

// One row of the §7.3 table, copied by hand: the test must not derive these numbers.
struct Row {
  const char* name;
  std::int64_t src, k, s, d;
  Padding padding;
  std::int64_t dest, before, after, offset, kernel_offset, secondary_offset;
};

std::vector<Row> table() {
  const Padding tl;  // MPS default: AlignCentered | AddRemainderToTopLeft | SizeSame
  const Padding br = Padding::tensorflow_same();
  return {
      {"src5_k3_s1_same_tl", 5, 3, 1, 1, tl, 5, 1, 1, 0, 0, -1},
      {"src6_k3_s2_same_tl", 6, 3, 2, 1, tl, 3, 1, 0, 0, 0, -1},
      {"src6_k3_s2_same_br", 6, 3, 2, 1, br, 3, 0, 1, 1, -1, 0},
      {"src5_k2_s1_same_tl", 5, 2, 1, 1, tl, 5, 1, 0, 0, 1, -1},
      {"src5_k2_s1_same_br", 5, 2, 1, 1, br, 5, 0, 1, 1, 0, 0},
      {"src7_k3_s2_valid", 7, 3, 2, 1, Padding::valid_only(), 3, 0, 0, 1, -1, 0},
      {"src5_k3_s1_full", 5, 3, 1, 1, Padding::full(), 7, 2, 2, -1, 1, -2},
      {"src7_k3_s1_d2_same_tl", 7, 3, 1, 2, tl, 7, 2, 2, 0, 0, -2},
      {"src28_k5_s1_same_tl_mnist", 28, 5, 1, 1, tl, 28, 2, 2, 0, 0, -2},
  };
}

std::int64_t dilated(const Row& row) { return (row.k - 1) * row.d + 1; }

class PaddingTable : public ::testing::TestWithParam<Row> {};

TEST_P(PaddingTable, ResolveGivesSizePadsAndOffsetOnEachAxis) {
  const Row& row = GetParam();
  // The row on one axis, a neutral 1-tap stride-1 axis on the other: the axes must not mix.
  const ConvolutionGeometry gy = row.padding.resolve(row.src, 9, dilated(row), 1, row.s, 1);
  EXPECT_EQ(gy.output_height, row.dest);
  EXPECT_EQ(gy.pads.top, row.before);
  EXPECT_EQ(gy.pads.bottom, row.after);
  EXPECT_EQ(gy.offset_y, row.offset);
  EXPECT_EQ(gy.output_width, 9);
  EXPECT_EQ(gy.pads.left, 0);
  EXPECT_EQ(gy.pads.right, 0);
  EXPECT_EQ(gy.offset_x, 0);

  const ConvolutionGeometry gx = row.padding.resolve(9, row.src, 1, dilated(row), 1, row.s);
  EXPECT_EQ(gx.output_width, row.dest);
  EXPECT_EQ(gx.pads.left, row.before);
  EXPECT_EQ(gx.pads.right, row.after);
  EXPECT_EQ(gx.offset_x, row.offset);
  EXPECT_EQ(gx.output_height, 9);
  EXPECT_EQ(gx.pads.top, 0);
  EXPECT_EQ(gx.pads.bottom, 0);
  EXPECT_EQ(gx.offset_y, 0);

  // The independent restatement used by the other tests agrees with the table too.
  const Pads pads = apitest::expected_pads(row.padding, row.src, row.src, dilated(row),
                                           dilated(row), row.s, row.s);
  EXPECT_EQ(pads.top, row.before);
  EXPECT_EQ(pads.bottom, row.after);
}

// Runs forward + gradient for a layer whose height axis follows row `ry` and width axis row `rx`
// (same padding policy), and checks the gradient kernel's automatic offsets and all results.
void check_encode(const Row& ry, const Row& rx, std::uint64_t salt) {
  ASSERT_EQ(ry.padding, rx.padding);
  auto rng = test::make_rng(salt);
  const Device device = Device::cpu();
  ConvolutionDescriptor d(rx.k, ry.k, 2, 3);
  d.set_stride_in_pixels_y(ry.s);
  d.set_stride_in_pixels_x(rx.s);
  d.set_dilation_rate_y(ry.d);
  d.set_dilation_rate_x(rx.d);
  const apitest::Layer layer = apitest::make_layer(d, rng);
  Convolution convolution(device, layer.source);
  convolution.set_padding(ry.padding);
  ConvolutionGradient gradient(device, layer.source);
  // Stale values that the automatic offsets must overwrite.
  gradient.set_kernel_offset_x(77);
  gradient.set_kernel_offset_y(-77);
  gradient.set_secondary_offset({55, -55, 0});
  gradient.reset_offsets();

  std::vector<float> x_values, dy_values;
  const Image x =
      apitest::random_image(device, 2, ry.src, rx.src, 2, DataType::float32, rng, &x_values);
  CommandQueue queue = device.new_command_queue();
  CommandBuffer forward = queue.command_buffer();
  ConvolutionGradientState state;
  const Image y = convolution.encode(forward, x, state);
  forward.commit();
  forward.wait();
  ASSERT_EQ(y.height(), ry.dest);
  ASSERT_EQ(y.width(), rx.dest);
  EXPECT_EQ(convolution.offset().y, ry.offset);
  EXPECT_EQ(convolution.offset().x, rx.offset);
  EXPECT_EQ(state.geometry().offset_y, ry.offset);
  EXPECT_EQ(state.geometry().offset_x, rx.offset);

  const Image dy =
      apitest::random_image(device, 2, ry.dest, rx.dest, 3, DataType::float32, rng, &dy_values);
  CommandBuffer backward = queue.command_buffer();
  const Image dx = gradient.encode(backward, dy, x, state);
  backward.commit();
  backward.wait();
  EXPECT_EQ(gradient.kernel_offset_y(), ry.kernel_offset);
  EXPECT_EQ(gradient.kernel_offset_x(), rx.kernel_offset);
  EXPECT_EQ(gradient.secondary_offset().y, ry.secondary_offset);
  EXPECT_EQ(gradient.secondary_offset().x, rx.secondary_offset);
  EXPECT_EQ(gradient.primary_offset(), (Offset{0, 0, 0}));

  // The table's pads, not the library's, define the reference problem.
  const ConvProblem p =
      apitest::layer_problem(d, 2, ry.src, rx.src, {ry.before, rx.before, ry.after, rx.after});
  ASSERT_EQ(p.p, ry.dest);
  ASSERT_EQ(p.q, rx.dest);
  EXPECT_TRUE(close(y.read(), apitest::ref_fprop(p, x_values, layer.weights, layer.biases), 1e-5));
  EXPECT_TRUE(close(dx.read(), apitest::ref_dgrad(p, dy_values, layer.weights), 1e-5));
  const apitest::WeightGradients g = apitest::ref_wgrad(p, x_values, dy_values);
  const std::span<const float> dw = std::as_const(state).gradient_for_weights();
  const std::span<const float> db = std::as_const(state).gradient_for_biases();
  EXPECT_TRUE(close({dw.begin(), dw.end()}, g.dw, 1e-5));
  EXPECT_TRUE(close({db.begin(), db.end()}, g.db, 1e-5));
}

TEST_P(PaddingTable, GradientEncodeSetsTheTableOffsets) {
  check_encode(GetParam(), GetParam(), 101);
}

INSTANTIATE_TEST_SUITE_P(MpsReference73, PaddingTable, ::testing::ValuesIn(table()),
                         [](const ::testing::TestParamInfo<Row>& param_info) {
                           return std::string(param_info.param.name);
                         });

TEST(PaddingPolicy, GradientOffsetsAreIndependentPerAxis) {
  // Every ordered pair of distinct rows that share a policy: height from one, width from the other.
  const std::vector<Row> rows = table();
  int pairs = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    for (std::size_t j = 0; j < rows.size(); ++j) {
      if (i == j || !(rows[i].padding == rows[j].padding)) continue;
      SCOPED_TRACE(std::string("height ") + rows[i].name + ", width " + rows[j].name);
      check_encode(rows[i], rows[j], 200 + i * 16 + j);
      ++pairs;
    }
  }
  EXPECT_GE(pairs, 20);
}

// TensorFlow SAME per axis: the pad total is never negative and the odd pixel goes after.
struct TfAxis {
  std::int64_t dest, before, after;
};
TfAxis tensorflow_same(std::int64_t src, std::int64_t k, std::int64_t s) {
  const std::int64_t dest = (src + s - 1) / s;
  const std::int64_t total = std::max<std::int64_t>((dest - 1) * s + k - src, 0);
  return {dest, total / 2, total - total / 2};
}

TEST(PaddingPolicy, BottomRightEqualsTensorflowSameWhenExtraIsNotNegative) {
  int compared = 0;
  for (std::int64_t src = 1; src <= 19; ++src) {
    for (std::int64_t k = 1; k <= 6; ++k) {
      for (std::int64_t s = 1; s <= 3; ++s) {
        const std::int64_t dest = (src + s - 1) / s;
        if ((dest - 1) * s + k - src < 0) continue;
        const TfAxis tf = tensorflow_same(src, k, s);
        const ConvolutionGeometry g = Padding::tensorflow_same().resolve(src, src, k, k, s, s);
        ASSERT_EQ(g.output_height, tf.dest) << src << " " << k << " " << s;
        ASSERT_EQ(g.pads.top, tf.before) << src << " " << k << " " << s;
        ASSERT_EQ(g.pads.bottom, tf.after) << src << " " << k << " " << s;
        ASSERT_EQ(g.pads.left, tf.before) << src << " " << k << " " << s;
        ASSERT_EQ(g.pads.right, tf.after) << src << " " << k << " " << s;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 300);
}

// src = 3, K = 1, s = 3: the read region (1 pixel) is smaller than the source. MPS centres it
// (BottomRight: offset 1) where TensorFlow starts at 0; the MPS default (TopLeft) also reads 0.
TEST(PaddingPolicy, StrideLargerThanWindowCentresUnlikeTensorflow) {
  const ConvolutionGeometry br = Padding::tensorflow_same().resolve(3, 3, 1, 1, 3, 3);
  EXPECT_EQ(br.output_height, 1);
  EXPECT_EQ(br.offset_y, 1);
  EXPECT_EQ(br.offset_x, 1);
  EXPECT_EQ(br.pads, (ExplicitPadding{-1, -1, -1, -1}));
  const TfAxis tf = tensorflow_same(3, 1, 3);
  EXPECT_EQ(tf.before, 0);  // TF's offset would be 0: the two disagree
  EXPECT_NE(br.offset_y, tf.before);

  const ConvolutionGeometry tl = Padding().resolve(3, 3, 1, 1, 3, 3);
  EXPECT_EQ(tl.output_height, 1);
  EXPECT_EQ(tl.offset_y, 0);
  EXPECT_EQ(tl.offset_x, 0);
  EXPECT_EQ(tl.pads, (ExplicitPadding{0, 0, -2, -2}));

  // The forward pass reads the pixel the offset names: identity weight, no bias.
  auto rng = test::make_rng(300);
  const Device device = Device::cpu();
  ConvolutionDescriptor d(1, 1, 1, 1);
  d.set_stride_in_pixels_x(3);
  d.set_stride_in_pixels_y(3);
  d.set_bias_enabled(false);
  auto source = std::make_shared<MemoryConvolutionDataSource>(d, std::vector<float>{1.0f});
  std::vector<float> x_values;
  const Image x = apitest::random_image(device, 1, 3, 3, 1, DataType::float32, rng, &x_values);
  CommandQueue queue = device.new_command_queue();
  for (const bool centred : {false, true}) {
    Convolution convolution(device, source);
    if (centred) convolution.set_padding(Padding::tensorflow_same());
    CommandBuffer buffer = queue.command_buffer();
    const Image y = convolution.encode(buffer, x);
    buffer.commit();
    buffer.wait();
    ASSERT_EQ(y.height(), 1);
    ASSERT_EQ(y.width(), 1);
    EXPECT_EQ(y.read()[0], x_values[centred ? 4 : 0]) << "centred " << centred;
  }
}

TEST(PaddingPolicy, RemainderSidesActPerAxis) {
  // src 5, K 2, stride 1: one pixel of padding to place on each axis.
  const PaddingMethod same_centred = PaddingMethod::size_same | PaddingMethod::align_centered;
  struct Case {
    PaddingMethod remainder;
    ExplicitPadding pads;  // top, left, bottom, right
  };
  const Case cases[] = {
      {PaddingMethod::add_remainder_to_top_left, {1, 1, 0, 0}},
      {PaddingMethod::add_remainder_to_top_right, {1, 0, 0, 1}},
      {PaddingMethod::add_remainder_to_bottom_left, {0, 1, 1, 0}},
      {PaddingMethod::add_remainder_to_bottom_right, {0, 0, 1, 1}},
  };
  for (const Case& c : cases) {
    const Padding padding(same_centred | c.remainder);
    SCOPED_TRACE(padding.label());
    const ConvolutionGeometry g = padding.resolve(5, 5, 2, 2, 1, 1);
    EXPECT_EQ(g.output_height, 5);
    EXPECT_EQ(g.output_width, 5);
    EXPECT_EQ(g.pads, c.pads);
    EXPECT_EQ(g.offset_y, 1 - c.pads.top);
    EXPECT_EQ(g.offset_x, 1 - c.pads.left);
  }
  // With an even extra there is no remainder: every variant centres.
  for (const Case& c : cases) {
    const ConvolutionGeometry g = Padding(same_centred | c.remainder).resolve(5, 5, 3, 3, 1, 1);
    EXPECT_EQ(g.pads, (ExplicitPadding{1, 1, 1, 1}));
  }
}

TEST(PaddingPolicy, AlignmentPutsAllPaddingOnOneSide) {
  // src 5, K 3, stride 1, same: two pixels of padding per axis.
  const Padding top_left(PaddingMethod::size_same | PaddingMethod::align_top_left);
  const Padding bottom_right(PaddingMethod::size_same | PaddingMethod::align_bottom_right);
  const ConvolutionGeometry a = top_left.resolve(5, 5, 3, 3, 1, 1);
  EXPECT_EQ(a.output_height, 5);
  EXPECT_EQ(a.pads, (ExplicitPadding{2, 2, 0, 0}));
  EXPECT_EQ(a.offset_y, -1);
  EXPECT_EQ(a.offset_x, -1);
  const ConvolutionGeometry b = bottom_right.resolve(5, 5, 3, 3, 1, 1);
  EXPECT_EQ(b.pads, (ExplicitPadding{0, 0, 2, 2}));
  EXPECT_EQ(b.offset_y, 1);
  EXPECT_EQ(b.offset_x, 1);
  // Alignment overrides the remainder side.
  const Padding top_left_br(PaddingMethod::size_same | PaddingMethod::align_top_left |
                            PaddingMethod::add_remainder_to_bottom_right);
  EXPECT_EQ(top_left_br.resolve(6, 6, 3, 3, 2, 2).pads, (ExplicitPadding{1, 1, 0, 0}));
  const Padding bottom_right_tl(PaddingMethod::size_same | PaddingMethod::align_bottom_right);
  EXPECT_EQ(bottom_right_tl.resolve(6, 6, 3, 3, 2, 2).pads, (ExplicitPadding{0, 0, 1, 1}));
}

TEST(PaddingPolicy, ExplicitPadsResolveAndDriveTheForwardPass) {
  const Padding padding = Padding::explicit_pads(1, 2, 0, 2);
  EXPECT_TRUE(padding.is_explicit());
  EXPECT_EQ(padding.pads(), (ExplicitPadding{1, 2, 0, 2}));
  const ConvolutionGeometry g = padding.resolve(6, 7, 3, 3, 1, 2);
  EXPECT_EQ(g.output_height, 5);  // (6 + 1 + 0 - 3) / 1 + 1
  EXPECT_EQ(g.output_width, 5);   // (7 + 2 + 2 - 3) / 2 + 1
  EXPECT_EQ(g.pads, (ExplicitPadding{1, 2, 0, 2}));
  EXPECT_EQ(g.offset_y, 0);
  EXPECT_EQ(g.offset_x, -1);
  // (7 + 2 + 1 - 3) / 2 + 1: the division floors.
  EXPECT_EQ(Padding::explicit_pads(1, 2, 0, 1).resolve(6, 7, 3, 3, 1, 2).output_width, 4);
  EXPECT_THROW((void)Padding::explicit_pads(0, 0, 0, 0).resolve(2, 5, 3, 3, 1, 1), InvalidArgument);
  // A pad as large as the kernel would make whole windows read only padding.
  try {
    (void)Padding::explicit_pads(1, 2, 0, 3).resolve(6, 7, 3, 3, 1, 2);
    ADD_FAILURE() << "a pad of the kernel's extent was accepted";
  } catch (const InvalidArgument& error) {
    EXPECT_EQ(error.parameter(), "padding.right");
  }

  auto rng = test::make_rng(301);
  const Device device = Device::cpu();
  ConvolutionDescriptor d(3, 3, 2, 3);
  d.set_stride_in_pixels_x(2);
  const apitest::Layer layer = apitest::make_layer(d, rng);
  Convolution convolution(device, layer.source);
  convolution.set_padding(padding);
  ConvolutionGradient gradient(device, layer.source);
  std::vector<float> x_values, dy_values;
  const Image x = apitest::random_image(device, 1, 6, 7, 2, DataType::float32, rng, &x_values);
  CommandQueue queue = device.new_command_queue();
  CommandBuffer buffer = queue.command_buffer();
  ConvolutionGradientState state;
  const Image y = convolution.encode(buffer, x, state);
  ASSERT_EQ(y.height(), 5);
  ASSERT_EQ(y.width(), 5);
  const Image dy = apitest::random_image(device, 1, 5, 5, 3, DataType::float32, rng, &dy_values);
  const Image dx = gradient.encode(buffer, dy, x, state);
  buffer.commit();
  buffer.wait();
  EXPECT_EQ(gradient.kernel_offset_y(), 0);  // -offset_y + 0
  EXPECT_EQ(gradient.kernel_offset_x(), 1);  // -offset_x + 0
  EXPECT_EQ(gradient.secondary_offset().y, -1);
  EXPECT_EQ(gradient.secondary_offset().x, -2);
  const ConvProblem p = apitest::layer_problem(d, 1, 6, 7, {1, 2, 0, 2});
  EXPECT_TRUE(close(y.read(), apitest::ref_fprop(p, x_values, layer.weights, layer.biases), 1e-5));
  EXPECT_TRUE(close(dx.read(), apitest::ref_dgrad(p, dy_values, layer.weights), 1e-5));
  const std::span<const float> dw = std::as_const(state).gradient_for_weights();
  EXPECT_TRUE(close({dw.begin(), dw.end()}, apitest::ref_wgrad(p, x_values, dy_values).dw, 1e-5));
}

TEST(PaddingPolicy, InverseSwapsValidAndFullAndKeepsTheRest) {
  EXPECT_EQ(Padding::valid_only().inverse().method(), Padding::full().method());
  EXPECT_EQ(Padding::full().inverse().method(), Padding::valid_only().method());
  EXPECT_EQ(Padding().inverse(), Padding());
  EXPECT_EQ(Padding::tensorflow_same().inverse(), Padding::tensorflow_same());
  const Padding valid_br(PaddingMethod::size_valid_only | PaddingMethod::align_bottom_right |
                         PaddingMethod::add_remainder_to_top_right);
  const Padding full_br(PaddingMethod::size_full | PaddingMethod::align_bottom_right |
                        PaddingMethod::add_remainder_to_top_right);
  EXPECT_EQ(valid_br.inverse(), full_br);
  EXPECT_EQ(full_br.inverse(), valid_br);
  EXPECT_EQ(full_br.inverse().inverse(), full_br);
  const Padding pads = Padding::explicit_pads(1, 0, 2, 1);
  EXPECT_EQ(pads.inverse(), pads);
  // A valid forward pass shrinks 7 -> 5 (K 3); the full inverse grows 5 back to 7.
  EXPECT_EQ(Padding::valid_only().resolve(7, 7, 3, 3, 1, 1).output_height, 5);
  EXPECT_EQ(Padding::valid_only().inverse().resolve(5, 5, 3, 3, 1, 1).output_height, 7);
}

TEST(PaddingPolicy, LabelsNameEveryField) {
  EXPECT_EQ(Padding().label(), "same|centered|remainder_top_left");
  EXPECT_EQ(Padding::tensorflow_same().label(), "same|centered|remainder_bottom_right");
  EXPECT_EQ(Padding::valid_only().label(), "valid|centered|remainder_top_left");
  EXPECT_EQ(Padding::full().label(), "full|centered|remainder_top_left");
  EXPECT_EQ(Padding(PaddingMethod::size_same | PaddingMethod::align_top_left |
                    PaddingMethod::add_remainder_to_top_right)
                .label(),
            "same|top_left|remainder_top_right");
  EXPECT_EQ(Padding(PaddingMethod::size_full | PaddingMethod::align_bottom_right |
                    PaddingMethod::add_remainder_to_bottom_left)
                .label(),
            "full|bottom_right|remainder_bottom_left");
  EXPECT_EQ(Padding::explicit_pads(1, 2, 0, 3).label(), "explicit(1,2,0,3)");
}

TEST(PaddingPolicy, DefaultIsTheMpsDefaultAndMethodValuesMatchMps) {
  EXPECT_EQ(static_cast<std::uint32_t>(Padding().method()), 16u);
  EXPECT_FALSE(Padding().is_explicit());
  EXPECT_EQ(static_cast<std::uint32_t>(Padding::tensorflow_same().method()), 16u | 12u);
  EXPECT_EQ(static_cast<std::uint32_t>(Padding::valid_only().method()), 0u);
  EXPECT_EQ(static_cast<std::uint32_t>(Padding::full().method()), 32u);
  EXPECT_EQ(static_cast<std::uint32_t>(PaddingMethod::add_remainder_to_top_right), 4u);
  EXPECT_EQ(static_cast<std::uint32_t>(PaddingMethod::add_remainder_to_bottom_left), 8u);
  EXPECT_EQ(static_cast<std::uint32_t>(PaddingMethod::align_top_left), 1u);
  EXPECT_EQ(static_cast<std::uint32_t>(PaddingMethod::align_bottom_right), 2u);
  // The gradient kernel's policy is kept for parity and defaults the same way.
  auto rng = test::make_rng(302);
  const apitest::Layer layer = apitest::make_layer(ConvolutionDescriptor(3, 3, 1, 1), rng);
  ConvolutionGradient gradient(Device::cpu(), layer.source);
  EXPECT_EQ(gradient.padding(), Padding());
  gradient.set_padding(Padding::valid_only());
  EXPECT_EQ(gradient.padding(), Padding::valid_only());
}

TEST(PaddingPolicy, ResolveRejectsEmptyOutputsAndReservedValues) {
  EXPECT_THROW(Padding::valid_only().resolve(2, 5, 3, 3, 1, 1), InvalidArgument);
  EXPECT_THROW(Padding::valid_only().resolve(5, 2, 3, 3, 1, 1), InvalidArgument);
  EXPECT_NO_THROW(Padding::valid_only().resolve(3, 3, 3, 3, 1, 1));
  EXPECT_THROW((void)Padding(static_cast<PaddingMethod>(16u | 3u)).resolve(5, 5, 3, 3, 1, 1),
               InvalidArgument);
  EXPECT_THROW((void)Padding(static_cast<PaddingMethod>(48u)).resolve(5, 5, 3, 3, 1, 1),
               InvalidArgument);
}

}  // namespace
}  // namespace convgrad
