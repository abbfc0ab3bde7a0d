// SPDX-License-Identifier: Apache-2.0
// The exception types convgrad throws. Each derives from a standard exception so that
// `catch (const std::exception&)` and future Python bindings map them without glue.
#pragma once

#include <stdexcept>
#include <string>

namespace convgrad {

/// A caller error: a parameter breaks a rule. The message has the form
/// `<where>: <parameter> = <value>: <rule> [<problem>]`. Nothing was written when it is thrown.
class InvalidArgument : public std::invalid_argument {
 public:
  InvalidArgument(std::string where, std::string parameter, std::string value, std::string rule,
                  std::string problem = {});
  /// The name of the offending parameter, as it appears in the message.
  const std::string& parameter() const noexcept { return parameter_; }
  const std::string& value() const noexcept { return value_; }
  const std::string& rule() const noexcept { return rule_; }

 private:
  std::string parameter_;
  std::string value_;
  std::string rule_;
};

/// A valid request that this build cannot serve (a backend not compiled in, no kernel).
class Unsupported : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// A failure of the device executing the work (allocation, CUDA error). Rethrown by
/// `CommandBuffer::wait()`.
class DeviceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A malformed, truncated, oversized or wrong-version archive or data file.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace convgrad
