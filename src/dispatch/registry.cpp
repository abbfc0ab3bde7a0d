// SPDX-License-Identifier: Apache-2.0
#include "dispatch/registry.hpp"

#include <array>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "convgrad/errors.hpp"
#include "cpu/backend.hpp"
#include "cuda/backend.hpp"
#include "ref/backend.hpp"

namespace convgrad::dispatch {

std::span<const core::BackendEntry* const> backends() {
  static const std::array<const core::BackendEntry*, 3> all{&cpu::backend(), &ref::backend(),
                                                            &cuda::backend()};
  return all;
}

const core::BackendEntry& backend(std::string_view name) {
  for (const core::BackendEntry* entry : backends()) {
    if (entry->name != name) continue;
    std::string reason;
    if (!entry->available(&reason)) {
      std::string message = "backend \"";
      message.append(name).append("\" is not available: ").append(reason);
      throw Unsupported(message);
    }
    return *entry;
  }
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on a chain of operator+.
  std::string message = "unknown backend \"";
  message.append(name).append("\"; compiled in:");
  for (const core::BackendEntry* entry : backends()) message.append(" ").append(entry->name);
  throw Unsupported(message);
}

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  // Iterative matcher with single-star backtracking: linear in practice, no recursion.
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

const core::KernelInfo& choose_kernel(const core::BackendEntry& backend, const ConvProblem& problem,
                                      Direction direction, std::string_view filter) {
  const char* verbose = std::getenv("CONVGRAD_VERBOSE");
  const bool explain = verbose != nullptr && std::strstr(verbose, "dispatch") != nullptr;
  std::string reasons;
  for (const core::KernelInfo& kernel : backend.kernels()) {
    if (kernel.direction != direction) continue;
    if (!filter.empty() && !glob_match(filter, kernel.name)) continue;
    const std::optional<std::string> rejected = kernel.rejects(problem);
    if (!rejected) {
      if (explain) std::cerr << "convgrad dispatch: " << kernel.name << ": chosen\n";
      return kernel;
    }
    if (explain) std::cerr << "convgrad dispatch: " << kernel.name << ": " << *rejected << "\n";
    reasons += "\n  " + std::string(kernel.name) + ": " + *rejected;
  }
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on a chain of operator+.
  std::string message = "no ";
  message.append(backend.name).append(" kernel for ").append(to_string(direction));
  message.append(" of ").append(to_string(problem));
  if (!filter.empty()) message.append(" matching \"").append(filter).append("\"");
  message.append(reasons.empty() ? std::string(": none compiled in") : reasons);
  throw Unsupported(message);
}

}  // namespace convgrad::dispatch
