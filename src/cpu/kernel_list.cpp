// SPDX-License-Identifier: Apache-2.0
// The CPU backend's kernels, in order of preference per direction: the first whose rejects()
// returns nullopt runs. Specialised algorithms come first (1x1 as GEMM, depthwise stencils,
// few-channel kernels), then the general implicit GEMM, each for AVX-512 and then AVX2; the generic
// direct kernels close every direction so that no valid problem is ever unsupported.
#include <array>
#include <optional>
#include <string>

#include "cpu/backend.hpp"
#include "cpu/generic.hpp"
#include "cpu/isa.hpp"
#include "cpu/kernels/entry.hpp"

namespace convgrad::cpu {
namespace {

using Reason = std::optional<std::string>;
using RunFn = void (*)(const ConvProblem&, const core::Operands&, bool);

Reason accepts_all(const ConvProblem&) { return std::nullopt; }

// Why a 1x1 GEMM cannot run this problem, ignoring the ISA.
Reason not_1x1(const ConvProblem& p) {
  if (p.r != 1 || p.s != 1) return "needs a 1x1 filter";
  if (p.pad_top != 0 || p.pad_left != 0 || p.pad_bottom != 0 || p.pad_right != 0) {
    return "needs zero padding";
  }
  return std::nullopt;
}

// Why a depthwise stencil cannot run this problem, ignoring the ISA.
Reason not_depthwise(const ConvProblem& p) {
  if (p.groups != p.c || p.groups == 1) return "needs depthwise groups (groups == c > 1)";
  return std::nullopt;
}

// The output-centric dgrad pays off only while each dx pixel is a short vector; wider images go
// to the implicit GEMM, which vectorises over c.
Reason not_few_channel_dgrad(const ConvProblem& p) {
  if (p.groups != 1) return "needs groups == 1";
  if (p.c >= 8) return "needs c < 8 (wider images vectorise better over c)";
  if (p.dilation_w != 1) return "needs dilation_w == 1 (contiguous taps of a dx row)";
  return std::nullopt;
}

// The few-channel kernels (few_channel.hpp) read the S*C taps of a filter row as adjacent floats
// of x, which needs dilation_w == 1, from a zero-padded copy of x, which has no room for negative
// pads (they crop the image instead).
Reason not_few_channel(const ConvProblem& p) {
  if (p.groups != 1) return "needs groups == 1";
  if (p.c >= 8) return "needs c < 8 (wider images vectorise better over c)";
  if (p.dilation_w != 1) return "needs dilation_w == 1 (adjacent taps of a filter row)";
  if (p.pad_top < 0 || p.pad_left < 0 || p.pad_bottom < 0 || p.pad_right < 0) {
    return "needs pads >= 0 (it pads a copy of x with zeros)";
  }
  return std::nullopt;
}

// A 1x1, unpadded, stride-1 convolution over views whose pixels are evenly spaced is one GEMM over
// all N*H*W pixels: present it as one image row so that tiles run across row and image ends.
void flatten_pixels(ConvProblem& p, core::Operands& o) {
  if (p.stride_h != 1 || p.stride_w != 1) return;
  const auto flat = [](const TensorView& v) {
    return v.strides[1] == v.dims[2] * v.strides[2] && v.strides[0] == v.dims[1] * v.strides[1];
  };
  if (!flat(o.x) || !flat(o.y)) return;
  const std::int64_t pixels = p.n * p.h * p.w;
  p.n = p.h = p.p = 1;
  p.w = p.q = pixels;
  o.x.dims = {1, 1, pixels, p.c};
  o.y.dims = {1, 1, pixels, p.k};
}

template <RunFn kRun>
void run_flattened(const ConvProblem& problem, const core::Operands& operands, bool accumulate) {
  ConvProblem p = problem;
  core::Operands o = operands;
  flatten_pixels(p, o);
  kRun(p, o, accumulate);
}

// Composes an ISA check with an algorithm check.
template <Reason (*kIsa)(), Reason (*kShape)(const ConvProblem&)>
Reason both(const ConvProblem& p) {
  if (Reason isa = kIsa()) return isa;
  return kShape(p);
}

template <Reason (*kIsa)()>
Reason isa_only(const ConvProblem&) {
  return kIsa();
}

constexpr auto kAvx512 = &lacks_avx512;
constexpr auto kAvx2 = &lacks_avx2;

const std::array kernel_list{
    // fprop
    core::KernelInfo{"cpu.fprop.gemm1x1.avx512.f32", Direction::fprop, both<kAvx512, not_1x1>,
                     run_flattened<avx512::fprop_gemm>},
    core::KernelInfo{"cpu.fprop.depthwise.avx512.f32", Direction::fprop,
                     both<kAvx512, not_depthwise>, avx512::fprop_depthwise},
    core::KernelInfo{"cpu.fprop.fewc.avx512.f32", Direction::fprop,
                     both<kAvx512, not_few_channel>, avx512::fprop_few_channel},
    core::KernelInfo{"cpu.fprop.igemm.avx512.f32", Direction::fprop, isa_only<kAvx512>,
                     avx512::fprop_gemm},
    core::KernelInfo{"cpu.fprop.gemm1x1.avx2.f32", Direction::fprop, both<kAvx2, not_1x1>,
                     run_flattened<avx2::fprop_gemm>},
    core::KernelInfo{"cpu.fprop.depthwise.avx2.f32", Direction::fprop, both<kAvx2, not_depthwise>,
                     avx2::fprop_depthwise},
    core::KernelInfo{"cpu.fprop.fewc.avx2.f32", Direction::fprop, both<kAvx2, not_few_channel>,
                     avx2::fprop_few_channel},
    core::KernelInfo{"cpu.fprop.igemm.avx2.f32", Direction::fprop, isa_only<kAvx2>,
                     avx2::fprop_gemm},
    // dgrad
    core::KernelInfo{"cpu.dgrad.gemm1x1.avx512.f32", Direction::dgrad, both<kAvx512, not_1x1>,
                     run_flattened<avx512::dgrad_gemm>},
    core::KernelInfo{"cpu.dgrad.depthwise.avx512.f32", Direction::dgrad,
                     both<kAvx512, not_depthwise>, avx512::dgrad_depthwise},
    core::KernelInfo{"cpu.dgrad.col2im.avx512.f32", Direction::dgrad,
                     both<kAvx512, not_few_channel_dgrad>, avx512::dgrad_col2im},
    core::KernelInfo{"cpu.dgrad.igemm.avx512.f32", Direction::dgrad, isa_only<kAvx512>,
                     avx512::dgrad_gemm},
    core::KernelInfo{"cpu.dgrad.gemm1x1.avx2.f32", Direction::dgrad, both<kAvx2, not_1x1>,
                     run_flattened<avx2::dgrad_gemm>},
    core::KernelInfo{"cpu.dgrad.depthwise.avx2.f32", Direction::dgrad, both<kAvx2, not_depthwise>,
                     avx2::dgrad_depthwise},
    core::KernelInfo{"cpu.dgrad.col2im.avx2.f32", Direction::dgrad,
                     both<kAvx2, not_few_channel_dgrad>, avx2::dgrad_col2im},
    core::KernelInfo{"cpu.dgrad.igemm.avx2.f32", Direction::dgrad, isa_only<kAvx2>,
                     avx2::dgrad_gemm},
    // wgrad
    core::KernelInfo{"cpu.wgrad.gemm1x1.avx512.f32", Direction::wgrad, both<kAvx512, not_1x1>,
                     run_flattened<avx512::wgrad_gemm>},
    core::KernelInfo{"cpu.wgrad.depthwise.avx512.f32", Direction::wgrad,
                     both<kAvx512, not_depthwise>, avx512::wgrad_depthwise},
    core::KernelInfo{"cpu.wgrad.fewc.avx512.f32", Direction::wgrad,
                     both<kAvx512, not_few_channel>, avx512::wgrad_few_channel},
    core::KernelInfo{"cpu.wgrad.igemm.avx512.f32", Direction::wgrad, isa_only<kAvx512>,
                     avx512::wgrad_gemm},
    core::KernelInfo{"cpu.wgrad.gemm1x1.avx2.f32", Direction::wgrad, both<kAvx2, not_1x1>,
                     run_flattened<avx2::wgrad_gemm>},
    core::KernelInfo{"cpu.wgrad.depthwise.avx2.f32", Direction::wgrad, both<kAvx2, not_depthwise>,
                     avx2::wgrad_depthwise},
    core::KernelInfo{"cpu.wgrad.fewc.avx2.f32", Direction::wgrad,
                     both<kAvx2, not_few_channel>, avx2::wgrad_few_channel},
    core::KernelInfo{"cpu.wgrad.igemm.avx2.f32", Direction::wgrad, isa_only<kAvx2>,
                     avx2::wgrad_gemm},
    // Always correct, always last.
    core::KernelInfo{"cpu.fprop.direct.generic.f32", Direction::fprop, accepts_all, fprop_direct},
    core::KernelInfo{"cpu.dgrad.direct.generic.f32", Direction::dgrad, accepts_all, dgrad_direct},
    core::KernelInfo{"cpu.wgrad.direct.generic.f32", Direction::wgrad, accepts_all, wgrad_direct},
};

bool always_available(std::string*) { return true; }
std::span<const core::KernelInfo> kernels() { return kernel_list; }

}  // namespace

const core::BackendEntry& backend() {
  static const core::BackendEntry entry{"cpu", DeviceKind::cpu, always_available, kernels};
  return entry;
}

}  // namespace convgrad::cpu
