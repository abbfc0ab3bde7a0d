// SPDX-License-Identifier: Apache-2.0
// Memory on a device kind, for the API layer: host memory for the CPU, the CUDA backend's
// device memory otherwise. The API reaches backends only through dispatch, so it comes here.
#pragma once

#include <cstddef>

#include "convgrad/tensor_view.hpp"

namespace convgrad::dispatch {

/// Throws DeviceError when the device has too little memory, Unsupported when the build has no
/// such device.
void* allocate(DeviceKind kind, int ordinal, std::size_t bytes);
void release(DeviceKind kind, void* pointer) noexcept;
void copy_to_device(DeviceKind kind, void* destination, const void* host_source, std::size_t bytes);
void copy_to_host(DeviceKind kind, void* host_destination, const void* source, std::size_t bytes);
void fill_bytes(DeviceKind kind, void* destination, unsigned char value, std::size_t bytes);

}  // namespace convgrad::dispatch
