// SPDX-License-Identifier: Apache-2.0
// convgrad bench: our kernels against a baseline (oneDNN on the CPU, cuDNN on the GPU), layer by
// layer and direction by direction, timed in one process on the same inputs. A program, not a
// test: nothing asserts a time, and the exit code says only whether the results agreed.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench_machine.hpp"
#include "commands.hpp"
#include "convgrad/errors.hpp"
#include "convgrad/functional.hpp"
#include "core/parallel.hpp"
#include "core/validate.hpp"
#include "harness.hpp"
#ifdef CONVGRAD_BENCH_WITH_ONEDNN
#include "bench_onednn.hpp"
#endif
#ifdef CONVGRAD_BENCH_WITH_CUDA
#include "bench_cuda.hpp"
#include "bench_gpu_probe.hpp"
#endif
#ifdef CONVGRAD_BENCH_WITH_CUDNN
#include "bench_cudnn.hpp"
#endif

namespace convgrad::tool {
namespace {

using Json = nlohmann::ordered_json;

// ours vs baseline: both compute in float32 in different orders, which differ by about 1e-6 of
// the largest output on these sizes; an indexing mistake misses by whole products.
constexpr double kWrongAbove = 1e-3;

struct BenchArgs {
  std::vector<std::string> problems;
  std::string layers;
  std::string backend = "cpu";
  std::string kernel;
  std::string baseline = "none";
  std::vector<std::string> directions{"fprop", "dgrad", "wgrad"};
  int reps = 20;
  int warmup = 3;
  double gap_ms = 20;
  std::string pause = "busy";
  std::uint64_t seed = 1;
  std::string json;
  std::string dtype = "f32";  // bf16, f16, tf32 (f32 storage, MathMode::tf32), f32
  std::string math = "exact_fp32";  // with --dtype f32: exact_fp32 or fp32_accurate
  const CLI::Option* reps_option = nullptr;
  const CLI::Option* warmup_option = nullptr;
  const CLI::Option* math_option = nullptr;
};

struct Timing {
  std::vector<double> ms;  // in the order measured
  double median = 0, p10 = 0, p90 = 0;
};

// Linear interpolation between order statistics (NumPy's default), so p10/p90 of 20 samples are
// not simply the second smallest and second largest.
double percentile(const std::vector<double>& sorted, double q) {
  const double position = q * static_cast<double>(sorted.size() - 1);
  const std::size_t below = static_cast<std::size_t>(position);
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  const double fraction = position - static_cast<double>(below);
  return sorted[below] + fraction * (sorted[above] - sorted[below]);
}

Timing summarize_times(std::vector<double> ms) {
  Timing t;
  t.ms = ms;
  std::sort(ms.begin(), ms.end());
  t.median = percentile(ms, 0.5);
  t.p10 = percentile(ms, 0.1);
  t.p90 = percentile(ms, 0.9);
  return t;
}

struct Row {
  std::string layer;
  ConvProblem problem;
  Direction direction = Direction::fprop;
  double flop = 0;
  std::string kernel;
  std::optional<Timing> ours;
  std::optional<Timing> baseline;
  std::optional<Timing> baseline_bias;  // GPU: the baseline's convolution and its bias pass
  std::string baseline_impl, baseline_layout;
  std::string note;  // why a side did not run
  double rel_error = std::numeric_limits<double>::quiet_NaN();
  std::string status;  // ok, WRONG, unchecked, refused, error
  bool comparable() const { return status == "ok" && ours && baseline; }
  double ratio() const { return ours->median / baseline->median; }
  double ratio_with_bias() const { return ours->median / baseline_bias->median; }
};

// splitmix64 in [-1, 1], as `run` draws its inputs: exact in float and reproducible everywhere.
std::vector<float> random_tensor(std::int64_t count, std::uint64_t& state) {
  std::vector<float> values(static_cast<std::size_t>(count));
  for (float& v : values) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    constexpr std::int64_t kHalf = std::int64_t{1} << 23;
    v = static_cast<float>(static_cast<std::int64_t>(z >> 40) - kHalf) / static_cast<float>(kHalf);
  }
  return values;
}

// Our operands and outputs, on the host or the device, in the problem's storage types (b and db
// in float32): the CPU and the GPU bench call our kernels the same way on them.
struct OurBuffers {
  void *x, *w, *dy, *y, *dx, *dw;
  float *b, *db;
};

// Dense float32 operands in convgrad's layouts, shared by both sides; each side has its own
// outputs, so that the correctness check compares two independent answers.
struct Operands {
  std::vector<float> x, w, b, dy;
  std::vector<float> y, dx, dw, db;

  Operands(const ConvProblem& p, std::uint64_t seed) {
    x = random_tensor(x_elements(p), seed);
    w = random_tensor(w_elements(p), seed);
    b = random_tensor(p.k, seed);
    dy = random_tensor(y_elements(p), seed);
    y.assign(dy.size(), 0.0f);
    dx.assign(x.size(), 0.0f);
    dw.assign(w.size(), 0.0f);
    db.assign(b.size(), 0.0f);
  }

  OurBuffers buffers() {
    return {x.data(), w.data(), dy.data(), y.data(), dx.data(), dw.data(), b.data(), db.data()};
  }

  // An element our kernel forgets to write keeps NaN and fails the check.
  void poison() {
    for (std::vector<float>* out : {&y, &dx, &dw, &db}) {
      std::fill(out->begin(), out->end(), std::numeric_limits<float>::quiet_NaN());
    }
  }
};

std::function<void()> our_call(const ConvProblem& p, Direction direction, const OurBuffers& o,
                               DeviceKind device, const RunOptions& run) {
  const TensorView x = dense_view(o.x, p.x_type, p.n, p.h, p.w, p.c, device);
  const TensorView w = dense_view(o.w, p.w_type, p.k, p.r, p.s, p.c_per_group(), device);
  const TensorView b = p.with_bias ? bias_view(o.b, p.k, device) : TensorView{};
  const TensorView dy = dense_view(o.dy, p.y_type, p.n, p.p, p.q, p.k, device);
  const TensorView y = dense_view(o.y, p.y_type, p.n, p.p, p.q, p.k, device);
  const TensorView dx = dense_view(o.dx, p.x_type, p.n, p.h, p.w, p.c, device);
  const TensorView dw = dense_view(o.dw, p.w_type, p.k, p.r, p.s, p.c_per_group(), device);
  const TensorView db = p.with_bias ? bias_view(o.db, p.k, device) : TensorView{};
  switch (direction) {
    case Direction::fprop:
      return [=] { fprop(p, x, w, b, y, run); };
    case Direction::dgrad:
      return [=] { dgrad(p, dy, w, dx, run); };
    case Direction::wgrad:
      break;
  }
  return [=] { wgrad(p, x, dy, dw, db, run); };
}

#ifdef CONVGRAD_BENCH_WITH_ONEDNN
const std::vector<float>& our_output(const Operands& o, Direction direction) {
  return direction == Direction::fprop ? o.y : direction == Direction::dgrad ? o.dx : o.dw;
}
#endif

// One side of the comparison as the timing loop sees it.
struct Contender {
  std::function<void()> call;
  std::vector<double> ms;
};

// Occupies every thread of our pool for `ms`. libgomp's idle workers keep spinning for a few
// milliseconds after each oneDNN primitive and would take a core from the call that follows;
// a pause lets them give up and sleep first. A busy pause rather than a sleep: on this project's
// KVM guest a CPU left idle for 10 ms makes the next call up to twice as slow (the host has to
// reschedule the virtual CPU, and another guest may have used the core), for either side. The
// loop touches no memory, so the caches keep what the previous calls left there.
void busy_pause(double ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double, std::milli>(ms);
  core::parallel_for(core::num_threads(), [&](std::int64_t, std::int64_t) {
    while (std::chrono::steady_clock::now() < deadline) {
    }
  });
}

void pause(const BenchArgs& args) {
  if (args.gap_ms <= 0) return;
  if (args.pause == "sleep") {
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(args.gap_ms));
  } else {
    busy_pause(args.gap_ms);
  }
}

// ABAB...: drift in clock speed or in the machine's other load hits both sides alike. Each timed
// call starts after the same pause, with the other side's threads asleep.
void time_interleaved(const std::vector<Contender*>& sides, const BenchArgs& args) {
  for (int i = 0; i < args.warmup + args.reps; ++i) {
    for (Contender* side : sides) {
      pause(args);
      const auto start = std::chrono::steady_clock::now();
      side->call();
      const auto stop = std::chrono::steady_clock::now();
      if (i >= args.warmup) {
        side->ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
      }
    }
  }
}

double gflops(double flop, const Timing& t) { return flop / (t.median * 1e6); }

std::string fixed(double value, int digits) {
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
  return buffer;
}

std::string range(const Timing& t) {
  std::string text = fixed(t.p10, 3);
  text.append("-").append(fixed(t.p90, 3));
  return text;
}

struct Widths {
  int layer = 5, kernel = 6;
};

void print_table_header(const Widths& w, bool with_baseline) {
  std::printf("\n%-*s  %-5s  %-*s  %9s  %17s  %8s  %5s", w.layer, "layer", "dir", w.kernel,
              "kernel", "ours ms", "p10-p90", "GFLOP/s", "%peak");
  if (with_baseline) {
    std::printf("  %9s  %17s  %8s  %5s  %6s  %8s  %-9s  %s", "oneDNN ms", "p10-p90", "GFLOP/s",
                "%peak", "ratio", "rel err", "status", "oneDNN impl (weights)");
  } else {
    std::printf("  %-9s", "status");
  }
  std::printf("\n");
}

void print_row_start(const Row& row, const Widths& w) {
  std::printf("%-*s  %-5s  %-*s  ", w.layer, row.layer.c_str(),
              std::string(to_string(row.direction)).c_str(), w.kernel, row.kernel.c_str());
  std::fflush(stdout);  // the layer shows while it is being timed
}

std::string error_text(const Row& row) {
  return std::isnan(row.rel_error) && row.status != "WRONG" ? "-" : scientific(row.rel_error);
}

void print_note_and_end(const Row& row) {
  if (!row.note.empty()) std::printf("  %s", row.note.c_str());
  std::printf("\n");
  std::fflush(stdout);
}

void print_side(const std::optional<Timing>& t, double flop, double peak) {
  if (!t) {
    std::printf("%9s  %17s  %8s  %5s", "-", "-", "-", "-");
    return;
  }
  const double g = gflops(flop, *t);
  std::printf("%9.3f  %17s  %8.1f  %5.1f", t->median, range(*t).c_str(), g, 100 * g / peak);
}

void print_row_end(const Row& row, bool with_baseline, double peak) {
  print_side(row.ours, row.flop, peak);
  if (with_baseline) {
    std::printf("  ");
    print_side(row.baseline, row.flop, peak);
    const std::string ratio = row.ours && row.baseline ? fixed(row.ratio(), 2) : "-";
    std::printf("  %6s  %8s  %-9s", ratio.c_str(), error_text(row).c_str(), row.status.c_str());
    if (!row.baseline_impl.empty()) {
      std::printf("  %s (%s)", row.baseline_impl.c_str(), row.baseline_layout.c_str());
    }
  } else {
    std::printf("  %-9s", row.status.c_str());
  }
  print_note_and_end(row);
}

Json timing_json(const std::optional<Timing>& t, double flop, double peak) {
  if (!t) return nullptr;
  const double g = gflops(flop, *t);
  return Json{{"median_ms", t->median},
              {"p10_ms", t->p10},
              {"p90_ms", t->p90},
              {"gflops", g},
              {"percent_of_peak", 100 * g / peak},
              {"times_ms", t->ms}};
}

// Reads back how the program was invoked, for the JSON: commands do not see argv.
std::vector<std::string> command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> words;
  std::string word;
  while (std::getline(in, word, '\0')) words.push_back(word);
  return words;
}

struct Summary {
  int rows = 0, comparable = 0, at_most_one = 0;
  double geomean = std::numeric_limits<double>::quiet_NaN();
  double best = 0, worst = 0;
};

// `with_bias`: against the baseline's convolution and bias pass, on the rows that have one.
Summary summarize_direction(const std::vector<Row>& rows, Direction direction,
                            bool with_bias = false) {
  Summary s;
  double log_sum = 0;
  for (const Row& row : rows) {
    if (row.direction != direction) continue;
    if (with_bias && !row.baseline_bias) continue;
    ++s.rows;
    if (!row.comparable()) continue;
    const double ratio = with_bias ? row.ratio_with_bias() : row.ratio();
    s.best = s.comparable == 0 ? ratio : std::min(s.best, ratio);
    s.worst = s.comparable == 0 ? ratio : std::max(s.worst, ratio);
    ++s.comparable;
    s.at_most_one += ratio <= 1.0;
    log_sum += std::log(ratio);
  }
  if (s.comparable > 0) s.geomean = std::exp(log_sum / s.comparable);
  return s;
}

std::vector<core::NamedProblem> bench_items(const BenchArgs& args) {
  std::vector<core::NamedProblem> items;
  if (!args.layers.empty()) {
    items = read_layers(args.layers);
    if (items.empty()) throw UsageError("--layers " + args.layers + ": the file has no layers");
    for (const core::NamedProblem& item : items) {
      core::validate_problem(item.problem, (args.layers + ": " + item.name).c_str());
    }
  }
  for (const std::string& text : args.problems) {
    items.push_back({text, parse_checked_problem(text)});
  }
  if (items.empty()) throw UsageError("give one or more problems, or --layers FILE");
  return items;
}

std::vector<Direction> bench_directions(const BenchArgs& args) {
  std::vector<Direction> directions;
  for (const Direction d : {Direction::fprop, Direction::dgrad, Direction::wgrad}) {
    if (std::find(args.directions.begin(), args.directions.end(), to_string(d)) !=
        args.directions.end()) {
      directions.push_back(d);
    }
  }
  return directions;
}

// One row per item and direction, in the order they are timed; the kernel is named before any
// timing, so that the table's columns fit every row and a problem no kernel takes is a row too.
std::vector<Row> plan_rows(const std::vector<core::NamedProblem>& items,
                           const std::vector<Direction>& directions, const RunOptions& run,
                           Widths& widths) {
  std::vector<Row> rows;
  for (const core::NamedProblem& item : items) {
    for (const Direction d : directions) {
      Row row;
      row.layer = item.name;
      row.problem = item.problem;
      row.direction = d;
      row.flop = flop_count(item.problem, d);
      try {
        row.kernel = kernel_name(item.problem, d, run);
      } catch (const Unsupported& error) {
        row.kernel = "(none)";
        row.status = "error";
        row.note = error.what();
      }
      widths.layer = std::max(widths.layer, static_cast<int>(row.layer.size()));
      widths.kernel = std::max(widths.kernel, static_cast<int>(row.kernel.size()));
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

// The first words of the report's first line; each bench goes on with its threads or precision.
void print_bench_line_start(const BenchArgs& args, bool with_baseline,
                            const std::string& baseline_name) {
  std::string ours_name = args.backend;
  if (!args.kernel.empty()) ours_name.append(" --kernel ").append(args.kernel);
  std::printf("bench      backend %s %s %s; ", ours_name.c_str(), with_baseline ? "vs" : "alone,",
              with_baseline ? baseline_name.c_str() : "no baseline");
}

void print_build_line(const MachineInfo& machine, const std::string& date) {
  std::printf("build      %s, commit %s, %s; %s\n", machine.build_type.c_str(),
              machine.commit.c_str(), machine.compiler.c_str(), date.c_str());
}

void warn_if_debug(const MachineInfo& machine) {
  if (machine.build_type == "Debug") {
    std::printf("warning    this is a Debug build: its times say little about the kernels\n");
  }
}

std::map<Direction, Summary> summarize(const std::vector<Row>& rows,
                                       const std::vector<Direction>& directions, bool with_bias) {
  std::map<Direction, Summary> summaries;
  for (const Direction d : directions) summaries[d] = summarize_direction(rows, d, with_bias);
  return summaries;
}

// `with_bias` (the GPU bench): each line adds the geomean against the baseline's convolution and
// bias pass, where there is one.
void print_summaries(const std::vector<Direction>& directions,
                     const std::map<Direction, Summary>& summaries,
                     const std::map<Direction, Summary>* with_bias) {
  for (const Direction d : directions) {
    const Summary& s = summaries.at(d);
    std::printf("%-5s  geomean %s over %d of %d rows; %d at or below 1.00; best %s, worst %s",
                std::string(to_string(d)).c_str(), s.comparable ? fixed(s.geomean, 3).c_str() : "-",
                s.comparable, s.rows, s.at_most_one, s.comparable ? fixed(s.best, 2).c_str() : "-",
                s.comparable ? fixed(s.worst, 2).c_str() : "-");
    const Summary* b = with_bias != nullptr ? &with_bias->at(d) : nullptr;
    if (b != nullptr && b->comparable) {
      std::printf("; with bias pass: geomean %s", fixed(b->geomean, 3).c_str());
    }
    std::printf("\n");
  }
}

// The rel error of a wgrad row is the worse of dw's and db's; NaN (an unwritten element) is worst.
double worse_error(double error, double other) {
  return std::isnan(other) || other > error ? other : error;
}

// One layer that cannot run is a row of the report, not the end of it.
void mark_error(Row& row, const std::exception& error) {
  row.status = "error";
  row.note = error.what();
  row.ours.reset();
  row.baseline.reset();
  row.baseline_bias.reset();
}

// Prints the count of WRONG and error rows, if any; `wrong_means` says what WRONG compared.
// Returns that count.
int report_failures(const std::vector<Row>& rows, const std::string& wrong_means) {
  int wrong = 0, errors = 0;
  for (const Row& row : rows) {
    wrong += row.status == "WRONG";
    errors += row.status == "error";
  }
  if (wrong + errors > 0) {
    std::printf("%d row%s WRONG (%s), %d could not run\n", wrong, wrong == 1 ? "" : "s",
                wrong_means.c_str(), errors);
  }
  return wrong + errors;
}

// The JSON report's opening keys, shared by both benches; each adds its devices after them.
Json report_json(const std::string& date, const MachineInfo& machine,
                 const std::vector<double>& load_start, const std::vector<double>& load_end) {
  Json json;
  json["schema"] = "convgrad-bench/1";
  json["date"] = date;
  json["command"] = command_line();
  json["machine"] = {{"cpu", machine.cpu},
                     {"logical_cpus", machine.logical_cpus},
                     {"isa", machine.isa},
                     {"load_average_start", load_start},
                     {"load_average_end", load_end}};
  return json;
}

Json build_json(const MachineInfo& machine) {
  return {{"commit", machine.commit},
          {"build_type", machine.build_type},
          {"compiler", machine.compiler}};
}

// `gpu`: the keys of the GPU report (the baseline with its bias pass), else those of the CPU
// report (the baseline's weights layout); the order of the keys is the reports' format.
Json row_json(const Row& row, double peak_gflops, bool gpu) {
  Json json = {{"layer", row.layer},
               {"problem", to_string(row.problem)},
               {"direction", std::string(to_string(row.direction))},
               {"flop", row.flop},
               {"kernel", row.kernel},
               {"ours", timing_json(row.ours, row.flop, peak_gflops)},
               {"baseline", timing_json(row.baseline, row.flop, peak_gflops)}};
  if (gpu) json["baseline_with_bias"] = timing_json(row.baseline_bias, row.flop, peak_gflops);
  json["baseline_impl"] = row.baseline_impl;
  if (!gpu) json["baseline_weights"] = row.baseline_layout;
  json["ratio"] = row.ours && row.baseline ? Json(row.ratio()) : Json(nullptr);
  if (gpu) {
    json["ratio_with_bias"] =
        row.ours && row.baseline_bias ? Json(row.ratio_with_bias()) : Json(nullptr);
  }
  json["rel_error"] = std::isnan(row.rel_error) ? Json(nullptr) : Json(row.rel_error);
  json["status"] = row.status;
  json["note"] = row.note;
  return json;
}

Json results_json(const std::vector<Row>& rows, double peak_gflops, bool gpu) {
  Json results = Json::array();
  for (const Row& row : rows) results.push_back(row_json(row, peak_gflops, gpu));
  return results;
}

// `with_bias` (the GPU bench): the geomean against the baseline's convolution and bias pass too.
Json summary_json(const std::map<Direction, Summary>& summaries,
                  const std::map<Direction, Summary>* with_bias) {
  Json summary = Json::object();
  for (const auto& [d, s] : summaries) {
    Json entry = {{"geomean_ratio", s.comparable ? Json(s.geomean) : Json(nullptr)},
                  {"rows", s.rows},
                  {"compared", s.comparable},
                  {"at_most_1", s.at_most_one}};
    if (with_bias != nullptr) {
      const Summary& b = with_bias->at(d);
      entry["geomean_ratio_with_bias"] = b.comparable ? Json(b.geomean) : Json(nullptr);
    }
    summary[std::string(to_string(d))] = entry;
  }
  return summary;
}

void write_json(const Json& json, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << json.dump(2) << "\n";
  out.close();
  if (!out) throw FormatError("--json " + path + ": cannot write the file");
  std::printf("wrote %s\n", path.c_str());
}

#ifdef CONVGRAD_BENCH_WITH_CUDA
int bench_gpu(const BenchArgs& args);
#endif

int bench(const BenchArgs& args) {
  if (args.backend == "cuda") {
#ifdef CONVGRAD_BENCH_WITH_CUDA
    return bench_gpu(args);
#else
    throw UsageError("--backend cuda: this build has no CUDA backend (CMake found no nvcc)");
#endif
  }
  if (args.baseline == "cudnn") throw UsageError("--baseline cudnn needs --backend cuda");
  if (args.dtype != "f32" || (args.math_option != nullptr && args.math_option->count() > 0)) {
    throw UsageError("--dtype/--math: the CPU bench is float32 only (f32, exact)");
  }
  // Everything is parsed and validated before the probe and the first timing.
  const std::vector<core::NamedProblem> items = bench_items(args);
  const std::vector<Direction> directions = bench_directions(args);

  const bool with_baseline = args.baseline == "onednn";
  const int threads = core::num_threads();
  std::string baseline_name = "none";
  std::string baseline_note;
  int baseline_threads = 0;
  if (with_baseline) {
#ifdef CONVGRAD_BENCH_WITH_ONEDNN
    // Before the first primitive: oneDNN sizes its kernels' work split when they are created.
    baseline_note = set_onednn_threads(threads);
    baseline_threads = onednn_threads();
    baseline_name = "oneDNN " + onednn_version();
#else
    throw UsageError(
        "--baseline onednn: this build has no oneDNN (CMake did not find it: install "
        "libdnnl-dev and reconfigure, with CONVGRAD_WITH_ONEDNN=AUTO or ON)");
#endif
  }

  RunOptions run;
  run.backend = args.backend;
  run.kernel = args.kernel;
  Widths widths;
  std::vector<Row> rows = plan_rows(items, directions, run, widths);

  const MachineInfo machine = machine_info();
  const std::vector<double> load_start = load_average();
  const PeakProbe peak = measure_peak(threads);
  const std::string date = utc_now();
  std::string isa;
  for (const std::string& flag : machine.isa) isa.append(isa.empty() ? "" : " ").append(flag);
  print_bench_line_start(args, with_baseline, baseline_name);
  std::printf("%d thread%s%s; f32, NHWC\n", threads, threads == 1 ? "" : "s",
              with_baseline ? " each" : "");
  if (with_baseline) {
    std::printf(
        "baseline   weights in the layout oneDNN picks (format_tag::any), reordered "
        "once outside the timing; wgrad with diff_bias; oneDNN threads %d%s%s\n",
        baseline_threads, baseline_note.empty() ? "" : "; ", baseline_note.c_str());
  }
  std::printf("machine    %s, %d logical CPUs; %s\n", machine.cpu.c_str(), machine.logical_cpus,
              isa.c_str());
  print_build_line(machine, date);
  if (!load_start.empty()) {
    std::printf("load       %.2f %.2f %.2f (1, 5, 15 min) before the probe\n", load_start[0],
                load_start.size() > 1 ? load_start[1] : 0.0,
                load_start.size() > 2 ? load_start[2] : 0.0);
  }
  std::printf(
      "peak       FMA probe (%s): %.1f GFLOP/s on %d thread%s (%.1f per thread, over "
      "their CPU time); %.1f GFLOP/s over wall time\n",
      peak.isa.c_str(), peak.gflops, peak.threads, peak.threads == 1 ? "" : "s",
      peak.gflops_per_thread, peak.wall_gflops);
  std::printf(
      "timing     median and p10/p90 of %d reps after %d warm-up, %s, %.3g ms %s pause "
      "before each call; our wgrad includes db\n",
      args.reps, args.warmup, with_baseline ? "interleaved ours/oneDNN" : "ours only", args.gap_ms,
      args.pause.c_str());
  warn_if_debug(machine);
  print_table_header(widths, with_baseline);

  std::size_t next = 0;
  for (std::size_t item = 0; item < items.size(); ++item) {
    const ConvProblem& p = items[item].problem;
    Operands operands(p, args.seed + item);
    for (std::size_t k = 0; k < directions.size(); ++k, ++next) {
      Row& row = rows[next];
      const Direction d = row.direction;
      print_row_start(row, widths);
      if (row.status == "error") {
        print_row_end(row, with_baseline, peak.gflops);
        continue;
      }
      Contender ours{our_call(p, d, operands.buffers(), DeviceKind::cpu, run), {}};
      std::vector<Contender*> sides{&ours};
#ifdef CONVGRAD_BENCH_WITH_ONEDNN
      std::unique_ptr<OnednnConvolution> onednn;
      Contender theirs;
      if (with_baseline) {
        try {
          onednn = std::make_unique<OnednnConvolution>(
              p, d,
              OnednnInputs{operands.x.data(), operands.w.data(), operands.b.data(),
                           operands.dy.data()});
          row.baseline_impl = onednn->implementation();
          row.baseline_layout = onednn->weights_layout();
          theirs.call = [&onednn] { onednn->execute(); };
          sides.push_back(&theirs);
        } catch (const OnednnRefused& refused) {
          row.note = refused.what();
        }
      }
#endif
      try {
        // The check runs once before the timing, which also pays for first-touch and packing.
        operands.poison();
        ours.call();
        row.status = with_baseline ? "refused" : "unchecked";
#ifdef CONVGRAD_BENCH_WITH_ONEDNN
        if (onednn) {
          onednn->execute();
          row.rel_error = max_relative_error(our_output(operands, d), onednn->output());
          if (d == Direction::wgrad && p.with_bias) {
            row.rel_error = worse_error(row.rel_error,
                                        max_relative_error(operands.db, onednn->bias_gradient()));
          }
          row.status = within(row.rel_error, kWrongAbove) ? "ok" : "WRONG";
        }
#endif
        time_interleaved(sides, args);
        row.ours = summarize_times(ours.ms);
        if (sides.size() > 1) row.baseline = summarize_times(sides[1]->ms);
      } catch (const std::exception& error) {
        mark_error(row, error);
      }
      print_row_end(row, with_baseline, peak.gflops);
    }
  }

  const std::map<Direction, Summary> summaries = summarize(rows, directions, false);
  if (with_baseline) {
    std::printf(
        "\nratio = our median time / oneDNN's (lower is better); geometric mean over the "
        "rows where both ran and agreed:\n");
    print_summaries(directions, summaries, nullptr);
  }
  const std::vector<double> load_end = load_average();
  if (!load_end.empty()) {
    std::printf("load       %.2f %.2f %.2f (1, 5, 15 min) after the run\n", load_end[0],
                load_end.size() > 1 ? load_end[1] : 0.0, load_end.size() > 2 ? load_end[2] : 0.0);
  }

  const int failures =
      report_failures(rows, "rel error above " + scientific(kWrongAbove, 0) + " against oneDNN");

  if (!args.json.empty()) {
    Json json = report_json(date, machine, load_start, load_end);
    json["build"] = build_json(machine);
    json["peak"] = {{"isa", peak.isa},
                    {"threads", peak.threads},
                    {"gflops", peak.gflops},
                    {"gflops_per_thread", peak.gflops_per_thread},
                    {"wall_gflops", peak.wall_gflops}};
    json["settings"] = {
        {"backend", args.backend},
        {"kernel", args.kernel},
        {"baseline", with_baseline ? Json(baseline_name) : Json(nullptr)},
        {"threads", threads},
        {"baseline_threads", with_baseline ? Json(baseline_threads) : Json(nullptr)},
        {"reps", args.reps},
        {"warmup", args.warmup},
        {"gap_ms", args.gap_ms},
        {"pause", args.pause},
        {"seed", args.seed},
        {"dtype", "f32"},
        {"layout",
         "NHWC images; ours KRSC weights; oneDNN weights format_tag::any, "
         "reordered once outside the timing"},
        {"wrong_above", kWrongAbove}};
    json["results"] = results_json(rows, peak.gflops, false);
    json["summary"] = summary_json(summaries, nullptr);
    write_json(json, args.json);
  }
  return failures > 0 ? kExitFail : kExitPass;
}

#ifdef CONVGRAD_BENCH_WITH_CUDA
// --- the GPU bench -------------------------------------------------------------------------------

// ours vs cuDNN on the GPU: both read the same stored inputs and accumulate in fp32, so in
// float32 they differ by accumulation order (about 1e-6), in tf32 by the operands' rounding, and
// in float16/bfloat16 by one rounding of the stored output (at most 2^-7 of the largest value).
// An indexing mistake misses by whole products.
double gpu_wrong_above(const ConvProblem& p) {
  if (p.x_type == DataType::float32 && p.math != MathMode::tf32) return 1e-3;
  return 1e-2;
}

OurBuffers our_buffers(const DeviceOperands& o) {
  return {o.x, o.w, o.dy, o.ours.y, o.ours.dx, o.ours.dw, o.b, o.ours.db};
}

std::string micro(const std::optional<Timing>& t) {
  return t ? fixed(1000 * t->median, 1) : "-";
}

std::string micro_range(const std::optional<Timing>& t) {
  if (!t) return "-";
  return fixed(1000 * t->p10, 1) + "-" + fixed(1000 * t->p90, 1);
}

std::string tflops(const std::optional<Timing>& t, double flop) {
  return t ? fixed(flop / (t->median * 1e9), 1) : "-";
}

std::string percent(const std::optional<Timing>& t, double flop, double peak_tflops) {
  return t ? fixed(100 * flop / (t->median * 1e9) / peak_tflops, 1) : "-";
}

void print_gpu_header(const Widths& w, bool with_baseline) {
  std::printf("\n%-*s  %-5s  %-*s  %9s  %15s  %7s  %6s", w.layer, "layer", "dir", w.kernel,
              "kernel", "ours us", "p10-p90", "TFLOP/s", "%gemm");
  if (with_baseline) {
    std::printf("  %9s  %15s  %7s  %6s  %9s  %6s  %6s  %8s  %-9s  %s", "cuDNN us", "p10-p90",
                "TFLOP/s", "%gemm", "+bias us", "ratio", "ratio+b", "rel err", "status",
                "cuDNN algorithm");
  } else {
    std::printf("  %-9s", "status");
  }
  std::printf("\n");
}

void print_gpu_row_end(const Row& row, bool with_baseline, double peak_tflops) {
  std::printf("%9s  %15s  %7s  %6s", micro(row.ours).c_str(), micro_range(row.ours).c_str(),
              tflops(row.ours, row.flop).c_str(), percent(row.ours, row.flop, peak_tflops).c_str());
  if (with_baseline) {
    const bool both = row.ours && row.baseline;
    const std::string ratio = both ? fixed(row.ratio(), 2) : "-";
    const std::string ratio_bias =
        row.ours && row.baseline_bias ? fixed(row.ratio_with_bias(), 2) : "-";
    std::printf("  %9s  %15s  %7s  %6s  %9s  %6s  %6s  %8s  %-9s", micro(row.baseline).c_str(),
                micro_range(row.baseline).c_str(), tflops(row.baseline, row.flop).c_str(),
                percent(row.baseline, row.flop, peak_tflops).c_str(),
                micro(row.baseline_bias).c_str(), ratio.c_str(), ratio_bias.c_str(),
                error_text(row).c_str(), row.status.c_str());
    if (!row.baseline_impl.empty()) std::printf("  %s", row.baseline_impl.c_str());
  } else {
    std::printf("  %-9s", row.status.c_str());
  }
  print_note_and_end(row);
}

int bench_gpu(const BenchArgs& args) {
  if (args.baseline == "onednn") {
    throw UsageError("--baseline onednn runs on the CPU: with --backend cuda use cudnn or none");
  }
  const bool with_baseline = args.baseline == "cudnn";
#ifndef CONVGRAD_BENCH_WITH_CUDNN
  if (with_baseline) {
    throw UsageError(
        "--baseline cudnn: this build has no cuDNN (CMake found no cudnn.h and libcudnn: set "
        "CUDNN_ROOT and reconfigure, with CONVGRAD_WITH_CUDNN=AUTO or ON)");
  }
#endif
  const bool math_given = args.math_option != nullptr && args.math_option->count() > 0;
  if (math_given && args.dtype != "f32") {
    throw UsageError("--math " + args.math + ": only with --dtype f32 (tf32 is --dtype tf32)");
  }
  // Everything is parsed and validated before the device is touched.
  std::vector<core::NamedProblem> items = bench_items(args);
  const std::vector<Direction> directions = bench_directions(args);
  for (const BackendInfo& info : list_backends()) {
    if (info.name == "cuda" && !info.available) throw UsageError("--backend cuda: " + info.reason);
  }
  const DataType storage = args.dtype == "bf16"   ? DataType::bfloat16
                           : args.dtype == "f16" ? DataType::float16
                                                 : DataType::float32;
  const MathMode math = args.dtype == "tf32"          ? MathMode::tf32
                        : args.math == "fp32_accurate" ? MathMode::fp32_accurate
                                                       : MathMode::exact_fp32;
  // A GPU call lasts microseconds: more runs than on the CPU, and no pause (nothing spins).
  const int reps = args.reps_option != nullptr && args.reps_option->count() > 0 ? args.reps : 100;
  const int warmup =
      args.warmup_option != nullptr && args.warmup_option->count() > 0 ? args.warmup : 10;

  for (core::NamedProblem& item : items) {
    item.problem = with_data_type(item.problem, storage);
    item.problem.math = math;
  }

  RunOptions run;
  run.backend = "cuda";
  run.kernel = args.kernel;
  Widths widths;
  std::vector<Row> rows = plan_rows(items, directions, run, widths);

  const MachineInfo machine = machine_info();
  const GpuInfo gpu = gpu_info();
  std::string baseline_name = "none";
#ifdef CONVGRAD_BENCH_WITH_CUDNN
  if (with_baseline) baseline_name = "cuDNN " + cudnn_version();
#endif
  const GemmProbe gemm = measure_gemm_rate(storage, math == MathMode::tf32);
  const CopyProbe copy = measure_copy_bandwidth();
  const std::string date = utc_now();
  print_bench_line_start(args, with_baseline, baseline_name);
  std::printf("%s (%s storage, math %s, fp32 accumulation), NHWC\n", args.dtype.c_str(),
              std::string(to_string(storage)).c_str(), std::string(to_string(math)).c_str());
  if (with_baseline) {
    std::printf(
        "baseline   legacy C API, NHWC tensors and KRSC (NHWC) filters, %s math, fp32 compute; "
        "fastest algorithm of cudnnFind*AlgorithmEx (1 GiB workspace offered); bias pass: "
        "fprop cudnnAddTensor, wgrad cudnnConvolutionBackwardBias\n",
        storage != DataType::float32 || math == MathMode::tf32 ? "tensor-op" : "FMA (no TF32)");
  }
  std::printf("gpu        %s, compute %d.%d, %d SMs, %.1f GiB, %d MiB L2; driver CUDA %s, runtime "
              "%s, cuBLAS %s\n",
              gpu.name.c_str(), gpu.compute_major, gpu.compute_minor, gpu.multiprocessors,
              gpu.memory_gib, gpu.l2_mib, gpu.driver.c_str(), gpu.runtime.c_str(),
              gpu.cublas.c_str());
  std::printf("host       %s, %d logical CPUs\n", machine.cpu.c_str(), machine.logical_cpus);
  print_build_line(machine, date);
  std::printf("gemm       %s: %.1f TFLOP/s (median %.3f ms)\n", gemm.what.c_str(), gemm.tflops,
              gemm.median_ms);
  std::printf("copy       device to device, %.0f GiB: %.0f GB/s (read + write)\n", copy.gib,
              copy.gbps);
  std::printf(
      "timing     CUDA events around each call, calls back to back on one stream (no graph); "
      "median and p10/p90 of %d runs after %d warm-up, %s; our wgrad includes db\n",
      reps, warmup, with_baseline ? "interleaved ours/cuDNN" : "ours only");
  warn_if_debug(machine);
  print_gpu_header(widths, with_baseline);

  BenchStream stream;
  std::size_t next = 0;
  for (std::size_t item = 0; item < items.size(); ++item) {
    const ConvProblem& p = rows[next].problem;
    std::unique_ptr<DeviceOperands> operands;
    std::string operands_error;
    try {
      operands = std::make_unique<DeviceOperands>(p, args.seed + item);
    } catch (const std::exception& error) {
      operands_error = error.what();
    }
    for (std::size_t k = 0; k < directions.size(); ++k, ++next) {
      Row& row = rows[next];
      const Direction d = row.direction;
      print_row_start(row, widths);
      if (!operands && row.status != "error") {
        row.status = "error";
        row.note = operands_error;
      }
      if (row.status == "error") {
        print_gpu_row_end(row, with_baseline, gemm.tflops);
        continue;
      }
      GpuContender ours{{our_call(p, d, our_buffers(*operands), DeviceKind::cuda, run)}, {}};
      std::vector<GpuContender*> sides{&ours};
#ifdef CONVGRAD_BENCH_WITH_CUDNN
      std::unique_ptr<CudnnConvolution> cudnn;
      GpuContender theirs;
#endif
      try {
#ifdef CONVGRAD_BENCH_WITH_CUDNN
        if (with_baseline) {
          try {
            cudnn = std::make_unique<CudnnConvolution>(p, d, *operands, stream.get());
            row.baseline_impl = cudnn->algorithm();
            row.note = cudnn->bias_note();
            CudnnConvolution* c = cudnn.get();
            theirs.steps.push_back([c] { c->enqueue(); });
            if (cudnn->has_bias_pass()) theirs.steps.push_back([c] { c->enqueue_bias(); });
            sides.push_back(&theirs);
          } catch (const CudnnRefused& refused) {
            row.note = refused.what();
          }
        }
#endif
        // The check runs once before the timing; our call waits here (no stream binding), so
        // that its errors surface at this row.
        operands->poison();
        ours.steps[0]();
        row.status = with_baseline ? "refused" : "unchecked";
#ifdef CONVGRAD_BENCH_WITH_CUDNN
        if (cudnn) {
          cudnn->enqueue();
          cudnn->enqueue_bias();
          stream.synchronize();
          row.rel_error = max_relative_error(operands->read(operands->ours, d),
                                             operands->read(operands->theirs, d));
          if (d == Direction::wgrad && cudnn->has_bias_pass()) {
            row.rel_error = worse_error(
                row.rel_error, max_relative_error(operands->read_bias_gradient(operands->ours),
                                                  cudnn->bias_gradient()));
          }
          row.status = within(row.rel_error, gpu_wrong_above(p)) ? "ok" : "WRONG";
        }
#endif
        time_on_stream(sides, warmup, reps, stream);
        row.ours = summarize_times(ours.ms[0]);
        if (sides.size() > 1) {
          row.baseline = summarize_times(sides[1]->ms[0]);
          if (sides[1]->ms.size() > 1) row.baseline_bias = summarize_times(sides[1]->ms[1]);
        }
      } catch (const std::exception& error) {
        mark_error(row, error);
        try {
          stream.synchronize();
        } catch (const std::exception&) {
          // A sticky device error: the next rows report it too.
        }
      }
      print_gpu_row_end(row, with_baseline, gemm.tflops);
    }
  }

  const std::map<Direction, Summary> summaries = summarize(rows, directions, false);
  const std::map<Direction, Summary> summaries_bias = summarize(rows, directions, true);
  if (with_baseline) {
    std::printf(
        "\nratio = our median time / cuDNN's convolution alone (ratio+b: / its convolution and "
        "bias pass); lower is better; geometric mean over the rows where both ran and agreed:\n");
    print_summaries(directions, summaries, &summaries_bias);
  }

  // Every row shares the storage type and math mode that set the threshold.
  const double wrong_above = rows.empty() ? 0.0 : gpu_wrong_above(rows.front().problem);
  const int failures =
      report_failures(rows, "rel error against cuDNN above " + scientific(wrong_above, 0));

  if (!args.json.empty()) {
    const double peak_gflops = 1000 * gemm.tflops;
    const std::vector<double> load_start = load_average();
    Json json = report_json(date, machine, load_start, load_average());
    json["gpu"] = {{"name", gpu.name},
                   {"compute_capability", std::to_string(gpu.compute_major) + "." +
                                              std::to_string(gpu.compute_minor)},
                   {"multiprocessors", gpu.multiprocessors},
                   {"memory_gib", gpu.memory_gib},
                   {"l2_mib", gpu.l2_mib},
                   {"driver_cuda", gpu.driver},
                   {"runtime_cuda", gpu.runtime},
                   {"cublas", gpu.cublas},
                   {"copy_gbps", copy.gbps}};
    json["build"] = build_json(machine);
    json["peak"] = {{"probe", "gemm"},
                    {"what", gemm.what},
                    {"n", gemm.n},
                    {"median_ms", gemm.median_ms},
                    {"gflops", peak_gflops},
                    {"tflops", gemm.tflops}};
    json["settings"] = {
        {"backend", "cuda"},
        {"kernel", args.kernel},
        {"baseline", with_baseline ? Json(baseline_name) : Json(nullptr)},
        {"reps", reps},
        {"warmup", warmup},
        {"timing", "CUDA events around each call, back to back on one stream, interleaved"},
        {"seed", args.seed},
        {"dtype", args.dtype},
        {"storage", std::string(to_string(storage))},
        {"math", std::string(to_string(math))},
        {"layout", "NHWC images, KRSC weights (cuDNN: NHWC filter format), on both sides"},
        {"wrong_above", wrong_above}};
    json["results"] = results_json(rows, peak_gflops, true);
    json["summary"] = summary_json(summaries, &summaries_bias);
    write_json(json, args.json);
  }
  return failures > 0 ? kExitFail : kExitPass;
}
#endif  // CONVGRAD_BENCH_WITH_CUDA

}  // namespace

Command add_bench_command(CLI::App& parent) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* app = parent.add_subcommand(
      "bench", "Time our kernels against oneDNN or cuDNN, layer by layer, in one process");
  app->footer(
      "For each problem (or row of --layers) and direction: our median time and p10/p90 over\n"
      "--reps runs after --warmup runs, GFLOP/s (flop_count), % of the peak the bench measures\n"
      "with its own FMA loop on the same threads, and the kernel. With --baseline onednn, oneDNN\n"
      "runs the same problem on the same inputs and thread count, interleaved with ours call by\n"
      "call, after a correctness check (rel error above 1e-3 marks the row WRONG); the ratio is\n"
      "ours / oneDNN (lower is better), summarised by its geometric mean per direction.\n"
      "--threads N (before or after `bench`) sets the threads of both sides.\n"
      "With --backend cuda: buffers in device memory, --baseline cudnn (the same buffers), CUDA\n"
      "events around calls enqueued back to back (defaults: 100 runs after 10), TFLOP/s and %\n"
      "of a cuBLAS GEMM in the same precision (--dtype bf16|f16|tf32|f32); cuDNN's time is\n"
      "given without and with its bias pass.\n"
      "Exit codes: 0 done, 1 a row WRONG or unable to run, 2 usage error, 3 could not run.\n"
      "Examples:\n"
      "  convgrad bench --layers layers-cpu.csv --baseline onednn --threads 2 --json out.json\n"
      "  convgrad bench --backend cuda --layers layers-gpu.csv --baseline cudnn --dtype bf16\n"
      "  convgrad bench mb8ic32ih28oc64oh28kh3ph1 --dir dgrad --reps 50");
  app->add_option("problems", args->problems, "Problems in benchdnn syntax");
  app->add_option("--layers", args->layers, "Layer CSV file: bench every row")
      ->check(CLI::ExistingFile);
  app->add_option("--backend", args->backend, "Backend to time")
      ->check(CLI::IsMember({"cpu", "ref", "cuda"}))
      ->capture_default_str();
  app->add_option("--kernel", args->kernel, "Glob over our kernel names, e.g. 'cpu.dgrad.*'");
  app->add_option("--baseline", args->baseline,
                  "What to compare with: onednn (CPU), cudnn (--backend cuda) or none")
      ->check(CLI::IsMember({"onednn", "cudnn", "none"}))
      ->capture_default_str();
  app->add_option("--dir", args->directions, "Directions, comma-separated")
      ->delimiter(',')
      ->allow_extra_args(false)  // `--dir dgrad PROBLEM`: the problem is not a direction
      ->check(CLI::IsMember({"fprop", "dgrad", "wgrad"}))
      ->capture_default_str();
  args->reps_option =
      app->add_option("--reps", args->reps, "Timed runs per side, direction and layer (cuda: 100)")
          ->check(CLI::PositiveNumber)
          ->capture_default_str();
  args->warmup_option =
      app->add_option("--warmup", args->warmup, "Untimed runs per side before them (cuda: 10)")
          ->check(CLI::NonNegativeNumber)
          ->capture_default_str();
  app->add_option("--dtype", args->dtype,
                  "Precision (--backend cuda): bf16, f16 (storage; fp32 accumulation), tf32 (f32 "
                  "storage, MathMode::tf32), f32")
      ->check(CLI::IsMember({"bf16", "f16", "tf32", "f32"}))
      ->capture_default_str();
  args->math_option = app->add_option("--math", args->math,
                                      "Our math mode with --dtype f32 (cuDNN's stays fp32 FMA)")
                          ->check(CLI::IsMember({"exact_fp32", "fp32_accurate"}))
                          ->capture_default_str();
  app->add_option("--gap-ms", args->gap_ms,
                  "Pause before each call, so that the other side's idle threads stop spinning "
                  "(libgomp spins a few ms after each oneDNN call); CPU only")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app->add_option("--pause", args->pause,
                  "busy: our threads spin through the pause (no CPU goes idle); sleep: the "
                  "program sleeps")
      ->check(CLI::IsMember({"busy", "sleep"}))
      ->capture_default_str();
  app->add_option("--seed", args->seed, "Seed of the inputs (problem i uses seed + i)")
      ->capture_default_str();
  app->add_option("--json", args->json, "Write the results, machine and settings as JSON")
      ->type_name("OUT");
  return {app, [args] { return bench(*args); }};
}

}  // namespace convgrad::tool
