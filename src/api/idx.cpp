// SPDX-License-Identifier: Apache-2.0
#include "convgrad/idx.hpp"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>

#include "convgrad/errors.hpp"

#if defined(CONVGRAD_WITH_ZLIB)
#include <zlib.h>
#endif

namespace convgrad {
namespace {

// Far above the 47 MB of the largest MNIST file; stops a corrupt header or a gzip bomb from
// exhausting memory before the length check can refuse it.
constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 32;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw FormatError("IDX file " + path + ": " + what);
}

std::vector<std::uint8_t> read_raw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot be opened (missing or unreadable)");
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  if (in.bad()) fail(path, "read error");
  return bytes;
}

std::vector<std::uint8_t> gunzip(const std::string& path) {
#if defined(CONVGRAD_WITH_ZLIB)
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) fail(path, "cannot be opened (missing or unreadable)");
  std::vector<std::uint8_t> bytes;
  std::vector<std::uint8_t> chunk(std::size_t{1} << 20);
  for (;;) {
    const int got = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (got < 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + got);
    if (bytes.size() > kMaxBytes) {
      gzclose(file);
      fail(path, "decompresses to more than 4 GiB");
    }
    if (got == 0) break;
  }
  int code = Z_OK;
  const char* message = gzerror(file, &code);
  const std::string error = message != nullptr ? message : "";
  gzclose(file);
  if (code != Z_OK && code != Z_STREAM_END) fail(path, "corrupt or truncated gzip data: " + error);
  return bytes;
#else
  fail(path, "is gzip-compressed, and this build of convgrad has no zlib: gunzip it first");
#endif
}

}  // namespace

bool idx_supports_gzip() noexcept {
#if defined(CONVGRAD_WITH_ZLIB)
  return true;
#else
  return false;
#endif
}

IdxArray read_idx(const std::string& path) {
  std::vector<std::uint8_t> bytes = read_raw(path);
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) bytes = gunzip(path);
  if (bytes.size() < 4) {
    fail(path, "too short for an IDX header (" + std::to_string(bytes.size()) + " bytes)");
  }
  if (bytes[0] != 0 || bytes[1] != 0) {
    char magic[16];
    std::snprintf(magic, sizeof magic, "0x%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2],
                  bytes[3]);
    fail(path,
         std::string("wrong magic number ") + magic + " (an IDX file starts with two zero bytes)");
  }
  if (bytes[2] != 0x08) {
    char type[8];
    std::snprintf(type, sizeof type, "0x%02x", bytes[2]);
    fail(path,
         std::string("element type ") + type + " is not supported (only 0x08, unsigned byte)");
  }
  const int rank = bytes[3];
  if (rank < 1 || rank > 8) {
    fail(path, "dimension count " + std::to_string(rank) + " is not in [1, 8]");
  }
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(rank);
  if (bytes.size() < header) {
    fail(path, "truncated header: " + std::to_string(bytes.size()) + " bytes, " +
                   std::to_string(header) + " needed for " + std::to_string(rank) + " dimensions");
  }
  IdxArray array;
  std::uint64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    const std::uint8_t* p = bytes.data() + 4 + 4 * d;
    const std::uint64_t dim = (std::uint64_t{p[0]} << 24) | (std::uint64_t{p[1]} << 16) |
                              (std::uint64_t{p[2]} << 8) | std::uint64_t{p[3]};
    if (dim == 0) fail(path, "dimension " + std::to_string(d) + " is 0");
    count *= dim;
    if (count > kMaxBytes) fail(path, "dimensions describe more than 4 GiB");
    array.dims.push_back(static_cast<std::int64_t>(dim));
  }
  const std::uint64_t have = bytes.size() - header;
  if (have != count) {
    fail(path, std::string(have < count ? "truncated" : "has trailing bytes") + ": " +
                   std::to_string(have) + " data bytes, the dimensions need " +
                   std::to_string(count));
  }
  array.values.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return array;
}

}  // namespace convgrad
