// SPDX-License-Identifier: Apache-2.0
#include "core/validate.hpp"

#include <limits>
#include <string>

#include "convgrad/errors.hpp"

namespace convgrad::core {
namespace {

std::string str(std::int64_t v) { return std::to_string(v); }

std::string dims_string(const std::array<std::int64_t, 4>& d) {
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on a chain of operator+.
  std::string text = "{";
  for (std::size_t i = 0; i < d.size(); ++i) text.append(i == 0 ? "" : ", ").append(str(d[i]));
  return text.append("}");
}

class Checker {
 public:
  Checker(const ConvProblem& problem, const char* where)
      : where_(where), text_(to_string_safe(problem)) {}

  void require(bool ok, const std::string& parameter, const std::string& value,
               const std::string& rule) const {
    if (!ok) throw InvalidArgument(where_, parameter, value, rule, text_);
  }
  const std::string& text() const { return text_; }
  const char* where() const { return where_; }

 private:
  // The problem string is printed in every message; a problem too broken to print still gets
  // its message.
  static std::string to_string_safe(const ConvProblem& problem) {
    try {
      return to_string(problem);
    } catch (...) {
      return "unprintable problem";
    }
  }
  const char* where_;
  std::string text_;
};

void check_axis(const Checker& check, const char* input_name, std::int64_t input,
                const char* kernel_name, std::int64_t kernel, const char* stride_name,
                std::int32_t stride, const char* dilation_name, std::int32_t dilation,
                const char* pad_before_name, std::int32_t pad_before, const char* pad_after_name,
                std::int32_t pad_after, const char* output_name, std::int64_t output) {
  check.require(input >= 1, input_name, str(input), "must be at least 1");
  check.require(kernel >= 1, kernel_name, str(kernel), "must be at least 1");
  check.require(stride >= 1, stride_name, str(stride), "must be at least 1");
  check.require(dilation >= 1, dilation_name, str(dilation), "must be at least 1 (1 = dense)");
  // Sizes this large fail the element-count checks anyway, but only after this arithmetic, which
  // must not overflow first (it would wrap into a plausible-looking extent).
  std::int64_t extent = 0;
  check.require(!__builtin_mul_overflow(kernel - 1, std::int64_t{dilation}, &extent) &&
                    extent < std::numeric_limits<std::int64_t>::max(),
                kernel_name, str(kernel), "the dilated kernel extent overflows 64 bits");
  extent += 1;
  const std::string extent_text = " dilated kernel extent (" + str(extent) + ")";
  check.require(pad_before < extent, pad_before_name, str(pad_before),
                "must be less than the" + extent_text +
                    ": otherwise whole windows lie in the padding");
  check.require(pad_after < extent, pad_after_name, str(pad_after),
                "must be less than the" + extent_text +
                    ": otherwise whole windows lie in the padding");
  std::int64_t padded = 0;
  check.require(!__builtin_add_overflow(input, std::int64_t{pad_before} + pad_after, &padded),
                input_name, str(input), "the padded input size overflows 64 bits");
  check.require(padded >= extent, kernel_name, str(kernel),
                "the" + extent_text + " exceeds the padded input (" + str(padded) +
                    "): the output would be empty");
  const std::int64_t expected = (padded - extent) / stride + 1;
  check.require(output == expected, output_name, str(output),
                "must equal (" + std::string(input_name) +
                    " + pads - dilated kernel) / stride + 1 = " + str(expected));
}

void check_view(const Checker& check, const std::string& name, const TensorView& view,
                DataType type, const std::array<std::int64_t, 4>& dims) {
  check.require(view.data != nullptr, name, "null", "this direction needs the tensor");
  check.require(view.type == type, name + ".type", std::string(to_string(view.type)),
                "must match the problem's data type " + std::string(to_string(type)));
  check.require(view.dims == dims, name + ".dims", dims_string(view.dims),
                "must be " + dims_string(dims));
  std::int64_t last = 0;
  for (int i = 0; i < 4; ++i) {
    check.require(view.strides[i] >= 0, name + ".strides", dims_string(view.strides),
                  "strides must not be negative");
    // A wrapped-around reach would pass the extent check and let a kernel run off the buffer.
    std::int64_t reach = 0;
    check.require(!__builtin_mul_overflow(dims[i] - 1, view.strides[i], &reach) &&
                      !__builtin_add_overflow(last, reach, &last),
                  name + ".strides", dims_string(view.strides),
                  "the view's last element lies beyond 2^63 elements");
  }
  check.require(last < view.extent, name + ".extent", str(view.extent),
                "the view reaches element " + str(last) + ", past its allocation");
}

}  // namespace

std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* where,
                         const char* parameter, const std::string& problem_text) {
  std::int64_t result = 0;
  if (__builtin_mul_overflow(a, b, &result)) {
    throw InvalidArgument(where, parameter, str(a) + " * " + str(b),
                          "the element count overflows 64 bits", problem_text);
  }
  return result;
}

void validate_problem(const ConvProblem& p, const char* where) {
  const Checker check(p, where);
  check.require(p.n >= 1, "n", str(p.n), "batch size must be at least 1");
  check.require(p.c >= 1, "c", str(p.c), "input channels must be at least 1");
  check.require(p.k >= 1, "k", str(p.k), "output channels must be at least 1");
  check.require(p.groups >= 1, "groups", str(p.groups), "must be at least 1");
  check.require(p.c % p.groups == 0, "groups", str(p.groups),
                "must divide the input channels c = " + str(p.c));
  check.require(p.k % p.groups == 0, "groups", str(p.groups),
                "must divide the output channels k = " + str(p.k));
  check_axis(check, "h", p.h, "r", p.r, "stride_h", p.stride_h, "dilation_h", p.dilation_h,
             "pad_top", p.pad_top, "pad_bottom", p.pad_bottom, "p", p.p);
  check_axis(check, "w", p.w, "s", p.s, "stride_w", p.stride_w, "dilation_w", p.dilation_w,
             "pad_left", p.pad_left, "pad_right", p.pad_right, "q", p.q);
  // Every index a kernel computes must fit int64: the three tensors' element counts and the
  // largest product of a reduction.
  const std::string& text = check.text();
  checked_mul(checked_mul(checked_mul(p.n, p.h, where, "n*h*w*c", text), p.w, where, "n*h*w*c",
                          text),
              p.c, where, "n*h*w*c", text);
  checked_mul(checked_mul(checked_mul(p.n, p.p, where, "n*p*q*k", text), p.q, where, "n*p*q*k",
                          text),
              p.k, where, "n*p*q*k", text);
  checked_mul(checked_mul(checked_mul(p.k, p.r, where, "k*r*s*c/groups", text), p.s, where,
                          "k*r*s*c/groups", text),
              p.c_per_group(), where, "k*r*s*c/groups", text);
}

void validate(const ConvProblem& p, Direction direction, const Operands& o, const char* where) {
  validate_problem(p, where);
  const Checker check(p, where);
  const bool dgrad = direction == Direction::dgrad;
  const bool wgrad = direction == Direction::wgrad;
  const std::array<std::int64_t, 4> x_dims{p.n, p.h, p.w, p.c};
  const std::array<std::int64_t, 4> w_dims{p.k, p.r, p.s, p.c_per_group()};
  const std::array<std::int64_t, 4> y_dims{p.n, p.p, p.q, p.k};
  const std::array<std::int64_t, 4> b_dims{p.k, 1, 1, 1};
  check_view(check, dgrad ? "dx" : "x", o.x, p.x_type, x_dims);
  check_view(check, wgrad ? "dw" : "w", o.w, p.w_type, w_dims);
  check_view(check, direction == Direction::fprop ? "y" : "dy", o.y, p.y_type, y_dims);
  if (direction != Direction::dgrad && !o.b.empty()) {
    const char* name = wgrad ? "db" : "b";
    check.require(p.with_bias, name, "given", "the problem has with_bias = false");
    check_view(check, name, o.b, DataType::float32, b_dims);
  }
  const DeviceKind device = o.x.device;
  for (const TensorView* view : {&o.w, &o.y, &o.b}) {
    if (!view->empty()) {
      check.require(view->device == device, "device",
                    view->device == DeviceKind::cpu ? "cpu" : "cuda",
                    "all tensors of one call must live on the same device");
    }
  }
}

}  // namespace convgrad::core
