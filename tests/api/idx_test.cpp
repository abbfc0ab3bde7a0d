// SPDX-License-Identifier: Apache-2.0
// read_idx on small hand-made files: valid (plain and gzipped), truncated, with trailing bytes,
// a wrong magic number, an unsupported type, a missing file.
#include "convgrad/idx.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "convgrad/errors.hpp"

namespace convgrad {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() /
        ("convgrad_idx_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const Bytes& bytes) {
    const fs::path path = dir_ / name;
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return path.string();
  }
  // Expects FormatError whose message names the file and contains `reason`.
  void expect_format_error(const std::string& path, const std::string& reason) {
    try {
      read_idx(path);
      ADD_FAILURE() << "no FormatError for " << path;
    } catch (const FormatError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path), std::string::npos) << message;
      EXPECT_NE(message.find(reason), std::string::npos) << message;
    }
  }

  fs::path dir_;
};

// A 2 x 3 x 2 array of unsigned bytes 0..11.
Bytes valid_file() {
  Bytes bytes = {0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2};
  for (std::uint8_t v = 0; v < 12; ++v) bytes.push_back(v);
  return bytes;
}

std::uint32_t crc32(const Bytes& bytes) {
  std::uint32_t crc = 0xffffffffu;
  for (std::uint8_t b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// gzip with one stored (uncompressed) deflate block: needs no compressor to make.
Bytes gzip_stored(const Bytes& data) {
  Bytes out = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  const auto n = static_cast<std::uint16_t>(data.size());
  out.push_back(1);  // final block, stored
  for (std::uint16_t v : {n, static_cast<std::uint16_t>(~n)}) {
    out.push_back(static_cast<std::uint8_t>(v & 0xff));
    out.push_back(static_cast<std::uint8_t>(v >> 8));
  }
  out.insert(out.end(), data.begin(), data.end());
  for (std::uint32_t v : {crc32(data), static_cast<std::uint32_t>(data.size())}) {
    for (int k = 0; k < 4; ++k) out.push_back(static_cast<std::uint8_t>(v >> (8 * k)));
  }
  return out;
}

TEST_F(IdxTest, ReadsAValidFile) {
  const IdxArray array = read_idx(write("valid", valid_file()));
  EXPECT_EQ(array.dims, (std::vector<std::int64_t>{2, 3, 2}));
  ASSERT_EQ(array.values.size(), 12u);
  for (std::uint8_t v = 0; v < 12; ++v) EXPECT_EQ(array.values[v], v);
}

TEST_F(IdxTest, ReadsAGzippedFileOrSaysWhy) {
  const std::string path = write("valid.gz", gzip_stored(valid_file()));
  if (!idx_supports_gzip()) {
    expect_format_error(path, "no zlib");
    return;
  }
  const IdxArray array = read_idx(path);
  EXPECT_EQ(array.dims, (std::vector<std::int64_t>{2, 3, 2}));
  EXPECT_EQ(array.values.size(), 12u);
}

TEST_F(IdxTest, RefusesATruncatedGzippedFile) {
  if (!idx_supports_gzip()) GTEST_SKIP() << "built without zlib";
  Bytes bytes = gzip_stored(valid_file());
  bytes.resize(bytes.size() - 14);
  expect_format_error(write("cut.gz", bytes), "");
}

TEST_F(IdxTest, RefusesTruncatedData) {
  Bytes bytes = valid_file();
  bytes.pop_back();
  expect_format_error(write("short", bytes), "truncated: 11 data bytes, the dimensions need 12");
}

TEST_F(IdxTest, RefusesTruncatedHeader) {
  Bytes bytes = valid_file();
  bytes.resize(9);
  expect_format_error(write("header", bytes), "truncated header");
  expect_format_error(write("tiny", {0, 0}), "too short");
}

TEST_F(IdxTest, RefusesTrailingBytes) {
  Bytes bytes = valid_file();
  bytes.push_back(0);
  expect_format_error(write("long", bytes), "trailing bytes");
}

TEST_F(IdxTest, RefusesWrongMagic) {
  Bytes bytes = valid_file();
  bytes[0] = 0x12;
  expect_format_error(write("magic", bytes), "wrong magic number 0x12000803");
}

TEST_F(IdxTest, RefusesOtherTypesAndBadDimensions) {
  Bytes bytes = valid_file();
  bytes[2] = 0x0d;  // float
  expect_format_error(write("float", bytes), "element type 0x0d");
  bytes = valid_file();
  bytes[3] = 0;
  expect_format_error(write("rank0", bytes), "dimension count 0");
  bytes = valid_file();
  bytes[7] = 0;
  expect_format_error(write("zero", bytes), "dimension 0 is 0");
}

TEST_F(IdxTest, RefusesAMissingFile) {
  expect_format_error((dir_ / "absent").string(), "cannot be opened");
}

}  // namespace
}  // namespace convgrad
