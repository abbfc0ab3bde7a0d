// SPDX-License-Identifier: Apache-2.0
// Layer files: the shared benchmark list read from disk, and malformed text refused with the
// file, line and column in the message.
#include "core/layer_csv.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "convgrad/errors.hpp"

namespace convgrad::core {
namespace {

// CONVGRAD_SHARED_DIR wins; otherwise the shared folder sits beside the source tree
// (this file is <source>/tests/unit/layer_csv_test.cpp).
std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("CONVGRAD_SHARED_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  const std::filesystem::path source_dir =
      std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  return source_dir / ".." / "shared";
}

struct Expected {
  std::int64_t p, q;
  std::int32_t stride, pad, dilation, groups;
};

TEST(LayerCsv, SharedLayerFileDerivesOutputSizes) {
  const std::filesystem::path path = shared_dir() / "bench" / "layers-cpu.csv";
  if (!std::filesystem::exists(path)) {
    GTEST_SKIP() << path << " not found; set CONVGRAD_SHARED_DIR";
  }
  const std::vector<NamedProblem> layers = read_layer_csv(path.string());
  ASSERT_EQ(layers.size(), 12u);
  std::map<std::string, ConvProblem> by_name;
  for (const NamedProblem& layer : layers) by_name[layer.name] = layer.problem;
  ASSERT_EQ(by_name.size(), layers.size());

  // Worked by hand: P = (H + 2 pad - ((R - 1) dil + 1)) / stride + 1.
  const std::map<std::string, Expected> expected = {
      {"resnet50_conv1", {112, 112, 2, 3, 1, 1}},           // (224 + 6 - 7) / 2 + 1
      {"resnet50_res2_3x3", {56, 56, 1, 1, 1, 1}},          // 56 + 2 - 3 + 1
      {"resnet50_res3_3x3_s2", {28, 28, 2, 1, 1, 1}},       // (56 + 2 - 3) / 2 + 1
      {"resnet50_res5_1x1_reduce", {7, 7, 1, 0, 1, 1}},     // 7 - 1 + 1
      {"deeplab_aspp_dilated", {65, 65, 1, 6, 6, 1}},       // 65 + 12 - 13 + 1
      {"resnext50_grouped_3x3", {28, 28, 1, 1, 1, 32}},     // 28 + 2 - 3 + 1
      {"mobilenetv2_depthwise_s2", {56, 56, 2, 1, 1, 96}},  // (112 + 2 - 3) / 2 + 1
      {"lenet_small", {28, 28, 1, 2, 1, 1}},                // 28 + 4 - 5 + 1
  };
  for (const auto& [name, want] : expected) {
    SCOPED_TRACE(name);
    ASSERT_EQ(by_name.count(name), 1u);
    const ConvProblem& got = by_name[name];
    EXPECT_EQ(got.p, want.p);
    EXPECT_EQ(got.q, want.q);
    EXPECT_EQ(got.stride_h, want.stride);
    EXPECT_EQ(got.stride_w, want.stride);
    EXPECT_EQ(got.pad_top, want.pad);
    EXPECT_EQ(got.pad_bottom, want.pad);
    EXPECT_EQ(got.pad_left, want.pad);
    EXPECT_EQ(got.pad_right, want.pad);
    EXPECT_EQ(got.dilation_h, want.dilation);
    EXPECT_EQ(got.dilation_w, want.dilation);
    EXPECT_EQ(got.groups, want.groups);
  }
  const ConvProblem& conv1 = by_name["resnet50_conv1"];
  EXPECT_EQ(conv1.n, 2);
  EXPECT_EQ(conv1.h, 224);
  EXPECT_EQ(conv1.w, 224);
  EXPECT_EQ(conv1.c, 3);
  EXPECT_EQ(conv1.k, 64);
  EXPECT_EQ(conv1.r, 7);
  EXPECT_EQ(conv1.s, 7);
  // Every layer keeps the file's order and derives P and Q consistently with the header rule.
  EXPECT_EQ(layers.front().name, "resnet50_conv1");
  EXPECT_EQ(layers.back().name, "lenet_small");
  for (const NamedProblem& layer : layers) {
    ConvProblem copy = layer.problem;
    derive_output_size(copy);
    EXPECT_EQ(copy, layer.problem) << layer.name;
  }
}

TEST(LayerCsv, CommentsBlankLinesCrlfAndHeaderAreSkipped) {
  const std::string text =
      "name,N,H,W,C,K,R,S,stride_h,stride_w,pad_h,pad_w,dil_h,dil_w,groups\r\n"
      "# a comment\r\n"
      "\r\n"
      "   \n"
      "  a , 1, 8, 10, 4, 6, 3, 5, 1, 2, 1, 2, 1, 1, 2 \r\n"
      "b,3,7,7,16,16,1,1,1,1,0,0,1,1,1";  // no final newline
  const std::vector<NamedProblem> layers = parse_layer_csv(text, "inline.csv");
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0].name, "a");
  const ConvProblem& a = layers[0].problem;
  EXPECT_EQ(a.n, 1);
  EXPECT_EQ(a.h, 8);
  EXPECT_EQ(a.w, 10);
  EXPECT_EQ(a.c, 4);
  EXPECT_EQ(a.k, 6);
  EXPECT_EQ(a.r, 3);
  EXPECT_EQ(a.s, 5);
  EXPECT_EQ(a.stride_h, 1);
  EXPECT_EQ(a.stride_w, 2);
  EXPECT_EQ(a.pad_top, 1);
  EXPECT_EQ(a.pad_left, 2);
  EXPECT_EQ(a.groups, 2);
  EXPECT_EQ(a.p, 8);  // 8 + 2 - 3 + 1
  EXPECT_EQ(a.q, 5);  // (10 + 4 - 5) / 2 + 1
  EXPECT_EQ(layers[1].name, "b");
  EXPECT_EQ(layers[1].problem.p, 7);
}

TEST(LayerCsv, FloorDivisionForOutputSize) {
  // (9 + 0 - 2) / 2 + 1 = 4 (floor of 3.5).
  const auto layers = parse_layer_csv("odd,1,9,9,1,1,2,2,2,2,0,0,1,1,1\n", "odd.csv");
  ASSERT_EQ(layers.size(), 1u);
  EXPECT_EQ(layers[0].problem.p, 4);
  EXPECT_EQ(layers[0].problem.q, 4);
}

struct BadRow {
  const char* row;
  const char* where;  // the text the message must hold after "bad.csv:3: "
};

void PrintTo(const BadRow& bad, std::ostream* os) { *os << bad.row; }

class LayerCsvError : public testing::TestWithParam<BadRow> {};

TEST_P(LayerCsvError, NamesFileLineAndColumn) {
  const BadRow bad = GetParam();
  // Two lines before the bad row, so the line number is not trivially 1.
  const std::string text =
      std::string("# header\ngood,1,8,8,1,1,3,3,1,1,1,1,1,1,1\n") + bad.row + "\n";
  try {
    (void)parse_layer_csv(text, "bad.csv");
    FAIL() << "accepted " << bad.row;
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(std::string("bad.csv:3: ") + bad.where, 0), 0u) << message;
  }
}

const BadRow kBadRows[] = {
    {"x,1,8,8,1,1,3,3,1,1,1,1,1,1", "column 15 (groups): missing"},
    {"x,1,8,8,1,1,3,3,1,1,1,1,1,1,1,7", "column 16: unexpected extra column"},
    {"x", "column 2 (N): missing"},
    {",1,8,8,1,1,3,3,1,1,1,1,1,1,1", "column 1 (name): empty layer name"},
    {"good,1,8,8,1,1,3,3,1,1,1,1,1,1,1", "column 1 (name): layer 'good' already defined"},
    {"x,1,8,abc,1,1,3,3,1,1,1,1,1,1,1", "column 4 (W): 'abc' is not an integer"},
    {"x,1,8,8.5,1,1,3,3,1,1,1,1,1,1,1", "column 4 (W): '8.5' is not an integer"},
    {"x,1,8,8,,1,3,3,1,1,1,1,1,1,1", "column 5 (C): '' is not an integer"},
    {"x,1,8,8,1,1,3,3,1,1,1,1,1,1,+1", "column 15 (groups): '+1' is not an integer"},
    {"x,0,8,8,1,1,3,3,1,1,1,1,1,1,1", "column 2 (N): value 0 must be positive"},
    {"x,1,8,8,1,-4,3,3,1,1,1,1,1,1,1", "column 6 (K): value -4 must be positive"},
    {"x,1,8,8,1,1,3,3,0,1,1,1,1,1,1", "column 9 (stride_h): value 0 must be positive"},
    {"x,1,8,8,1,1,3,3,1,1,-1,1,1,1,1", "column 11 (pad_h): value -1 must be non-negative"},
    {"x,1,8,8,1,1,3,3,1,1,1,1,1,0,1", "column 14 (dil_w): value 0 must be positive"},
    {"x,1,8,8,1,1,3,3,1,1,1,1,1,1,0", "column 15 (groups): value 0 must be positive"},
    {"x,1,8,8,1,1,3,3,2147483648,1,1,1,1,1,1", "column 9 (stride_h): '2147483648' is out of range"},
    {"x,99999999999999999999,8,8,1,1,3,3,1,1,1,1,1,1,1",
     "column 2 (N): '99999999999999999999' is out of range"},
    {"x,1,2,8,1,1,5,3,1,1,0,1,1,1,1", "column 7 (R): the dilated kernel"},
    {"x,1,8,8,1,1,3,3,1,1,1,1,1,5,1", "column 8 (S): the dilated kernel"},
};

INSTANTIATE_TEST_SUITE_P(LayerCsv, LayerCsvError, testing::ValuesIn(kBadRows));

TEST(LayerCsv, MissingFileIsFormatError) {
  const std::string path = "/nonexistent/convgrad/layers.csv";
  try {
    (void)read_layer_csv(path);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)read_layer_csv(testing::TempDir()), FormatError);  // a directory
}

TEST(LayerCsv, FileWithoutLayersIsFormatError) {
  const std::filesystem::path path =
      std::filesystem::path(testing::TempDir()) / "convgrad_layer_csv_empty.csv";
  {
    std::FILE* file = std::fopen(path.c_str(), "wb");
    ASSERT_NE(file, nullptr);
    std::fputs("# only a comment\n\n", file);
    std::fclose(file);
  }
  EXPECT_THROW((void)read_layer_csv(path.string()), FormatError);
  std::filesystem::remove(path);
  EXPECT_TRUE(parse_layer_csv("# only a comment\n", "text").empty());
}

}  // namespace
}  // namespace convgrad::core
