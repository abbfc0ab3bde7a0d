// SPDX-License-Identifier: Apache-2.0
#include "core/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace convgrad::core {
namespace {
std::atomic<int> requested_threads{0};
}

void set_num_threads(int count) noexcept { requested_threads.store(std::max(count, 0)); }

int num_threads() noexcept {
  const int requested = requested_threads.load();
  if (requested > 0) return requested;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void parallel_for(std::int64_t count,
                  const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (count <= 0) return;
  const std::int64_t threads = std::min<std::int64_t>(num_threads(), count);
  if (threads <= 1) {
    body(0, count);
    return;
  }
  std::exception_ptr first_error;
  std::mutex error_mutex;
  auto run_chunk = [&](std::int64_t t) {
    const std::int64_t begin = count * t / threads;
    const std::int64_t end = count * (t + 1) / threads;
    try {
      body(begin, end);
    } catch (...) {
      const std::lock_guard lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
    }
  };
  {
    std::vector<std::jthread> workers;
    workers.reserve(static_cast<std::size_t>(threads - 1));
    for (std::int64_t t = 1; t < threads; ++t) workers.emplace_back(run_chunk, t);
    run_chunk(0);
  }
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace convgrad::core
