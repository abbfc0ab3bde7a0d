// SPDX-License-Identifier: Apache-2.0
// Named layer shapes from the benchmark's CSV files (e.g. shared/bench/layers-cpu.csv).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "convgrad/problem.hpp"

namespace convgrad::core {

/// One row of a layer file: the layer's name and its problem, p and q derived with floor.
struct NamedProblem {
  std::string name;
  ConvProblem problem;
};

/// Parses layer-file text with the columns
/// `name,N,H,W,C,K,R,S,stride_h,stride_w,pad_h,pad_w,dil_h,dil_w,groups`. Pads are per side and
/// symmetric; dilation is 1-based (1 = dense), unlike problem strings. Blank lines and lines
/// starting with `#` are skipped, as is a header row spelt `name,N,...`. `source_name` is used
/// in messages only. Throws FormatError naming `source_name`, the line and the column.
std::vector<NamedProblem> parse_layer_csv(std::string_view text, const std::string& source_name);

/// Reads and parses a layer file; a missing or unreadable file is a FormatError too.
std::vector<NamedProblem> read_layer_csv(const std::string& path);

}  // namespace convgrad::core
