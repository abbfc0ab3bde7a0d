// SPDX-License-Identifier: Apache-2.0
// Corrupted optimizer checkpoints (docs/archive.md, "Optimizer archives"): whatever is wrong with
// the file, Adam::load_state either loads it or throws FormatError, and a refused file leaves the
// vectors and the step counter as they were.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "api/api_support.hpp"
#include "convgrad/convgrad.hpp"

namespace convgrad {
namespace {

namespace fs = std::filesystem;
using apitest::random_values;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class OptimizerArchive : public testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() /
             ("convgrad_optimizer_archive_" +
              std::to_string(testing::UnitTest::GetInstance()->random_seed()) + "_" +
              testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    std::mt19937_64 rng = test::make_rng(0xa4c1);
    OptimizerStateVectors m(device_, d_), v(device_, d_);
    m.write_weights(random_values(rng, d_.weight_count()));
    m.write_biases(random_values(rng, d_.output_feature_channels()));
    v.write_weights(random_values(rng, d_.weight_count(), 0.0f, 1.0f));
    v.write_biases(random_values(rng, d_.output_feature_channels(), 0.0f, 1.0f));
    Adam adam(device_, 0.01f);
    adam.set_time_step(17);
    adam.save_state(path_, m, v);
    valid_ = read_bytes(path_);
  }
  void TearDown() override { fs::remove(path_); }

  // Loads `bytes` into vectors holding a known pattern; false when refused with FormatError, in
  // which case nothing may have changed. Any other exception fails the test.
  bool load(const std::string& bytes) {
    write_bytes(path_, bytes);
    const std::vector<float> poison(static_cast<std::size_t>(d_.weight_count()), -7.5f);
    const std::vector<float> poison_b(static_cast<std::size_t>(d_.output_feature_channels()),
                                      9.25f);
    OptimizerStateVectors m(device_, d_), v(device_, d_);
    for (OptimizerStateVectors* vector : {&m, &v}) {
      vector->write_weights(poison);
      vector->write_biases(poison_b);
    }
    Adam adam(device_, 0.01f);
    adam.set_time_step(3);
    try {
      adam.load_state(path_, m, v);
    } catch (const FormatError&) {
      EXPECT_EQ(adam.time_step(), 3);
      for (const OptimizerStateVectors* vector : {&m, &v}) {
        EXPECT_EQ(vector->read_weights(), poison);
        EXPECT_EQ(vector->read_biases(), poison_b);
      }
      return false;
    }
    EXPECT_EQ(adam.time_step(), 17);
    return true;
  }

  // `valid_` with the first `from` replaced by `to` (same length, so the header length holds).
  std::string edited(const std::string& from, const std::string& to) const {
    EXPECT_EQ(from.size(), to.size());
    std::string bytes = valid_;
    const std::size_t at = bytes.find(from);
    EXPECT_NE(at, std::string::npos) << from << " is not in the archive";
    if (at != std::string::npos) bytes.replace(at, from.size(), to);
    return bytes;
  }

  Device device_ = Device::cpu();
  ConvolutionDescriptor d_{3, 3, 2, 3};
  std::string path_, valid_;
};

TEST_F(OptimizerArchive, EditedHeadersThrowFormatErrorAndChangeNothing) {
  ASSERT_TRUE(load(valid_));
  const std::pair<std::string, std::string> edits[] = {
      {R"("kind":"Adam")", R"("kind":"Adan")"},                // another optimizer
      {R"("format_version":"1")", R"("format_version":"9")"},  // a future version
      {R"("format":"convgrad")", R"("format":"convgrae")"},    // not ours
      {R"("velocity.weights")", R"("velocitx.weights")"},      // a tensor missing
      {R"(\"time_step\":17)", R"(\"time_step\":-1)"},          // a negative step
      {R"(\"time_step\":17)", R"(\"time_step\":"1)"},          // not JSON
      {R"(\"amsgrad\":false)", R"(\"amsgrad\":true )"},        // saved with AMSGrad
      {R"(\"amsgrad\":false)", R"(\"amsgrad\":0    )"},        // not a boolean
      {R"(\"output_feature_channels\":3)", R"(\"output_feature_channels\":4)"},  // another layer
      {R"("dtype":"F32")", R"("dtype":"F16")"},  // sizes no longer match
  };
  for (const auto& [from, to] : edits) {
    SCOPED_TRACE(to);
    EXPECT_FALSE(load(edited(from, to)));
  }
  EXPECT_FALSE(load(valid_.substr(0, valid_.size() - 1)));  // truncated
  EXPECT_FALSE(load(valid_ + '\0'));                        // trailing byte
  EXPECT_FALSE(load(std::string()));                        // empty
}

TEST_F(OptimizerArchive, MutatedArchivesLoadOrThrowFormatError) {
  std::mt19937_64 rng = test::make_rng(0x0a4c);
  // The header length (8 bytes) and the JSON header come first; flips there are the ones that
  // must be refused, flips in the data section load as other values.
  const std::size_t header_end =
      8 + static_cast<std::size_t>(static_cast<unsigned char>(valid_[0])) +
      256 * static_cast<std::size_t>(static_cast<unsigned char>(valid_[1]));
  ASSERT_LT(header_end, valid_.size());
  int loaded = 0, refused = 0;
  for (int i = 0; i < 400; ++i) {
    std::string bytes = valid_;
    const std::size_t limit = i % 4 == 0 ? bytes.size() : header_end;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) {
      bytes[rng() % limit] ^= static_cast<char>(1u << (rng() % 8));
    }
    if (i % 10 == 0) bytes.resize(rng() % bytes.size());
    (load(bytes) ? loaded : refused) += 1;
  }
  std::cout << "[convgrad] mutated optimizer archives: " << loaded << " loaded, " << refused
            << " refused\n";
  EXPECT_GT(refused, 200);
}

}  // namespace
}  // namespace convgrad
