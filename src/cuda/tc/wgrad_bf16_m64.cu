// SPDX-License-Identifier: Apache-2.0
#include "cuda/tc/cutlass_conv.cuh"

namespace convgrad::cuda::tc {

const CutlassOps wgrad_bf16_m64 =
    CutlassConv<cutlass::conv::Operator::kWgrad, cutlass::bfloat16_t,
                cute::Shape<cute::_64, cute::Shape<cute::_128>, cute::Shape<cute::_64>>, 4>::ops();

}  // namespace convgrad::cuda::tc
