// SPDX-License-Identifier: Apache-2.0
// Device: where images, states and work live. MPS: `MTLDevice`.
#pragma once

#include <string>

#include "convgrad/tensor_view.hpp"

namespace convgrad {

class CommandQueue;

/// A compute device and the backend that runs work on it. Cheap to copy.
class Device {
 public:
  /// The CPU with the fast `cpu` backend (the default everywhere).
  static Device cpu();
  /// The CPU with the `ref` backend: plain loops, double accumulation. For checking results.
  static Device reference();
  /// CUDA device `ordinal`; throws Unsupported when this build or machine has none.
  static Device cuda(int ordinal = 0);

  DeviceKind kind() const noexcept { return kind_; }
  int ordinal() const noexcept { return ordinal_; }
  /// Name of the backend that runs this device's work: "cpu", "ref" or "cuda".
  const std::string& backend() const noexcept { return backend_; }
  /// A human-readable name, e.g. "cpu (backend cpu)".
  std::string name() const;

  /// MPS: `MTLDevice.makeCommandQueue()`.
  CommandQueue new_command_queue() const;

  friend bool operator==(const Device&, const Device&) = default;

 private:
  Device(DeviceKind kind, int ordinal, std::string backend)
      : kind_(kind), ordinal_(ordinal), backend_(std::move(backend)) {}
  DeviceKind kind_;
  int ordinal_;
  std::string backend_;
};

}  // namespace convgrad
