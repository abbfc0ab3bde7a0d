// SPDX-License-Identifier: Apache-2.0
#include "dispatch/device_work.hpp"

#include <cstring>

#include "cuda/queue.hpp"

namespace convgrad::dispatch {

WorkStream::WorkStream(DeviceKind kind, int ordinal) : kind_(kind), ordinal_(ordinal) {
  if (kind_ == DeviceKind::cuda) stream_ = cuda::acquire_stream(ordinal_);
}

WorkStream::~WorkStream() { cuda::release_stream(stream_, ordinal_); }

WorkStream::Binding::Binding(const WorkStream& stream) {
  if (stream.kind_ == DeviceKind::cuda) handle_ = cuda::bind_stream(stream.stream_, stream.ordinal_);
}

WorkStream::Binding::~Binding() {
  if (handle_ != nullptr) cuda::unbind_stream(handle_);
}

void WorkStream::synchronize() const {
  if (kind_ == DeviceKind::cuda) cuda::synchronize_stream(stream_);
}

void copy_within(DeviceKind kind, void* destination, const void* source, std::size_t bytes) {
  if (bytes == 0 || destination == source) return;
  if (kind == DeviceKind::cuda) {
    cuda::copy_device_to_device(destination, source, bytes);
  } else {
    std::memmove(destination, source, bytes);
  }
}

}  // namespace convgrad::dispatch
