// SPDX-License-Identifier: Apache-2.0
#include "dispatch/memory.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "convgrad/errors.hpp"
#include "cuda/memory.hpp"

namespace convgrad::dispatch {

void* allocate(DeviceKind kind, int ordinal, std::size_t bytes) {
  if (kind == DeviceKind::cuda) return cuda::allocate(bytes, ordinal);
  // Aligned for any vector width the CPU kernels load, like the device allocator's 256 bytes.
  constexpr std::size_t kAlignment = 64;
  const std::size_t rounded =
      bytes == 0 ? kAlignment : (bytes + kAlignment - 1) & ~(kAlignment - 1);
  void* pointer = rounded < bytes ? nullptr : std::aligned_alloc(kAlignment, rounded);
  if (pointer == nullptr) {
    std::string message = "allocation of ";
    message.append(std::to_string(bytes)).append(" bytes of host memory failed");
    throw DeviceError(message);
  }
  return pointer;
}

void release(DeviceKind kind, void* pointer) noexcept {
  if (kind == DeviceKind::cuda) {
    cuda::release(pointer);
  } else {
    std::free(pointer);
  }
}

void copy_to_device(DeviceKind kind, void* destination, const void* host_source,
                    std::size_t bytes) {
  if (kind == DeviceKind::cuda) {
    cuda::copy_to_device(destination, host_source, bytes);
  } else if (bytes != 0) {
    std::memcpy(destination, host_source, bytes);
  }
}

void copy_to_host(DeviceKind kind, void* host_destination, const void* source, std::size_t bytes) {
  if (kind == DeviceKind::cuda) {
    cuda::copy_to_host(host_destination, source, bytes);
  } else if (bytes != 0) {
    std::memcpy(host_destination, source, bytes);
  }
}

void fill_bytes(DeviceKind kind, void* destination, unsigned char value, std::size_t bytes) {
  if (kind == DeviceKind::cuda) {
    cuda::fill_bytes(destination, value, bytes);
  } else if (bytes != 0) {
    std::memset(destination, value, bytes);
  }
}

}  // namespace convgrad::dispatch
