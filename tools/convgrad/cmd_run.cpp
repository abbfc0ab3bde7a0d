// SPDX-License-Identifier: Apache-2.0
// convgrad run: one problem, all three directions, timed, summarised and checked against ref.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "commands.hpp"
#include "core/parallel.hpp"
#include "core/validate.hpp"
#include "harness.hpp"

namespace convgrad::tool {
namespace {

struct RunArgs {
  std::string problem;
  std::string layers;
  std::string layer;
  std::string dump_dir;
  int repeat = 3;
  BackendOptions backend;
};

void print_header(const ConvProblem& p, const std::string& layer, const RunArgs& args,
                  std::uint64_t seed) {
  if (!layer.empty()) std::printf("layer      %s (%s)\n", layer.c_str(), args.layers.c_str());
  std::printf("problem    %s\n", to_string(p).c_str());
  std::printf("padding    top %d, left %d, bottom %d, right %d; output %lld x %lld (P x Q)\n",
              p.pad_top, p.pad_left, p.pad_bottom, p.pad_right, static_cast<long long>(p.p),
              static_cast<long long>(p.q));
  const std::int64_t x_dims[] = {p.n, p.h, p.w, p.c};
  const std::int64_t w_dims[] = {p.k, p.r, p.s, p.c_per_group()};
  const std::int64_t y_dims[] = {p.n, p.p, p.q, p.k};
  std::printf("tensors    x %s (NHWC), w %s (KRSC), y %s (NPQK), b %lld\n",
              shape_string(x_dims).c_str(), shape_string(w_dims).c_str(),
              shape_string(y_dims).c_str(), static_cast<long long>(p.k));
  std::printf("data type  %s (b and db are f32)\n", std::string(to_string(p.x_type)).c_str());
  const int threads = core::num_threads();
  std::printf("backend    %s, %d thread%s; reference ref (double accumulation)\n",
              args.backend.backend.c_str(), threads, threads == 1 ? "" : "s");
  std::printf("seed       %llu (inputs uniform in [-1, 1]; --seed %llu reproduces them)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
}

void print_directions(const Evaluation& e, int repeat) {
  std::size_t width = 6;
  for (const DirectionResult& d : e.directions) width = std::max(width, d.kernel.size());
  const int kw = static_cast<int>(width);
  const double limit = tolerance(e.problem.x_type);
  std::printf("\n%-9s  %-*s  %10s  %9s  %9s  %9s  %s\n", "direction", kw, "kernel", "time ms",
              "GFLOP/s", "rel error", "tolerance", "check");
  for (const DirectionResult& d : e.directions) {
    const double gflops = flop_count(e.problem, d.direction) / (d.median_ms * 1e6);
    std::printf("%-9s  %-*s  %10.3f  %9.2f  %9s  %9s  %s\n",
                std::string(to_string(d.direction)).c_str(), kw, d.kernel.c_str(), d.median_ms,
                gflops, scientific(d.rel_error).c_str(), scientific(limit).c_str(),
                d.pass ? "PASS" : "FAIL");
  }
  std::printf(
      "(time: median of %d run%s; rel error: max|out - ref| / max|ref|; wgrad: dw %s, "
      "db %s)\n",
      repeat, repeat == 1 ? "" : "s", scientific(e.dw_error).c_str(),
      scientific(e.db_error).c_str());
}

void print_summaries(const Evaluation& e) {
  std::printf("\n%-6s  %-16s  %12s  %12s  %12s  %12s\n", "tensor", "shape", "min", "max", "mean",
              "L2 norm");
  const ConvProblem& p = e.problem;
  const std::int64_t x_dims[] = {p.n, p.h, p.w, p.c};
  const std::int64_t w_dims[] = {p.k, p.r, p.s, p.c_per_group()};
  const std::int64_t y_dims[] = {p.n, p.p, p.q, p.k};
  const std::int64_t b_dims[] = {p.k};
  const struct {
    const char* name;
    const std::vector<float>& values;
    std::span<const std::int64_t> dims;
  } rows[] = {{"y", e.y, y_dims}, {"dx", e.dx, x_dims}, {"dw", e.dw, w_dims}, {"db", e.db, b_dims}};
  for (const auto& row : rows) {
    const Stats s = summarize(row.values);
    std::printf("%-6s  %-16s  %12.5e  %12.5e  %12.5e  %12.5e\n", row.name,
                shape_string(row.dims).c_str(), s.min, s.max, s.mean, s.l2);
  }
}

int run(const RunArgs& args) {
  std::string layer;
  ConvProblem problem;
  if (!args.layers.empty()) {
    if (args.layer.empty()) throw UsageError("--layers needs --layer NAME to pick one layer");
    const core::NamedProblem named = find_layer(args.layers, args.layer);
    layer = named.name;
    problem = named.problem;
    core::validate_problem(problem, layer.c_str());
  } else {
    problem = parse_checked_problem(args.problem.empty() ? kDefaultProblem : args.problem);
  }
  problem = with_data_type(problem, args.backend.data_type());

  EvaluateOptions options;
  options.run = args.backend.run_options();
  options.seed = args.backend.resolved_seed();
  options.repeat = args.repeat;
  // Refusals (backend unavailable, no kernel, a folder that cannot be made) come before any
  // output, and before the work rather than after it.
  for (const Direction d : {Direction::fprop, Direction::dgrad, Direction::wgrad}) {
    kernel_name(problem, d, options.run);
  }
  if (!args.dump_dir.empty()) make_dump_folder(args.dump_dir);
  print_header(problem, layer, args, options.seed);
  std::fflush(stdout);
  const Evaluation e = evaluate(problem, options);
  print_directions(e, args.repeat);
  print_summaries(e);
  if (!args.dump_dir.empty()) {
    dump(e, args.backend.backend, args.dump_dir);
    std::printf("\ndumped x w b dy y dx dw db (.npy, float32) and problem.json to %s\n",
                args.dump_dir.c_str());
  }
  std::printf("\n%s\n", e.passed() ? "PASS: all directions agree with the reference"
                                   : "FAIL: see the rel error column");
  return e.passed() ? kExitPass : kExitFail;
}

}  // namespace

Command add_run_command(CLI::App& parent) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* app = parent.add_subcommand(
      "run", "Run fprop, dgrad and wgrad on one problem, time them and check them against ref");
  const std::string default_problem(kDefaultProblem);
  app->footer(
      "Runs fprop (with bias), dgrad and wgrad (with db) on random inputs, uniform in [-1, 1],\n"
      "on the backend and on ref (double accumulation), and prints the padding, the kernel of\n"
      "each direction, its median time and GFLOP/s, min/max/mean/L2 of y, dx, dw and db, and\n"
      "max|out - ref| / max|ref| against the tolerance (1e-5 for f32, 1e-2 for f16 and bf16).\n"
      "Default problem: " +
      default_problem + " (a small ResNet-like 3x3 layer, about\n" +
      "116 M multiply-adds per direction).\n"
      "Exit codes: 0 all pass, 1 a direction fails, 2 usage error, 3 could not run.\n"
      "Examples:\n"
      "  convgrad run\n"
      "  convgrad run g32mb4ic256ih28oc256kh3ph1 --dtype bf16 --dump /tmp/resnext\n"
      "  convgrad run --layers layers-cpu.csv --layer resnet50_conv1 --repeat 10");
  app->add_option("problem", args->problem,
                  "Problem in benchdnn syntax (default: " + default_problem + ")");
  CLI::Option* layers = app->add_option("--layers", args->layers, "Layer CSV file (with --layer)")
                            ->check(CLI::ExistingFile);
  app->add_option("--layer", args->layer, "Name of the layer to run from --layers")->needs(layers);
  layers->excludes(app->get_option("problem"));
  add_backend_options(*app, args->backend);
  app->add_option("--dump", args->dump_dir,
                  "Write the inputs and outputs as float32 .npy files and problem.json into DIR "
                  "(created when missing)")
      ->type_name("DIR");
  app->add_option("--repeat", args->repeat, "Backend runs per direction; the median is reported")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  return {app, [args] { return run(*args); }};
}

}  // namespace convgrad::tool
