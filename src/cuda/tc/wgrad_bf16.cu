// SPDX-License-Identifier: Apache-2.0
#include "cuda/tc/cutlass_conv.cuh"

namespace convgrad::cuda::tc {

const CutlassOps wgrad_bf16 =
    CutlassConv<cutlass::conv::Operator::kWgrad, cutlass::bfloat16_t,
                cute::Shape<cute::_128, cute::Shape<cute::_128>, cute::Shape<cute::_64>>>::ops();

}  // namespace convgrad::cuda::tc
