// SPDX-License-Identifier: Apache-2.0
#include "cuda/tc/cutlass_gemm.cuh"

namespace convgrad::cuda::tc {

const GemmOps gemm_f16_colmajor_f32 =
    CutlassGemm<cutlass::half_t, cute::Shape<cute::_128, cute::_64, cute::_64>>::ops();

}  // namespace convgrad::cuda::tc
