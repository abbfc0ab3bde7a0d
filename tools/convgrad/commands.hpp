// SPDX-License-Identifier: Apache-2.0
// The subcommands. Each adds itself to the CLI11 app and returns the function that main calls
// once parsing has succeeded, so that nothing runs while the command line may still be rejected.
#pragma once

#include <functional>

namespace CLI {
class App;
}  // namespace CLI

namespace convgrad::tool {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;  ///< returns the exit code; may throw (main maps the exceptions)
};

Command add_run_command(CLI::App& parent);
Command add_check_command(CLI::App& parent);
Command add_list_command(CLI::App& parent);
Command add_bench_command(CLI::App& parent);

}  // namespace convgrad::tool
