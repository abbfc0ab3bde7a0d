// SPDX-License-Identifier: Apache-2.0
// .npy files: bytes checked against the NumPy format spec, round trips, and every kind of bad
// file refused with FormatError (never a crash or a huge allocation).
#include "core/npy.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "convgrad/errors.hpp"

namespace convgrad::core {
namespace {

class NpyTest : public testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& path : paths_) std::filesystem::remove(path);
  }

  std::string temp_path(const std::string& stem) {
    const std::string path =
        testing::TempDir() + "convgrad_npy_" + stem + "_" + std::to_string(::getpid()) + ".npy";
    paths_.push_back(path);
    return path;
  }

  static std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  std::string write_bytes(const std::string& stem, const std::string& bytes) {
    const std::string path = temp_path(stem);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  // A hand-made file: `header` is padded to a 64-byte boundary unless `pad` is false.
  static std::string npy_bytes(const std::string& header, const std::string& payload, int major = 1,
                               bool pad = true) {
    const std::size_t preamble = major == 1 ? 10 : 12;
    std::string text = header;
    if (pad) {
      while ((preamble + text.size() + 1) % 64 != 0) text += ' ';
      text += '\n';
    }
    std::string bytes("\x93NUMPY", 6);
    bytes += static_cast<char>(major);
    bytes += '\0';
    for (std::size_t i = 0; i < preamble - 8; ++i) {
      bytes += static_cast<char>((text.size() >> (8 * i)) & 0xff);
    }
    return bytes + text + payload;
  }

  static std::string floats(const std::vector<float>& values) {
    std::string bytes(values.size() * 4, '\0');
    std::memcpy(bytes.data(), values.data(), bytes.size());  // x86 and ARM are little-endian
    return bytes;
  }

  void expect_format_error(const std::string& stem, const std::string& bytes,
                           const std::string& fragment) {
    const std::string path = write_bytes(stem, bytes);
    try {
      (void)read_npy(path);
      ADD_FAILURE() << stem << ": accepted";
    } catch (const FormatError& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind(path, 0), 0u) << message;
      EXPECT_NE(message.find(fragment), std::string::npos) << stem << ": " << message;
    }
  }

 private:
  std::vector<std::string> paths_;
};

TEST_F(NpyTest, HeaderFollowsTheSpec) {
  std::vector<float> data(24);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i) * 0.5f - 3.0f;
  const std::string path = temp_path("header");
  write_npy(path, data.data(), {2, 3, 4});
  const std::string bytes = read_bytes(path);

  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 6), std::string("\x93NUMPY", 6));
  EXPECT_EQ(bytes[6], '\x01');  // version 1.0
  EXPECT_EQ(bytes[7], '\x00');
  const std::size_t header_length =
      static_cast<unsigned char>(bytes[8]) |
      (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  EXPECT_EQ((10 + header_length) % 64, 0u);
  ASSERT_EQ(bytes.size(), 10 + header_length + data.size() * 4);
  const std::string header = bytes.substr(10, header_length);
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }";
  EXPECT_EQ(header.substr(0, dict.size()), dict);
  EXPECT_EQ(header.back(), '\n');
  EXPECT_EQ(header.find_first_not_of(' ', dict.size()), header_length - 1);
  EXPECT_EQ(bytes.substr(10 + header_length), floats(data));
}

TEST_F(NpyTest, OneAndZeroDimensionalShapes) {
  const float values[5] = {1, 2, 3, 4, 5};
  const std::string one_d = temp_path("one_d");
  write_npy(one_d, values, {5});
  EXPECT_NE(read_bytes(one_d).find("'shape': (5,), }"), std::string::npos);
  EXPECT_EQ(read_npy(one_d).shape, std::vector<std::int64_t>{5});

  const std::string scalar = temp_path("scalar");
  write_npy(scalar, values, {});
  EXPECT_NE(read_bytes(scalar).find("'shape': (), }"), std::string::npos);
  const NpyArray array = read_npy(scalar);
  EXPECT_TRUE(array.shape.empty());
  EXPECT_EQ(array.data, std::vector<float>{1});

  const std::string empty = temp_path("empty");
  write_npy(empty, nullptr, {0, 3});
  const NpyArray none = read_npy(empty);
  EXPECT_EQ(none.shape, (std::vector<std::int64_t>{0, 3}));
  EXPECT_TRUE(none.data.empty());
}

TEST_F(NpyTest, RoundTripIsBitExact) {
  std::vector<float> data = {0.0f,
                             -0.0f,
                             1.0f,
                             -1.5f,
                             std::numeric_limits<float>::infinity(),
                             -std::numeric_limits<float>::infinity(),
                             std::numeric_limits<float>::quiet_NaN(),
                             std::numeric_limits<float>::denorm_min(),
                             std::numeric_limits<float>::max(),
                             1e-30f,
                             3.14159f,
                             42.0f};
  const std::string path = temp_path("round_trip");
  write_npy(path, data.data(), {1, 3, 2, 2});
  const NpyArray array = read_npy(path);
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{1, 3, 2, 2}));
  ASSERT_EQ(array.data.size(), data.size());
  EXPECT_EQ(std::memcmp(array.data.data(), data.data(), data.size() * 4), 0);
}

TEST_F(NpyTest, ReadsHeadersNumpyMayWrite) {
  const std::string payload = floats({1, 2, 3, 4, 5, 6});
  // Other key order, double quotes, no trailing comma, 16-byte alignment (NumPy < 1.14).
  const std::string odd =
      npy_bytes("{\"shape\": (3, 2), \"fortran_order\": False, \"descr\": \"<f4\"}            \n",
                payload, 1, false);
  const NpyArray a = read_npy(write_bytes("odd", odd));
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{3, 2}));
  EXPECT_EQ(a.data, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  // Version 2.0 (32-bit header length), and Python 2 longs.
  const std::string v2 =
      npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (6L,), }", payload, 2);
  EXPECT_EQ(read_npy(write_bytes("v2", v2)).shape, std::vector<std::int64_t>{6});
}

TEST_F(NpyTest, RefusesWrongContent) {
  const std::string payload = floats({1, 2, 3, 4});
  const auto with = [&](const std::string& dict) { return npy_bytes(dict, payload); };
  expect_format_error("magic", std::string("\x93NUMPZ\x01\x00\x00\x00", 10), "bad magic");
  expect_format_error(
      "version3",
      npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", payload, 3),
      "version 3.0");
  expect_format_error("big_endian",
                      with("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }"), "'>f4'");
  expect_format_error("double", with("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }"),
                      "'<f8'");
  expect_format_error("fortran", with("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }"),
                      "Fortran");
  expect_format_error("no_comma", with("{'descr': '<f4', 'fortran_order': False, 'shape': (4), }"),
                      "trailing comma");
  expect_format_error("missing_key", with("{'descr': '<f4', 'shape': (4,), }"), "needs");
  expect_format_error("extra_key",
                      with("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}"),
                      "unexpected key");
  expect_format_error(
      "twice", with("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}"),
      "given twice");
  expect_format_error("negative",
                      with("{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }"),
                      "non-negative integer");
  expect_format_error("not_dict", with("['descr', '<f4']"), "expected '{'");
  expect_format_error("junk", with("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), } x"),
                      "after the closing brace");
  expect_format_error("short_data",
                      with("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"),
                      "needs 20 data bytes but the file holds 16");
  expect_format_error("long_data",
                      with("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"),
                      "needs 12 data bytes but the file holds 16");
  // Shapes whose size a naive reader would allocate before noticing the file is tiny.
  expect_format_error("huge",
                      with("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"),
                      "data bytes");
  expect_format_error("overflow",
                      with("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (4294967296, 4294967296), }"),
                      "overflows");
  expect_format_error("long_dim",
                      with("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (99999999999999999999,), }"),
                      "overflows");
  // A header length that points past the end of the file.
  std::string past = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", "");
  past[8] = '\xff';
  past[9] = '\xff';
  expect_format_error("header_past_end", past, "truncated");
}

TEST_F(NpyTest, EveryTruncationIsFormatError) {
  const float values[3] = {1, 2, 3};
  const std::string path = temp_path("source");
  write_npy(path, values, {3});
  const std::string bytes = read_bytes(path);
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    const std::string cut = write_bytes("cut", bytes.substr(0, size));
    EXPECT_THROW((void)read_npy(cut), FormatError) << "size " << size;
  }
}

TEST_F(NpyTest, CorruptHeadersNeverCrash) {
  const std::vector<float> values(8, 1.0f);
  const std::string path = temp_path("fuzz_source");
  write_npy(path, values.data(), {2, 4});
  const std::string bytes = read_bytes(path);
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::size_t> position(0, 73);  // preamble and dict
  std::uniform_int_distribution<int> byte(0, 255);
  int refused = 0;
  for (int i = 0; i < 250; ++i) {
    std::string corrupt = bytes;
    for (int flips = 0; flips < 1 + i % 3; ++flips) {
      corrupt[position(rng)] = static_cast<char>(byte(rng));
    }
    const std::string file = write_bytes("fuzz", corrupt);
    try {
      const NpyArray array = read_npy(file);
      // Whatever was accepted must be self-consistent.
      std::int64_t count = 1;
      for (const std::int64_t d : array.shape) count *= d;
      EXPECT_EQ(static_cast<std::size_t>(count), array.data.size());
    } catch (const FormatError&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 125);
}

TEST_F(NpyTest, MissingFileAndBadArguments) {
  EXPECT_THROW((void)read_npy("/nonexistent/convgrad/x.npy"), FormatError);
  const float value = 1.0f;
  EXPECT_THROW(write_npy("/nonexistent/convgrad/x.npy", &value, {1}), FormatError);
  EXPECT_THROW(write_npy(temp_path("negative"), &value, {-1}), InvalidArgument);
  EXPECT_THROW(write_npy(temp_path("null"), nullptr, {2}), InvalidArgument);
  EXPECT_THROW(
      write_npy(temp_path("overflow"), &value, {std::int64_t{1} << 40, std::int64_t{1} << 40}),
      InvalidArgument);
}

}  // namespace
}  // namespace convgrad::core
