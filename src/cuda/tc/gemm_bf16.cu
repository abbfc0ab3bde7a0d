// SPDX-License-Identifier: Apache-2.0
#include "cuda/tc/cutlass_gemm.cuh"

namespace convgrad::cuda::tc {

const GemmOps gemm_bf16_colmajor_f32 =
    CutlassGemm<cutlass::bfloat16_t, cute::Shape<cute::_128, cute::_64, cute::_64>>::ops();

}  // namespace convgrad::cuda::tc
