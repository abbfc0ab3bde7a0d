// SPDX-License-Identifier: Apache-2.0
// The parts every gradient kernel shares: checking the two sources and the destination against
// the state, choosing batch and channel windows, and deriving the automatic offsets.
#include "convgrad/gradient_kernel.hpp"

#include <string>

#include "api/layer_support.hpp"
#include "convgrad/errors.hpp"

namespace convgrad {
namespace {

std::string str(std::int64_t v) { return std::to_string(v); }

void require_size(const Image& image, std::int64_t height, std::int64_t width, const char* name,
                  const char* what, const char* where) {
  if (image.height() != height || image.width() != width) {
    throw InvalidArgument(where, std::string(name) + ".size",
                          str(image.height()) + "x" + str(image.width()),
                          std::string("must be ") + what + " recorded in the gradient state (" +
                              str(height) + "x" + str(width) + ")");
  }
}

}  // namespace

void GradientKernel::set_primary_offset(const Offset& offset) {
  if (offset.x != 0 || offset.y != 0) {
    throw InvalidArgument("GradientKernel::set_primary_offset", "primary_offset",
                          str(offset.x) + "," + str(offset.y),
                          "x and y must be 0: the incoming gradient must be the whole forward "
                          "result (slice it first)");
  }
  if (offset.z < 0) {
    throw InvalidArgument("GradientKernel::set_primary_offset", "primary_offset.z", str(offset.z),
                          "must not be negative");
  }
  primary_offset_ = offset;
  primary_set_ = true;
}

void GradientKernel::set_secondary_offset(const Offset& offset) {
  if (offset.z < 0) {
    throw InvalidArgument("GradientKernel::set_secondary_offset", "secondary_offset.z",
                          str(offset.z), "must not be negative");
  }
  secondary_offset_ = offset;
  secondary_set_ = true;
}

void GradientKernel::set_kernel_offset_x(std::int64_t value) {
  kernel_offset_x_ = value;
  kernel_x_set_ = true;
}

void GradientKernel::set_kernel_offset_y(std::int64_t value) {
  kernel_offset_y_ = value;
  kernel_y_set_ = true;
}

void GradientKernel::reset_offsets() noexcept {
  primary_set_ = secondary_set_ = kernel_x_set_ = kernel_y_set_ = false;
}

GradientKernel::Resolved GradientKernel::resolve(const Image& dy, const Image& x,
                                                 const ConvolutionGradientState& state,
                                                 const Image* destination, const char* where) {
  check_state(state, where);
  api::require_image(dy, device_, "source_gradient", where);
  api::require_image(x, device_, "source_image", where);
  // Before anything reads the destination's sizes: an empty handle has none.
  if (destination != nullptr) {
    api::require_image(*destination, device_, "destination_gradient", where);
  }
  if (destination_offset_ < 0) {
    throw InvalidArgument(where, "destination_feature_channel_offset", str(destination_offset_),
                          "must not be negative");
  }
  require_size(dy, state.destination_height(), state.destination_width(), "source_gradient",
               "the forward result's size", where);
  require_size(x, state.source_height(), state.source_width(), "source_image",
               "the forward source's size", where);

  Resolved r;
  // Automatic offsets follow MPS's rules for a forward offset o and dilated kernel kd:
  // kernelOffset = -o + (kd even), secondaryOffset = o - (kd >> 1), primaryOffset = 0.
  const ConvolutionDescriptor& d = state.descriptor();
  const ConvolutionGeometry& g = state.geometry();
  r.primary = primary_set_ ? primary_offset_ : Offset{0, 0, primary_offset_.z};
  r.secondary = secondary_set_ ? secondary_offset_
                               : Offset{g.offset_x - (d.dilated_kernel_width() >> 1),
                                        g.offset_y - (d.dilated_kernel_height() >> 1),
                                        secondary_offset_.z};
  r.kernel_offset_x = kernel_x_set_ ? kernel_offset_x_
                                    : -g.offset_x + ((d.dilated_kernel_width() & 1) == 0 ? 1 : 0);
  r.kernel_offset_y = kernel_y_set_ ? kernel_offset_y_
                                    : -g.offset_y + ((d.dilated_kernel_height() & 1) == 0 ? 1 : 0);

  const std::int64_t n = destination != nullptr ? destination->number_of_images()
                                                : dy.number_of_images() - r.primary.z;
  if (n < 1 || r.primary.z + n > dy.number_of_images()) {
    throw InvalidArgument(where, "primary_offset.z", str(r.primary.z),
                          "the source gradient holds " + str(dy.number_of_images()) +
                              " images; " + str(n) + " are needed from this offset");
  }
  if (r.secondary.z < 0 || r.secondary.z + n > x.number_of_images()) {
    throw InvalidArgument(where, "secondary_offset.z", str(r.secondary.z),
                          "the source image holds " + str(x.number_of_images()) + " images; " +
                              str(n) + " are needed from this offset");
  }
  r.source_gradient =
      api::channel_window(dy.images(r.primary.z, n), primary_offset_c_, primary_max_c_,
                          expected_gradient_channels(), "source_gradient", "primary_source", where);
  r.source_image =
      api::channel_window(x.images(r.secondary.z, n), secondary_offset_c_, secondary_max_c_,
                          expected_image_channels(), "source_image", "secondary_source", where);
  if (destination != nullptr) {
    const Image& dx = *destination;
    require_size(dx, state.source_height(), state.source_width(), "destination_gradient",
                 "the forward source's size", where);
    if (dx.data_type() != x.data_type()) {
      throw InvalidArgument(where, "destination_gradient.data_type",
                            std::string(to_string(dx.data_type())),
                            "must match the source image's data type (" +
                                std::string(to_string(x.data_type())) + ")");
    }
    const std::int64_t c = expected_image_channels();
    if (destination_offset_ > dx.feature_channels() - c) {  // the sum could overflow
      throw InvalidArgument(where, "destination_gradient.feature_channels",
                            str(dx.feature_channels()),
                            "must hold destination_feature_channel_offset (" +
                                str(destination_offset_) + ") + source image channels (" +
                                str(c) + ")");
    }
    r.destination = destination_offset_ == 0 && c == dx.feature_channels()
                        ? dx
                        : dx.channels(destination_offset_, c);
    if (dx.shares_storage_with(dy) || dx.shares_storage_with(x)) {
      throw InvalidArgument(where, "destination_gradient", "aliases a source",
                            "the destination must not share storage with either source");
    }
  }
  return r;
}

void GradientKernel::remember(const Resolved& r) noexcept {
  primary_offset_ = r.primary;
  secondary_offset_ = r.secondary;
  kernel_offset_x_ = r.kernel_offset_x;
  kernel_offset_y_ = r.kernel_offset_y;
}

ImageDescriptor GradientKernel::destination_image_descriptor(
    const Image& source_gradient, const Image& source_image,
    const ConvolutionGradientState& gradient_state) {
  const char* where = "GradientKernel::destination_image_descriptor";
  const Resolved r = resolve(source_gradient, source_image, gradient_state, nullptr, where);
  remember(r);
  ImageDescriptor d;
  d.width = gradient_state.source_width();
  d.height = gradient_state.source_height();
  d.feature_channels = destination_offset_ + expected_image_channels();
  d.number_of_images = r.source_gradient.number_of_images();
  d.data_type = source_image.data_type();
  return d;
}

Image GradientKernel::encode(CommandBuffer& command_buffer, const Image& source_gradient,
                             const Image& source_image,
                             const ConvolutionGradientState& gradient_state) {
  const ImageDescriptor d = destination_image_descriptor(source_gradient, source_image,
                                                         gradient_state);
  Image destination(device_, d);
  encode(command_buffer, source_gradient, source_image, gradient_state, destination);
  return destination;
}

void GradientKernel::encode(CommandBuffer& command_buffer, const Image& source_gradient,
                            const Image& source_image,
                            const ConvolutionGradientState& gradient_state,
                            const Image& destination_gradient) {
  const Resolved r = resolve(source_gradient, source_image, gradient_state, &destination_gradient,
                             "GradientKernel::encode");
  command_buffer.enqueue(prepare_work(r, gradient_state, "GradientKernel::encode"));
  remember(r);
}

ImageBatch GradientKernel::encode_batch(CommandBuffer& command_buffer,
                                        const ImageBatch& source_gradients,
                                        const ImageBatch& source_images,
                                        const ConvolutionGradientState& gradient_state) {
  const char* where = "GradientKernel::encode_batch";
  if (source_gradients.size() != source_images.size()) {
    throw InvalidArgument(where, "source_images.size()",
                          str(static_cast<std::int64_t>(source_images.size())),
                          "must equal source_gradients.size() (" +
                              str(static_cast<std::int64_t>(source_gradients.size())) + ")");
  }
  ImageBatch destinations;
  for (std::size_t i = 0; i < source_gradients.size(); ++i) {
    destinations.emplace_back(device_, destination_image_descriptor(
                                           source_gradients[i], source_images[i], gradient_state));
  }
  encode_batch(command_buffer, source_gradients, source_images, gradient_state, destinations);
  return destinations;
}

void GradientKernel::encode_batch(CommandBuffer& command_buffer,
                                  const ImageBatch& source_gradients,
                                  const ImageBatch& source_images,
                                  const ConvolutionGradientState& gradient_state,
                                  const ImageBatch& destination_gradients) {
  const char* where = "GradientKernel::encode_batch";
  if (source_gradients.empty()) {
    throw InvalidArgument(where, "source_gradients.size()", "0", "must not be empty");
  }
  const auto count = [](const ImageBatch& batch) {
    return str(static_cast<std::int64_t>(batch.size()));
  };
  if (source_images.size() != source_gradients.size()) {
    throw InvalidArgument(where, "source_images.size()", count(source_images),
                          "must equal source_gradients.size() (" + count(source_gradients) + ")");
  }
  if (destination_gradients.size() != source_gradients.size()) {
    throw InvalidArgument(where, "destination_gradients.size()", count(destination_gradients),
                          "must equal source_gradients.size() (" + count(source_gradients) + ")");
  }
  // Every entry is checked before any is encoded: a bad entry leaves the state and every
  // destination untouched.
  std::vector<std::function<void()>> work;
  Resolved last;
  for (std::size_t i = 0; i < source_gradients.size(); ++i) {
    last = resolve(source_gradients[i], source_images[i], gradient_state,
                   &destination_gradients[i], where);
    work.push_back(prepare_work(last, gradient_state, where));
  }
  for (auto& item : work) command_buffer.enqueue(std::move(item));
  remember(last);
}

}  // namespace convgrad
