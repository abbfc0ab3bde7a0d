// SPDX-License-Identifier: Apache-2.0
// What the API needs from a device beyond convolutions, without seeing its types: the stream a
// command queue's work runs on, device-to-device copies, the optimizer rules and the layers. The
// CPU versions of the rules and layers are the API's own loops; these serve the CUDA device (in a
// build without CUDA they throw Unsupported, as Device::cuda() does before anything gets here).
#pragma once

#include <cstddef>

#include "convgrad/tensor_view.hpp"
#include "cuda/layers.hpp"
#include "cuda/optimizer.hpp"

namespace convgrad::dispatch {

/// The in-order stream of one command queue: a CUDA stream for a CUDA device, nothing for the
/// CPU (whose work runs on the committing task itself).
class WorkStream {
 public:
  WorkStream(DeviceKind kind, int ordinal);
  ~WorkStream();
  WorkStream(const WorkStream&) = delete;
  WorkStream& operator=(const WorkStream&) = delete;

  /// While one lives, the calling thread's kernels go to this stream asynchronously.
  class Binding {
   public:
    explicit Binding(const WorkStream& stream);
    ~Binding();
    Binding(const Binding&) = delete;
    Binding& operator=(const Binding&) = delete;

   private:
    void* handle_ = nullptr;
  };

  /// Waits for the queued work; throws DeviceError for any failure of it.
  void synchronize() const;

 private:
  DeviceKind kind_;
  int ordinal_;
  void* stream_ = nullptr;
};

/// `bytes` from `source` to `destination`, both on a device of `kind`: ordered after the
/// calling thread's earlier work, and complete on return unless a Binding is active.
void copy_within(DeviceKind kind, void* destination, const void* source, std::size_t bytes);

// The device rules and layers (src/cuda/optimizer.hpp, src/cuda/layers.hpp).
using cuda::UpdateRule;
using cuda::UpdateStep;
using cuda::optimizer_update;
using cuda::relu_forward;
using cuda::relu_backward;
using cuda::max_pool_forward;
using cuda::max_pool_backward;
using cuda::softmax_cross_entropy;
using cuda::ReverseShape;
using cuda::reverse_weights;
using cuda::add_channel_bias;
using cuda::accumulate_channel_sums;

}  // namespace convgrad::dispatch
