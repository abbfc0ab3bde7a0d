// SPDX-License-Identifier: Apache-2.0
#include "cuda/tc/cutlass_conv.cuh"

namespace convgrad::cuda::tc {

const CutlassOps fprop_f16 =
    CutlassConv<cutlass::conv::Operator::kFprop, cutlass::half_t,
                cute::Shape<cute::_128, cute::_128, cute::Shape<cute::_64>>>::ops();

}  // namespace convgrad::cuda::tc
