// SPDX-License-Identifier: Apache-2.0
// What the subcommands share: problem input, random tensors, one timed run of the three
// directions against the reference, summaries and the formats they are printed in.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "convgrad/functional.hpp"
#include "convgrad/problem.hpp"
#include "core/layer_csv.hpp"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace convgrad::tool {

inline constexpr int kExitPass = 0;
inline constexpr int kExitFail = 1;   // a result disagrees with the reference
inline constexpr int kExitUsage = 2;  // the command line asks for something impossible
inline constexpr int kExitError = 3;  // a valid request that could not be carried out (I/O, device)

/// About 116 M multiply-adds per direction: big enough for meaningful GFLOP/s, small enough for
/// the reference to keep `convgrad run` quick on a laptop.
inline constexpr std::string_view kDefaultProblem = "mb8ic32ih28oc64oh28kh3ph1";

/// A command-line mistake found after CLI11 is done (a layer name missing from the file). Exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The options `run` and `check` share: --backend, --dtype, --kernel, --seed.
struct BackendOptions {
  std::string backend = "cpu";
  std::string dtype = "f32";
  std::string kernel;
  std::uint64_t seed = 0;
  CLI::Option* seed_option = nullptr;

  DataType data_type() const;
  RunOptions run_options() const;
  /// --seed when given, else a fresh random one.
  std::uint64_t resolved_seed() const;
};
void add_backend_options(CLI::App& command, BackendOptions& options);

/// parse_problem plus the convolution rules it leaves to validation, so that a bad string fails
/// before any tensor is allocated. Throws InvalidArgument.
ConvProblem parse_checked_problem(std::string_view text);

/// `problem` with every storage type (x, w, y and their gradients) set to `type`; bias stays f32.
ConvProblem with_data_type(ConvProblem problem, DataType type);

/// read_layer_csv, with a missing or malformed file reported as a UsageError: it came from the
/// command line.
std::vector<core::NamedProblem> read_layers(const std::string& path);

/// The layer called `name` in `path`; UsageError listing the names when there is none.
core::NamedProblem find_layer(const std::string& path, const std::string& name);

/// The backend names compiled into this build, for CLI11's choice check.
std::vector<std::string> backend_names();

/// A seed for runs without --seed: fresh each time, small enough to type back.
std::uint64_t random_seed();

/// Multiply-adds of the largest direction (what the reference pays for).
double multiply_adds(const ConvProblem& problem);

/// Tolerance of the relative error max|a - b| / max|b| for a storage type.
double tolerance(DataType type);

/// max|actual - expected| / max|expected|; NaN when any difference is NaN (an output the backend
/// never wrote keeps its NaN poison), and the absolute difference when `expected` is all zero.
double max_relative_error(std::span<const float> actual, std::span<const float> expected);

/// Whether `error` is within `limit`; NaN never is.
inline bool within(double error, double limit) { return error <= limit; }

struct Stats {
  double min = 0, max = 0, mean = 0, l2 = 0;
};
Stats summarize(std::span<const float> values);

struct DirectionResult {
  Direction direction = Direction::fprop;
  std::string kernel;
  double median_ms = 0;
  double rel_error = 0;
  bool pass = false;
};

/// One run of fprop (with bias), dgrad and wgrad (with db) on the backend and on `ref`. Every
/// tensor is a float copy of what is stored, so f16/bf16 values are the rounded ones.
struct Evaluation {
  ConvProblem problem;
  std::uint64_t seed = 0;
  std::vector<float> x, w, b, dy;    ///< inputs (uniform [-1, 1] before rounding)
  std::vector<float> y, dx, dw, db;  ///< the backend's outputs
  std::array<DirectionResult, 3> directions;
  double dw_error = 0, db_error = 0;  ///< the two halves of the wgrad error
  bool passed() const;
};

struct EvaluateOptions {
  RunOptions run;          ///< backend and kernel glob
  std::uint64_t seed = 0;  ///< inputs are a pure function of (problem, seed)
  int repeat = 1;          ///< backend runs per direction; the median time is reported
};

/// Throws InvalidArgument or Unsupported for what the backend refuses, DeviceError when it fails.
Evaluation evaluate(const ConvProblem& problem, const EvaluateOptions& options);

/// Creates `dir` and its parents when missing; FormatError when that fails.
void make_dump_folder(const std::string& dir);

/// Writes x, w, b, dy, y, dx, dw, db as float32 .npy files and problem.json into `dir` (created
/// when missing). Throws FormatError when a file cannot be written.
void dump(const Evaluation& evaluation, const std::string& backend, const std::string& dir);

/// "8x28x28x32".
std::string shape_string(std::span<const std::int64_t> dims);
/// printf("%.*e") as a string; "nan" stays readable.
std::string scientific(double value, int digits = 2);

}  // namespace convgrad::tool
