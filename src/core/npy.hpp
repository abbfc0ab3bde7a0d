// SPDX-License-Identifier: Apache-2.0
// NumPy .npy files of float32, for failure dumps (CONVGRAD_DUMP_DIR) and test fixtures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace convgrad::core {

/// Writes `data` (C order, product of `shape` elements) as a NumPy format 1.0 file with dtype
/// `'<f4'`; the header is padded with spaces and a final '\n' so that the data starts at a
/// multiple of 64 bytes. An empty `shape` writes a 0-d array of one element. Throws
/// InvalidArgument for a negative dimension or an element count that overflows, FormatError
/// when the file cannot be written.
void write_npy(const std::string& path, const float* data, const std::vector<std::int64_t>& shape);

/// A float32 array read from a .npy file; `data` is C order.
struct NpyArray {
  std::vector<std::int64_t> shape;
  std::vector<float> data;
};

/// Reads a NumPy format 1.0 or 2.0 file holding a C-order `'<f4'` array. Anything else (other
/// dtype, Fortran order, another version, a header that is not a plain dict, a data size that
/// differs from the shape's) is a FormatError naming the path; nothing larger than the file is
/// ever allocated.
NpyArray read_npy(const std::string& path);

}  // namespace convgrad::core
