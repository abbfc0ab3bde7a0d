// SPDX-License-Identifier: Apache-2.0
#include "cuda/tc/cutlass_conv.cuh"

namespace convgrad::cuda::tc {

const CutlassOps wgrad_f16_m64 =
    CutlassConv<cutlass::conv::Operator::kWgrad, cutlass::half_t,
                cute::Shape<cute::_64, cute::Shape<cute::_128>, cute::Shape<cute::_64>>, 4>::ops();

}  // namespace convgrad::cuda::tc
