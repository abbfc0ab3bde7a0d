// SPDX-License-Identifier: Apache-2.0
// Padding policies: MPS's valid/same/full sizes with their alignment and remainder rules, plus
// explicit per-side pads. MPS: `MPSNNPaddingMethod`, `MPSNNDefaultPadding`.
#pragma once

#include <cstdint>
#include <string>

namespace convgrad {

/// MPS's bit field (same values): alignment (bits 0-1), remainder side (bits 2-3), size (4-5).
enum class PaddingMethod : std::uint32_t {
  align_centered = 0,
  align_top_left = 1,
  align_bottom_right = 2,
  add_remainder_to_top_left = 0,
  add_remainder_to_top_right = 4,
  add_remainder_to_bottom_left = 8,
  add_remainder_to_bottom_right = 12,
  size_valid_only = 0,
  size_same = 16,
  size_full = 32,
};

constexpr PaddingMethod operator|(PaddingMethod a, PaddingMethod b) noexcept {
  return static_cast<PaddingMethod>(static_cast<std::uint32_t>(a) | static_cast<std::uint32_t>(b));
}

/// Explicit pads, per side. Negative values skip input pixels.
struct ExplicitPadding {
  std::int32_t top = 0, left = 0, bottom = 0, right = 0;
  friend bool operator==(const ExplicitPadding&, const ExplicitPadding&) = default;
};

/// Where a forward convolution's windows fall, per axis: what a padding policy resolves to.
struct ConvolutionGeometry {
  std::int64_t output_height = 0, output_width = 0;
  ExplicitPadding pads;
  /// MPS `offset`: the source pixel under the centre tap of the first output pixel.
  std::int64_t offset_x = 0, offset_y = 0;
};

/// A padding policy. Default: MPS's `AlignCentered | AddRemainderToTopLeft | SizeSame`.
class Padding {
 public:
  Padding() = default;
  explicit Padding(PaddingMethod method) : method_(method) {}
  /// TensorFlow's SAME: `AlignCentered | AddRemainderToBottomRight | SizeSame`.
  static Padding tensorflow_same();
  static Padding valid_only();
  static Padding full();
  /// Fixed pads on each side (MPS: a custom policy).
  static Padding explicit_pads(std::int32_t top, std::int32_t left, std::int32_t bottom,
                               std::int32_t right);

  PaddingMethod method() const noexcept { return method_; }
  bool is_explicit() const noexcept { return explicit_; }
  const ExplicitPadding& pads() const noexcept { return pads_; }
  /// MPS: `MPSNNPadding.inverse`: the policy of the reverse pass (valid <-> full).
  Padding inverse() const;
  /// E.g. "same|centered|remainder_top_left" or "explicit(1,1,0,0)".
  std::string label() const;

  /// Resolves the policy for a source of `source_height x source_width` and a kernel of
  /// *dilated* extent `kernel_height x kernel_width` (MPS centres on the dilated extent).
  /// Throws InvalidArgument when the output would be empty.
  ConvolutionGeometry resolve(std::int64_t source_height, std::int64_t source_width,
                              std::int64_t kernel_height, std::int64_t kernel_width,
                              std::int64_t stride_y, std::int64_t stride_x) const;

  friend bool operator==(const Padding&, const Padding&) = default;

 private:
  PaddingMethod method_ = PaddingMethod::align_centered |
                          PaddingMethod::add_remainder_to_top_left | PaddingMethod::size_same;
  bool explicit_ = false;
  ExplicitPadding pads_;
};

}  // namespace convgrad
