// SPDX-License-Identifier: Apache-2.0
// The CUDA streams of command queues behind a plain C++ interface (no CUDA types), so that the
// dispatch layer can hand them to the API. A command buffer's work runs with its queue's stream
// bound (StreamBinding): kernels launch without per-kernel waits and the buffer synchronizes once.
#pragma once

#include <cstddef>

namespace convgrad::cuda {

/// A non-blocking stream on device `ordinal`, from a process-wide pool (created when the pool
/// is empty). Throws DeviceError.
void* acquire_stream(int ordinal);
/// Waits for the stream and returns it to the pool; null is ignored. Streams are never
/// destroyed: cudaStreamDestroy releases its memory later, in the background, which would make
/// the device's free memory drift under whoever measures it next, and queues come and go often.
/// Errors are dropped (destructors).
void release_stream(void* stream, int ordinal) noexcept;
/// Makes `ordinal` the calling thread's device and sends its kernels to `stream` until
/// unbind_stream(binding). Throws DeviceError.
void* bind_stream(void* stream, int ordinal);
void unbind_stream(void* binding) noexcept;
/// Waits for everything queued on `stream`; a failure of any of that work is a DeviceError.
void synchronize_stream(void* stream);
/// Device-to-device copy on the calling thread's current stream: asynchronous inside a binding,
/// complete on return otherwise.
void copy_device_to_device(void* destination, const void* source, std::size_t bytes);

}  // namespace convgrad::cuda
