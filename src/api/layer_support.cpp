// SPDX-License-Identifier: Apache-2.0
#include "api/layer_support.hpp"

#include <algorithm>
#include <string>

#include "convgrad/errors.hpp"
#include "dispatch/device_work.hpp"

namespace convgrad::api {
namespace {
std::string str(std::int64_t v) { return std::to_string(v); }

// Balances load() with purge() even when copying throws.
class LoadGuard {
 public:
  explicit LoadGuard(ConvolutionDataSource& source) : source_(source) {}
  ~LoadGuard() { source_.purge(); }
  LoadGuard(const LoadGuard&) = delete;
  LoadGuard& operator=(const LoadGuard&) = delete;

 private:
  ConvolutionDataSource& source_;
};
}  // namespace

SharedKernelWeights load_kernel_weights(ConvolutionDataSource* source, const char* where,
                                        const ConvolutionDescriptor* expected) {
  if (source == nullptr) {
    throw InvalidArgument(where, "data_source", "null", "a data source is required");
  }
  const ConvolutionDescriptor& descriptor = source->descriptor();
  descriptor.validate(where);
  if (expected != nullptr && !(descriptor == *expected)) {
    throw InvalidArgument(where, "data_source.descriptor", descriptor.to_string(),
                          "must still be the kernel's descriptor " + expected->to_string());
  }
  if (!source->load()) {
    throw InvalidArgument(where, "data_source.load()", "false",
                          "the data source failed to load its weights", descriptor.to_string());
  }
  const LoadGuard guard(*source);
  const void* weights = source->weights();
  if (weights == nullptr) {
    throw InvalidArgument(where, "data_source.weights()", "null",
                          "the data source returned no weights after load()",
                          descriptor.to_string());
  }
  auto result = std::make_shared<KernelWeights>();
  const std::int64_t count = descriptor.weight_count();
  result->weights.resize(static_cast<std::size_t>(count));
  const DataType type = source->data_type();
  for (std::int64_t i = 0; i < count; ++i) {
    result->weights[static_cast<std::size_t>(i)] = load_as_float(weights, type, i);
  }
  if (descriptor.bias_enabled()) {
    result->biases.assign(static_cast<std::size_t>(descriptor.output_feature_channels()), 0.0f);
    // MPS: a null bias means no bias; with the descriptor's bias on, that is a zero bias.
    if (const float* bias = source->bias_terms()) {
      result->biases.assign(bias, bias + descriptor.output_feature_channels());
    }
  }
  return result;
}

SharedKernelWeights on_device(const Device& device, SharedKernelWeights host) {
  if (device.kind() == DeviceKind::cpu) return host;
  auto placed = std::make_shared<KernelWeights>();
  placed->device_weights = DeviceBuffer(device, host->weights.size() * sizeof(float));
  placed->device_weights.copy_from_host(host->weights.data(), host->weights.size() * sizeof(float));
  if (!host->biases.empty()) {
    placed->device_biases = DeviceBuffer(device, host->biases.size() * sizeof(float));
    placed->device_biases.copy_from_host(host->biases.data(), host->biases.size() * sizeof(float));
  }
  return placed;
}

ConvolutionWeightsAndBiasesState export_state(const Device& device,
                                              const ConvolutionDescriptor& descriptor,
                                              const KernelWeights& weights) {
  if (!weights.on_device()) {
    return ConvolutionWeightsAndBiasesState(device, descriptor, weights.weights, weights.biases);
  }
  ConvolutionWeightsAndBiasesState state(device, descriptor);
  dispatch::copy_within(DeviceKind::cuda, state.weights_view().data, weights.device_weights.data(),
                        weights.device_weights.size());
  if (!weights.device_biases.empty()) {
    dispatch::copy_within(DeviceKind::cuda, state.biases_view().data,
                          weights.device_biases.data(), weights.device_biases.size());
  }
  return state;
}

KernelWeights host_copy(const KernelWeights& weights) {
  KernelWeights copy;
  if (!weights.on_device()) {
    copy.weights = weights.weights;
    copy.biases = weights.biases;
    return copy;
  }
  copy.weights.resize(weights.device_weights.size() / sizeof(float));
  weights.device_weights.copy_to_host(copy.weights.data(), weights.device_weights.size());
  copy.biases.resize(weights.device_biases.size() / sizeof(float));
  weights.device_biases.copy_to_host(copy.biases.data(), weights.device_biases.size());
  return copy;
}

std::shared_ptr<KernelWeights> device_copy(const Device& device, const KernelWeights& current) {
  auto fresh = std::make_shared<KernelWeights>();
  for (auto [from, to] : {std::pair{&current.device_weights, &fresh->device_weights},
                          std::pair{&current.device_biases, &fresh->device_biases}}) {
    if (from->empty()) continue;
    *to = DeviceBuffer(device, from->size());
    dispatch::copy_within(DeviceKind::cuda, to->data(), from->data(), from->size());
  }
  return fresh;
}

namespace {

// Copies `values` of a state (wherever they live) into `to`, a buffer on a CUDA device.
using Reader = std::vector<float> (ConvolutionWeightsAndBiasesState::*)() const;
void state_to_device(const TensorView& values, Reader read,
                     const ConvolutionWeightsAndBiasesState& state, DeviceBuffer& to) {
  if (to.empty()) return;
  if (values.device == DeviceKind::cuda) {
    dispatch::copy_within(DeviceKind::cuda, to.data(), values.data, to.size());
  } else {
    const std::vector<float> host = (state.*read)();
    to.copy_from_host(host.data(), to.size());
  }
}

}  // namespace

SharedKernelWeights reload_from_state(const Device& device, CommandBuffer& command_buffer,
                                      const ConvolutionWeightsAndBiasesState& state,
                                      const ConvolutionDescriptor& descriptor,
                                      const KernelWeights& current, const char* where) {
  if (!(state.descriptor() == descriptor)) {
    throw InvalidArgument(where, "state.descriptor", state.descriptor().to_string(),
                          "must equal the kernel's descriptor " + descriptor.to_string());
  }
  if (current.on_device()) {
    // Starts as the current values: until the reload runs, it must not hand out zeros.
    std::shared_ptr<KernelWeights> fresh = device_copy(device, current);
    command_buffer.enqueue([fresh, state] {
      state_to_device(state.weights_view(), &ConvolutionWeightsAndBiasesState::read_weights, state,
                      fresh->device_weights);
      state_to_device(state.biases_view(), &ConvolutionWeightsAndBiasesState::read_biases, state,
                      fresh->device_biases);
    });
    return fresh;
  }
  // Starts as the current values: until the reload runs, it must not hand out zeros.
  auto fresh = std::make_shared<KernelWeights>();
  fresh->weights = current.weights;
  fresh->biases = current.biases;
  fresh->weights.resize(state.weight_count());
  fresh->biases.resize(state.bias_count());
  command_buffer.enqueue([fresh, state] {
    if (state.device().kind() == DeviceKind::cpu) {
      std::copy(state.weights().begin(), state.weights().end(), fresh->weights.begin());
      std::copy(state.biases().begin(), state.biases().end(), fresh->biases.begin());
    } else {
      fresh->weights = state.read_weights();
      fresh->biases = state.read_biases();
    }
  });
  return fresh;
}

ConvProblem layer_problem(const ConvolutionDescriptor& d, std::int64_t n, std::int64_t h,
                          std::int64_t w, std::int64_t p, std::int64_t q, std::int64_t pad_top,
                          std::int64_t pad_left, DataType x_type, DataType y_type,
                          bool with_bias, const char* where) {
  ConvProblem problem;
  problem.n = n;
  problem.h = h;
  problem.w = w;
  problem.c = d.input_feature_channels();
  problem.k = d.output_feature_channels();
  problem.r = d.kernel_height();
  problem.s = d.kernel_width();
  problem.p = p;
  problem.q = q;
  problem.stride_h = static_cast<std::int32_t>(d.stride_in_pixels_y());
  problem.stride_w = static_cast<std::int32_t>(d.stride_in_pixels_x());
  problem.dilation_h = static_cast<std::int32_t>(d.dilation_rate_y());
  problem.dilation_w = static_cast<std::int32_t>(d.dilation_rate_x());
  problem.groups = static_cast<std::int32_t>(d.groups());
  problem.x_type = x_type;
  problem.y_type = y_type;
  problem.w_type = DataType::float32;
  problem.with_bias = with_bias;
  // The bottom and right pads follow from the output size (as in benchdnn): the smallest pads
  // that give p x q outputs. They may be negative: rows past the last window are never read.
  const std::int64_t bottom = (p - 1) * problem.stride_h + problem.dilated_r() - h - pad_top;
  const std::int64_t right = (q - 1) * problem.stride_w + problem.dilated_s() - w - pad_left;
  constexpr std::int64_t kLimit = std::int64_t{1} << 30;
  for (const auto& [name, value] : {std::pair{"pad_top", pad_top}, std::pair{"pad_left", pad_left},
                                    std::pair{"pad_bottom", bottom}, std::pair{"pad_right", right}}) {
    if (value <= -kLimit || value >= kLimit) {
      throw InvalidArgument(where, name, str(value), "padding must lie within +-2^30");
    }
  }
  problem.pad_top = static_cast<std::int32_t>(pad_top);
  problem.pad_left = static_cast<std::int32_t>(pad_left);
  problem.pad_bottom = static_cast<std::int32_t>(bottom);
  problem.pad_right = static_cast<std::int32_t>(right);
  return problem;
}

Image channel_window(const Image& image, std::int64_t offset, std::int64_t max_count,
                     std::int64_t needed, const char* name, const char* setting,
                     const char* where) {
  const std::int64_t channels = image.feature_channels();
  if (offset < 0 || offset >= channels) {
    throw InvalidArgument(
        where, std::string(setting) + "_feature_channel_offset", str(offset),
        "must be in [0, " + str(channels) + "): " + name + " has " + str(channels) + " channels");
  }
  if (max_count < 1) {
    throw InvalidArgument(where, std::string(setting) + "_feature_channel_max_count",
                          str(max_count), "must be at least 1");
  }
  const std::int64_t count = std::min(channels - offset, max_count);
  if (count != needed) {
    throw InvalidArgument(where, std::string(name) + ".feature_channels", str(channels),
                          "the kernel reads " + str(needed) + " channels but the window [" +
                              str(offset) + ", " + str(offset + count) + ") holds " + str(count) +
                              " (take a window with Image::channels() or the channel offset and "
                              "max count)");
  }
  return offset == 0 && count == channels ? image : image.channels(offset, count);
}

void require_first_image(std::int64_t first, const Image& source, const char* where) {
  if (first < 0 || first >= source.number_of_images()) {
    throw InvalidArgument(where, "offset.z", str(first),
                          "must be in [0, " + str(source.number_of_images()) + ")");
  }
}

void require_image(const Image& image, const Device& device, const char* name, const char* where) {
  if (!image.valid()) throw InvalidArgument(where, name, "empty", "an image is required");
  if (!(image.device() == device) && image.device().kind() != device.kind()) {
    throw InvalidArgument(where, std::string(name) + ".device", image.device().name(),
                          "must be the kernel's device " + device.name());
  }
}

ConvolutionDescriptor reversed_descriptor(const ConvolutionDescriptor& t) {
  ConvolutionDescriptor d(t.kernel_width(), t.kernel_height(), t.output_feature_channels(),
                          t.input_feature_channels());
  d.set_stride_in_pixels_x(t.stride_in_pixels_x());
  d.set_stride_in_pixels_y(t.stride_in_pixels_y());
  d.set_dilation_rate_x(t.dilation_rate_x());
  d.set_dilation_rate_y(t.dilation_rate_y());
  d.set_groups(t.groups());
  d.set_bias_enabled(false);
  return d;
}

void reverse_weights(std::span<const float> from, std::span<float> to,
                     const ConvolutionDescriptor& t, bool inverse, bool add) {
  // Transpose W[o][h][w][c] (o in group g, c < I/G) is reversed
  // Wc[g*I/G + c][R-1-h][S-1-w][o - g*O/G].
  const std::int64_t out = t.output_feature_channels(), groups = t.groups();
  const std::int64_t in_g = t.input_feature_channels() / groups, out_g = out / groups;
  const std::int64_t r = t.kernel_height(), s = t.kernel_width();
  for (std::int64_t o = 0; o < out; ++o) {
    const std::int64_t g = o / out_g;
    for (std::int64_t h = 0; h < r; ++h) {
      for (std::int64_t w = 0; w < s; ++w) {
        for (std::int64_t c = 0; c < in_g; ++c) {
          const auto mine = static_cast<std::size_t>(((o * r + h) * s + w) * in_g + c);
          const auto theirs = static_cast<std::size_t>(
              (((g * in_g + c) * r + (r - 1 - h)) * s + (s - 1 - w)) * out_g + (o - g * out_g));
          const std::size_t src = inverse ? theirs : mine, dst = inverse ? mine : theirs;
          to[dst] = add ? to[dst] + from[src] : from[src];
        }
      }
    }
  }
}

void reverse_weights_on_device(const float* from, float* to, const ConvolutionDescriptor& t,
                               bool inverse, bool add) {
  const std::int64_t groups = t.groups();
  dispatch::reverse_weights(from, to,
                            {t.output_feature_channels(), groups,
                             t.input_feature_channels() / groups,
                             t.output_feature_channels() / groups, t.kernel_height(),
                             t.kernel_width()},
                            inverse, add);
}

TensorView weight_view(const KernelWeights& weights, const ConvolutionDescriptor& d) {
  if (weights.on_device()) {
    return dense_view(weights.device_weights.data(), DataType::float32,
                      d.output_feature_channels(), d.kernel_height(), d.kernel_width(),
                      d.input_feature_channels() / d.groups(), DeviceKind::cuda);
  }
  return dense_view(const_cast<float*>(weights.weights.data()), DataType::float32,
                    d.output_feature_channels(), d.kernel_height(), d.kernel_width(),
                    d.input_feature_channels() / d.groups());
}

TensorView bias_view_of(const KernelWeights& weights) {
  if (weights.on_device()) {
    if (weights.device_biases.empty()) return {};
    return bias_view(static_cast<float*>(weights.device_biases.data()),
                     static_cast<std::int64_t>(weights.device_biases.size() / sizeof(float)),
                     DeviceKind::cuda);
  }
  if (weights.biases.empty()) return {};
  return bias_view(const_cast<float*>(weights.biases.data()),
                   static_cast<std::int64_t>(weights.biases.size()));
}

}  // namespace convgrad::api
