// SPDX-License-Identifier: Apache-2.0
// convgrad list: what this build can run here, so that a missing backend is explained before a
// run fails on it.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "commands.hpp"
#include "convgrad/functional.hpp"
#include "core/parallel.hpp"
#include "harness.hpp"

namespace convgrad::tool {
namespace {

int list() {
  for (const BackendInfo& info : list_backends()) {
    if (info.available) {
      std::printf("%-5s  available\n", info.name.c_str());
    } else {
      std::printf("%-5s  not available: %s\n", info.name.c_str(), info.reason.c_str());
    }
    if (info.kernels.empty()) std::printf("       (no kernels)\n");
    for (const std::string& kernel : info.kernels) std::printf("       %s\n", kernel.c_str());
  }
  std::printf("cpu threads: %d\n", core::num_threads());
  return kExitPass;
}

}  // namespace

Command add_list_command(CLI::App& parent) {
  CLI::App* app =
      parent.add_subcommand("list", "List the backends, whether each can run here, and kernels");
  app->footer(
      "Kernels are listed in the order the dispatcher tries them: the first that accepts a\n"
      "problem (and matches --kernel) runs it.");
  return {app, [] { return list(); }};
}

}  // namespace convgrad::tool
