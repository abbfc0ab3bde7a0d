// SPDX-License-Identifier: Apache-2.0
#include "core/safetensors.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "convgrad/errors.hpp"

namespace convgrad::core {
namespace {

using Bytes = std::vector<std::byte>;

Bytes to_bytes(std::string_view text) {
  Bytes out;
  for (const char c : text) out.push_back(static_cast<std::byte>(c));
  return out;
}

std::string to_text(std::span<const std::byte> bytes) {
  std::string out;
  for (const std::byte b : bytes) out += static_cast<char>(b);
  return out;
}

void put_u64(Bytes& file, std::size_t at, std::uint64_t value) {
  for (std::size_t i = 0; i < 8; ++i) file[at + i] = static_cast<std::byte>(value >> (8 * i));
}

std::uint64_t get_u64(std::span<const std::byte> file) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 8; ++i) value |= std::to_integer<std::uint64_t>(file[i]) << (8 * i);
  return value;
}

// A file with `header` verbatim and `data_bytes` bytes of data; the length field is the
// header's unless overridden.
Bytes make_file(std::string_view header, std::size_t data_bytes,
                std::optional<std::uint64_t> length = std::nullopt) {
  Bytes file(8);
  put_u64(file, 0, length.value_or(header.size()));
  const Bytes text = to_bytes(header);
  file.insert(file.end(), text.begin(), text.end());
  for (std::size_t i = 0; i < data_bytes; ++i) file.push_back(static_cast<std::byte>(i * 7 + 1));
  return file;
}

std::size_t element_count(const std::vector<std::int64_t>& shape) {
  std::size_t count = 1;
  for (const std::int64_t d : shape) count *= static_cast<std::size_t>(d);
  return count;
}

StTensor make_tensor(std::string name, DataType dtype, std::vector<std::int64_t> shape,
                     unsigned salt) {
  StTensor tensor{std::move(name), dtype, std::move(shape), {}};
  const std::size_t size = element_count(tensor.shape) * size_of(dtype);
  for (std::size_t i = 0; i < size; ++i) {
    tensor.bytes.push_back(static_cast<std::byte>((i * 31 + salt * 17 + 3) & 0xFF));
  }
  return tensor;
}

StFile sample_file() {
  StFile file;
  file.metadata = {{"format", "pt"}, {"note", "quote \" backslash \\ newline \n \xC3\xA9"}};
  file.tensors.push_back(make_tensor("scalar", DataType::float32, {}, 1));
  file.tensors.push_back(make_tensor("bias", DataType::float16, {5}, 2));
  file.tensors.push_back(make_tensor("matrix", DataType::bfloat16, {3, 2}, 3));
  file.tensors.push_back(make_tensor("empty", DataType::float32, {2, 0, 3}, 4));
  file.tensors.push_back(make_tensor("cube", DataType::float32, {2, 1, 3}, 5));
  file.tensors.push_back(make_tensor("weights.\xCE\xB1", DataType::float16, {1, 2, 2, 3}, 6));
  return file;
}

// Runs `parse` and returns the FormatError message, failing the test on anything else.
template <typename Parse>
std::string format_error_of(Parse&& parse) {
  try {
    parse();
  } catch (const FormatError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no exception";
  return {};
}

testing::AssertionResult contains(const std::string& text, std::string_view part) {
  if (text.find(part) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

TEST(SafetensorsTest, RoundTripsEveryDtypeAndRank) {
  const StFile file = sample_file();
  const Bytes bytes = write_safetensors(file);
  const StFile back = parse_safetensors(bytes);
  EXPECT_TRUE(back == file);
  ASSERT_EQ(back.tensors.size(), 6u);
  EXPECT_EQ(back.metadata.at("note"), file.metadata.at("note"));
  const StTensor* matrix = back.find("matrix");
  ASSERT_NE(matrix, nullptr);
  EXPECT_EQ(matrix->dtype, DataType::bfloat16);
  EXPECT_EQ(matrix->shape, (std::vector<std::int64_t>{3, 2}));
  EXPECT_EQ(matrix->bytes.size(), 12u);
  EXPECT_EQ(back.find("scalar")->shape.size(), 0u);
  EXPECT_EQ(back.find("scalar")->bytes.size(), 4u);
  EXPECT_EQ(back.find("empty")->bytes.size(), 0u);
  EXPECT_EQ(back.find("missing"), nullptr);
  // Writing what was read reproduces the bytes.
  EXPECT_EQ(write_safetensors(back), bytes);
}

TEST(SafetensorsTest, RoundTripsEmptyMetadataAndNoTensors) {
  const StFile empty;
  const Bytes bytes = write_safetensors(empty);
  EXPECT_EQ(to_text(bytes), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  EXPECT_TRUE(parse_safetensors(bytes) == empty);

  StFile only_tensors;
  only_tensors.tensors.push_back(make_tensor("z", DataType::float16, {0}, 0));
  only_tensors.tensors.push_back(make_tensor("x", DataType::float32, {2}, 1));
  only_tensors.tensors.push_back(make_tensor("y", DataType::bfloat16, {0, 4}, 2));
  const StFile back = parse_safetensors(write_safetensors(only_tensors));
  EXPECT_TRUE(back.metadata.empty());
  EXPECT_TRUE(back == only_tensors);  // zero-length tensors keep their place
}

TEST(SafetensorsTest, LayoutIsByteExact) {
  StFile file;
  file.metadata = {{"format", "pt"}};
  file.tensors.push_back(make_tensor("a", DataType::float32, {2}, 1));
  file.tensors.push_back(make_tensor("b", DataType::bfloat16, {}, 2));
  const Bytes bytes = write_safetensors(file);
  const std::string json = R"({"__metadata__":{"format":"pt"},)"
                           R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"BF16","shape":[],"data_offsets":[8,10]}})";
  const std::uint64_t length = get_u64(bytes);
  EXPECT_EQ(length % 8, 0u);
  EXPECT_GE(length, json.size());
  EXPECT_LT(length, json.size() + 8);
  ASSERT_EQ(bytes.size(), 8 + length + 10);
  const std::string header = to_text(std::span(bytes).subspan(8, length));
  EXPECT_EQ(header, json + std::string(length - json.size(), ' '));
  EXPECT_EQ(Bytes(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(length), bytes.end()), [&] {
    Bytes data = file.tensors[0].bytes;
    data.insert(data.end(), file.tensors[1].bytes.begin(), file.tensors[1].bytes.end());
    return data;
  }());
}

TEST(SafetensorsTest, AcceptsForeignButValidLayouts) {
  // Header order differs from data order, whitespace inside, no padding to 8: all legal.
  const std::string header =
      "{ \"b\" : {\"shape\": [1], \"data_offsets\": [4, 6], \"dtype\": \"F16\"},\n"
      "  \"a\": {\"data_offsets\": [0,4], \"dtype\": \"F32\", \"shape\": []},"
      " \"__metadata__\": {}}\t";
  const StFile file = parse_safetensors(make_file(header, 6));
  ASSERT_EQ(file.tensors.size(), 2u);
  EXPECT_EQ(file.tensors[0].name, "a");  // data order
  EXPECT_EQ(file.tensors[1].name, "b");
  EXPECT_EQ(file.tensors[1].dtype, DataType::float16);
  EXPECT_EQ(file.tensors[1].bytes, (Bytes{std::byte{4 * 7 + 1}, std::byte{5 * 7 + 1}}));
  EXPECT_TRUE(file.metadata.empty());
}

TEST(SafetensorsTest, SavesAndLoadsThroughTheFileSystem) {
  // Unique, so that concurrent runs of this binary (ctest -j) do not share files.
  const std::filesystem::path dir =
      std::filesystem::path(testing::TempDir()) /
      ("convgrad_safetensors_" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "sample.safetensors").string();
  const StFile file = sample_file();
  save_safetensors(path, file);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_TRUE(load_safetensors(path) == file);
  save_safetensors(path, StFile{});  // replaces
  EXPECT_TRUE(load_safetensors(path) == StFile{});

  const auto load_error = [](const std::string& file_path, Limits limits = {}) {
    return format_error_of([&] { load_safetensors(file_path, limits); });
  };
  const std::string missing = (dir / "missing.safetensors").string();
  EXPECT_TRUE(contains(load_error(missing), "safetensors: " + missing + ": cannot open"));
  EXPECT_TRUE(contains(load_error(dir.string()), "safetensors: " + dir.string()));
  EXPECT_TRUE(contains(load_error(path, Limits{.max_file_bytes = 15}), "above the limit of 15"));
  const std::string unwritable = (dir / "no/such/dir/x").string();
  EXPECT_TRUE(contains(format_error_of([&] { save_safetensors(unwritable, file); }),
                       "cannot create " + unwritable + ".tmp"));
  std::filesystem::remove_all(dir);
}

TEST(SafetensorsTest, RejectsEveryTruncation) {
  StFile zero_tail = sample_file();
  zero_tail.tensors.push_back(make_tensor("last_empty", DataType::float16, {0}, 9));
  for (const StFile& file : {sample_file(), zero_tail, StFile{}}) {
    const Bytes bytes = write_safetensors(file);
    for (std::size_t size = 0; size < bytes.size(); ++size) {
      const std::span<const std::byte> prefix(bytes.data(), size);
      EXPECT_THROW(parse_safetensors(prefix), FormatError) << "prefix of " << size << " bytes";
    }
  }
}

struct BadFile {
  const char* what;
  Bytes bytes;
  const char* message;  // a part of the expected message
};

std::vector<BadFile> bad_files() {
  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const auto t = [](const std::string& name, const std::string& dtype, const std::string& shape,
                    const std::string& offsets) {
    return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape +
           ",\"data_offsets\":" + offsets + "}";
  };
  const auto f32 = [&t](const std::string& shape, const std::string& offsets) {
    return "{" + t("a", "\"F32\"", shape, offsets) + "}";
  };
  return {
      {"empty file", {}, "too short"},
      {"7 bytes", Bytes(7), "too short"},
      {"header length 0", make_file("", 8, 0), "header length is 0"},
      {"header length 2^64-1", make_file("{" + a + "}", 8, ~0ull), "above the limit"},
      {"header length above the limit", make_file("{}", 0, (1ull << 24) + 1), "above the limit"},
      {"header length past the end", make_file("{}", 0, 3), "exceeds the 2 bytes"},
      {"header length inside the JSON", make_file("{" + a + "}", 8, 5), "not valid JSON"},
      {"not JSON", make_file("{not json}", 0), "not valid JSON"},
      {"JSON array", make_file("[]", 0), "not a JSON object"},
      {"JSON string", make_file("\"{}\"", 0), "not a JSON object"},
      {"leading space", make_file(" {}", 0), "does not start with '{'"},
      {"trailing garbage", make_file("{} x", 0), "not valid JSON"},
      {"two objects", make_file("{}{}", 0), "not valid JSON"},
      {"NUL padding", make_file(std::string("{}\0\0", 4), 0), "NUL byte at header offset 2"},
      {"NUL hiding bytes", make_file(std::string("{}\0{\"a\":1}", 10), 0), "NUL byte"},
      {"unterminated", make_file("{\"a\":", 0), "not valid JSON"},
      {"invalid UTF-8 key", make_file("{\"\xff\":{}}", 0), "not valid JSON"},
      {"comment", make_file("{/**/}", 0), "not valid JSON"},
      {"trailing comma", make_file("{" + a + ",}", 8), "not valid JSON"},
      {"lone surrogate", make_file(R"({"\ud800":{}})", 0), "not valid JSON"},
      {"single quotes", make_file("{'a':1}", 0), "not valid JSON"},
      {"entry not an object", make_file(R"({"a":[1]})", 0), R"(tensor "a" must be an object)"},
      {"entry null", make_file(R"({"a":null})", 0), "must be an object, found null"},
      {"unknown dtype", make_file("{" + t("a", "\"F64\"", "[2]", "[0,16]") + "}", 16),
       R"(tensor "a": unknown dtype "F64")"},
      {"lower-case dtype", make_file("{" + t("a", "\"f32\"", "[2]", "[0,8]") + "}", 8),
       "unknown dtype"},
      {"dtype not a string", make_file("{" + t("a", "4", "[2]", "[0,8]") + "}", 8),
       R"("dtype" must be a string, found the number 4)"},
      {"negative shape", make_file(f32("[-1]", "[0,8]"), 8),
       "shape entries must be non-negative integers, found the number -1"},
      {"minus zero shape", make_file(f32("[-0]", "[0,0]"), 0), "found the number -0"},
      {"float shape", make_file(f32("[2.0]", "[0,8]"), 8), "found the number 2.0"},
      {"exponent shape", make_file(f32("[2e0]", "[0,8]"), 8), "non-negative integers"},
      {"shape above 2^64", make_file(f32("[18446744073709551616]", "[0,8]"), 8),
       "found the number 18446744073709551616"},
      {"shape 2^63", make_file(f32("[9223372036854775808]", "[0,8]"), 8),
       "spans more than 2^63-1 bytes"},
      {"shape product overflows", make_file(f32("[4294967296,4294967296]", "[0,8]"), 8),
       "spans more than 2^63-1 bytes"},
      {"empty shape with huge extent", make_file(f32("[0,9223372036854775807]", "[0,0]"), 0),
       "spans more than 2^63-1 bytes"},
      {"shape not an array", make_file(f32("2", "[0,8]"), 8),
       R"("shape" must be an array of non-negative integers, found the number 2)"},
      {"nested shape", make_file(f32("[[2]]", "[0,8]"), 8), "found an array"},
      {"deep nesting", make_file(f32(std::string(1000, '[') + std::string(1000, ']'), "[0,8]"), 8),
       "found an array"},
      {"rank 9", make_file(f32("[1,1,1,1,1,1,1,1,2]", "[0,8]"), 8), "rank is above the limit of 8"},
      {"offsets reversed", make_file(f32("[2]", "[8,0]"), 8), "data_offsets [8, 0] are reversed"},
      {"offsets out of range", make_file(f32("[25]", "[0,100]"), 64),
       R"(tensor "a": data_offsets [0, 100] exceed the data section (64 bytes))"},
      {"offsets huge", make_file(f32("[2]", "[0,18446744073709551615]"), 8),
       "exceed the data section"},
      {"offsets negative", make_file(f32("[2]", "[-8,0]"), 8),
       "data_offsets entries must be non-negative integers"},
      {"one offset", make_file(f32("[2]", "[0]"), 8), "must have 2 entries, found 1"},
      {"three offsets", make_file(f32("[2]", "[0,8,8]"), 8), "must have 2 entries, found more"},
      {"offsets not an array", make_file(f32("[2]", "\"0-8\""), 8),
       R"("data_offsets" must be an array of 2 non-negative integers, found a string)"},
      {"shape-size mismatch", make_file(f32("[3]", "[0,8]"), 8),
       "hold 8 bytes but shape [3] of F32 needs 12"},
      {"overlap", make_file("{" + a + "," + t("b", "\"F32\"", "[2]", "[4,12]") + "}", 12),
       R"(tensor "b": data_offsets [4, 12] overlap tensor "a" [0, 8])"},
      {"empty tensor inside another",
       make_file("{" + a + "," + t("b", "\"F32\"", "[0]", "[4,4]") + "}", 8), "overlap"},
      {"gap", make_file("{" + a + "," + t("b", "\"F32\"", "[2]", "[12,20]") + "}", 20),
       "leave a gap of 4 bytes after tensor \"a\""},
      {"gap at the start", make_file(f32("[2]", "[4,12]"), 12), "gap of 4 bytes after the header"},
      {"trailing data", make_file("{" + a + "}", 12), "trailing bytes"},
      {"data without tensors", make_file("{}", 1), "trailing bytes"},
      {"duplicate tensor", make_file("{" + a + "," + a + "}", 8), R"(duplicate key "a")"},
      {"duplicate field",
       make_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8),
       R"(tensor "a": duplicate field "dtype")"},
      {"missing field", make_file(R"({"a":{"dtype":"F32","shape":[2]}})", 8),
       R"(tensor "a": missing field "data_offsets")"},
      {"unknown field", make_file(R"({"a":{"dtype":"F32","shape":[2],"offsets":[0,8]}})", 8),
       R"(tensor "a": unknown field "offsets")"},
      {"metadata value not a string", make_file(R"({"__metadata__":{"k":1}})", 0),
       R"("__metadata__": value of "k" must be a string, found the number 1)"},
      {"metadata value an object", make_file(R"({"__metadata__":{"k":{}}})", 0),
       "must be a string, found an object"},
      {"metadata not an object", make_file(R"({"__metadata__":"x"})", 0),
       R"("__metadata__" must be an object of strings, found a string)"},
      {"metadata duplicate key", make_file(R"({"__metadata__":{"k":"1","k":"2"}})", 0),
       R"("__metadata__": duplicate key "k")"},
      {"metadata twice", make_file(R"({"__metadata__":{},"__metadata__":{}})", 0),
       R"(duplicate key "__metadata__")"},
      {"long name is shortened", make_file("{\"" + std::string(1000, 'n') + "\":1}", 0),
       "nnnnnnnn...\" must be an object"},
  };
}

TEST(SafetensorsTest, RejectsMalformedFiles) {
  for (const BadFile& bad : bad_files()) {
    SCOPED_TRACE(bad.what);
    const std::string message = format_error_of([&] { parse_safetensors(bad.bytes); });
    EXPECT_EQ(message.rfind("safetensors: ", 0), 0u) << message;
    EXPECT_TRUE(contains(message, bad.message));
    EXPECT_LT(message.size(), 600u) << message;
  }
}

TEST(SafetensorsTest, EnforcesLimits) {
  StFile three;
  for (const char* name : {"a", "b", "c"}) {
    three.tensors.push_back(make_tensor(name, DataType::float32, {1, 1, 1}, 0));
  }
  const Bytes bytes = write_safetensors(three);
  EXPECT_NO_THROW(parse_safetensors(bytes, Limits{.max_tensors = 3, .max_rank = 3}));
  const auto parse_error = [&bytes](Limits limits) {
    return format_error_of([&] { parse_safetensors(bytes, limits); });
  };
  EXPECT_TRUE(contains(parse_error(Limits{.max_tensors = 2}), "more than 2 tensors"));
  EXPECT_TRUE(contains(parse_error(Limits{.max_rank = 2}), "rank is above the limit of 2"));
  EXPECT_TRUE(contains(parse_error(Limits{.max_header_bytes = 16}), "above the limit of 16 bytes"));
  EXPECT_TRUE(contains(parse_error(Limits{.max_file_bytes = 20}), "above the limit of 20"));
}

TEST(SafetensorsTest, WriterRefusesFilesThatWouldNotReadBack) {
  const auto writer_error = [](StFile file) {
    return format_error_of([&] { write_safetensors(file); });
  };
  const StTensor a = make_tensor("a", DataType::float32, {2}, 0);
  StFile file;
  file.tensors = {a, a};
  EXPECT_TRUE(contains(writer_error(file), "duplicate name"));
  file.tensors = {make_tensor("__metadata__", DataType::float32, {2}, 0)};
  EXPECT_TRUE(contains(writer_error(file), "reserved"));
  file.tensors = {StTensor{"n", DataType::float32, {-1}, {}}};
  EXPECT_TRUE(contains(writer_error(file), "negative dimension"));
  file.tensors = {StTensor{"r", DataType::float32, {1, 1, 1, 1, 1, 1, 1, 1, 1}, Bytes(4)}};
  EXPECT_TRUE(contains(writer_error(file), "rank 9"));
  file.tensors = {StTensor{"s", DataType::float16, {3}, Bytes(4)}};
  EXPECT_TRUE(contains(writer_error(file), "4 bytes but shape [3] of F16 needs 6"));
  file.tensors = {StTensor{"o", DataType::float32, {1ll << 62, 2}, {}}};
  EXPECT_TRUE(contains(writer_error(file), "2^63-1"));
  file.tensors = {StTensor{"d", static_cast<DataType>(7), {}, Bytes(4)}};
  EXPECT_TRUE(contains(writer_error(file), "unknown data type"));
  file.tensors = {make_tensor("bad\xff", DataType::float32, {}, 0)};
  EXPECT_TRUE(contains(writer_error(file), "not valid UTF-8"));
  file.tensors.clear();
  file.metadata = {{"k", "\xc3"}};
  EXPECT_TRUE(contains(writer_error(file), "metadata value of \"k\" is not valid UTF-8"));
  file.tensors.assign(1025, StTensor{"", DataType::float32, {0}, {}});
  EXPECT_TRUE(contains(writer_error(file), "above the limit of 1024"));
}

// ---------------------------------------------------------------------------------------------
// Fuzzing: mutated valid files must parse into consistent tensors or throw FormatError.

using Rng = std::mt19937_64;

std::uint64_t fuzz_seed() {
  if (const char* text = std::getenv("CONVGRAD_SEED"); text != nullptr && *text != '\0') {
    return std::strtoull(text, nullptr, 0);
  }
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

std::size_t pick(Rng& rng, std::size_t bound) {  // uniform in [0, bound)
  return std::uniform_int_distribution<std::size_t>(0, bound - 1)(rng);
}

// Where the header lies, when the length field is still believable.
std::optional<std::string> header_of(const Bytes& file) {
  if (file.size() < 8) return std::nullopt;
  const std::uint64_t length = get_u64(file);
  if (length == 0 || length > file.size() - 8) return std::nullopt;
  return to_text(std::span(file).subspan(8, length));
}

// Replaces the header, usually fixing the length field so that the mutation reaches the JSON
// and tensor checks rather than stopping at the length check.
void replace_header(Bytes& file, const std::string& header, Rng& rng, std::ostream& log) {
  const std::uint64_t old_length = get_u64(file);
  Bytes out(file.begin(), file.begin() + 8);
  const Bytes text = to_bytes(header);
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), file.begin() + 8 + static_cast<std::ptrdiff_t>(old_length), file.end());
  if (pick(rng, 8) != 0) {
    put_u64(out, 0, header.size());
  } else {
    log << " (stale length)";
  }
  file = std::move(out);
}

// [begin, end) of every run that looks like a JSON number.
std::vector<std::pair<std::size_t, std::size_t>> number_runs(const std::string& header) {
  std::vector<std::pair<std::size_t, std::size_t>> runs;
  const auto is_part = [](char c) {
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
  };
  for (std::size_t i = 0; i < header.size();) {
    if ((header[i] >= '0' && header[i] <= '9') || header[i] == '-') {
      std::size_t j = i;
      while (j < header.size() && is_part(header[j])) ++j;
      runs.emplace_back(i, j);
      i = j;
    } else {
      ++i;
    }
  }
  return runs;
}

// [begin, end) of the contents of every string literal (escapes are rare in these headers).
std::vector<std::pair<std::size_t, std::size_t>> string_runs(const std::string& header) {
  std::vector<std::pair<std::size_t, std::size_t>> runs;
  for (std::size_t i = 0; i < header.size(); ++i) {
    if (header[i] != '"') continue;
    std::size_t j = i + 1;
    while (j < header.size() && header[j] != '"') j += header[j] == '\\' ? 2 : 1;
    if (j >= header.size()) break;
    runs.emplace_back(i + 1, j);
    i = j;
  }
  return runs;
}

void mutate(Bytes& file, Rng& rng, std::ostream& log) {
  static const char* const kNumbers[] = {"0",
                                         "1",
                                         "2",
                                         "7",
                                         "8",
                                         "-1",
                                         "-0",
                                         "1.5",
                                         "1e3",
                                         "2e0",
                                         "0.0",
                                         "1e308",
                                         "-1e308",
                                         "4294967296",
                                         "4294967295",
                                         "9223372036854775807",
                                         "9223372036854775808",
                                         "18446744073709551615",
                                         "18446744073709551616",
                                         "99999999999999999999999999",
                                         "-9223372036854775808",
                                         "-9223372036854775809",
                                         "00",
                                         "01",
                                         "NaN",
                                         "Infinity",
                                         "",
                                         "[1]",
                                         "\"1\"",
                                         "null",
                                         "true"};
  static const char* const kStrings[] = {
      "F32",          "F16",     "BF16",  "F64",          "I8",     "f32",     "",
      "__metadata__", "dtype",   "shape", "data_offsets", "scalar", "bias",    "a",
      "x\\u0000y",    "\\ud800", "\\",    "\\\"",         "\xff",   "\xc3\xa9"};
  static const char kJsonChars[] = "{}[]\":, 0123456789-.eE\\ntfu";
  const std::size_t size = file.size();
  switch (pick(rng, 13)) {
    case 0: {  // flip bits of a few bytes
      if (size == 0) break;
      const std::size_t flips = 1 + pick(rng, 4);
      for (std::size_t i = 0; i < flips; ++i) {
        const std::size_t at = pick(rng, size);
        const auto mask = static_cast<std::byte>(1 + pick(rng, 255));
        file[at] ^= mask;
        log << " flip@" << at;
      }
      break;
    }
    case 1: {  // insert random or JSON-looking bytes
      const std::size_t at = pick(rng, size + 1);
      const std::size_t count = 1 + pick(rng, 16);
      const bool json = pick(rng, 2) == 0;
      Bytes insert;
      for (std::size_t i = 0; i < count; ++i) {
        insert.push_back(json ? static_cast<std::byte>(kJsonChars[pick(rng, sizeof kJsonChars - 1)])
                              : static_cast<std::byte>(pick(rng, 256)));
      }
      file.insert(file.begin() + static_cast<std::ptrdiff_t>(at), insert.begin(), insert.end());
      log << " insert" << count << "@" << at;
      break;
    }
    case 2: {  // delete a range
      if (size == 0) break;
      const std::size_t at = pick(rng, size);
      const std::size_t count = std::min(size - at, 1 + pick(rng, 16));
      file.erase(file.begin() + static_cast<std::ptrdiff_t>(at),
                 file.begin() + static_cast<std::ptrdiff_t>(at + count));
      log << " delete" << count << "@" << at;
      break;
    }
    case 3: {  // truncate
      if (size == 0) break;
      file.resize(pick(rng, size));
      log << " truncate" << file.size();
      break;
    }
    case 4: {  // rewrite the header length field
      if (size < 8) break;
      const std::uint64_t old = get_u64(file);
      const std::uint64_t choices[] = {0,
                                       1,
                                       ~0ull,
                                       ~0ull - 7,
                                       1ull << 63,
                                       1ull << 24,
                                       (1ull << 24) + 1,
                                       size - 8,
                                       size - 7,
                                       old + 1,
                                       old - 1,
                                       old + 8,
                                       old - 8,
                                       old * 2,
                                       rng(),
                                       pick(rng, size + 16)};
      const std::uint64_t value = choices[pick(rng, std::size(choices))];
      put_u64(file, 0, value);
      log << " length=" << value;
      break;
    }
    case 5:
    case 6: {  // replace a number in the header with an extreme or wrong one
      const auto header = header_of(file);
      if (!header) break;
      const auto runs = number_runs(*header);
      if (runs.empty()) break;
      const auto [begin, end] = runs[pick(rng, runs.size())];
      std::string value = pick(rng, 4) == 0 ? std::to_string(rng() >> pick(rng, 64))
                                            : kNumbers[pick(rng, std::size(kNumbers))];
      std::string text = *header;
      text.replace(begin, end - begin, value);
      log << " number@" << begin << "=" << value;
      replace_header(file, text, rng, log);
      break;
    }
    case 7: {  // replace a string in the header: other dtypes, names, keys (duplicates)
      const auto header = header_of(file);
      if (!header) break;
      const auto runs = string_runs(*header);
      if (runs.empty()) break;
      const auto [begin, end] = runs[pick(rng, runs.size())];
      const std::string value = kStrings[pick(rng, std::size(kStrings))];
      std::string text = *header;
      text.replace(begin, end - begin, value);
      log << " string@" << begin << "=" << value;
      replace_header(file, text, rng, log);
      break;
    }
    case 9: {  // nudge a number by a little: overlaps, gaps, shape-size mismatches
      const auto header = header_of(file);
      if (!header) break;
      const auto runs = number_runs(*header);
      if (runs.empty()) break;
      const auto [begin, end] = runs[pick(rng, runs.size())];
      std::string text = *header;
      const long long old = std::strtoll(text.substr(begin, end - begin).c_str(), nullptr, 10);
      if (old > (1ll << 62) || old < -(1ll << 62)) break;  // strtoll saturated
      const long long value = old + static_cast<long long>(pick(rng, 17)) - 8;
      text.replace(begin, end - begin, std::to_string(value));
      log << " nudge@" << begin << "=" << value;
      replace_header(file, text, rng, log);
      break;
    }
    case 10: {  // swap two numbers of the header (offsets of two tensors, shape entries)
      const auto header = header_of(file);
      if (!header) break;
      const auto runs = number_runs(*header);
      if (runs.size() < 2) break;
      auto first = runs[pick(rng, runs.size())];
      auto second = runs[pick(rng, runs.size())];
      if (first.first > second.first) std::swap(first, second);
      if (first.first == second.first) break;
      std::string text = *header;
      const std::string a = text.substr(first.first, first.second - first.first);
      const std::string b = text.substr(second.first, second.second - second.first);
      text.replace(second.first, b.size(), a);
      text.replace(first.first, a.size(), b);
      log << " swap@" << first.first << "," << second.first;
      replace_header(file, text, rng, log);
      break;
    }
    case 11: {  // byte-level edit confined to the header, keeping the length field in step
      const auto header = header_of(file);
      if (!header) break;
      std::string text = *header;
      const std::size_t at = pick(rng, text.size());
      switch (pick(rng, 3)) {
        case 0: text[at] = kJsonChars[pick(rng, sizeof kJsonChars - 1)]; break;
        case 1: text.insert(at, 1, static_cast<char>(pick(rng, 256))); break;
        default: text.erase(at, 1 + pick(rng, 4)); break;
      }
      log << " header-edit@" << at;
      replace_header(file, text, rng, log);
      break;
    }
    case 12: {  // move a tensor's data_offsets as a pair, so the size still matches the shape
      const auto header = header_of(file);
      if (!header) break;
      std::vector<std::size_t> arrays;
      for (std::size_t at = header->find("\"data_offsets\":["); at != std::string::npos;
           at = header->find("\"data_offsets\":[", at + 1)) {
        arrays.push_back(at + 16);
      }
      if (arrays.empty()) break;
      std::string text = *header;
      const std::size_t at = arrays[pick(rng, arrays.size())];
      const std::size_t close = text.find(']', at);
      if (close == std::string::npos) break;
      unsigned long long begin = 0;
      unsigned long long end = 0;
      if (std::sscanf(text.c_str() + at, "%llu,%llu", &begin, &end) != 2) break;
      const long long delta = static_cast<long long>(pick(rng, 33)) - 16;
      const std::string pair = std::to_string(begin + delta) + "," + std::to_string(end + delta);
      text.replace(at, close - at, pair);
      log << " shift@" << at << "=" << pair;
      replace_header(file, text, rng, log);
      break;
    }
    case 8: {  // structural: duplicate or move a slice of the header (whole entries, keys)
      const auto header = header_of(file);
      if (!header || header->size() < 2) break;
      std::string text = *header;
      const std::size_t begin = pick(rng, text.size());
      const std::size_t end = begin + 1 + pick(rng, std::min<std::size_t>(text.size() - begin, 80));
      const std::string slice = text.substr(begin, end - begin);
      if (pick(rng, 2) == 0) text.erase(begin, end - begin);
      const std::size_t at = pick(rng, text.size() + 1);
      text.insert(at, slice);
      log << " slice[" << begin << "," << end << ")->" << at;
      replace_header(file, text, rng, log);
      break;
    }
  }
}

std::string hex_dump(const Bytes& file) {
  std::ostringstream out;
  out << std::hex;
  for (std::size_t i = 0; i < file.size() && i < 4096; ++i) {
    out << (i % 32 == 0 ? "\n" : " ") << std::to_integer<unsigned>(file[i]);
  }
  return out.str();
}

// Empty string when the parsed file is self-consistent; otherwise what is wrong.
std::string check_parsed(const StFile& parsed, std::size_t input_size) {
  std::size_t total = 0;
  for (const StTensor& t : parsed.tensors) {
    if (t.shape.size() > 8) return "rank above 8 in " + t.name;
    std::uint64_t expected = size_of(t.dtype);
    for (const std::int64_t d : t.shape) {
      if (d < 0) return "negative dimension in " + t.name;
      if (__builtin_mul_overflow(expected, static_cast<std::uint64_t>(d), &expected)) {
        return "shape of " + t.name + " overflows";
      }
    }
    if (expected != t.bytes.size()) return "bytes do not match the shape of " + t.name;
    total += t.bytes.size();
  }
  if (total > input_size) return "more tensor bytes than input bytes";
  // Whatever was accepted must be writable and read back the same.
  try {
    const StFile again = parse_safetensors(write_safetensors(parsed));
    if (!(again == parsed)) return "write + parse does not reproduce the file";
  } catch (const FormatError& e) {
    return std::string("accepted, but writing it back fails: ") + e.what();
  }
  return {};
}

TEST(SafetensorsTest, FuzzedFilesParseOrThrowFormatError) {
  const std::uint64_t seed = fuzz_seed();
  std::cout << "[   SEED   ] CONVGRAD_SEED=" << seed << std::endl;
  SCOPED_TRACE("CONVGRAD_SEED=" + std::to_string(seed));
  Rng rng(seed);

  StFile one;
  one.tensors.push_back(make_tensor("a", DataType::float32, {2}, 0));
  StFile empties;
  empties.metadata = {{"k", "v"}};
  empties.tensors.push_back(make_tensor("e0", DataType::bfloat16, {0}, 0));
  empties.tensors.push_back(make_tensor("s", DataType::float16, {}, 0));
  empties.tensors.push_back(make_tensor("e1", DataType::float32, {3, 0}, 0));
  const std::vector<Bytes> bases = {write_safetensors(sample_file()), write_safetensors(one),
                                    write_safetensors(empties), write_safetensors(StFile{})};

  // CONVGRAD_FUZZ_ITERATIONS raises the count for a soak run.
  int iterations = 60000;
  if (const char* text = std::getenv("CONVGRAD_FUZZ_ITERATIONS"); text != nullptr) {
    iterations = std::max(iterations, std::atoi(text));
  }
  int accepted = 0;
  int rejected = 0;
  int failures = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations && failures < 5; ++i) {
    Bytes file = bases[pick(rng, bases.size())];
    std::ostringstream log;
    const std::size_t rounds = 1 + pick(rng, 3);
    for (std::size_t r = 0; r < rounds; ++r) mutate(file, rng, log);
    std::string problem;
    try {
      const StFile parsed = parse_safetensors(file);
      ++accepted;
      problem = check_parsed(parsed, file.size());
    } catch (const FormatError& e) {
      ++rejected;
      if (std::string_view(e.what()).rfind("safetensors: ", 0) != 0) {
        problem = std::string("message without prefix: ") + e.what();
      }
    } catch (const std::exception& e) {
      problem = std::string("unexpected exception: ") + e.what();
    } catch (...) {
      problem = "unexpected non-standard exception";
    }
    if (!problem.empty()) {
      ++failures;
      ADD_FAILURE() << "iteration " << i << " (mutations:" << log.str() << "): " << problem
                    << "\ninput:" << hex_dump(file);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[   FUZZ   ] " << accepted << " accepted, " << rejected << " rejected in "
            << seconds << " s" << std::endl;
  EXPECT_GE(accepted + rejected, iterations - failures);
  // Both outcomes must occur, or the mutations are not exercising the parser.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, iterations / 2);
}

}  // namespace
}  // namespace convgrad::core
