// SPDX-License-Identifier: Apache-2.0
// The NumPy .npy format (numpy.lib.format), restricted to little-endian float32 in C order.
#include "core/npy.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <string_view>

#include "convgrad/errors.hpp"

namespace convgrad::core {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;
// NumPy aligns the data to 64 bytes so that memory-mapped arrays suit any SIMD load.
constexpr std::size_t kAlign = 64;
// numpy's NPY_MAXDIMS in NumPy 2; more dimensions than this is a corrupt header.
constexpr std::size_t kMaxDims = 64;

std::uint32_t byteswap32(std::uint32_t v) noexcept {
  return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}

// The file is little-endian whatever the host is; the swap is its own inverse.
void swap_if_big_endian(float* values, std::size_t count) noexcept {
  if constexpr (std::endian::native == std::endian::big) {
    for (std::size_t i = 0; i < count; ++i) {
      std::uint32_t bits = 0;
      std::memcpy(&bits, &values[i], 4);
      bits = byteswap32(bits);
      std::memcpy(&values[i], &bits, 4);
    }
  } else {
    (void)values;
    (void)count;
  }
}

std::string shape_tuple(const std::vector<std::int64_t>& shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  if (shape.size() == 1) text += ",";  // a Python 1-tuple needs the comma
  return text + ")";
}

// Element count of `shape`, or nullopt when it overflows (or a dimension is negative).
std::optional<std::int64_t> element_count(const std::vector<std::int64_t>& shape) {
  std::int64_t count = 1;
  for (const std::int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(count, d, &count)) return std::nullopt;
  }
  // The byte size must fit too.
  std::int64_t bytes = 0;
  if (__builtin_mul_overflow(count, std::int64_t{4}, &bytes)) return std::nullopt;
  return count;
}

// A strict reader of the header dict that np.save writes, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& path) : text_(text), path_(path) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(path_ + ": invalid .npy header at byte " + std::to_string(pos_) + ": " +
                      what);
  }

  NpyArray parse() {
    std::optional<std::string> descr;
    std::optional<bool> fortran_order;
    std::optional<std::vector<std::int64_t>> shape;
    skip_space();
    expect('{');
    skip_space();
    while (!at('}')) {
      const std::string key = string_literal();
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (descr) fail("'descr' given twice");
        descr = string_literal();
      } else if (key == "fortran_order") {
        if (fortran_order) fail("'fortran_order' given twice");
        fortran_order = boolean();
      } else if (key == "shape") {
        if (shape) fail("'shape' given twice");
        shape = tuple();
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip_space();
      if (!at(',')) break;
      ++pos_;
      skip_space();
    }
    expect('}');
    skip_space();
    if (pos_ != text_.size()) fail("text after the closing brace");
    if (!descr || !fortran_order || !shape) {
      fail("the header needs 'descr', 'fortran_order' and 'shape'");
    }
    if (*descr != "<f4") fail("dtype '" + *descr + "' is not '<f4' (little-endian float32)");
    if (*fortran_order) fail("Fortran-order arrays are not supported");
    NpyArray array;
    array.shape = std::move(*shape);
    return array;
  }

 private:
  bool at(char ch) const noexcept { return pos_ < text_.size() && text_[pos_] == ch; }
  void expect(char ch) {
    if (!at(ch)) fail(std::string("expected '") + ch + "'");
    ++pos_;
  }
  void skip_space() noexcept {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\t' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  std::string string_literal() {
    if (!at('\'') && !at('"')) fail("expected a quoted string");
    const char quote = text_[pos_++];
    const std::size_t begin = pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      // Escapes never occur in the keys and dtypes that matter; refusing them keeps this small.
      if (text_[pos_] == '\\') fail("escape sequences are not supported");
      ++pos_;
    }
    if (pos_ >= text_.size()) fail("unterminated string");
    return std::string(text_.substr(begin, pos_++ - begin));
  }

  bool boolean() {
    if (text_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (text_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    fail("expected True or False");
  }

  std::vector<std::int64_t> tuple() {
    std::vector<std::int64_t> dims;
    bool trailing_comma = false;
    expect('(');
    skip_space();
    while (!at(')')) {
      if (dims.size() == kMaxDims) fail("more than " + std::to_string(kMaxDims) + " dimensions");
      dims.push_back(integer());
      skip_space();
      trailing_comma = at(',');
      if (!trailing_comma) break;
      ++pos_;
      skip_space();
    }
    expect(')');
    // "(5)" is the integer 5 in Python, not a shape; numpy refuses it too.
    if (dims.size() == 1 && !trailing_comma) fail("a 1-d shape needs a trailing comma");
    return dims;
  }

  std::int64_t integer() {
    const std::size_t begin = pos_;
    std::int64_t value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (__builtin_mul_overflow(value, 10, &value) ||
          __builtin_add_overflow(value, text_[pos_] - '0', &value)) {
        fail("dimension overflows 64 bits");
      }
      ++pos_;
    }
    if (pos_ == begin) fail("expected a non-negative integer");
    if (at('L')) ++pos_;  // Python 2 numpy wrote longs as 3L
    return value;
  }

  std::string_view text_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

}  // namespace

void write_npy(const std::string& path, const float* data, const std::vector<std::int64_t>& shape) {
  const auto count = element_count(shape);
  if (!count) {
    throw InvalidArgument("write_npy", "shape", shape_tuple(shape),
                          "dimensions must be non-negative and the byte size must fit in 64 bits");
  }
  if (data == nullptr && *count > 0) {
    throw InvalidArgument("write_npy", "data", "null", "must point to the array's elements");
  }

  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  // Version 1.0 stores the header length in 16 bits; 2.0 in 32, for absurdly many dimensions.
  const std::size_t unpadded_v1 = kMagicSize + 2 + 2 + header.size() + 1;
  const bool v2 = unpadded_v1 + kAlign > std::numeric_limits<std::uint16_t>::max();
  const std::size_t preamble = kMagicSize + 2 + (v2 ? 4 : 2);
  const std::size_t unpadded = preamble + header.size() + 1;
  header.append((kAlign - unpadded % kAlign) % kAlign, ' ');
  header += '\n';

  std::string prefix(kMagic, kMagicSize);
  prefix += static_cast<char>(v2 ? 2 : 1);
  prefix += '\0';
  const std::size_t length = header.size();
  for (std::size_t i = 0; i < (v2 ? 4u : 2u); ++i) {
    prefix += static_cast<char>((length >> (8 * i)) & 0xff);
  }

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw FormatError(path + ": cannot open for writing: " + std::strerror(errno));
  out.write(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  if constexpr (std::endian::native == std::endian::little) {
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(*count * 4));
  } else {
    // Swap in small blocks rather than copying a possibly large array whole.
    constexpr std::size_t kBlock = 4096;
    float block[kBlock];
    for (std::int64_t i = 0; i < *count; i += kBlock) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::int64_t>(kBlock, *count - i));
      std::memcpy(block, data + i, n * 4);
      swap_if_big_endian(block, n);
      out.write(reinterpret_cast<const char*>(block), static_cast<std::streamsize>(n * 4));
    }
  }
  out.close();
  if (!out) throw FormatError(path + ": write failed");
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path + ": cannot open: " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  in.seekg(0, std::ios::beg);
  if (!in || end < 0) throw FormatError(path + ": cannot determine the file size");
  const auto file_size = static_cast<std::uint64_t>(end);

  const auto read_exact = [&](void* dst, std::uint64_t bytes, const char* what) {
    in.read(static_cast<char*>(dst), static_cast<std::streamsize>(bytes));
    if (!in || static_cast<std::uint64_t>(in.gcount()) != bytes) {
      throw FormatError(path + ": truncated .npy file (" + what + ")");
    }
  };

  if (file_size < kMagicSize + 4) throw FormatError(path + ": too short for a .npy file");
  unsigned char preamble[kMagicSize + 2];
  read_exact(preamble, sizeof preamble, "magic");
  if (std::memcmp(preamble, kMagic, kMagicSize) != 0) {
    throw FormatError(path + ": not a .npy file (bad magic)");
  }
  const unsigned major = preamble[kMagicSize];
  const unsigned minor = preamble[kMagicSize + 1];
  if ((major != 1 && major != 2) || minor != 0) {
    throw FormatError(path + ": unsupported .npy version " + std::to_string(major) + "." +
                      std::to_string(minor) + " (1.0 and 2.0 are read)");
  }
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  unsigned char length_le[4] = {0, 0, 0, 0};
  read_exact(length_le, length_bytes, "header length");
  std::uint64_t header_length = 0;
  for (std::size_t i = 0; i < length_bytes; ++i) {
    header_length |= std::uint64_t{length_le[i]} << (8 * i);
  }
  const std::uint64_t data_offset = kMagicSize + 2 + length_bytes + header_length;
  if (data_offset > file_size) throw FormatError(path + ": truncated .npy file (header)");

  std::string header(header_length, '\0');
  read_exact(header.data(), header_length, "header");
  NpyArray array = HeaderParser(header, path).parse();

  const auto count = element_count(array.shape);
  if (!count) throw FormatError(path + ": the shape's byte size overflows 64 bits");
  const std::uint64_t data_bytes = static_cast<std::uint64_t>(*count) * 4;
  const std::uint64_t available = file_size - data_offset;
  if (data_bytes != available) {
    throw FormatError(path + ": the shape " + shape_tuple(array.shape) + " needs " +
                      std::to_string(data_bytes) + " data bytes but the file holds " +
                      std::to_string(available));
  }
  array.data.resize(static_cast<std::size_t>(*count));
  read_exact(array.data.data(), data_bytes, "data");
  swap_if_big_endian(array.data.data(), array.data.size());
  return array;
}

}  // namespace convgrad::core
