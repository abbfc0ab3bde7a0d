// SPDX-License-Identifier: Apache-2.0
// Convolutions whose input channels the dense tensor-core kernels cannot align (c not a multiple
// of 8 for 16-bit storage, of 4 for tf32; resnet50_conv1's c = 3), as explicit GEMMs on the
// tensor cores: im2col + a 1x1 fprop for fprop, a 1x1 fprop into float32 columns + col2im for
// dgrad, im2col + the split 1x1 wgrad for wgrad; float32 storage (MathMode::tf32) takes fprop
// only.
#pragma once

#include <optional>
#include <string>

#include "core/kernel.hpp"
#include "cuda/tc/runs.hpp"

namespace convgrad::cuda::tc {

std::optional<std::string> im2col_rejects(const ConvProblem& p, Kind kind, Direction direction);
void im2col_run(Kind kind, Direction direction, const ConvProblem& p, const core::Operands& o,
                bool accumulate);

template <Kind kind, Direction direction>
std::optional<std::string> im2col_rejects_as(const ConvProblem& p) {
  return im2col_rejects(p, kind, direction);
}
template <Kind kind, Direction direction>
void im2col_run_as(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  im2col_run(kind, direction, p, o, accumulate);
}

}  // namespace convgrad::cuda::tc
