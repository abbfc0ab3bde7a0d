// SPDX-License-Identifier: Apache-2.0
// convgrad check: many problems against ref, one line each, and a pass/fail/skip count.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "convgrad/errors.hpp"
#include "core/parallel.hpp"
#include "core/validate.hpp"
#include "harness.hpp"

namespace convgrad::tool {
namespace {

struct CheckArgs {
  std::vector<std::string> problems;
  std::string layers;
  double max_macs = 2e8;
  BackendOptions backend;
};

enum class Outcome { pass, fail, skip };

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The reference is the slow half of a check; a layer beyond the limit is checked at batch 1,
// which runs the same kernel code paths. Returns the note to print when the batch was cut.
std::string fit_batch(ConvProblem& problem, double max_macs) {
  if (multiply_adds(problem) <= max_macs || problem.n == 1) return {};
  const std::int64_t original = problem.n;
  problem.n = 1;
  return "(batch " + std::to_string(original) + " -> 1)";
}

Outcome check_one(const core::NamedProblem& item, std::size_t name_width, std::size_t problem_width,
                  const CheckArgs& args, std::uint64_t seed) {
  ConvProblem problem = item.problem;
  const std::string note = fit_batch(problem, args.max_macs);
  const std::string text = to_string(problem);
  if (!item.name.empty()) std::printf("%-*s  ", static_cast<int>(name_width), item.name.c_str());
  std::printf("%-*s  ", static_cast<int>(problem_width), text.c_str());
  const double macs = multiply_adds(problem);
  if (macs > args.max_macs) {
    std::printf(
        "SKIPPED (too large for the reference: %s multiply-adds at batch 1 > --max-macs "
        "%s)\n",
        scientific(macs).c_str(), scientific(args.max_macs).c_str());
    return Outcome::skip;
  }
  std::fflush(stdout);  // the name shows while the reference grinds

  EvaluateOptions options;
  options.run = args.backend.run_options();
  options.seed = seed;
  const auto start = std::chrono::steady_clock::now();
  bool passed = false;
  try {
    const Evaluation e = evaluate(problem, options);
    for (const DirectionResult& d : e.directions) {
      std::printf("%s %-9s  ", std::string(to_string(d.direction)).c_str(),
                  scientific(d.rel_error).c_str());
    }
    passed = e.passed();
    std::printf("%s  %6.2f s", passed ? "PASS" : "FAIL", seconds_since(start));
  } catch (const std::exception& error) {
    // A backend that cannot run one problem of a list (no kernel, device error) fails that
    // problem; the others still get checked.
    std::printf("FAIL  (%s)", error.what());
  }
  if (!note.empty()) std::printf("  %s", note.c_str());
  std::printf("\n");
  if (!passed) {
    const std::string kernel =
        args.backend.kernel.empty() ? "" : " --kernel '" + args.backend.kernel + "'";
    std::printf("  repro: convgrad run %s --backend %s --dtype %s%s --seed %llu\n", text.c_str(),
                args.backend.backend.c_str(), args.backend.dtype.c_str(), kernel.c_str(),
                static_cast<unsigned long long>(seed));
  }
  return passed ? Outcome::pass : Outcome::fail;
}

int check(const CheckArgs& args) {
  // Everything is parsed and validated before the first check, so that a typo in the last
  // problem is a usage error, not a FAIL after minutes of work.
  std::vector<core::NamedProblem> items;
  if (!args.layers.empty()) {
    items = read_layers(args.layers);
    for (const core::NamedProblem& item : items) {
      core::validate_problem(item.problem, (args.layers + ": " + item.name).c_str());
    }
    if (items.empty()) throw UsageError("--layers " + args.layers + ": the file has no layers");
  } else {
    for (const std::string& text : args.problems) {
      items.push_back({"", parse_checked_problem(text)});
    }
  }
  const DataType type = args.backend.data_type();
  std::size_t name_width = 0, problem_width = 0;
  for (core::NamedProblem& item : items) {
    item.problem = with_data_type(item.problem, type);
    name_width = std::max(name_width, item.name.size());
    ConvProblem fitted = item.problem;
    fit_batch(fitted, args.max_macs);
    problem_width = std::max(problem_width, to_string(fitted).size());
  }

  const std::uint64_t seed = args.backend.resolved_seed();
  const int threads = core::num_threads();
  std::printf(
      "backend %s vs ref, %s, tolerance %s, %d thread%s, seed %llu (problem i uses seed "
      "+ i), at most %s multiply-adds per direction\n",
      args.backend.backend.c_str(), args.backend.dtype.c_str(),
      scientific(tolerance(type), 0).c_str(), threads, threads == 1 ? "" : "s",
      static_cast<unsigned long long>(seed), scientific(args.max_macs).c_str());
  int passed = 0, failed = 0, skipped = 0;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < items.size(); ++i) {
    switch (check_one(items[i], name_width, problem_width, args, seed + i)) {
      case Outcome::pass:
        ++passed;
        break;
      case Outcome::fail:
        ++failed;
        break;
      case Outcome::skip:
        ++skipped;
        break;
    }
  }
  std::printf("checked %zu problem%s in %.2f s\n", items.size(), items.size() == 1 ? "" : "s",
              seconds_since(start));
  std::printf("%d passed, %d failed", passed, failed);
  if (skipped > 0) std::printf(", %d skipped", skipped);
  std::printf("\n");
  return failed > 0 ? kExitFail : kExitPass;
}

}  // namespace

Command add_check_command(CLI::App& parent) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* app =
      parent.add_subcommand("check", "Compare a backend with ref on many problems, one line each");
  app->footer(
      "Each problem runs fprop, dgrad and wgrad on fresh random data (problem i uses seed + i)\n"
      "with outputs poisoned with NaN, on the backend and on ref, and prints the relative error\n"
      "of each direction and PASS or FAIL, with a `convgrad run` repro line for a failure.\n"
      "The last line is 'N passed, M failed' (', K skipped' when layers were too large for the\n"
      "reference even at batch 1). Exit codes: 0 none failed, 1 a failure, 2 usage error.\n"
      "Examples:\n"
      "  convgrad check g2mb2ic8ih9oc8kh3sh2ph1 mb1ic3ih7oc5kh2dh1\n"
      "  convgrad check --layers layers-cpu.csv --dtype f16");
  CLI::Option* problems =
      app->add_option("problems", args->problems, "Problems in benchdnn syntax");
  CLI::Option* layers = app->add_option("--layers", args->layers, "Layer CSV file: check every row")
                            ->check(CLI::ExistingFile);
  layers->excludes(problems);
  app->add_option("--max-macs", args->max_macs,
                  "Multiply-adds per direction above which the batch is cut to 1 and, if still "
                  "above, the problem is skipped (the reference is slow)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_backend_options(*app, args->backend);
  return {app, [args, problems, layers] {
            if (problems->count() == 0 && layers->count() == 0) {
              throw UsageError("give one or more problems, or --layers FILE");
            }
            return check(*args);
          }};
}

}  // namespace convgrad::tool
