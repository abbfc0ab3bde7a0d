// SPDX-License-Identifier: Apache-2.0
// Command buffers: commit() hands the encoded work to a task that first waits for the queue's
// previous buffer, so buffers of one queue run in commit order and encoding never blocks. On a
// CUDA device the task binds the queue's stream while the work runs, so kernels launch without
// waiting for each other, and synchronizes once at the end: an error of any kernel becomes the
// buffer's DeviceError at wait(), and the work (holding the images) is released only after it.
#include "convgrad/command_buffer.hpp"

#include <exception>
#include <future>
#include <mutex>
#include <vector>

#include "convgrad/errors.hpp"
#include "dispatch/device_work.hpp"

namespace convgrad {

struct CommandQueue::Impl {
  explicit Impl(const Device& d)
      : device(d), stream(std::make_shared<dispatch::WorkStream>(d.kind(), d.ordinal())) {}
  Device device;
  // Shared with the running tasks, which drop it when done (the queue's `last` future holds the
  // latest task, so a task holding the queue itself would keep it alive forever).
  std::shared_ptr<dispatch::WorkStream> stream;
  std::mutex mutex;
  std::shared_future<void> last;  // completion of the most recently committed buffer
};

struct CommandBuffer::Impl {
  explicit Impl(std::shared_ptr<CommandQueue::Impl> q) : queue(std::move(q)) {}
  ~Impl() {
    // Work still running refers to this buffer's images: finish it before they go away.
    if (done.valid()) done.wait();
  }
  std::shared_ptr<CommandQueue::Impl> queue;
  std::vector<std::function<void()>> work;
  CommandBufferStatus status = CommandBufferStatus::not_enqueued;
  std::shared_future<void> done;
  mutable std::mutex mutex;
};

CommandQueue::CommandQueue(const Device& device)
    : impl_(std::make_shared<Impl>(device)) {}

const Device& CommandQueue::device() const noexcept { return impl_->device; }

CommandBuffer CommandQueue::command_buffer() {
  return CommandBuffer(std::make_shared<CommandBuffer::Impl>(impl_));
}

const Device& CommandBuffer::device() const noexcept { return impl_->queue->device; }

void CommandBuffer::enqueue(std::function<void()> work) {
  const std::lock_guard lock(impl_->mutex);
  if (impl_->status != CommandBufferStatus::not_enqueued) {
    throw InvalidArgument("CommandBuffer::enqueue", "status", "committed",
                          "work cannot be added after commit(); use a new command buffer");
  }
  impl_->work.push_back(std::move(work));
}

void CommandBuffer::commit() {
  const std::lock_guard lock(impl_->mutex);
  if (impl_->status != CommandBufferStatus::not_enqueued) {
    throw InvalidArgument("CommandBuffer::commit", "status", "committed",
                          "a command buffer is committed once");
  }
  impl_->status = CommandBufferStatus::committed;
  const std::lock_guard queue_lock(impl_->queue->mutex);
  std::shared_future<void> previous = impl_->queue->last;
  auto work = std::move(impl_->work);
  impl_->work.clear();
  impl_->done = std::async(std::launch::async, [previous, work = std::move(work),
                                                 stream = impl_->queue->stream]() mutable {
                  // A failed earlier buffer does not stop this one (as on Metal); its error
                  // belongs to its own wait().
                  if (previous.valid()) previous.wait();
                  // The future's shared state keeps this closure alive as long as any later
                  // buffer refers to it: drop the link to the previous buffer and the work
                  // (which holds images) here, or a queue would retain every buffer's memory.
                  previous = {};
                  const auto items = std::move(work);
                  work.clear();
                  const std::shared_ptr<dispatch::WorkStream> target = std::move(stream);
                  std::exception_ptr error;
                  {
                    const dispatch::WorkStream::Binding binding(*target);
                    try {
                      for (const auto& item : items) item();
                    } catch (...) {
                      error = std::current_exception();
                    }
                    // Also after a failure: launched kernels may still read the images the work
                    // holds, which `items` releases only after this.
                    try {
                      target->synchronize();
                    } catch (...) {
                      if (!error) error = std::current_exception();
                    }
                  }
                  if (error) std::rethrow_exception(error);
                }).share();
  impl_->queue->last = impl_->done;
}

void CommandBuffer::wait() {
  std::shared_future<void> done;
  {
    const std::lock_guard lock(impl_->mutex);
    if (impl_->status == CommandBufferStatus::not_enqueued) {
      throw InvalidArgument("CommandBuffer::wait", "status", "not committed",
                            "commit() the command buffer before waiting for it");
    }
    done = impl_->done;
  }
  try {
    done.get();
  } catch (...) {
    const std::lock_guard lock(impl_->mutex);
    impl_->status = CommandBufferStatus::error;
    throw;
  }
  const std::lock_guard lock(impl_->mutex);
  impl_->status = CommandBufferStatus::completed;
}

CommandBufferStatus CommandBuffer::status() const {
  const std::lock_guard lock(impl_->mutex);
  if (impl_->status == CommandBufferStatus::committed &&
      impl_->done.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    try {
      impl_->done.get();
      return CommandBufferStatus::completed;
    } catch (...) {
      return CommandBufferStatus::error;
    }
  }
  return impl_->status;
}

}  // namespace convgrad
