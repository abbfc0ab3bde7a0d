// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <functional>

namespace convgrad::core {

/// Number of threads the CPU backends use (default: the hardware's); 0 restores the default.
void set_num_threads(int count) noexcept;
int num_threads() noexcept;

/// Splits [0, count) into contiguous chunks, one per thread, and runs body(begin, end) on each
/// on a persistent pool (the caller runs chunks too). A call from inside a chunk runs serially.
/// The first exception thrown by a chunk is rethrown after every chunk has finished.
void parallel_for(std::int64_t count,
                  const std::function<void(std::int64_t begin, std::int64_t end)>& body);

}  // namespace convgrad::core
