// SPDX-License-Identifier: Apache-2.0
// convgrad: the command-line face of the library (run, check, list, bench). Exit codes: 0 pass, 1 a
// result disagrees with the reference, 2 usage error, 3 a valid request that could not be done.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <vector>

#include "commands.hpp"
#include "convgrad/errors.hpp"
#include "core/parallel.hpp"
#include "harness.hpp"

namespace {

int report(const char* command, const char* kind, const char* message, int code) {
  std::fflush(stdout);  // keep the error after what was already printed when both go to a file
  std::fprintf(stderr, "convgrad%s%s: %s%s\n", *command ? " " : "", command, kind, message);
  return code;
}

int run_main(int argc, char** argv) {
  using namespace convgrad::tool;
  CLI::App app{
      "convgrad: 2-D convolution forward and gradients (a port of MPSCNNConvolutionGradient),\n"
      "checked against a double-accumulating reference. Problems use oneDNN benchdnn syntax,\n"
      "e.g. mb8ic32ih28oc64oh28kh3ph1 (dilation counts from 0: dh1 is dilation 2).\n"
      "Exit codes: 0 pass, 1 check failed, 2 usage error, 3 could not run (I/O, device).",
      "convgrad"};
  app.require_subcommand(1, 1);
  // Lets --threads follow the subcommand as well as precede it.
  app.fallthrough();
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads for the cpu and ref backends (0: all cores)")
      ->check(CLI::NonNegativeNumber);

  const std::vector<Command> commands = {add_run_command(app), add_check_command(app),
                                         add_list_command(app), add_bench_command(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);  // prints help (code 0) or the error
    return code == 0 ? kExitPass : kExitUsage;
  }
  convgrad::core::set_num_threads(threads);

  for (const Command& command : commands) {
    if (!command.app->parsed()) continue;
    const char* name = command.app->get_name().c_str();
    try {
      return command.run();
    } catch (const convgrad::InvalidArgument& error) {
      return report(name, "", error.what(), kExitUsage);
    } catch (const UsageError& error) {
      return report(name, "", error.what(), kExitUsage);
    } catch (const convgrad::Unsupported& error) {
      return report(name, "unsupported: ", error.what(), kExitUsage);
    } catch (const std::exception& error) {
      return report(name, "error: ", error.what(), kExitError);
    }
  }
  return kExitUsage;  // unreachable: CLI11 requires exactly one subcommand
}

}  // namespace

int main(int argc, char** argv) {
  // Setting up the commands asks the library for its backends, which may throw too.
  try {
    return run_main(argc, argv);
  } catch (const std::exception& error) {
    return report("", "error: ", error.what(), convgrad::tool::kExitError);
  }
}
