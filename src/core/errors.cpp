// SPDX-License-Identifier: Apache-2.0
#include "convgrad/errors.hpp"

#include <utility>

namespace convgrad {
namespace {
std::string compose(const std::string& where, const std::string& parameter,
                    const std::string& value, const std::string& rule,
                    const std::string& problem) {
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on a chain of operator+.
  std::string message;
  for (const std::string* part : {&where, &parameter, &value, &rule}) {
    if (!message.empty()) message.append(part == &parameter ? ": " : part == &value ? " = " : ": ");
    message.append(*part);
  }
  if (!problem.empty()) message.append(" [").append(problem).append("]");
  return message;
}
}  // namespace

InvalidArgument::InvalidArgument(std::string where, std::string parameter, std::string value,
                                 std::string rule, std::string problem)
    : std::invalid_argument(compose(where, parameter, value, rule, problem)),
      parameter_(std::move(parameter)),
      value_(std::move(value)),
      rule_(std::move(rule)) {}

}  // namespace convgrad
