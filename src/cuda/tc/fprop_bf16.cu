// SPDX-License-Identifier: Apache-2.0
#include "cuda/tc/cutlass_conv.cuh"

namespace convgrad::cuda::tc {

const CutlassOps fprop_bf16 =
    CutlassConv<cutlass::conv::Operator::kFprop, cutlass::bfloat16_t,
                cute::Shape<cute::_128, cute::_128, cute::Shape<cute::_64>>>::ops();

}  // namespace convgrad::cuda::tc
