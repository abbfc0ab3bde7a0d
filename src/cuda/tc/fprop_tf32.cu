// SPDX-License-Identifier: Apache-2.0
#include "cuda/tc/cutlass_conv.cuh"

namespace convgrad::cuda::tc {

const CutlassOps fprop_tf32 =
    CutlassConv<cutlass::conv::Operator::kFprop, float,
                cute::Shape<cute::_128, cute::_128, cute::Shape<cute::_32>>>::ops();

}  // namespace convgrad::cuda::tc
