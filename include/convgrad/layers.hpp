// SPDX-License-Identifier: Apache-2.0
// The other layers a small CNN needs, forward and gradient: ReLU, 2x2 max pooling and the softmax
// cross-entropy loss. MPS: `MPSCNNNeuronReLU` / `MPSCNNNeuronGradient`, `MPSCNNPoolingMax` /
// `MPSCNNPoolingMaxGradient`, `MPSCNNLoss` with `MPSCNNLossTypeSoftMaxCrossEntropy`.
//
// The API is device-agnostic and encodes on a CommandBuffer like the convolution kernels: on the
// CPU plain loops spread over the CPU thread pool, on a CUDA device the same loops as kernels
// (src/cuda/layers.cu) on the command buffer's stream, with the same results (ReLU and pooling
// bit for bit; the loss up to the last bits of exp and log). Images are NHWC float32 (views
// included). Every encode validates first and throws InvalidArgument naming
// the parameter, its value and the rule; nothing is written then.
#pragma once

#include <cstdint>
#include <vector>

#include "convgrad/command_buffer.hpp"
#include "convgrad/device.hpp"
#include "convgrad/image.hpp"

namespace convgrad {

/// y = max(x, 0). MPS: `MPSCNNNeuronReLU` with a = 0.
class Relu {
 public:
  explicit Relu(const Device& device);
  const Device& device() const noexcept { return device_; }
  /// Returns a new image shaped like `source`.
  Image encode(CommandBuffer& command_buffer, const Image& source) const;
  /// `destination` must have the source's shape; it may be `source` itself.
  void encode(CommandBuffer& command_buffer, const Image& source, const Image& destination) const;

 private:
  Device device_;
};

/// dL/dx = dL/dy where x > 0, else 0 (the subgradient 0 at x = 0, as MPS). MPS:
/// `MPSCNNNeuronGradient`; `source` is the forward source x.
class ReluGradient {
 public:
  explicit ReluGradient(const Device& device);
  const Device& device() const noexcept { return device_; }
  Image encode(CommandBuffer& command_buffer, const Image& source_gradient,
               const Image& source) const;
  /// All three images have one shape; `destination_gradient` may be `source_gradient`.
  void encode(CommandBuffer& command_buffer, const Image& source_gradient, const Image& source,
              const Image& destination_gradient) const;

 private:
  Device device_;
};

/// 2x2 max pooling with stride 2 and no padding: an H x W source gives floor(H/2) x floor(W/2)
/// (an odd last row or column is dropped, as MPS's valid-only pooling does).
class MaxPooling {
 public:
  explicit MaxPooling(const Device& device);
  const Device& device() const noexcept { return device_; }
  /// The result's size for `source`. Throws InvalidArgument for a source smaller than 2 x 2.
  ImageDescriptor destination_image_descriptor(const Image& source) const;
  Image encode(CommandBuffer& command_buffer, const Image& source) const;
  void encode(CommandBuffer& command_buffer, const Image& source, const Image& destination) const;

 private:
  Device device_;
};

/// Routes each dL/dy to the maximum of its window and gives every other source pixel 0. The
/// maximum is found again from the forward source rather than kept in a state: the source is
/// needed anyway by the other gradients, and nothing can then go stale between the passes. Ties go
/// to the first maximum in row-major window order (top-left, top-right, bottom-left,
/// bottom-right), so the result is deterministic. MPS: `MPSCNNPoolingMaxGradient`.
class MaxPoolingGradient {
 public:
  explicit MaxPoolingGradient(const Device& device);
  const Device& device() const noexcept { return device_; }
  /// Returns dL/dx shaped like `source`.
  Image encode(CommandBuffer& command_buffer, const Image& source_gradient,
               const Image& source) const;
  /// `source_gradient` is the pooled size of `source`; `destination_gradient` is shaped like
  /// `source` and must not share storage with the other two.
  void encode(CommandBuffer& command_buffer, const Image& source_gradient, const Image& source,
              const Image& destination_gradient) const;

 private:
  Device device_;
};

/// Softmax cross-entropy over the C channels of N x 1 x 1 x C logits with integer class labels,
/// summed over the batch and weighted by 1/N (Apple's MNIST sample: sum reduction, weight
/// 1/BATCH_SIZE), i.e. the mean loss:
///
///     L = (1/N) sum_n [ logsumexp(z_n) - z_n[label_n] ]
///     dL/dz_n = (softmax(z_n) - onehot(label_n)) / N
///
/// computed with the maximum subtracted, so large logits neither overflow nor lose the loss.
/// MPS computes the loss and the gradient in one kernel (`MPSCNNLoss`), and so does this.
class SoftmaxCrossEntropyLoss {
 public:
  struct Result {
    Image loss;      ///< 1 x 1 x 1 x 1: L
    Image gradient;  ///< shaped like the logits: dL/dlogits
  };
  explicit SoftmaxCrossEntropyLoss(const Device& device);
  const Device& device() const noexcept { return device_; }
  /// `labels` has one entry per image, each in [0, C); it is copied, so the caller may reuse it.
  Result encode(CommandBuffer& command_buffer, const Image& logits,
                const std::vector<std::int32_t>& labels) const;
  /// `loss` is 1 x 1 x 1 x 1; `gradient` is shaped like `logits` and does not share its storage.
  void encode(CommandBuffer& command_buffer, const Image& logits,
              const std::vector<std::int32_t>& labels, const Image& loss,
              const Image& gradient) const;

 private:
  Device device_;
};

}  // namespace convgrad
