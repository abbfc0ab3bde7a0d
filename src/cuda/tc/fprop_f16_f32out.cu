// SPDX-License-Identifier: Apache-2.0
#include "cuda/tc/cutlass_conv.cuh"

namespace convgrad::cuda::tc {

const CutlassOps fprop_f16_f32out =
    CutlassConv<cutlass::conv::Operator::kFprop, cutlass::half_t,
                cute::Shape<cute::_128, cute::_64, cute::Shape<cute::_64>>, 4, float>::ops();

}  // namespace convgrad::cuda::tc
