// SPDX-License-Identifier: Apache-2.0
// A strict reader and writer of the safetensors container (docs/archive.md, "Container").
// Archives come from outside the process, so the reader trusts nothing the header claims: every
// rule it breaks is a FormatError, and no allocation is sized by a header value that was not
// first checked against the bytes actually present.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "convgrad/dtype.hpp"

namespace convgrad::core {

/// One tensor: raw little-endian element bytes in row-major order, exactly
/// `product(shape) * size_of(dtype)` of them.
struct StTensor {
  std::string name;
  DataType dtype = DataType::float32;
  std::vector<std::int64_t> shape;  // rank 0 is a scalar
  std::vector<std::byte> bytes;

  bool operator==(const StTensor&) const = default;
};

struct StFile {
  /// The `__metadata__` object; written only when not empty.
  std::map<std::string, std::string> metadata;
  /// The writer lays tensors out in this order. The reader returns them in data order (by
  /// data_offsets), which is the written order for every file this writer produced.
  std::vector<StTensor> tensors;

  /// The tensor called `name`, or nullptr.
  const StTensor* find(std::string_view name) const noexcept;

  bool operator==(const StFile&) const = default;
};

/// Caps applied by the reader before anything is allocated from header values.
struct Limits {
  std::uint64_t max_file_bytes = 1ull << 34;
  std::uint64_t max_header_bytes = 1ull << 24;
  std::size_t max_tensors = 1024;
  std::size_t max_rank = 8;
};

/// The safetensors dtype string: "F32", "F16", "BF16".
std::string_view safetensors_dtype_name(DataType type) noexcept;
std::optional<DataType> parse_safetensors_dtype(std::string_view name) noexcept;

/// Serializes `file`: `__metadata__` first, then the tensors in the given order with contiguous
/// data, the header padded with spaces to a multiple of 8 bytes. Throws FormatError when the
/// result would not parse under the default Limits (duplicate or reserved name, negative
/// dimension, too high a rank, too many tensors, bytes that do not match the shape, a name or
/// metadata string that is not UTF-8).
std::vector<std::byte> write_safetensors(const StFile& file);

/// Writes to `path + ".tmp"` and renames it over `path`, so readers never see a partial file.
/// Throws FormatError on any I/O failure (the temporary file is removed).
void save_safetensors(const std::string& path, const StFile& file);

/// Parses and validates a whole file held in memory. Throws FormatError saying what is wrong
/// and where; no other exception escapes except std::bad_alloc.
StFile parse_safetensors(std::span<const std::byte> bytes, const Limits& limits = {});

/// Reads `path` (refusing files over `limits.max_file_bytes`) and parses it. Messages name the
/// path.
StFile load_safetensors(const std::string& path, const Limits& limits = {});

}  // namespace convgrad::core
