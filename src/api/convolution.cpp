// SPDX-License-Identifier: Apache-2.0
// The forward convolution: translates MPS geometry (padding policy or centre-tap offset, channel
// offsets, batches) into a ConvProblem and runs fprop on the command buffer.
#include "convgrad/convolution.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <string>

#include "api/layer_support.hpp"
#include "api/state_impl.hpp"
#include "convgrad/errors.hpp"
#include "convgrad/functional.hpp"
#include "core/validate.hpp"

namespace convgrad {
namespace {
std::string str(std::int64_t v) { return std::to_string(v); }
}  // namespace

Convolution::Convolution(const Device& device, std::shared_ptr<ConvolutionDataSource> data_source)
    : device_(device), data_source_(std::move(data_source)) {
  const char* where = "Convolution";
  weights_ = api::on_device(device_, api::load_kernel_weights(data_source_.get(), where));
  descriptor_ = data_source_->descriptor();
  if (descriptor_.kind() == ConvolutionKind::sub_pixel && descriptor_.sub_pixel_scale_factor() > 1) {
    throw Unsupported("Convolution: sub-pixel convolution (scale factor " +
                      str(descriptor_.sub_pixel_scale_factor()) + ") is not implemented");
  }
  label_ = data_source_->label();
}

std::int64_t Convolution::input_feature_channels() const noexcept {
  return descriptor_.input_feature_channels();
}
std::int64_t Convolution::output_feature_channels() const noexcept {
  return descriptor_.output_feature_channels();
}

ImageDescriptor Convolution::destination_image_descriptor(const Image& source) {
  const char* where = "Convolution::destination_image_descriptor";
  api::require_image(source, device_, "source_image", where);
  // Checked here as well as at the encode: the result's size is computed from them first.
  api::require_first_image(offset_.z, source, where);
  if (destination_channel_offset_ < 0) {
    throw InvalidArgument(where, "destination_feature_channel_offset",
                          str(destination_channel_offset_), "must not be negative");
  }
  const ConvolutionGeometry g = padding_.resolve(
      source.height(), source.width(), descriptor_.dilated_kernel_height(),
      descriptor_.dilated_kernel_width(), descriptor_.stride_in_pixels_y(),
      descriptor_.stride_in_pixels_x());
  offset_.x = g.offset_x;
  offset_.y = g.offset_y;
  ImageDescriptor d;
  d.width = g.output_width;
  d.height = g.output_height;
  d.feature_channels = destination_channel_offset_ + descriptor_.output_feature_channels();
  d.number_of_images = source.number_of_images() - offset_.z;
  d.data_type = source.data_type();
  return d;
}

ConvolutionGeometry Convolution::geometry_for(const Image& source, const Image& destination,
                                              const char* where) const {
  // MPS places the centre tap of the first window at `offset`; the window's top-left corner is
  // offset - (dilated kernel >> 1), so the top and left pads are the negation of that corner.
  ConvolutionGeometry g;
  g.offset_x = offset_.x;
  g.offset_y = offset_.y;
  g.output_height = destination.height();
  g.output_width = destination.width();
  const std::int64_t top = (descriptor_.dilated_kernel_height() >> 1) - offset_.y;
  const std::int64_t left = (descriptor_.dilated_kernel_width() >> 1) - offset_.x;
  if (top >= descriptor_.dilated_kernel_height() || top <= -source.height()) {
    throw InvalidArgument(where, "offset.y", str(offset_.y),
                          "places the first window outside the source (implied top pad " +
                              str(top) + ")");
  }
  if (left >= descriptor_.dilated_kernel_width() || left <= -source.width()) {
    throw InvalidArgument(where, "offset.x", str(offset_.x),
                          "places the first window outside the source (implied left pad " +
                              str(left) + ")");
  }
  g.pads.top = static_cast<std::int32_t>(top);
  g.pads.left = static_cast<std::int32_t>(left);
  const ConvProblem p = api::layer_problem(descriptor_, 1, source.height(), source.width(),
                                           g.output_height, g.output_width, top, left,
                                           DataType::float32, DataType::float32, false, where);
  g.pads.bottom = p.pad_bottom;
  g.pads.right = p.pad_right;
  return g;
}

void Convolution::encode_into(CommandBuffer& command_buffer, const Image& source,
                              const Image& destination, const ConvolutionGeometry& g,
                              ConvolutionGradientState* state, const char* where) {
  std::function<void()> work = prepare_into(source, destination, g, where);
  // The state is an output too: it is replaced only once the work is enqueued (enqueue throws
  // on a committed buffer).
  ConvolutionGradientState fresh;
  if (state != nullptr) fresh = result_state(source, destination);
  command_buffer.enqueue(std::move(work));
  if (state != nullptr) *state = std::move(fresh);
}

std::function<void()> Convolution::prepare_into(const Image& source, const Image& destination,
                                                const ConvolutionGeometry& g,
                                                const char* where) const {
  api::require_image(source, device_, "source_image", where);
  api::require_image(destination, device_, "destination_image", where);
  const std::int64_t n = destination.number_of_images();
  if (offset_.z < 0 || offset_.z + n > source.number_of_images()) {
    throw InvalidArgument(where, "offset.z", str(offset_.z),
                          "the source holds " + str(source.number_of_images()) +
                              " images; the destination needs " + str(n) + " from offset.z");
  }
  const Image x = api::channel_window(
      source.images(offset_.z, n), source_channel_offset_, std::numeric_limits<std::int64_t>::max(),
      descriptor_.input_feature_channels(), "source_image", "source", where);
  const std::int64_t k = descriptor_.output_feature_channels();
  if (destination_channel_offset_ < 0) {
    throw InvalidArgument(where, "destination_feature_channel_offset",
                          str(destination_channel_offset_), "must not be negative");
  }
  if (destination_channel_offset_ > destination.feature_channels() - k) {  // no overflowing sum
    throw InvalidArgument(where, "destination_image.feature_channels",
                          str(destination.feature_channels()),
                          "must hold destination_feature_channel_offset (" +
                              str(destination_channel_offset_) + ") + output channels (" + str(k) +
                              ")");
  }
  const Image y = destination_channel_offset_ == 0 && k == destination.feature_channels()
                      ? destination
                      : destination.channels(destination_channel_offset_, k);
  const SharedKernelWeights weights = weights_;
  const TensorView w = api::weight_view(*weights, descriptor_);
  const TensorView b = api::bias_view_of(*weights);
  const bool with_bias = !b.empty();
  const ConvProblem problem =
      api::layer_problem(descriptor_, n, source.height(), source.width(), g.output_height,
                         g.output_width, g.pads.top, g.pads.left, x.data_type(), y.data_type(),
                         with_bias, where);
  validate(problem, Direction::fprop, x.view(), w, b, y.view(), where);
  RunOptions options;
  options.backend = device_.backend();
  return [problem, x, y, w, b, weights, options] {
    fprop(problem, x.view(), w, b, y.view(), options);
  };
}

Image Convolution::encode_returning(CommandBuffer& command_buffer, const Image& source,
                                    ConvolutionGradientState* state) {
  const char* where = "Convolution::encode";
  Image destination(device_, destination_image_descriptor(source));
  encode_into(command_buffer, source, destination, geometry_for(source, destination, where), state,
              where);
  return destination;
}

void Convolution::encode_given(CommandBuffer& command_buffer, const Image& source,
                               const Image& destination, ConvolutionGradientState* state) {
  const char* where = "Convolution::encode";
  api::require_image(source, device_, "source_image", where);
  api::require_image(destination, device_, "destination_image", where);
  encode_into(command_buffer, source, destination, geometry_for(source, destination, where), state,
              where);
}

Image Convolution::encode(CommandBuffer& command_buffer, const Image& source) {
  return encode_returning(command_buffer, source, nullptr);
}

Image Convolution::encode(CommandBuffer& command_buffer, const Image& source,
                          ConvolutionGradientState& destination_state) {
  return encode_returning(command_buffer, source, &destination_state);
}

void Convolution::encode(CommandBuffer& command_buffer, const Image& source,
                         const Image& destination) {
  encode_given(command_buffer, source, destination, nullptr);
}

void Convolution::encode(CommandBuffer& command_buffer, const Image& source,
                         const Image& destination, ConvolutionGradientState& destination_state) {
  encode_given(command_buffer, source, destination, &destination_state);
}

ImageBatch Convolution::encode_batch(CommandBuffer& command_buffer, const ImageBatch& sources,
                                     ConvolutionGradientState& destination_state) {
  const char* where = "Convolution::encode_batch";
  if (sources.empty()) throw InvalidArgument(where, "sources.size()", "0", "must not be empty");
  for (std::size_t i = 0; i < sources.size(); ++i) {
    api::require_image(sources[i], device_, ("sources[" + std::to_string(i) + "]").c_str(), where);
    if (sources[i].height() != sources[0].height() || sources[i].width() != sources[0].width()) {
      throw InvalidArgument(where, "sources[" + std::to_string(i) + "].size",
                            str(sources[i].height()) + "x" + str(sources[i].width()),
                            "every image of a batch shares one state and so one size (" +
                                str(sources[0].height()) + "x" + str(sources[0].width()) + ")");
    }
  }
  // Resolve every image before enqueueing any, so that a bad image leaves nothing encoded.
  ImageBatch destinations;
  std::vector<ConvolutionGeometry> geometries;
  for (const Image& source : sources) {
    destinations.emplace_back(device_, destination_image_descriptor(source));
    geometries.push_back(geometry_for(source, destinations.back(), where));
  }
  // Channel windows and the problems are checked per image too, again before any is enqueued.
  std::vector<std::function<void()>> work;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    work.push_back(prepare_into(sources[i], destinations[i], geometries[i], where));
  }
  ConvolutionGradientState state = result_state(sources[0], destinations[0]);
  for (auto& item : work) command_buffer.enqueue(std::move(item));
  destination_state = state;
  return destinations;
}

ConvolutionGradientState Convolution::result_state(const Image& source,
                                                   const Image& destination) const {
  const char* where = "Convolution::result_state";
  api::require_image(source, device_, "source_image", where);
  api::require_image(destination, device_, "destination_image", where);
  auto impl = std::make_shared<ConvolutionGradientState::Impl>();
  impl->convolution = std::make_shared<const Convolution>(*this);
  impl->descriptor = descriptor_;
  impl->geometry = geometry_for(source, destination, where);
  impl->source_height = source.height();
  impl->source_width = source.width();
  impl->allocate_gradients(device_, descriptor_);
  return ConvolutionGradientState(std::move(impl));
}

ConvolutionWeightsAndBiasesState Convolution::export_weights_and_biases(
    CommandBuffer& /*command_buffer*/) const {
  // The copy is taken now: the kernel's weights object is immutable once published.
  return api::export_state(device_, descriptor_, *weights_);
}

void Convolution::reload_weights_and_biases_from_data_source() {
  weights_ = api::on_device(
      device_, api::load_kernel_weights(data_source_.get(),
                                        "Convolution::reload_weights_and_biases_from_data_source",
                                        &descriptor_));
}

void Convolution::reload_weights_and_biases(CommandBuffer& command_buffer,
                                            const ConvolutionWeightsAndBiasesState& state) {
  const char* where = "Convolution::reload_weights_and_biases";
  weights_ =
      api::reload_from_state(device_, command_buffer, state, descriptor_, *weights_, where);
}

}  // namespace convgrad
