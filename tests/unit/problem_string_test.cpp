// SPDX-License-Identifier: Apache-2.0
// Problem strings: benchdnn lines pasted verbatim, canonical printing, round trips, and one
// test per parse error naming the field.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "convgrad/errors.hpp"
#include "convgrad/problem.hpp"

namespace convgrad {
namespace {

// A problem built field by field, so that these tests do not lean on make_problem.
ConvProblem shape(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t k,
                  std::int64_t p, std::int64_t q, std::int64_t r, std::int64_t s) {
  ConvProblem problem;
  problem.n = n;
  problem.c = c;
  problem.h = h;
  problem.w = w;
  problem.k = k;
  problem.p = p;
  problem.q = q;
  problem.r = r;
  problem.s = s;
  return problem;
}

ConvProblem with_pads(ConvProblem problem, std::int32_t top, std::int32_t bottom, std::int32_t left,
                      std::int32_t right) {
  problem.pad_top = top;
  problem.pad_bottom = bottom;
  problem.pad_left = left;
  problem.pad_right = right;
  return problem;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0 && (a < 0) != (b < 0)) ? 1 : 0);
}

// What parse_problem(to_string(p)) must give back: p with the end pads that the output size
// implies (benchdnn's rule).
ConvProblem with_implied_end_pads(ConvProblem problem) {
  problem.pad_bottom = static_cast<std::int32_t>((problem.p - 1) * problem.stride_h +
                                                 problem.dilated_r() - problem.h - problem.pad_top);
  problem.pad_right = static_cast<std::int32_t>((problem.q - 1) * problem.stride_w +
                                                problem.dilated_s() - problem.w - problem.pad_left);
  return problem;
}

TEST(ProblemString, ResnetThreeByThreeVerbatim) {
  const ConvProblem got = parse_problem("mb32ic64ih56oc64kh3ph1");
  const ConvProblem want = with_pads(shape(32, 64, 56, 56, 64, 56, 56, 3, 3), 1, 1, 1, 1);
  EXPECT_EQ(got, want);
}

TEST(ProblemString, GroupedVerbatim) {
  const ConvProblem got = parse_problem("g32mb32ic256ih28oc256kh3ph1");
  ConvProblem want = with_pads(shape(32, 256, 28, 28, 256, 28, 28, 3, 3), 1, 1, 1, 1);
  want.groups = 32;
  EXPECT_EQ(got, want);
}

TEST(ProblemString, StridedWithOutputAndQuotedNameVerbatim) {
  const ConvProblem got = parse_problem("mb2ic3ih224oc64oh112kh7sh2ph3n\"resnet50_conv1\"");
  // oh fixes the bottom pad: (112 - 1) * 2 + 7 - 224 - 3 = 2, one less than the top.
  ConvProblem want = with_pads(shape(2, 3, 224, 224, 64, 112, 112, 7, 7), 3, 2, 3, 2);
  want.stride_h = want.stride_w = 2;
  EXPECT_EQ(got, want);
}

TEST(ProblemString, UnderscoresAndFullWidthFieldsVerbatim) {
  const ConvProblem got =
      parse_problem("mb1_ic3ih300iw300_oc64oh150ow150_kh3kw3_sh2sw2_ph1pw1_n\"ssd_300:conv1_1\"");
  ConvProblem want = with_pads(shape(1, 3, 300, 300, 64, 150, 150, 3, 3), 1, 0, 1, 0);
  want.stride_h = want.stride_w = 2;
  EXPECT_EQ(got, want);
}

TEST(ProblemString, InceptionSevenByOneVerbatim) {
  const ConvProblem got =
      parse_problem("mb32ic768ih17iw17oc128oh17ow17kh7kw1ph3pw0n\"googlenet_v3:conv_7x1\"");
  const ConvProblem want = with_pads(shape(32, 768, 17, 17, 128, 17, 17, 7, 1), 3, 3, 0, 0);
  EXPECT_EQ(got, want);
}

TEST(ProblemString, DilationIsZeroBasedInTheString) {
  const ConvProblem got = parse_problem("mb1ic512ih65oc256kh3ph6dh5");
  EXPECT_EQ(got.dilation_h, 6);
  EXPECT_EQ(got.dilation_w, 6);
  EXPECT_EQ(got.p, 65);
  EXPECT_EQ(got.q, 65);
  EXPECT_EQ(got.pad_bottom, 6);
  EXPECT_EQ(parse_problem("mb1ic8ih9oc8kh3dh0").dilation_h, 1);
}

TEST(ProblemString, DefaultsFollowBenchdnn) {
  const ConvProblem got = parse_problem("ic64ih56oc64kh3");
  EXPECT_EQ(got.n, 2);
  EXPECT_EQ(got.groups, 1);
  EXPECT_EQ(got.w, 56);
  EXPECT_EQ(got.s, 3);
  EXPECT_EQ(got.stride_h, 1);
  EXPECT_EQ(got.stride_w, 1);
  EXPECT_EQ(got.dilation_h, 1);
  EXPECT_EQ(got.dilation_w, 1);
  EXPECT_EQ(got.pad_top, 0);
  EXPECT_EQ(got.pad_left, 0);
  EXPECT_EQ(got.p, 54);
  EXPECT_EQ(got.q, 54);
}

TEST(ProblemString, PadIsDerivedFromGivenOutput) {
  // benchdnn's compute_pad: ((56 - 1) * 1 - 56 + 3) / 2 = 1.
  const ConvProblem same = parse_problem("ic64ih56oc64oh56kh3");
  EXPECT_EQ(same.pad_top, 1);
  EXPECT_EQ(same.pad_bottom, 1);
  EXPECT_EQ(same.pad_left, 1);
  EXPECT_EQ(same.pad_right, 1);
  // A negative derived pad is clamped to 0; the bottom pad then absorbs the rest.
  const ConvProblem cropped = parse_problem("ic1ih10oc1oh2kh1");
  EXPECT_EQ(cropped.pad_top, 0);
  EXPECT_EQ(cropped.pad_bottom, -8);
  // Strided 1x1 with a given output leaves a negative bottom pad: the last row is unused.
  const ConvProblem strided = parse_problem("mb2ic64ih56oc128oh28kh1sh2ph0");
  EXPECT_EQ(strided.p, 28);
  EXPECT_EQ(strided.pad_bottom, -1);
  EXPECT_EQ(strided.pad_right, -1);
}

TEST(ProblemString, PartialWidthFieldsDefaultPerField) {
  // The form the architecture guide uses in repro commands.
  const ConvProblem got = parse_problem("g1mb3ic17ih7iw9oc13kh3ph1");
  EXPECT_EQ(got.w, 9);
  EXPECT_EQ(got.s, 3);
  EXPECT_EQ(got.pad_left, 1);
  EXPECT_EQ(got.pad_right, 1);
  EXPECT_EQ(got.q, 9);
  const ConvProblem strided = parse_problem("mb1ic4ih9iw12oc4kh3sh2dh1");
  EXPECT_EQ(strided.stride_w, 2);
  EXPECT_EQ(strided.dilation_w, 2);
  EXPECT_EQ(strided.q, 4);  // (12 - 5) / 2 + 1
  // With ow given and no pw, pw is derived from ow, not copied from ph.
  const ConvProblem derived = parse_problem("mb1ic4ih9oc4oh9ow7kh3ph1");
  EXPECT_EQ(derived.pad_left, 0);
  EXPECT_EQ(derived.pad_right, 0);
}

TEST(ProblemString, NamesAndWhitespaceAreIgnored) {
  const ConvProblem want = parse_problem("mb2ic3ih5oc4kh3");
  EXPECT_EQ(parse_problem("  mb2ic3ih5oc4kh3\n"), want);
  EXPECT_EQ(parse_problem("mb2ic3ih5oc4kh3nresnet_50:conv1"), want);
  EXPECT_EQ(parse_problem("mb2ic3ih5oc4kh3_n\"a name with spaces\""), want);
  EXPECT_EQ(parse_problem("_mb2__ic3_ih5_oc4_kh3_"), want);
  EXPECT_EQ(parse_problem("kh3oc4ih5ic3mb2"), want);  // any order
}

TEST(ProblemString, PrintsCanonicalForm) {
  EXPECT_EQ(to_string(parse_problem("mb32ic64ih56oc64kh3ph1")), "mb32ic64ih56oc64oh56kh3ph1");
  EXPECT_EQ(to_string(parse_problem("g32mb32ic256ih28oc256kh3ph1")),
            "g32mb32ic256ih28oc256oh28kh3ph1");
  EXPECT_EQ(to_string(parse_problem("mb2ic3ih224oc64oh112kh7sh2ph3n\"resnet50_conv1\"")),
            "mb2ic3ih224oc64oh112kh7sh2ph3");
  EXPECT_EQ(to_string(parse_problem("mb2ic64ih56oc256kh1")), "mb2ic64ih56oc256oh56kh1");
  EXPECT_EQ(to_string(parse_problem("mb1ic512ih65oc256kh3ph6dh5")),
            "mb1ic512ih65oc256oh65kh3ph6dh5");
  // Any difference across writes every width field benchdnn needs (iw, ow, kw, pw).
  EXPECT_EQ(to_string(parse_problem("g1mb3ic17ih7iw9oc13kh3ph1")),
            "mb3ic17ih7iw9oc13oh7ow9kh3kw3ph1pw1");
  EXPECT_EQ(to_string(parse_problem("mb1ic4ih9iw12oc4kh3sh2dh1")),
            "mb1ic4ih9iw12oc4oh3ow4kh3kw3sh2sw2dh1dw1");
  // A zero pad that the output would not imply is written out.
  EXPECT_EQ(to_string(parse_problem("ic1ih10oc1oh2kh1")), "mb2ic1ih10oc1oh2kh1ph0");
}

TEST(ProblemString, AsymmetricPadSurvivesThroughOutputSize) {
  // Top 1, bottom 2: symmetric padding cannot express it, the output size can.
  ConvProblem problem = with_pads(shape(1, 1, 6, 7, 1, 0, 0, 3, 3), 1, 2, 0, 0);
  problem.stride_h = problem.stride_w = 2;
  derive_output_size(problem);
  ASSERT_EQ(problem.p, 4);
  ASSERT_EQ(problem.q, 3);
  const std::string text = to_string(problem);
  EXPECT_EQ(text, "mb1ic1ih6iw7oc1oh4ow3kh3kw3sh2sw2ph1");
  EXPECT_EQ(parse_problem(text), problem);
}

TEST(ProblemString, NegativePadsRoundTrip) {
  // MPS offsets produce negative pads; the string carries them (a convgrad extension).
  ConvProblem problem = with_pads(shape(1, 2, 9, 9, 2, 0, 0, 3, 3), -1, 0, -2, 1);
  derive_output_size(problem);
  const std::string text = to_string(problem);
  EXPECT_NE(text.find("ph-1"), std::string::npos) << text;
  EXPECT_NE(text.find("pw-2"), std::string::npos) << text;
  EXPECT_EQ(parse_problem(text), with_implied_end_pads(problem));
}

ConvProblem random_problem(std::mt19937_64& rng) {
  const auto uniform = [&rng](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  for (;;) {
    ConvProblem problem;
    const std::int64_t kind = uniform(0, 9);
    problem.groups = kind < 5 ? 1 : static_cast<std::int32_t>(uniform(2, 8));
    problem.c = problem.groups * uniform(1, 8);
    problem.k = kind == 9 ? problem.c : problem.groups * uniform(1, 8);  // 9: depthwise
    if (kind == 9) problem.groups = static_cast<std::int32_t>(problem.c);
    problem.n = uniform(1, 64);
    problem.h = uniform(1, 40);
    problem.r = uniform(1, 7);
    problem.stride_h = static_cast<std::int32_t>(uniform(1, 4));
    problem.dilation_h = static_cast<std::int32_t>(uniform(1, 3));
    problem.pad_top = static_cast<std::int32_t>(uniform(-1, 4));
    problem.pad_bottom = static_cast<std::int32_t>(uniform(-2, 6));
    // Half the problems are square, which prints the short form.
    if (uniform(0, 1) == 0) {
      problem.w = problem.h;
      problem.s = problem.r;
      problem.stride_w = problem.stride_h;
      problem.dilation_w = problem.dilation_h;
      problem.pad_left = problem.pad_top;
      problem.pad_right = problem.pad_bottom;
    } else {
      problem.w = uniform(1, 40);
      problem.s = uniform(1, 7);
      problem.stride_w = static_cast<std::int32_t>(uniform(1, 4));
      problem.dilation_w = static_cast<std::int32_t>(uniform(1, 3));
      problem.pad_left = static_cast<std::int32_t>(uniform(-1, 4));
      problem.pad_right = static_cast<std::int32_t>(uniform(-2, 6));
    }
    problem.p = floor_div(problem.h + problem.pad_top + problem.pad_bottom - problem.dilated_r(),
                          problem.stride_h) +
                1;
    problem.q = floor_div(problem.w + problem.pad_left + problem.pad_right - problem.dilated_s(),
                          problem.stride_w) +
                1;
    if (problem.p >= 1 && problem.q >= 1) return problem;
  }
}

TEST(ProblemString, RandomRoundTrips) {
  constexpr std::uint64_t kSeed = 20240611;
  std::mt19937_64 rng(kSeed);
  int square = 0;
  for (int i = 0; i < 1000; ++i) {
    const ConvProblem problem = random_problem(rng);
    const std::string text = to_string(problem);
    SCOPED_TRACE("seed " + std::to_string(kSeed) + " case " + std::to_string(i) + ": " + text);
    if (text.find("iw") == std::string::npos) ++square;
    ConvProblem parsed;
    ASSERT_NO_THROW(parsed = parse_problem(text));
    EXPECT_EQ(parsed, with_implied_end_pads(problem));
    // Printing is a fixed point once the end pads are the implied ones.
    EXPECT_EQ(to_string(parsed), text);
  }
  EXPECT_GT(square, 100);
  EXPECT_LT(square, 900);
}

TEST(ProblemString, RandomTextIsParsedOrRefused) {
  // Text built from the grammar's own characters: every outcome is a problem that prints and
  // parses back, or an InvalidArgument; nothing else escapes.
  constexpr std::string_view kPieces[] = {"g",  "mb", "ic", "ih", "iw",         "oc", "oh", "ow",
                                          "kh", "kw", "sh", "sw", "ph",         "pw", "dh", "dw",
                                          "id", "n",  "\"", "_",  "-",          " ",  "x",  "0",
                                          "1",  "3",  "7",  "12", "99999999999"};
  std::mt19937_64 rng(99);
  std::uniform_int_distribution<std::size_t> pick(0, std::size(kPieces) - 1);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text = "mb2ic3ih9oc4kh3";  // a valid start, so some results are accepted
    const int pieces = 1 + i % 8;
    for (int j = 0; j < pieces; ++j) text += kPieces[pick(rng)];
    SCOPED_TRACE(text);
    try {
      const ConvProblem problem = parse_problem(text);
      ++accepted;
      EXPECT_EQ(to_string(parse_problem(to_string(problem))), to_string(problem));
    } catch (const InvalidArgument& e) {
      EXPECT_FALSE(e.parameter().empty()) << e.what();
    }
  }
  EXPECT_GT(accepted, 30);
}

TEST(ProblemString, DocumentedExamplesHold) {
  // docs/problem_string.md is the grammar's reference; its example table must stay true.
  const std::filesystem::path doc =
      std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "docs" /
      "problem_string.md";
  std::ifstream in(doc);
  if (!in) GTEST_SKIP() << doc << " not found";
  std::string line;
  bool inside = false;
  int rows = 0;
  while (std::getline(in, line)) {
    if (line.rfind("<!-- examples:begin", 0) == 0) inside = true;
    if (line.rfind("<!-- examples:end", 0) == 0) break;
    if (!inside || line.rfind("| `", 0) != 0) continue;
    const std::size_t a0 = line.find('`');
    const std::size_t a1 = line.find('`', a0 + 1);
    const std::size_t b0 = line.find('`', a1 + 1);
    const std::size_t b1 = line.find('`', b0 + 1);
    ASSERT_NE(b1, std::string::npos) << line;
    const std::string written = line.substr(a0 + 1, a1 - a0 - 1);
    const std::string printed = line.substr(b0 + 1, b1 - b0 - 1);
    EXPECT_EQ(to_string(parse_problem(written)), printed) << written;
    ++rows;
  }
  EXPECT_GE(rows, 10);
}

struct BadString {
  const char* text;
  const char* parameter;
};

void PrintTo(const BadString& bad, std::ostream* os) { *os << bad.text; }

class ProblemStringError : public testing::TestWithParam<BadString> {};

TEST_P(ProblemStringError, NamesTheField) {
  const BadString bad = GetParam();
  try {
    (void)parse_problem(bad.text);
    FAIL() << "accepted " << bad.text;
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.parameter(), bad.parameter) << e.what();
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("parse_problem: ", 0), 0u) << message;
    if (*bad.text != '\0') {
      EXPECT_NE(message.find(std::string("[") + bad.text + "]"), std::string::npos) << message;
    }
  }
}

const BadString kBadStrings[] = {
    // syntax
    {"mb2ic3ih5oc4kh3xy2", "xy"},
    {"mb2ic3ih5oc4kh3q2", "q"},
    {"mb2ic3ih5oc4kh", "kh"},
    {"mbic3ih5oc4kh3", "mb"},
    {"mb2ic3ih5oc4kh3ph-", "ph"},
    {"gmb2ic3ih5oc4kh3", "g"},
    {"mb2ic3ih5oc4kh3kh3", "kh"},
    {"g2g2mb2ic4ih5oc4kh3", "g"},
    {"mb2 ic3ih5oc4kh3", " "},
    {"MB2ic3ih5oc4kh3", "M"},
    {"mb2ic3ih5oc4kh3ph1.5", "."},
    {"mb2ic3ih5oc4kh3n\"unterminated", "n"},
    {"mb2ic3ih5oc4kh3n\"name\"ph1", "n"},
    {"mb2ic3ih5oc4kh3nname ph1", "n"},
    // 3-D fields
    {"mb2ic3id5ih5oc4kh3", "id"},
    {"mb2ic3ih5oc4od3kh3", "od"},
    {"mb2ic3ih5oc4kd3kh3", "kd"},
    {"mb2ic3ih5oc4kh3sd2", "sd"},
    {"mb2ic3ih5oc4kh3pd1", "pd"},
    {"mb2ic3ih5oc4kh3dd1", "dd"},
    // required fields
    {"mb2ih5oc4kh3", "ic"},
    {"mb2ic3ih5kh3", "oc"},
    {"mb2ic3oc4kh3", "ih"},
    {"mb2ic3iw5oc4kw3", "ih"},
    {"mb2ic3ih5oc4", "kh"},
    {"", "ic"},
    // ranges
    {"mb0ic3ih5oc4kh3", "mb"},
    {"mb2ic0ih5oc4kh3", "ic"},
    {"mb2ic3ih0oc4kh3", "ih"},
    {"mb2ic3ih5iw0oc4kh3", "iw"},
    {"mb2ic3ih5oc0kh3", "oc"},
    {"mb2ic3ih5oc4oh0kh3", "oh"},
    {"mb2ic3ih5oc4ow0kh3", "ow"},
    {"mb2ic3ih5oc4kh0", "kh"},
    {"mb2ic3ih5oc4kh3kw0", "kw"},
    {"mb2ic3ih5oc4kh3sh0", "sh"},
    {"mb2ic3ih5oc4kh3sw-1", "sw"},
    {"g0mb2ic3ih5oc4kh3", "g"},
    {"mb-2ic3ih5oc4kh3", "mb"},
    {"mb2ic3ih5oc4kh3dh-1", "dh"},
    {"mb2ic3ih5oc4kh3dw-1", "dw"},
    // overflow
    {"mb99999999999999999999ic3ih5oc4kh3", "mb"},
    {"mb2ic3ih5oc4kh3sh2147483648", "sh"},
    {"g4294967297mb2ic3ih5oc4kh3", "g"},
    {"mb2ic3ih5oc4kh3ph-2147483649", "ph"},
    {"mb2ic3ih5oc4kh3pw3000000000", "pw"},
    {"mb2ic3ih5oc4kh3dh2147483647", "dh"},
    {"mb2ic3ih5oc4oh9223372036854775807kh3", "oh"},
    {"mb2ic3ih5oc4oh4294967296kh3ph0", "oh"},
    // derived output size
    {"mb1ic1ih2oc1kh5", "oh"},
    {"mb1ic1ih4oc1kh3dh1", "oh"},
    {"mb1ic1ih5iw2oc1kh1kw5", "ow"},
};

INSTANTIATE_TEST_SUITE_P(ProblemString, ProblemStringError, testing::ValuesIn(kBadStrings));

TEST(ProblemString, ErrorCarriesValueAndRule) {
  try {
    (void)parse_problem("mb2ic3ih5oc4kh3sh0");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.parameter(), "sh");
    EXPECT_EQ(e.value(), "0");
    EXPECT_EQ(e.rule(), "must be positive");
    EXPECT_STREQ(e.what(), "parse_problem: sh = 0: must be positive [mb2ic3ih5oc4kh3sh0]");
  }
}

}  // namespace
}  // namespace convgrad
