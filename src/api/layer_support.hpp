// SPDX-License-Identifier: Apache-2.0
// What the forward and gradient kernels share: reading weights from a data source or a weights
// state, turning a descriptor and a geometry into a ConvProblem, checking image windows.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "convgrad/command_buffer.hpp"
#include "convgrad/convolution_data_source.hpp"
#include "convgrad/image.hpp"
#include "convgrad/kernel_weights.hpp"
#include "convgrad/problem.hpp"
#include "convgrad/weights_and_biases_state.hpp"

namespace convgrad::api {

/// Validates the data source and its descriptor, then loads, copies (as float32) and purges.
/// `expected`, when given, is the descriptor the kernel was built with: a data source whose
/// descriptor has changed since is refused. Throws InvalidArgument.
SharedKernelWeights load_kernel_weights(ConvolutionDataSource* data_source, const char* where,
                                        const ConvolutionDescriptor* expected = nullptr);

/// `host` as a kernel on `device` holds it: unchanged on the CPU; on a CUDA device uploaded into
/// device buffers once (the vectors left empty). Throws DeviceError when memory runs out.
SharedKernelWeights on_device(const Device& device, SharedKernelWeights host);

/// A new weights state on `device` holding `weights` (MPS `exportWeightsAndBiases`), copied now;
/// device to device on a CUDA device.
ConvolutionWeightsAndBiasesState export_state(const Device& device,
                                              const ConvolutionDescriptor& descriptor,
                                              const KernelWeights& weights);

/// A new object with device copies of `current`'s buffers (a kernel on a CUDA device), taken now.
std::shared_ptr<KernelWeights> device_copy(const Device& device, const KernelWeights& current);

/// Host copies of the values wherever they live (a download for a kernel on a CUDA device).
KernelWeights host_copy(const KernelWeights& weights);

/// The weights object a kernel on `device` publishes when reloading from `state` on
/// `command_buffer`: a copy of `current` now, overwritten with the state's values when the command buffer reaches this
/// point. Work encoded before keeps the old object, work encoded after captures this one; work
/// that runs before the reload (a buffer committed earlier) sees the old values, as on Metal.
/// The state's descriptor must match.
SharedKernelWeights reload_from_state(const Device& device, CommandBuffer& command_buffer,
                                      const ConvolutionWeightsAndBiasesState& state,
                                      const ConvolutionDescriptor& descriptor,
                                      const KernelWeights& current, const char* where);

/// The problem of `descriptor` on `n` images of `h x w` giving `p x q`, with the top and left
/// pads given and the bottom and right ones implied by the output size.
ConvProblem layer_problem(const ConvolutionDescriptor& descriptor, std::int64_t n, std::int64_t h,
                          std::int64_t w, std::int64_t p, std::int64_t q, std::int64_t pad_top,
                          std::int64_t pad_left, DataType x_type, DataType y_type,
                          bool with_bias, const char* where);

/// The channels of `image` a kernel reads: [offset, offset + min(C - offset, max_count)), which
/// must be exactly `needed` channels. `name` is the image named in errors; `setting` prefixes the
/// kernel property names reported for a bad offset or max count ("primary_source" gives
/// `primary_source_feature_channel_offset`), so that the message names what the caller set.
Image channel_window(const Image& image, std::int64_t offset, std::int64_t max_count,
                     std::int64_t needed, const char* name, const char* setting, const char* where);

/// Throws InvalidArgument (`offset.z`) unless `first` indexes an image of `source`.
void require_first_image(std::int64_t first, const Image& source, const char* where);

/// Throws InvalidArgument unless `image` is valid and lives on `device`.
void require_image(const Image& image, const Device& device, const char* name,
                   const char* where);

/// Transposed convolutions run as the data gradient of the convolution they reverse: the
/// transpose's kernel, stride, dilation and groups, input and output channels swapped, no bias.
ConvolutionDescriptor reversed_descriptor(const ConvolutionDescriptor& transpose);

/// Moves OHWI weights of `transpose` to the reversed convolution's OHWI layout, rotated by 180
/// degrees with input and output swapped per group (`inverse`: back again). `add` adds into `to`
/// instead of overwriting it. Both spans hold `transpose.weight_count()` values.
void reverse_weights(std::span<const float> from, std::span<float> to,
                     const ConvolutionDescriptor& transpose, bool inverse, bool add);

/// The reversal on a CUDA device: `from` and `to` are device memory (api::reverse_weights).
void reverse_weights_on_device(const float* from, float* to,
                               const ConvolutionDescriptor& transpose, bool inverse, bool add);

/// Where the kernels read the weights: host vectors or device buffers.
TensorView weight_view(const KernelWeights& weights, const ConvolutionDescriptor& descriptor);
TensorView bias_view_of(const KernelWeights& weights);

}  // namespace convgrad::api
