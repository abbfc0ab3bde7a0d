// SPDX-License-Identifier: Apache-2.0
// Archives of convolutions and gradient kernels: round trips with and without weights, refusal
// of wrong versions and kinds, and ten thousand mutated archives that must load or throw
// FormatError, never crash.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "convgrad/convgrad.hpp"
#include "core/safetensors.hpp"
#include "support/tensors.hpp"

namespace convgrad {
namespace {

std::shared_ptr<MemoryConvolutionDataSource> random_source(const ConvolutionDescriptor& d,
                                                           std::mt19937_64& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> weights(static_cast<std::size_t>(d.weight_count()));
  for (float& v : weights) v = uniform(rng);
  std::vector<float> biases;
  if (d.bias_enabled()) {
    biases.resize(static_cast<std::size_t>(d.output_feature_channels()));
    for (float& v : biases) v = uniform(rng);
  }
  return std::make_shared<MemoryConvolutionDataSource>(d, weights, biases, "layer");
}

ConvolutionDescriptor strided_grouped() {
  ConvolutionDescriptor d(3, 5, 8, 12);
  d.set_groups(4);
  d.set_stride_in_pixels_x(2);
  d.set_dilation_rate_y(2);
  return d;
}

// dx of `gradient` for fixed random inputs: equal outputs mean equal weights and options.
std::vector<float> data_gradient(ConvolutionGradient& gradient, Convolution& convolution,
                                 std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const Device device = Device::cpu();
  Image x(device, {9, 11, convolution.input_feature_channels(), 2});
  std::vector<float> values(static_cast<std::size_t>(2 * 11 * 9 * x.feature_channels()));
  for (float& v : values) v = uniform(rng);
  x.write(values);
  CommandQueue queue = device.new_command_queue();
  CommandBuffer cb = queue.command_buffer();
  ConvolutionGradientState state;
  Image y = convolution.encode(cb, x, state);
  Image dy(device, y.descriptor());
  std::vector<float> dy_values(static_cast<std::size_t>(y.number_of_images() * y.height() *
                                                        y.width() * y.feature_channels()));
  for (float& v : dy_values) v = uniform(rng);
  dy.write(dy_values);
  Image dx = gradient.encode(cb, dy, x, state);
  cb.commit();
  cb.wait();
  return dx.read();
}

TEST(Archive, ConvolutionRoundTripKeepsWeightsPaddingAndOffsets) {
  auto rng = test::make_rng(101);
  const ConvolutionDescriptor d = strided_grouped();
  Convolution original(Device::cpu(), random_source(d, rng));
  original.set_padding(Padding::tensorflow_same());
  original.set_offset({1, -1, 0});
  original.set_label("conv7");
  const Convolution restored = Convolution::deserialize(original.serialize(), Device::cpu());
  EXPECT_EQ(restored.descriptor(), d);
  EXPECT_EQ(restored.padding(), original.padding());
  EXPECT_EQ(restored.offset(), original.offset());
  EXPECT_EQ(restored.label(), "conv7");
  EXPECT_EQ(restored.kernel_weights()->weights, original.kernel_weights()->weights);
  EXPECT_EQ(restored.kernel_weights()->biases, original.kernel_weights()->biases);
}

TEST(Archive, GradientRoundTripWithWeightsNeedsNoDataSource) {
  auto rng = test::make_rng(102);
  const ConvolutionDescriptor d = strided_grouped();
  auto source = random_source(d, rng);
  Convolution convolution(Device::cpu(), source);
  ConvolutionGradient original(Device::cpu(), source);
  original.set_serialize_weights_and_biases(true);
  original.set_gradient_option(GradientOption::gradient_with_data);
  original.set_label("grad7");
  const std::string path =
      (std::filesystem::temp_directory_path() / ("convgrad_archive_" +
                                                 std::to_string(test::process_seed()) + ".st"))
          .string();
  original.save(path);
  ConvolutionGradient restored = ConvolutionGradient::load(path, Device::cpu());
  std::filesystem::remove(path);
  EXPECT_EQ(restored.descriptor(), d);
  EXPECT_EQ(restored.gradient_option(), GradientOption::gradient_with_data);
  EXPECT_TRUE(restored.serialize_weights_and_biases());
  EXPECT_EQ(restored.label(), "grad7");
  EXPECT_EQ(restored.groups(), 4);
  ASSERT_NE(restored.data_source(), nullptr);
  EXPECT_NE(restored.data_source(), source);  // the archive's own weights
  EXPECT_EQ(restored.kernel_weights()->weights, original.kernel_weights()->weights);
  EXPECT_EQ(data_gradient(restored, convolution, 7), data_gradient(original, convolution, 7));
}

TEST(Archive, GradientRoundTripWithoutWeightsTakesThemFromTheDataSource) {
  auto rng = test::make_rng(103);
  const ConvolutionDescriptor d = DepthwiseConvolutionDescriptor(3, 3, 6, 12);
  auto source = random_source(d, rng);
  ConvolutionGradient original(Device::cpu(), source);
  EXPECT_FALSE(original.serialize_weights_and_biases());  // MPS's default
  const std::vector<std::byte> bytes = original.serialize();
  const core::StFile file = core::parse_safetensors(bytes);
  EXPECT_EQ(file.find("weights"), nullptr);
  EXPECT_EQ(file.find("biases"), nullptr);

  try {
    (void)ConvolutionGradient::deserialize(bytes, Device::cpu());
    FAIL() << "an archive without weights needs a data source";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.parameter(), "data_source");
  }
  const ConvolutionGradient restored = ConvolutionGradient::deserialize(bytes, Device::cpu(), source);
  EXPECT_EQ(restored.channel_multiplier(), 2);
  EXPECT_EQ(restored.data_source(), source);
  EXPECT_EQ(restored.kernel_weights()->weights, original.kernel_weights()->weights);

  auto other = random_source(ConvolutionDescriptor(3, 3, 6, 12), rng);
  EXPECT_THROW((void)ConvolutionGradient::deserialize(bytes, Device::cpu(), other),
               InvalidArgument);
}

core::StFile valid_gradient_file(std::mt19937_64& rng) {
  ConvolutionDescriptor d(2, 3, 4, 6);
  d.set_groups(2);
  ConvolutionGradient gradient(Device::cpu(), random_source(d, rng));
  gradient.set_serialize_weights_and_biases(true);
  return core::parse_safetensors(gradient.serialize());
}

TEST(Archive, RefusesOtherVersionsKindsAndFormats) {
  auto rng = test::make_rng(104);
  const core::StFile valid = valid_gradient_file(rng);
  const std::pair<const char*, const char*> edits[] = {
      {"format_version", "2"}, {"format_version", "0"}, {"kind", "Convolution"},
      {"format", "pt"},        {"descriptor", "{"},     {"descriptor", "[1,2]"},
      {"options", "{}"},       {"options", "7"}};
  for (const auto& [key, value] : edits) {
    core::StFile file = valid;
    file.metadata[key] = value;
    const std::vector<std::byte> bytes = core::write_safetensors(file);
    EXPECT_THROW((void)ConvolutionGradient::deserialize(bytes, Device::cpu()), FormatError)
        << key << " = " << value;
  }
  core::StFile no_weights = valid;
  no_weights.tensors.clear();
  EXPECT_THROW((void)ConvolutionGradient::deserialize(core::write_safetensors(no_weights),
                                                      Device::cpu()),
               FormatError);
  EXPECT_THROW((void)Convolution::deserialize(core::write_safetensors(valid), Device::cpu()),
               FormatError);
  EXPECT_THROW((void)ConvolutionGradient::load("/nonexistent/convgrad.st", Device::cpu()),
               FormatError);
}

TEST(Archive, RefusesDescriptorsThatDoNotMatchTheTensors) {
  auto rng = test::make_rng(105);
  const core::StFile valid = valid_gradient_file(rng);
  const char* descriptors[] = {
      R"({"kind":"regular","kernel_width":2,"kernel_height":3,"input_feature_channels":4,)"
      R"("output_feature_channels":6,"stride_in_pixels_x":1,"stride_in_pixels_y":1,)"
      R"("dilation_rate_x":1,"dilation_rate_y":1,"groups":1,"bias_enabled":true,)"
      R"("sub_pixel_scale_factor":1})",  // groups 1: weights shape differs
      R"({"kind":"regular","kernel_width":2147483647,"kernel_height":2147483647,)"
      R"("input_feature_channels":2147483647,"output_feature_channels":2147483647,)"
      R"("stride_in_pixels_x":1,"stride_in_pixels_y":1,"dilation_rate_x":1,"dilation_rate_y":1,)"
      R"("groups":1,"bias_enabled":true,"sub_pixel_scale_factor":1})",  // overflowing count
      R"({"kind":"regular","kernel_width":-2,"kernel_height":3,"input_feature_channels":4,)"
      R"("output_feature_channels":6,"stride_in_pixels_x":1,"stride_in_pixels_y":1,)"
      R"("dilation_rate_x":1,"dilation_rate_y":1,"groups":2,"bias_enabled":true,)"
      R"("sub_pixel_scale_factor":1})",
      R"({"kind":"sub_pixel","kernel_width":2,"kernel_height":3,"input_feature_channels":4,)"
      R"("output_feature_channels":6,"stride_in_pixels_x":1,"stride_in_pixels_y":1,)"
      R"("dilation_rate_x":1,"dilation_rate_y":1,"groups":2,"bias_enabled":true,)"
      R"("sub_pixel_scale_factor":2})"};
  for (const char* descriptor : descriptors) {
    core::StFile file = valid;
    file.metadata["descriptor"] = descriptor;
    EXPECT_THROW(
        (void)ConvolutionGradient::deserialize(core::write_safetensors(file), Device::cpu()),
        FormatError)
        << descriptor;
  }
}

// Mutations of a valid archive: byte edits anywhere, edits of the JSON header with the length
// field kept consistent (so they reach the convgrad layer), and numbers swapped for extreme ones.
std::vector<std::byte> mutate(const std::vector<std::byte>& original, std::mt19937_64& rng) {
  std::vector<std::byte> bytes = original;
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  std::string header(reinterpret_cast<const char*>(bytes.data()) + 8, header_length);
  const std::vector<std::byte> data(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_length),
                                    bytes.end());
  auto rebuild = [&] {
    std::vector<std::byte> out(8 + header.size() + data.size());
    const std::uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    std::memcpy(out.data() + 8, header.data(), header.size());
    if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
    return out;
  };
  static const char* numbers[] = {"0", "-1", "1", "2", "3", "4", "9223372036854775807",
                                  "2147483648", "-2147483648", "1e9", "65", "true", "null"};
  switch (pick(6)) {
    case 0:  // flip bytes anywhere
      for (std::size_t i = 0, n = 1 + pick(4); i < n; ++i) bytes[pick(bytes.size())] ^= std::byte(1 + pick(255));
      return bytes;
    case 1:  // truncate
      bytes.resize(pick(bytes.size()));
      return bytes;
    case 2: {  // replace a digit run in the header (inner JSON included)
      std::vector<std::size_t> starts;
      for (std::size_t i = 0; i < header.size(); ++i) {
        if (std::isdigit(static_cast<unsigned char>(header[i])) &&
            (i == 0 || !std::isdigit(static_cast<unsigned char>(header[i - 1])))) {
          starts.push_back(i);
        }
      }
      if (starts.empty()) return bytes;
      const std::size_t at = starts[pick(starts.size())];
      std::size_t end = at;
      while (end < header.size() && std::isdigit(static_cast<unsigned char>(header[end]))) ++end;
      header.replace(at, end - at, numbers[pick(std::size(numbers))]);
      return rebuild();
    }
    case 3: {  // flip a header character, keeping the length consistent
      header[pick(header.size())] = static_cast<char>(32 + pick(95));
      return rebuild();
    }
    case 4: {  // delete a header span
      const std::size_t at = pick(header.size());
      header.erase(at, 1 + pick(std::min<std::size_t>(16, header.size() - at)));
      return rebuild();
    }
    default: {  // swap two words of the header
      static const char* words[] = {"true", "false", "regular", "depthwise", "sub_pixel",
                                    "ConvolutionGradient", "Convolution", "F16", "F32"};
      for (const char* word : words) {
        const std::size_t at = header.find(word);
        if (at != std::string::npos && pick(2) == 0) {
          header.replace(at, std::strlen(word), words[pick(std::size(words))]);
          return rebuild();
        }
      }
      return rebuild();
    }
  }
}

TEST(Archive, TenThousandMutatedArchivesLoadOrThrowFormatError) {
  auto rng = test::make_rng(106);
  const std::vector<std::byte> with_weights = core::write_safetensors(valid_gradient_file(rng));
  ConvolutionDescriptor d(2, 3, 4, 6);
  d.set_groups(2);
  auto source = random_source(d, rng);
  ConvolutionGradient without(Device::cpu(), source);
  const std::vector<std::byte> without_weights = without.serialize();
  int loaded = 0, refused = 0;
  for (int i = 0; i < 10000; ++i) {
    const bool self_contained = i % 2 == 0;
    const std::vector<std::byte> bytes = mutate(self_contained ? with_weights : without_weights, rng);
    try {
      const ConvolutionGradient g = ConvolutionGradient::deserialize(
          bytes, Device::cpu(), self_contained ? nullptr : source);
      // Whatever loads must be usable: its weights match its descriptor.
      ASSERT_EQ(static_cast<std::int64_t>(g.kernel_weights()->weights.size()),
                g.descriptor().weight_count());
      ++loaded;
    } catch (const FormatError&) {
      ++refused;
    } catch (const InvalidArgument& e) {
      // Only the data source handed in can disagree with a mutated file's descriptor.
      ASSERT_FALSE(self_contained) << e.what();
      ASSERT_EQ(e.parameter(), "data_source.descriptor") << e.what();
      ++refused;
    }
  }
  std::cout << "[convgrad] mutated archives: " << loaded << " loaded, " << refused
            << " refused\n";
  EXPECT_EQ(loaded + refused, 10000);
  EXPECT_GT(refused, 5000);
}

}  // namespace
}  // namespace convgrad
