// SPDX-License-Identifier: Apache-2.0
// The one place where problems and operands are checked before any backend runs.
#pragma once

#include <cstdint>
#include <string>

#include "convgrad/problem.hpp"
#include "convgrad/tensor_view.hpp"
#include "core/operands.hpp"

namespace convgrad::core {

/// Shape rules of a problem alone (sizes, strides, dilation, groups, padding, output size,
/// 64-bit element counts). Throws InvalidArgument naming the field.
void validate_problem(const ConvProblem& problem, const char* where);

/// Problem rules plus the operands that `direction` reads and writes: presence, data type,
/// dimensions, strides, bounds. Slots follow Operands: in dgrad `x` holds dx and `y` dy; in
/// wgrad `w` holds dw and `b` db.
void validate(const ConvProblem& problem, Direction direction, const Operands& operands,
              const char* where);

/// a * b, or throws InvalidArgument(parameter) when the product leaves int64.
std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* where,
                         const char* parameter, const std::string& problem_text);

}  // namespace convgrad::core
