// SPDX-License-Identifier: Apache-2.0
// Device memory of the CUDA backend behind a plain C++ interface, so that layers above it never
// see CUDA types. Every failure is a DeviceError (or Unsupported in a build without CUDA).
#pragma once

#include <cstddef>

namespace convgrad::cuda {

/// `bytes` of device memory on device `ordinal` (never null; zero bytes give one byte). Throws
/// DeviceError "cudaMalloc of N bytes failed: out of memory" when the device has too little.
void* allocate(std::size_t bytes, int ordinal);
/// Frees what allocate returned; null is ignored. Errors are dropped: it runs in destructors.
void release(void* pointer) noexcept;
/// Blocking copies and fills; they wait for the backend's earlier work on the calling thread.
void copy_to_device(void* device_destination, const void* host_source, std::size_t bytes);
void copy_to_host(void* host_destination, const void* device_source, std::size_t bytes);
void fill_bytes(void* device_destination, unsigned char value, std::size_t bytes);

}  // namespace convgrad::cuda
