// SPDX-License-Identifier: Apache-2.0
// The backends compiled into this build, and the choice of a kernel for a problem.
#pragma once

#include <span>
#include <string_view>

#include "core/kernel.hpp"

namespace convgrad::dispatch {

std::span<const core::BackendEntry* const> backends();

/// The named backend; throws Unsupported when it is unknown or cannot run here.
const core::BackendEntry& backend(std::string_view name);

/// The first kernel of `backend` for `direction` whose name matches `filter` (a glob; empty
/// matches all) and that accepts `problem`. Throws Unsupported listing each candidate's reason.
/// `CONVGRAD_VERBOSE=dispatch` prints every candidate considered and why it was rejected.
const core::KernelInfo& choose_kernel(const core::BackendEntry& backend, const ConvProblem& problem,
                                      Direction direction, std::string_view filter);

/// Shell-style glob with `*` and `?`.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

}  // namespace convgrad::dispatch
