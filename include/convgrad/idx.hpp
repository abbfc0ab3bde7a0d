// SPDX-License-Identifier: Apache-2.0
// A reader for the IDX files of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/):
// two zero bytes, a type byte, a dimension count, the dimensions as big-endian uint32, then the
// values in row-major order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace convgrad {

/// An IDX array of unsigned bytes (type 0x08, the only type the MNIST files use).
struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> values;  ///< row-major, the product of `dims` elements
};

/// Reads `path`, gunzipping it first when it starts with the gzip magic bytes (only when the
/// library was built with zlib: see `idx_supports_gzip()`). Throws FormatError, naming the file,
/// when it is missing or unreadable, compressed without zlib, corrupt, has a wrong magic number, a
/// type other than unsigned byte, no or more than 8 dimensions, a zero dimension, or a length other
/// than header + the product of the dimensions (truncated or with trailing bytes).
IdxArray read_idx(const std::string& path);

/// Whether `read_idx` can read gzipped files.
bool idx_supports_gzip() noexcept;

}  // namespace convgrad
