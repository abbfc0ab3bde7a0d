// SPDX-License-Identifier: Apache-2.0
// Which CUDA stream a kernel launches on, and when its errors surface. Every kernel of the backend
// launches on current_stream() and ends with finish_launches(); nothing else decides this, so
// that the command buffer (asynchronous, errors at wait()) and the functional calls (synchronous,
// errors on return) share the same kernels.
#pragma once

#include <cuda_runtime.h>

namespace convgrad::cuda {

/// The calling thread's stream: the one a StreamBinding set, else the per-thread default stream.
cudaStream_t current_stream() noexcept;

/// Called once after a kernel's launches. Throws DeviceError for a launch error. Without a
/// StreamBinding it also waits for the stream, so that a functional call returns with its
/// results written and its execution errors thrown; inside one, the binding's owner waits.
void finish_launches();

/// Sends the calling thread's kernels to `stream` until destroyed, without per-kernel waits.
class StreamBinding {
 public:
  explicit StreamBinding(cudaStream_t stream) noexcept;
  ~StreamBinding();
  StreamBinding(const StreamBinding&) = delete;
  StreamBinding& operator=(const StreamBinding&) = delete;

 private:
  cudaStream_t previous_;
  bool previous_bound_;
};

}  // namespace convgrad::cuda
