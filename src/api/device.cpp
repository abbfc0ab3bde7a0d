// SPDX-License-Identifier: Apache-2.0
#include "convgrad/device.hpp"

#include "convgrad/command_buffer.hpp"
#include "dispatch/registry.hpp"

namespace convgrad {

Device Device::cpu() { return Device(DeviceKind::cpu, 0, "cpu"); }

Device Device::reference() { return Device(DeviceKind::cpu, 0, "ref"); }

Device Device::cuda(int ordinal) {
  dispatch::backend("cuda");  // throws Unsupported with the reason when there is none
  return Device(DeviceKind::cuda, ordinal, "cuda");
}

std::string Device::name() const {
  std::string kind = kind_ == DeviceKind::cpu ? "cpu" : "cuda:" + std::to_string(ordinal_);
  return kind + " (backend " + backend_ + ")";
}

CommandQueue Device::new_command_queue() const { return CommandQueue(*this); }

}  // namespace convgrad
