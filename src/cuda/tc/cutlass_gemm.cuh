// SPDX-License-Identifier: Apache-2.0
// The one place that spells out the CUTLASS sm90 GEMM type of gemm_ops.hpp; each instantiation
// file (gemm_*.cu) names one element type.
// - KernelTmaWarpSpecializedCooperative with its persistent tile scheduler: a CTA per SM walks
//   the tiles, so a K of one or two tiles is not dominated by each CTA's prologue.
// - TMA epilogue: whole tiles stored through shared memory, no source C (beta = 0).
#pragma once

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/kernel_hardware_info.hpp>
#include <cutlass/util/packed_stride.hpp>

#include <string>

#include "convgrad/errors.hpp"
#include "cuda/check.hpp"
#include "cuda/tc/gemm_ops.hpp"

namespace convgrad::cuda::tc {

template <class Element, class TileShape>
struct CutlassGemm {
  using LayoutA = cutlass::layout::RowMajor;     // A [m][k]
  using LayoutB = cutlass::layout::ColumnMajor;  // B [n][k]: k x n, column-major
  using LayoutD = cutlass::layout::ColumnMajor;  // D [n][m]
  static constexpr int kAlignIn = 128 / cutlass::sizeof_bits<Element>::value;
  static constexpr int kAlignOut = 4;
  using Cluster = cute::Shape<cute::_1, cute::_1, cute::_1>;

  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, Cluster,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, LayoutD, kAlignOut,
      float, LayoutD, kAlignOut, cutlass::epilogue::TmaWarpSpecializedCooperative>::CollectiveOp;

  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, LayoutA, kAlignIn, Element,
      LayoutB, kAlignIn, float, TileShape, Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelTmaWarpSpecializedCooperative>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<cute::Shape<int, int, int, int>, Mainloop,
                                                      Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(const GemmShape& s, const void* a, const void* b,
                                            float* d) {
    const int m = static_cast<int>(s.m), n = static_cast<int>(s.n), k = static_cast<int>(s.k);
    auto stride_a = cutlass::make_cute_packed_stride(typename Kernel::StrideA{}, {m, k, 1});
    auto stride_b = cutlass::make_cute_packed_stride(typename Kernel::StrideB{}, {n, k, 1});
    auto stride_d = cutlass::make_cute_packed_stride(typename Kernel::StrideD{}, {m, n, 1});
    cute::get<1>(stride_d) = s.ldd;
    cutlass::KernelHardwareInfo hw;
    CONVGRAD_CUDA_CHECK(cudaGetDevice(&hw.device_id));
    hw.sm_count = cutlass::KernelHardwareInfo::query_device_multiprocessor_count(hw.device_id);
    typename Gemm::Arguments args{
        cutlass::gemm::GemmUniversalMode::kGemm,
        {m, n, k, 1},
        {static_cast<const Element*>(a), stride_a, static_cast<const Element*>(b), stride_b},
        {{}, nullptr, stride_d, d, stride_d},
        hw};
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.beta = 0.0f;
    return args;
  }

  static std::optional<std::string> can_implement(const GemmShape& s) {
    if (s.ldd < s.m || s.ldd % kAlignOut != 0) {
      return std::string("GEMM: ldd must be >= m and a multiple of 4");
    }
    // CUTLASS asks D's contiguous extent m to be a multiple of its alignment; TMA itself needs
    // only 16-byte column strides (ldd) and clips the last tile at m, so m is checked as ldd.
    GemmShape aligned = s;
    aligned.m = s.ldd;
    if (Gemm::can_implement(arguments(aligned, nullptr, nullptr, nullptr)) != cutlass::Status::kSuccess) {
      return std::string("CUTLASS sm90 GEMM can_implement refused the shape");
    }
    return std::nullopt;
  }

  static std::size_t workspace_bytes(const GemmShape& s) {
    return Gemm::get_workspace_size(arguments(s, nullptr, nullptr, nullptr));
  }

  static void run(const GemmShape& s, const void* a, const void* b, float* d, void* workspace,
                  cudaStream_t stream) {
    Gemm gemm;
    cutlass::Status status = gemm.initialize(arguments(s, a, b, d), workspace, stream);
    if (status == cutlass::Status::kSuccess) status = gemm.run(stream);
    if (status != cutlass::Status::kSuccess) {
      CONVGRAD_CUDA_CHECK(cudaGetLastError());
      throw DeviceError(std::string("CUTLASS GEMM failed: ") + cutlass::cutlassGetStatusString(status));
    }
  }

  static constexpr GemmOps ops() { return {can_implement, workspace_bytes, run}; }
};

}  // namespace convgrad::cuda::tc
