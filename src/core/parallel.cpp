// SPDX-License-Identifier: Apache-2.0
// A persistent pool: threads are created once (lazily, up to the largest count asked for) and
// woken per call, because spawning threads on every kernel call costs tens of microseconds, as
// much as a whole small convolution.
#include "core/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace convgrad::core {
namespace {

std::atomic<int> requested_threads{0};
// Set on pool workers and on a caller while its job runs: a parallel_for from inside a chunk
// runs serially instead of waiting for threads that are all busy (and would deadlock).
thread_local bool inside_parallel_region = false;

class Pool {
 public:
  void run(std::int64_t count, std::int64_t parts,
           const std::function<void(std::int64_t, std::int64_t)>& body) {
    // One job at a time: callers on other threads queue here rather than oversubscribe.
    const std::lock_guard submit(submit_mutex_);
    std::unique_lock lock(mutex_);
    while (static_cast<std::int64_t>(workers_.size()) < parts - 1) {
      const int index = static_cast<int>(workers_.size());
      workers_.emplace_back([this, index] { work(index); });
    }
    body_ = &body;
    count_ = count;
    parts_ = parts;
    next_part_.store(0, std::memory_order_relaxed);
    helpers_left_ = parts - 1;
    error_ = nullptr;
    ++generation_;
    lock.unlock();
    wake_.notify_all();

    inside_parallel_region = true;
    run_parts();
    inside_parallel_region = false;

    lock.lock();
    done_.wait(lock, [this] { return helpers_left_ == 0; });
    body_ = nullptr;
    std::exception_ptr error = error_;
    error_ = nullptr;
    lock.unlock();
    if (error) std::rethrow_exception(error);
  }

 private:
  void work(int index) {
    inside_parallel_region = true;
    std::uint64_t seen = 0;
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (index >= parts_ - 1) continue;  // this job needs fewer threads
      lock.unlock();
      run_parts();
      lock.lock();
      if (--helpers_left_ == 0) done_.notify_one();
    }
  }

  // Chunks are the static contiguous split of parallel_for's contract; whichever thread is free
  // takes the next one.
  void run_parts() {
    for (;;) {
      const std::int64_t t = next_part_.fetch_add(1, std::memory_order_relaxed);
      if (t >= parts_) return;
      try {
        (*body_)(count_ * t / parts_, count_ * (t + 1) / parts_);
      } catch (...) {
        const std::lock_guard guard(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  std::mutex submit_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;  // never joined: see pool()
  std::uint64_t generation_ = 0;
  const std::function<void(std::int64_t, std::int64_t)>* body_ = nullptr;
  std::int64_t count_ = 0, parts_ = 0, helpers_left_ = 0;
  std::atomic<std::int64_t> next_part_{0};
  std::exception_ptr error_;
};

// Deliberately leaked: the workers sleep on the condition variable until the process exits, so
// no static destructor can race with a late parallel_for.
Pool& pool() {
  static Pool* instance = new Pool;
  return *instance;
}

}  // namespace

void set_num_threads(int count) noexcept { requested_threads.store(std::max(count, 0)); }

int num_threads() noexcept {
  const int requested = requested_threads.load();
  if (requested > 0) return requested;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void parallel_for(std::int64_t count, const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (count <= 0) return;
  const std::int64_t threads = std::min<std::int64_t>(num_threads(), count);
  if (threads <= 1 || inside_parallel_region) {
    body(0, count);
    return;
  }
  pool().run(count, threads, body);
}

}  // namespace convgrad::core
