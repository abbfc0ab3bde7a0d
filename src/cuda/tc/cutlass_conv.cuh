// SPDX-License-Identifier: Apache-2.0
// The one place that spells out a CUTLASS sm90 convolution type. Each instantiation file
// (fprop_*.cu, wgrad_*.cu) names one element type; keeping them apart lets -j2 compile them in
// parallel and keeps each nvcc run to one kernel.
//
// Choices, and why:
// - KernelScheduleAuto: for conv, CUTLASS 4.2's sm90 builder maps every schedule to the
//   non-persistent warp-specialized kernel (one TMA producer warp group, one wgmma consumer).
// - NoSmemWarpSpecialized epilogue: its source operand C is read through plain global loads with
//   run-time strides, so fprop's bias is C with zero strides over the pixel modes (beta = 1) and
//   no epilogue-fusion tree is needed; beta = 0 skips the load when there is no bias.
// - Cluster 1x1x1: no multicast, so the kernel runs on any grid shape.
#pragma once

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/kernel_hardware_info.hpp>
#include <cutlass/conv/collective/collective_builder.hpp>
#include <cutlass/conv/convnd_problem_shape.hpp>
#include <cutlass/conv/convolution.h>
#include <cutlass/conv/device/conv_universal_adapter.hpp>
#include <cutlass/conv/dispatch_policy.hpp>
#include <cutlass/conv/kernel/conv_universal.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "convgrad/errors.hpp"
#include "cuda/check.hpp"
#include "cuda/tc/cutlass_ops.hpp"

namespace convgrad::cuda::tc {

// Stages = 0 fills shared memory with pipeline stages (one CTA per SM); a small count leaves
// room for two CTAs per SM, whose epilogue and prologue then overlap the other's main loop (the
// non-persistent kernel's only way to hide them), which pays for tiles of 64 accumulators a thread.
template <cutlass::conv::Operator Op, class Element, class TileShape, int Stages = 0>
struct CutlassConv {
  using ElementOut = cute::conditional_t<Op == cutlass::conv::Operator::kWgrad, float, Element>;
  using ElementBias = float;
  using LayoutOut = cute::conditional_t<Op == cutlass::conv::Operator::kWgrad,
                                        cutlass::layout::TensorKCSR, cutlass::layout::TensorNHWC>;
  static constexpr int kAlignIn = 128 / cutlass::sizeof_bits<Element>::value;
  static constexpr int kAlignOut = 128 / cutlass::sizeof_bits<ElementOut>::value;
  static constexpr int kAlignBias = 128 / cutlass::sizeof_bits<ElementBias>::value;

  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, cute::Shape<cute::_1, cute::_1, cute::_1>,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, ElementBias, LayoutOut,
      kAlignBias, ElementOut, LayoutOut, kAlignOut,
      cutlass::epilogue::NoSmemWarpSpecialized>::CollectiveOp;

  using Mainloop = typename cutlass::conv::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Op, Element,
      cutlass::layout::TensorNHWC, kAlignIn, Element, cutlass::layout::TensorNHWC, kAlignIn, float,
      TileShape, cute::Shape<cute::_1, cute::_1, cute::_1>,
      cute::conditional_t<Stages == 0,
                          cutlass::conv::collective::StageCountAutoCarveout<static_cast<int>(
                              sizeof(typename Epilogue::SharedStorage))>,
                          cutlass::conv::collective::StageCount<Stages>>,
      cutlass::conv::collective::KernelScheduleAuto>::CollectiveOp;

  using ProblemShape =
      cutlass::conv::ConvProblemShape<Op, Mainloop::DispatchPolicy::NumSpatialDimensions>;
  using Kernel = cutlass::conv::kernel::ConvUniversal<ProblemShape, Mainloop, Epilogue>;
  using Conv = cutlass::conv::device::ConvUniversalAdapter<Kernel>;
  using StrideC = typename Conv::ConvKernel::StrideC;
  using StrideD = typename Conv::ConvKernel::StrideD;

  static ProblemShape problem_shape(const ConvShape& s) {
    const std::int64_t c = s.c;
    const std::int64_t stride_w = s.act_stride_w != 0 ? s.act_stride_w : c;
    const std::int64_t stride_h = s.act_stride_h != 0 ? s.act_stride_h : s.w * c;
    const std::int64_t stride_n = s.act_stride_n != 0 ? s.act_stride_n : s.h * s.w * c;
    return ProblemShape(cutlass::conv::Mode::kCrossCorrelation, {s.n, s.h, s.w, s.c},
                        {stride_n, stride_h, stride_w, 1}, {s.k, s.r, s.s, s.c},
                        {static_cast<std::int64_t>(s.r) * s.s * c, s.s * c, c, 1},
                        {s.pad_top, s.pad_left}, {s.pad_bottom, s.pad_right},
                        {s.stride_h, s.stride_w}, {s.dilation_h, s.dilation_w}, 1);
  }

  // `act` is the image x; `other` is w (fprop) or dy (wgrad). CUTLASS's wgrad takes dy as A.
  static typename Conv::Arguments arguments(const ConvShape& s, const void* act, const void* other,
                                            const float* bias, void* out) {
    const ProblemShape shape = problem_shape(s);
    StrideC stride_c{};
    StrideD stride_d{};
    const void* a = act;
    const void* b = other;
    if constexpr (Op == cutlass::conv::Operator::kWgrad) {
      a = other;
      b = act;
      // dw [k][r][s][c]: modes (K, (C, S, R)).
      cute::get<0>(stride_d) = static_cast<std::int64_t>(s.r) * s.s * s.c;
      cute::get<1, 1>(stride_d) = s.c;
      cute::get<1, 2>(stride_d) = static_cast<std::int64_t>(s.s) * s.c;
      stride_c = stride_d;
    } else {
      // y [n][p][q][k]: modes ((Q, P, N), K); the bias repeats over every pixel.
      cute::for_each(cute::make_seq<cute::rank<0>(StrideD{})>{}, [&](auto i) {
        cute::get<0, i>(stride_d) = shape.stride_C[ProblemShape::RankT - 2 - i];
        cute::get<0, i>(stride_c) = 0;
      });
    }
    const float* source = bias;
    if (s.add_to_output) {
      // C is y itself: each element is read and then written by the same thread.
      if constexpr (cute::is_same_v<ElementOut, float>) {
        source = static_cast<const float*>(out);
        stride_c = stride_d;
      } else {
        throw DeviceError("CUTLASS fprop: adding into the output needs float32 output");
      }
    }
    const float beta = source != nullptr ? 1.0f : 0.0f;
    return typename Conv::Arguments{
        shape,
        {static_cast<const Element*>(a), static_cast<const Element*>(b)},
        {{1.0f, beta}, source, stride_c, static_cast<ElementOut*>(out), stride_d}};
  }

  static std::optional<std::string> can_implement(const ConvShape& s) {
    const typename Conv::Arguments args = arguments(s, nullptr, nullptr, nullptr, nullptr);
    if (Conv::can_implement(args) != cutlass::Status::kSuccess) {
      return std::string("CUTLASS sm90 ") +
             (Op == cutlass::conv::Operator::kWgrad ? "wgrad" : "fprop") +
             " can_implement refused the shape (TMA im2col corner, offset or alignment limits)";
    }
    return std::nullopt;
  }

  static void fail(cutlass::Status status) {
    CONVGRAD_CUDA_CHECK(cudaGetLastError());
    throw DeviceError(std::string("CUTLASS convolution failed: ") +
                      cutlass::cutlassGetStatusString(status));
  }

  static void fprop(const ConvShape& s, const void* x, const void* w, const float* bias, void* y,
                    cudaStream_t stream) {
    const typename Conv::Arguments args = arguments(s, x, w, bias, y);
    Conv conv;
    cutlass::Status status = conv.initialize(args, nullptr, stream);
    if (status == cutlass::Status::kSuccess) status = conv.run(stream);
    if (status != cutlass::Status::kSuccess) fail(status);
  }

  static long long tiles(const ConvShape& s) {
    constexpr long long tile_m = cute::size<0>(TileShape{}), tile_n = cute::size<1>(TileShape{});
    long long m = 0, n = 0;
    if constexpr (Op == cutlass::conv::Operator::kWgrad) {
      m = s.k;
      n = static_cast<long long>(s.r) * s.s * s.c;
    } else {
      const long long p = (s.h + s.pad_top + s.pad_bottom - (s.r - 1LL) * s.dilation_h - 1) / s.stride_h + 1;
      const long long q = (s.w + s.pad_left + s.pad_right - (s.s - 1LL) * s.dilation_w - 1) / s.stride_w + 1;
      m = s.n * p * q;
      n = s.k;
    }
    return ((m + tile_m - 1) / tile_m) * ((n + tile_n - 1) / tile_n);
  }

  struct SplitParams {
    typename Kernel::Params slice[kMaxSplits];
  };

  static void wgrad(const WgradSplit* splits, int count, cudaStream_t stream);
  static int ctas_per_sm();

  // Only the direction's own entry point is referenced, so each file instantiates one kernel.
  static constexpr CutlassOps ops() {
    if constexpr (Op == cutlass::conv::Operator::kWgrad) {
      return {can_implement, nullptr, wgrad, tiles, ctas_per_sm};
    } else {
      return {can_implement, fprop, nullptr, tiles, nullptr};
    }
  }
};

// The CUTLASS kernel body, run once per slice: for convolutions the kernel takes its tile from
// blockIdx.x and blockIdx.y only (its batch coordinate is the constant 0), so blockIdx.z is free
// to pick the slice. The parameters stay in the grid-constant parameter space, where TMA reads
// the descriptors they hold, as in CUTLASS's own device_kernel.
template <class Conv>
__global__ void __launch_bounds__(Conv::Kernel::MaxThreadsPerBlock,
                                  Conv::Kernel::MinBlocksPerMultiprocessor)
    split_kernel(const __grid_constant__ typename Conv::SplitParams params) {
  extern __shared__ char smem[];
  typename Conv::Kernel op;
  op(params.slice[blockIdx.z], smem);
}

template <cutlass::conv::Operator Op, class Element, class TileShape, int Stages>
int CutlassConv<Op, Element, TileShape, Stages>::ctas_per_sm() {
  static const int cached = [] {
    const int smem = static_cast<int>(Kernel::SharedStorageSize);
    const auto kernel = split_kernel<CutlassConv>;
    CONVGRAD_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    int count = 0;
    CONVGRAD_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &count, kernel, Kernel::MaxThreadsPerBlock, smem));
    return count < 1 ? 1 : count;
  }();
  return cached;
}

template <cutlass::conv::Operator Op, class Element, class TileShape, int Stages>
void CutlassConv<Op, Element, TileShape, Stages>::wgrad(const WgradSplit* splits, int count,
                                                cudaStream_t stream) {
  static_assert(sizeof(SplitParams) < 32000, "split parameters exceed the parameter space");
  if (count < 1 || count > kMaxSplits) throw DeviceError("CUTLASS wgrad: bad slice count");
  SplitParams params{};
  for (int i = 0; i < count; ++i) {
    const typename Conv::Arguments args =
        arguments(splits[i].shape, splits[i].x, splits[i].dy, nullptr, splits[i].dw);
    params.slice[i] = Kernel::to_underlying_arguments(args, nullptr);
  }
  const dim3 tile_grid = Kernel::get_grid_shape(params.slice[0]);
  const int smem = static_cast<int>(Kernel::SharedStorageSize);
  const auto kernel = split_kernel<CutlassConv>;
  CONVGRAD_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kernel<<<dim3(tile_grid.x, tile_grid.y, count), Kernel::MaxThreadsPerBlock, smem, stream>>>(
      params);
  CONVGRAD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace convgrad::cuda::tc
