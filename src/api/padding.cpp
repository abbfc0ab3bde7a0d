// SPDX-License-Identifier: Apache-2.0
// MPS's padding arithmetic (MPSNeuralNetworkTypes.h helper code), per axis; see
// docs/mps-semantics.md for the worked table it reproduces.
#include "convgrad/padding.hpp"

#include <string>
#include <tuple>

#include "convgrad/errors.hpp"

namespace convgrad {
namespace {

constexpr std::uint32_t kAlignMask = 3, kRemainderMask = 12, kSizeMask = 48;

struct Axis {
  std::int64_t output;
  std::int32_t before, after;
  std::int64_t offset;
};

std::string str(std::int64_t v) { return std::to_string(v); }

Axis resolve_axis(std::uint32_t method, bool remainder_before, std::int64_t source,
                  std::int64_t kernel, std::int64_t stride, const char* axis_name) {
  const std::uint32_t size = method & kSizeMask;
  const std::int64_t style = size == 0 ? -1 : size == 16 ? 0 : 1;  // valid, same, full
  const std::int64_t numerator = source + style * (kernel - 1);
  if (numerator <= 0) {
    throw InvalidArgument("Padding::resolve", axis_name, str(source),
                          "the dilated kernel (" + str(kernel) +
                              ") is larger than the source: valid-only padding leaves no output");
  }
  const std::int64_t output = (numerator + stride - 1) / stride;
  const std::int64_t extra = (output - 1) * stride + kernel - source;  // total implicit padding
  std::int64_t before = 0;
  switch (method & kAlignMask) {
    case 1: before = extra; break;   // all padding top/left
    case 2: before = 0; break;       // all padding bottom/right
    default: before = (extra + (remainder_before ? 1 : 0)) / 2; break;  // C truncation, as MPS
  }
  return {output, static_cast<std::int32_t>(before), static_cast<std::int32_t>(extra - before),
          (kernel >> 1) - before};
}

}  // namespace

Padding Padding::tensorflow_same() {
  return Padding(PaddingMethod::align_centered | PaddingMethod::add_remainder_to_bottom_right |
                 PaddingMethod::size_same);
}

Padding Padding::valid_only() { return Padding(PaddingMethod::size_valid_only); }

Padding Padding::full() {
  return Padding(PaddingMethod::align_centered | PaddingMethod::add_remainder_to_top_left |
                 PaddingMethod::size_full);
}

Padding Padding::explicit_pads(std::int32_t top, std::int32_t left, std::int32_t bottom,
                               std::int32_t right) {
  Padding padding;
  padding.explicit_ = true;
  padding.pads_ = {top, left, bottom, right};
  return padding;
}

Padding Padding::inverse() const {
  if (explicit_) return *this;
  const auto bits = static_cast<std::uint32_t>(method_);
  const std::uint32_t size = bits & kSizeMask;
  const std::uint32_t inverted = size == 0 ? 32u : size == 32 ? 0u : size;
  return Padding(static_cast<PaddingMethod>((bits & ~kSizeMask) | inverted));
}

std::string Padding::label() const {
  if (explicit_) {
    return "explicit(" + str(pads_.top) + "," + str(pads_.left) + "," + str(pads_.bottom) + "," +
           str(pads_.right) + ")";
  }
  const auto bits = static_cast<std::uint32_t>(method_);
  static const char* sizes[] = {"valid", "same", "full", "reserved"};
  static const char* aligns[] = {"centered", "top_left", "bottom_right", "reserved"};
  static const char* remainders[] = {"remainder_top_left", "remainder_top_right",
                                     "remainder_bottom_left", "remainder_bottom_right"};
  return std::string(sizes[(bits & kSizeMask) >> 4]) + "|" + aligns[bits & kAlignMask] + "|" +
         remainders[(bits & kRemainderMask) >> 2];
}

ConvolutionGeometry Padding::resolve(std::int64_t source_height, std::int64_t source_width,
                                     std::int64_t kernel_height, std::int64_t kernel_width,
                                     std::int64_t stride_y, std::int64_t stride_x) const {
  ConvolutionGeometry g;
  if (explicit_) {
    // ConvProblem's rule (every pad below the dilated kernel extent), checked here so that the
    // message names the policy's field instead of the offset or problem it turns into.
    const std::tuple<const char*, std::int32_t, std::int64_t> sides[] = {
        {"padding.top", pads_.top, kernel_height},
        {"padding.left", pads_.left, kernel_width},
        {"padding.bottom", pads_.bottom, kernel_height},
        {"padding.right", pads_.right, kernel_width}};
    for (const auto& [name, pad, kernel] : sides) {
      if (pad >= kernel) {
        throw InvalidArgument("Padding::resolve", name, str(pad),
                              "must be less than the dilated kernel extent (" + str(kernel) +
                                  "): otherwise whole windows lie in the padding",
                              label());
      }
    }
    g.pads = pads_;
    const std::int64_t ph = source_height + pads_.top + pads_.bottom - kernel_height;
    const std::int64_t pw = source_width + pads_.left + pads_.right - kernel_width;
    if (ph < 0 || pw < 0) {
      throw InvalidArgument("Padding::resolve", ph < 0 ? "height" : "width",
                            str(ph < 0 ? source_height : source_width),
                            "the dilated kernel is larger than the padded source");
    }
    g.output_height = ph / stride_y + 1;
    g.output_width = pw / stride_x + 1;
    g.offset_y = (kernel_height >> 1) - pads_.top;
    g.offset_x = (kernel_width >> 1) - pads_.left;
    return g;
  }
  const auto bits = static_cast<std::uint32_t>(method_);
  if ((bits & kAlignMask) == 3 || (bits & kSizeMask) == 48) {
    throw InvalidArgument("Padding::resolve", "method", str(bits),
                          "uses a reserved alignment or size value");
  }
  const std::uint32_t remainder = bits & kRemainderMask;
  // Top/bottom is decided by the first word of the remainder name, left/right by the second.
  const bool y_before = remainder == 0 || remainder == 4;
  const bool x_before = remainder == 0 || remainder == 8;
  const Axis y = resolve_axis(bits, y_before, source_height, kernel_height, stride_y, "height");
  const Axis x = resolve_axis(bits, x_before, source_width, kernel_width, stride_x, "width");
  g.output_height = y.output;
  g.output_width = x.output;
  g.pads = {y.before, x.before, y.after, x.after};
  g.offset_y = y.offset;
  g.offset_x = x.offset;
  return g;
}

}  // namespace convgrad
