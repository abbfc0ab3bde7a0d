// SPDX-License-Identifier: Apache-2.0
#include "core/safetensors.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <system_error>
#include <utility>

#include "convgrad/errors.hpp"

namespace convgrad::core {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::size_t kLengthFieldBytes = 8;
constexpr std::uint64_t kMaxBytes =
    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

// Header strings reach messages; a hostile header must not be able to make a message huge.
constexpr std::size_t kMaxQuotedBytes = 64;

// Quotes text that nlohmann already checked to be UTF-8, cutting it at a code point boundary.
std::string quote_text(std::string_view text) {
  std::size_t keep = std::min(text.size(), kMaxQuotedBytes);
  while (keep > 0 && keep < text.size() &&
         (static_cast<unsigned char>(text[keep]) & 0xC0u) == 0x80u) {
    --keep;
  }
  std::string out = "\"";
  for (const char c : text.substr(0, keep)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      std::array<char, 8> buffer{};
      std::snprintf(buffer.data(), buffer.size(), "\\u%04x", u);
      out += buffer.data();
    } else {
      out += c;
    }
  }
  if (keep < text.size()) out += "...";
  out += '"';
  return out;
}

// For text that may hold any byte (nlohmann echoes the offending token, which can be invalid
// UTF-8 or megabytes long): printable ASCII passes, the rest becomes \xNN.
std::string printable(std::string_view text, std::size_t max_bytes) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < max_bytes; ++i) {
    const auto u = static_cast<unsigned char>(text[i]);
    if (u >= 0x20 && u < 0x7f) {
      out += text[i];
    } else {
      std::array<char, 8> buffer{};
      std::snprintf(buffer.data(), buffer.size(), "\\x%02x", u);
      out += buffer.data();
    }
  }
  if (text.size() > max_bytes) out += "...";
  return out;
}

template <typename T>
std::string list_text(const std::vector<T>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(values[i]);
  }
  return out + "]";
}

// product(dims) * element_size, or nullopt when a dimension or the product of the nonzero ones
// (times the element size) leaves int64: consumers compute strides from the nonzero dimensions
// even when a zero makes the tensor empty, so those must stay representable too.
std::optional<std::uint64_t> checked_byte_size(const std::vector<std::uint64_t>& dims,
                                               std::size_t element_size) {
  std::uint64_t product = element_size;
  bool empty = false;
  for (const std::uint64_t d : dims) {
    if (d > kMaxBytes) return std::nullopt;
    if (d == 0) {
      empty = true;
      continue;
    }
    if (d > kMaxBytes / product) return std::nullopt;
    product *= d;
  }
  return empty ? 0 : product;
}

struct Entry {
  std::string name;
  std::optional<DataType> dtype;
  std::vector<std::uint64_t> shape;
  std::vector<std::uint64_t> offsets;
};

// Validates the header while nlohmann tokenizes it, without building a DOM: this is how
// duplicate keys are seen at all (a DOM keeps the last silently), and how memory stays bounded
// (nesting deeper than the schema, over-long shapes and excess tensors stop the parse at once).
class HeaderReader final : public nlohmann::json_sax<Json> {
 public:
  explicit HeaderReader(const Limits& limits) : limits_(limits) {}

  std::map<std::string, std::string> metadata;
  std::vector<Entry> entries;
  std::string error;  // the first rule broken; empty while none

  bool null() override { return wrong_type("null"); }
  bool boolean(bool /*value*/) override { return wrong_type("a boolean"); }
  bool number_integer(number_integer_t value) override {
    // nlohmann reports only literals with a minus sign here.
    return wrong_type("the number " + (value == 0 ? std::string("-0") : std::to_string(value)));
  }
  bool number_unsigned(number_unsigned_t value) override {
    if (level_ == Level::shape) {
      if (entries.back().shape.size() >= limits_.max_rank) {
        return fail(tensor() + ": rank is above the limit of " + std::to_string(limits_.max_rank));
      }
      entries.back().shape.push_back(value);
      return true;
    }
    if (level_ == Level::offsets) {
      if (entries.back().offsets.size() >= 2) {
        return fail(tensor() + ": data_offsets must have 2 entries, found more");
      }
      entries.back().offsets.push_back(value);
      return true;
    }
    return wrong_type("the number " + std::to_string(value));
  }
  bool number_float(number_float_t /*value*/, const string_t& text) override {
    return wrong_type("the number " + printable(text, 40) +
                      " (not an integer, or outside [-2^63, 2^64))");
  }
  bool string(string_t& value) override {
    if (level_ == Level::tensor && inner_key_ == "dtype") {
      const auto dtype = parse_safetensors_dtype(value);
      if (!dtype) {
        return fail(tensor() + ": unknown dtype " + quote_text(value) +
                    " (expected \"F32\", \"F16\" or \"BF16\")");
      }
      entries.back().dtype = dtype;
      return true;
    }
    if (level_ == Level::metadata) {
      metadata.emplace(inner_key_, std::move(value));
      return true;
    }
    return wrong_type("a string");
  }
  bool binary(binary_t& /*value*/) override { return wrong_type("binary data"); }

  bool start_object(std::size_t /*elements*/) override {
    if (level_ == Level::start) {
      level_ = Level::top;
      return true;
    }
    if (level_ != Level::top) return wrong_type("an object");
    if (top_key_ == kMetadataKey) {
      level_ = Level::metadata;
      return true;
    }
    if (entries.size() >= limits_.max_tensors) {
      return fail("more than " + std::to_string(limits_.max_tensors) + " tensors");
    }
    entries.push_back(Entry{top_key_, std::nullopt, {}, {}});
    seen_fields_ = 0;
    level_ = Level::tensor;
    return true;
  }

  bool key(string_t& value) override {
    if (level_ == Level::top) {
      if (!top_keys_.insert(value).second) {
        return fail("duplicate key " + quote_text(value) + " in the header");
      }
      top_key_ = std::move(value);
      return true;
    }
    if (level_ == Level::metadata) {
      if (metadata.contains(value)) {
        return fail("\"__metadata__\": duplicate key " + quote_text(value));
      }
      inner_key_ = std::move(value);
      return true;
    }
    // Level::tensor: the only other level where nlohmann reports keys.
    unsigned bit = 0;
    if (value == "dtype") {
      bit = 1;
    } else if (value == "shape") {
      bit = 2;
    } else if (value == "data_offsets") {
      bit = 4;
    } else {
      return fail(tensor() + ": unknown field " + quote_text(value) +
                  " (allowed: \"dtype\", \"shape\", \"data_offsets\")");
    }
    if ((seen_fields_ & bit) != 0) return fail(tensor() + ": duplicate field " + quote_text(value));
    seen_fields_ |= bit;
    inner_key_ = std::move(value);
    return true;
  }

  bool end_object() override {
    if (level_ == Level::tensor) {
      for (const auto& [bit, name] :
           {std::pair{1u, "dtype"}, std::pair{2u, "shape"}, std::pair{4u, "data_offsets"}}) {
        if ((seen_fields_ & bit) == 0) return fail(tensor() + ": missing field \"" + name + "\"");
      }
      level_ = Level::top;
    } else if (level_ == Level::metadata) {
      level_ = Level::top;
    } else {
      level_ = Level::done;
    }
    return true;
  }

  bool start_array(std::size_t /*elements*/) override {
    if (level_ == Level::tensor && inner_key_ == "shape") {
      level_ = Level::shape;
      return true;
    }
    if (level_ == Level::tensor && inner_key_ == "data_offsets") {
      level_ = Level::offsets;
      return true;
    }
    return wrong_type("an array");
  }

  bool end_array() override {
    if (level_ == Level::offsets && entries.back().offsets.size() != 2) {
      return fail(tensor() + ": data_offsets must have 2 entries, found " +
                  std::to_string(entries.back().offsets.size()));
    }
    level_ = Level::tensor;
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::json::exception& ex) override {
    // what() starts with "[json.exception.parse_error.101] "; the rest says where and why.
    std::string_view text = ex.what();
    if (const auto bracket = text.find("] ");
        !text.empty() && text[0] == '[' && bracket != std::string_view::npos) {
      text.remove_prefix(bracket + 2);
    }
    return fail("header is not valid JSON: " + printable(text, 240));
  }

 private:
  enum class Level { start, top, tensor, metadata, shape, offsets, done };

  bool fail(std::string message) {
    if (error.empty()) error = std::move(message);
    return false;
  }

  std::string tensor() const { return "tensor " + quote_text(entries.back().name); }

  bool wrong_type(const std::string& found) {
    switch (level_) {
      case Level::start:
      case Level::done: return fail("header is not a JSON object (found " + found + ")");
      case Level::top:
        if (top_key_ == kMetadataKey) {
          return fail("\"__metadata__\" must be an object of strings, found " + found);
        }
        return fail("tensor " + quote_text(top_key_) + " must be an object, found " + found);
      case Level::tensor: {
        const char* expected = inner_key_ == "dtype"   ? "a string"
                               : inner_key_ == "shape" ? "an array of non-negative integers"
                                                       : "an array of 2 non-negative integers";
        return fail(tensor() + ": \"" + inner_key_ + "\" must be " + expected + ", found " + found);
      }
      case Level::metadata:
        return fail("\"__metadata__\": value of " + quote_text(inner_key_) +
                    " must be a string, found " + found);
      case Level::shape:
        return fail(tensor() + ": shape entries must be non-negative integers, found " + found);
      case Level::offsets:
        return fail(tensor() + ": data_offsets entries must be non-negative integers, found " +
                    found);
    }
    return fail("unexpected " + found);
  }

  const Limits& limits_;
  Level level_ = Level::start;
  std::set<std::string> top_keys_;
  std::string top_key_;
  std::string inner_key_;
  unsigned seen_fields_ = 0;
};

std::uint64_t read_u64_le(std::span<const std::byte> bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    value |= static_cast<std::uint64_t>(std::to_integer<unsigned>(bytes[i])) << (8 * i);
  }
  return value;
}

StFile parse_impl(std::span<const std::byte> bytes, const Limits& limits,
                  const std::string& where) {
  const auto error = [&where](const std::string& message) { return FormatError(where + message); };
  const std::uint64_t size = bytes.size();
  if (size > limits.max_file_bytes) {
    throw error("file is " + std::to_string(size) + " bytes, above the limit of " +
                std::to_string(limits.max_file_bytes));
  }
  if (size < kLengthFieldBytes) {
    throw error("file is " + std::to_string(size) +
                " bytes, too short for the 8-byte header length");
  }
  const std::uint64_t header_bytes = read_u64_le(bytes);
  if (header_bytes == 0) throw error("header length is 0");
  if (header_bytes > limits.max_header_bytes) {
    throw error("header length " + std::to_string(header_bytes) + " is above the limit of " +
                std::to_string(limits.max_header_bytes) + " bytes");
  }
  if (header_bytes > size - kLengthFieldBytes) {
    throw error("header length " + std::to_string(header_bytes) + " exceeds the " +
                std::to_string(size - kLengthFieldBytes) + " bytes that follow the length field");
  }
  const auto header = bytes.subspan(kLengthFieldBytes, header_bytes);
  const auto* header_begin = reinterpret_cast<const char*>(header.data());
  // The reference implementation rejects leading whitespace too, so such files do not travel.
  if (header_begin[0] != '{') {
    throw error("header does not start with '{' (found " + printable({header_begin, 1}, 1) +
                "), so it is not a JSON object");
  }

  // nlohmann stops at a NUL byte as if the input ended there, which would let bytes after it
  // pass unseen; JSON allows NUL nowhere (not even raw inside strings), so refuse it first.
  if (const void* nul = std::memchr(header_begin, 0, header.size()); nul != nullptr) {
    throw error("header has a NUL byte at header offset " +
                std::to_string(static_cast<const char*>(nul) - header_begin) +
                ", which JSON does not allow");
  }

  HeaderReader reader(limits);
  bool parsed = false;
  try {
    parsed = Json::sax_parse(header_begin, header_begin + header.size(), &reader,
                             nlohmann::json::input_format_t::json, /*strict=*/true,
                             /*ignore_comments=*/false);
  } catch (const nlohmann::json::exception& ex) {
    throw error(std::string("header is not valid JSON: ") + printable(ex.what(), 240));
  }
  if (!parsed) throw error(reader.error.empty() ? "header is not valid JSON" : reader.error);

  const std::uint64_t data_bytes = size - kLengthFieldBytes - header_bytes;
  auto& entries = reader.entries;
  for (const Entry& entry : entries) {
    const std::string name = "tensor " + quote_text(entry.name);
    const std::string dtype(safetensors_dtype_name(*entry.dtype));
    const auto needed = checked_byte_size(entry.shape, size_of(*entry.dtype));
    if (!needed) {
      throw error(name + ": shape " + list_text(entry.shape) + " of " + dtype +
                  " spans more than 2^63-1 bytes");
    }
    const std::uint64_t begin = entry.offsets[0];
    const std::uint64_t end = entry.offsets[1];
    const std::string offsets = "data_offsets " + list_text(entry.offsets);
    if (begin > end) throw error(name + ": " + offsets + " are reversed");
    if (end > data_bytes) {
      throw error(name + ": " + offsets + " exceed the data section (" +
                  std::to_string(data_bytes) + " bytes)");
    }
    if (end - begin != *needed) {
      throw error(name + ": " + offsets + " hold " + std::to_string(end - begin) +
                  " bytes but shape " + list_text(entry.shape) + " of " + dtype + " needs " +
                  std::to_string(*needed));
    }
  }

  // Like the reference implementation, the tensors must tile the data section exactly: bytes
  // no tensor owns could smuggle content past anything that inspects the tensors.
  std::vector<std::size_t> order(entries.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&entries](std::size_t a, std::size_t b) {
    return entries[a].offsets < entries[b].offsets;
  });
  std::uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const std::size_t index : order) {
    const Entry& entry = entries[index];
    const auto this_one = [&entry] {
      return "tensor " + quote_text(entry.name) + ": data_offsets " + list_text(entry.offsets);
    };
    if (entry.offsets[0] < covered) {
      throw error(this_one() + " overlap tensor " + quote_text(previous->name) + " " +
                  list_text(previous->offsets));
    }
    if (entry.offsets[0] > covered) {
      throw error(this_one() + " leave a gap of " + std::to_string(entry.offsets[0] - covered) +
                  " bytes after " +
                  (previous ? "tensor " + quote_text(previous->name) : "the header"));
    }
    covered = entry.offsets[1];
    previous = &entry;
  }
  if (covered != data_bytes) {
    throw error("the data section is " + std::to_string(data_bytes) +
                " bytes but the tensors cover " + std::to_string(covered) + " (trailing bytes)");
  }

  StFile file;
  file.metadata = std::move(reader.metadata);
  file.tensors.reserve(entries.size());
  const auto data = bytes.subspan(kLengthFieldBytes + header_bytes);
  for (const std::size_t index : order) {
    Entry& entry = entries[index];
    StTensor tensor;
    tensor.name = std::move(entry.name);
    tensor.dtype = *entry.dtype;
    tensor.shape.assign(entry.shape.begin(), entry.shape.end());  // each <= 2^63-1, checked
    const auto source = data.subspan(entry.offsets[0], entry.offsets[1] - entry.offsets[0]);
    tensor.bytes.assign(source.begin(), source.end());
    file.tensors.push_back(std::move(tensor));
  }
  return file;
}

// nlohmann refuses to serialize invalid UTF-8, which its parser would refuse to read back.
std::string json_string(const std::string& text, const std::string& what) {
  try {
    return Json(text).dump();
  } catch (const nlohmann::json::exception&) {
    throw FormatError("safetensors: " + what + " is not valid UTF-8");
  }
}

std::string system_message(int error_number) {
  return std::generic_category().message(error_number);
}

struct FileCloser {
  void operator()(std::FILE* file) const noexcept { std::fclose(file); }
};

}  // namespace

const StTensor* StFile::find(std::string_view name) const noexcept {
  for (const StTensor& tensor : tensors) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

std::string_view safetensors_dtype_name(DataType type) noexcept {
  switch (type) {
    case DataType::float32: return "F32";
    case DataType::float16: return "F16";
    case DataType::bfloat16: return "BF16";
  }
  return {};
}

std::optional<DataType> parse_safetensors_dtype(std::string_view name) noexcept {
  if (name == "F32") return DataType::float32;
  if (name == "F16") return DataType::float16;
  if (name == "BF16") return DataType::bfloat16;
  return std::nullopt;
}

std::vector<std::byte> write_safetensors(const StFile& file) {
  const Limits limits;
  const auto error = [](const std::string& message) {
    return FormatError("safetensors: cannot write: " + message);
  };
  if (file.tensors.size() > limits.max_tensors) {
    throw error(std::to_string(file.tensors.size()) + " tensors, above the limit of " +
                std::to_string(limits.max_tensors));
  }
  std::string header = "{";
  if (!file.metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : file.metadata) {
      if (!first) header += ',';
      first = false;
      const std::string key_json = json_string(key, "cannot write: a metadata key");
      header += key_json;
      header += ':';
      header += json_string(value, "cannot write: the metadata value of " + key_json);
    }
    header += '}';
  }
  std::set<std::string_view> names;
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < file.tensors.size(); ++i) {
    const StTensor& tensor = file.tensors[i];
    const std::string name_json =
        json_string(tensor.name, "cannot write: the name of tensor #" + std::to_string(i));
    const std::string name = "tensor " + name_json;
    if (tensor.name == kMetadataKey) throw error(name + ": the name is reserved");
    if (!names.insert(tensor.name).second) throw error(name + ": duplicate name");
    const std::string_view dtype = safetensors_dtype_name(tensor.dtype);
    if (dtype.empty()) throw error(name + ": unknown data type");
    if (tensor.shape.size() > limits.max_rank) {
      throw error(name + ": rank " + std::to_string(tensor.shape.size()) +
                  " is above the limit of " + std::to_string(limits.max_rank));
    }
    std::vector<std::uint64_t> dims;
    for (const std::int64_t d : tensor.shape) {
      if (d < 0) throw error(name + ": negative dimension in shape " + list_text(tensor.shape));
      dims.push_back(static_cast<std::uint64_t>(d));
    }
    const auto needed = checked_byte_size(dims, size_of(tensor.dtype));
    if (!needed) {
      throw error(name + ": shape " + list_text(tensor.shape) + " spans more than 2^63-1 bytes");
    }
    if (tensor.bytes.size() != *needed) {
      throw error(name + ": " + std::to_string(tensor.bytes.size()) + " bytes but shape " +
                  list_text(tensor.shape) + " of " + std::string(dtype) + " needs " +
                  std::to_string(*needed));
    }
    if (header.size() > 1) header += ',';
    header += name_json;
    header += ":{\"dtype\":\"";
    header += dtype;
    header += "\",\"shape\":";
    header += list_text(tensor.shape);
    header += ",\"data_offsets\":[";
    header += std::to_string(offset) + "," + std::to_string(offset + *needed) + "]}";
    offset += *needed;
  }
  header += '}';
  // The reference writer aligns the data section to 8 bytes so that readers may map it.
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > limits.max_header_bytes) {
    throw error("header of " + std::to_string(header.size()) + " bytes is above the limit of " +
                std::to_string(limits.max_header_bytes));
  }

  std::vector<std::byte> out;
  out.reserve(kLengthFieldBytes + header.size() + offset);
  const std::uint64_t header_bytes = header.size();
  for (std::size_t i = 0; i < kLengthFieldBytes; ++i) {
    out.push_back(static_cast<std::byte>((header_bytes >> (8 * i)) & 0xFFu));
  }
  for (const char c : header) out.push_back(static_cast<std::byte>(c));
  for (const StTensor& tensor : file.tensors) {
    out.insert(out.end(), tensor.bytes.begin(), tensor.bytes.end());
  }
  return out;
}

void save_safetensors(const std::string& path, const StFile& file) {
  const std::vector<std::byte> bytes = write_safetensors(file);
  const std::string temporary = path + ".tmp";
  const auto error = [&path](const std::string& message) {
    return FormatError("safetensors: " + path + ": " + message);
  };
  std::FILE* raw = std::fopen(temporary.c_str(), "wb");
  if (raw == nullptr) {
    throw error("cannot create " + temporary + ": " + system_message(errno));
  }
  std::unique_ptr<std::FILE, FileCloser> stream(raw);
  bool written = std::fwrite(bytes.data(), 1, bytes.size(), raw) == bytes.size();
  written = std::fflush(raw) == 0 && written;
  int saved_errno = errno;
  // fclose reports delayed write errors (NFS, full disk), so its result counts.
  written = std::fclose(stream.release()) == 0 && written;
  if (!written) {
    if (saved_errno == 0) saved_errno = errno;
    std::remove(temporary.c_str());
    throw error("cannot write " + temporary + ": " + system_message(saved_errno));
  }
  std::error_code code;
  std::filesystem::rename(temporary, path, code);
  if (code) {
    std::remove(temporary.c_str());
    throw error("cannot rename " + temporary + ": " + code.message());
  }
}

StFile parse_safetensors(std::span<const std::byte> bytes, const Limits& limits) {
  return parse_impl(bytes, limits, "safetensors: ");
}

StFile load_safetensors(const std::string& path, const Limits& limits) {
  const auto error = [&path](const std::string& message) {
    return FormatError("safetensors: " + path + ": " + message);
  };
  std::FILE* raw = std::fopen(path.c_str(), "rb");
  if (raw == nullptr) throw error("cannot open: " + system_message(errno));
  const std::unique_ptr<std::FILE, FileCloser> stream(raw);

  std::vector<std::byte> bytes;
  // The size is only a hint for one exact allocation: the file may change while it is read, or
  // not be a regular file at all, so the cap is enforced on what is actually read.
  std::error_code code;
  const std::uintmax_t hint = std::filesystem::file_size(path, code);
  if (!code) {
    if (hint > limits.max_file_bytes) {
      throw error("file is " + std::to_string(hint) + " bytes, above the limit of " +
                  std::to_string(limits.max_file_bytes));
    }
    bytes.reserve(static_cast<std::size_t>(hint));
  }
  std::array<std::byte, 1 << 16> chunk{};
  for (;;) {
    const std::size_t got = std::fread(chunk.data(), 1, chunk.size(), raw);
    if (got > limits.max_file_bytes - bytes.size()) {
      throw error("file is above the limit of " + std::to_string(limits.max_file_bytes) + " bytes");
    }
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(got));
    if (got < chunk.size()) break;
  }
  if (std::ferror(raw) != 0) throw error("cannot read: " + system_message(errno));
  return parse_impl(bytes, limits, "safetensors: " + path + ": ");
}

}  // namespace convgrad::core
