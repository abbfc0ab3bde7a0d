// SPDX-License-Identifier: Apache-2.0
// Layer files: one named convolution per CSV row, the benchmark's list of real network layers.
#include "core/layer_csv.hpp"

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <sstream>

#include "convgrad/errors.hpp"

namespace convgrad::core {
namespace {

constexpr std::size_t kColumnCount = 15;
constexpr std::array<const char*, kColumnCount> kColumns = {
    "name",     "N",        "H",     "W",     "C",     "K",     "R",     "S",
    "stride_h", "stride_w", "pad_h", "pad_w", "dil_h", "dil_w", "groups"};

enum Column : std::size_t {
  name,
  n,
  h,
  w,
  c,
  k,
  r,
  s,
  stride_h,
  stride_w,
  pad_h,
  pad_w,
  dil_h,
  dil_w,
  groups
};

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

class RowParser {
 public:
  RowParser(const std::string& source, std::size_t line) : source_(source), line_(line) {}

  // The message is streamed piece by piece: GCC 12 warns falsely (-Wrestrict) on
  // `"'" + std::string(...)` chains.
  template <typename... Parts>
  [[noreturn]] void fail(std::size_t column, const Parts&... what) const {
    std::ostringstream message;
    message << source_ << ":" << line_ << ": column " << column + 1;
    if (column < kColumnCount) message << " (" << kColumns[column] << ")";
    message << ": ";
    (message << ... << what);
    throw FormatError(message.str());
  }

  // `minimum` is 1 for sizes and 0 for pads; 32-bit columns are the ConvProblem int32 fields.
  std::int64_t integer(const std::vector<std::string_view>& cells, Column column,
                       std::int64_t minimum, bool int32) const {
    const std::string_view cell = cells[column];
    std::int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), value);
    if (cell.empty() || ec == std::errc::invalid_argument || ptr != cell.data() + cell.size()) {
      fail(column, "'", cell, "' is not an integer");
    }
    const std::int64_t limit =
        int32 ? std::numeric_limits<std::int32_t>::max() : std::numeric_limits<std::int64_t>::max();
    if (ec == std::errc::result_out_of_range || value > limit) {
      fail(column, "'", cell, "' is out of range");
    }
    if (value < minimum) {
      fail(column, "value ", cell, minimum > 0 ? " must be positive" : " must be non-negative");
    }
    return value;
  }

 private:
  const std::string& source_;
  std::size_t line_;
};

// floor((in + 2 pad - dilated kernel) / stride) + 1, or 0 when it would overflow.
std::int64_t output_size(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                         std::int64_t pad, std::int64_t dilation) {
  std::int64_t dilated = 0;
  std::int64_t span = 0;
  if (__builtin_mul_overflow(kernel - 1, dilation, &dilated) ||
      __builtin_add_overflow(in, 2 * pad, &span) ||
      __builtin_sub_overflow(span, dilated + 1, &span)) {
    return 0;
  }
  if (span < 0) return 0;
  return span / stride + 1;
}

}  // namespace

std::vector<NamedProblem> parse_layer_csv(std::string_view text, const std::string& source_name) {
  std::vector<NamedProblem> layers;
  std::map<std::string, std::size_t, std::less<>> first_line_of;
  std::size_t line_number = 0;
  bool seen_row = false;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    const std::string_view line = trim(text.substr(0, newline));
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    ++line_number;
    if (line.empty() || line.front() == '#') continue;

    std::vector<std::string_view> cells;
    for (std::string_view rest = line;;) {
      const std::size_t comma = rest.find(',');
      cells.push_back(trim(rest.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    // A spreadsheet export writes the header without '#'; accept it once, before any row.
    if (!seen_row && cells.size() == kColumnCount && cells[name] == "name" && cells[n] == "N") {
      continue;
    }
    seen_row = true;

    const RowParser row(source_name, line_number);
    if (cells.size() < kColumnCount) {
      row.fail(cells.size(), "missing; expected ", kColumnCount, " columns, found ", cells.size());
    }
    if (cells.size() > kColumnCount) {
      row.fail(kColumnCount, "unexpected extra column; expected ", kColumnCount, " columns, found ",
               cells.size());
    }
    if (cells[name].empty()) row.fail(name, "empty layer name");
    const std::string layer_name(cells[name]);
    if (const auto it = first_line_of.find(layer_name); it != first_line_of.end()) {
      row.fail(name, "layer '", layer_name, "' already defined on line ", it->second);
    }

    ConvProblem problem;
    problem.n = row.integer(cells, n, 1, false);
    problem.h = row.integer(cells, h, 1, false);
    problem.w = row.integer(cells, w, 1, false);
    problem.c = row.integer(cells, c, 1, false);
    problem.k = row.integer(cells, k, 1, false);
    problem.r = row.integer(cells, r, 1, false);
    problem.s = row.integer(cells, s, 1, false);
    problem.stride_h = static_cast<std::int32_t>(row.integer(cells, stride_h, 1, true));
    problem.stride_w = static_cast<std::int32_t>(row.integer(cells, stride_w, 1, true));
    problem.pad_top = problem.pad_bottom =
        static_cast<std::int32_t>(row.integer(cells, pad_h, 0, true));
    problem.pad_left = problem.pad_right =
        static_cast<std::int32_t>(row.integer(cells, pad_w, 0, true));
    problem.dilation_h = static_cast<std::int32_t>(row.integer(cells, dil_h, 1, true));
    problem.dilation_w = static_cast<std::int32_t>(row.integer(cells, dil_w, 1, true));
    problem.groups = static_cast<std::int32_t>(row.integer(cells, groups, 1, true));

    problem.p =
        output_size(problem.h, problem.r, problem.stride_h, problem.pad_top, problem.dilation_h);
    if (problem.p <= 0) {
      row.fail(r, "the dilated kernel (", problem.r, ", dilation ", problem.dilation_h,
               ") does not fit the padded input height");
    }
    problem.q =
        output_size(problem.w, problem.s, problem.stride_w, problem.pad_left, problem.dilation_w);
    if (problem.q <= 0) {
      row.fail(s, "the dilated kernel (", problem.s, ", dilation ", problem.dilation_w,
               ") does not fit the padded input width");
    }
    first_line_of.emplace(layer_name, line_number);
    layers.push_back({layer_name, problem});
  }
  return layers;
}

std::vector<NamedProblem> read_layer_csv(const std::string& path) {
  // A directory opens fine on Linux and then reads as empty; say what is wrong instead.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw FormatError(path + ": cannot read layer file: is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw FormatError(path + ": cannot open layer file: " + std::strerror(errno));
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw FormatError(path + ": cannot read layer file");
  auto layers = parse_layer_csv(text, path);
  // An empty list would make a benchmark run measure nothing and report success.
  if (layers.empty()) throw FormatError(path + ": no layers in the file");
  return layers;
}

}  // namespace convgrad::core
