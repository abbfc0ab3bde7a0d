// SPDX-License-Identifier: Apache-2.0
// CommandQueue and CommandBuffer: encoding enqueues work, commit() submits it, wait() blocks and
// rethrows the first error. MPS: `MTLCommandQueue`, `MTLCommandBuffer`.
#pragma once

#include <functional>
#include <memory>

#include "convgrad/device.hpp"

namespace convgrad {

enum class CommandBufferStatus { not_enqueued, committed, completed, error };

/// Work encoded on one command buffer runs in encoding order; command buffers of one queue run
/// in commit order. Encoding validates immediately and throws InvalidArgument; errors that happen
/// while the work runs are kept and rethrown by wait(). A handle: copies refer to the same buffer.
class CommandBuffer {
 public:
  const Device& device() const noexcept;
  /// Appends work. The library's encode calls use this; so can custom kernels.
  /// Throws InvalidArgument after commit().
  void enqueue(std::function<void()> work);
  /// Submits the encoded work; it starts once the queue's previous buffer has finished.
  void commit();
  /// Blocks until the work has finished and rethrows the first error it raised.
  /// Throws InvalidArgument when the buffer was never committed (it would never finish).
  void wait();
  CommandBufferStatus status() const;

 private:
  friend class CommandQueue;
  struct Impl;
  explicit CommandBuffer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

/// An ordered stream of command buffers on one device.
class CommandQueue {
 public:
  struct Impl;  // shared with the command buffers it makes

  explicit CommandQueue(const Device& device);
  const Device& device() const noexcept;
  /// MPS: `MTLCommandQueue.makeCommandBuffer()`.
  CommandBuffer command_buffer();

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace convgrad
