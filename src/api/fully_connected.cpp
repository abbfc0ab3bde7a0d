// SPDX-License-Identifier: Apache-2.0
// Fully connected layers: the convolution and its gradient with the geometry pinned to "kernel =
// source, one output pixel". No arithmetic of their own: the same fprop/dgrad/wgrad run.
#include "convgrad/fully_connected.hpp"

#include <string>

#include "api/layer_support.hpp"
#include "convgrad/errors.hpp"

namespace convgrad {
namespace {

std::string str(std::int64_t v) { return std::to_string(v); }

// The descriptor rules of MPS's fully connected layers, checked before the base class loads the
// weights so that a refused layer never touches its data source.
std::shared_ptr<ConvolutionDataSource> checked(std::shared_ptr<ConvolutionDataSource> source,
                                               const char* where) {
  if (source == nullptr) return source;  // the base class reports it
  const ConvolutionDescriptor& d = source->descriptor();
  if (d.kind() != ConvolutionKind::regular) {
    throw InvalidArgument(where, "descriptor.kind",
                          d.kind() == ConvolutionKind::depthwise ? "depthwise" : "sub_pixel",
                          "a fully connected layer is a regular convolution", d.to_string());
  }
  const std::pair<const char*, std::int64_t> ones[] = {
      {"descriptor.stride_in_pixels_x", d.stride_in_pixels_x()},
      {"descriptor.stride_in_pixels_y", d.stride_in_pixels_y()},
      {"descriptor.dilation_rate_x", d.dilation_rate_x()},
      {"descriptor.dilation_rate_y", d.dilation_rate_y()},
      {"descriptor.groups", d.groups()}};
  for (const auto& [name, value] : ones) {
    if (value != 1) {
      throw InvalidArgument(where, name, str(value), "must be 1 for a fully connected layer",
                            d.to_string());
    }
  }
  return source;
}

void require_extent(std::int64_t got, std::int64_t want, const std::string& name, const char* rule,
                    const char* where) {
  if (got != want)
    throw InvalidArgument(where, name, str(got), rule + std::string(" (") + str(want) + ")");
}

}  // namespace

FullyConnected::FullyConnected(const Device& device,
                               std::shared_ptr<ConvolutionDataSource> data_source)
    : Convolution(device, checked(std::move(data_source), "FullyConnected")) {
  Convolution::set_padding(Padding::valid_only());
  Convolution::set_offset({descriptor().kernel_width() >> 1, descriptor().kernel_height() >> 1, 0});
}

void FullyConnected::fix_geometry(const Image& source, const Image* destination,
                                  const char* where) {
  api::require_image(source, device(), "source_image", where);
  const ConvolutionDescriptor& d = descriptor();
  require_extent(source.width(), d.kernel_width(), "source_image.width",
                 "must equal the kernel width: a fully connected kernel covers the whole source",
                 where);
  require_extent(source.height(), d.kernel_height(), "source_image.height",
                 "must equal the kernel height: a fully connected kernel covers the whole source",
                 where);
  if (destination != nullptr) {
    api::require_image(*destination, device(), "destination_image", where);
    require_extent(destination->width(), 1, "destination_image.width",
                   "a fully connected layer has one output pixel", where);
    require_extent(destination->height(), 1, "destination_image.height",
                   "a fully connected layer has one output pixel", where);
  }
  // The window's top-left corner is offset - (kernel >> 1) = (0, 0) for every kernel size.
  Convolution::set_padding(Padding::valid_only());
  Convolution::set_offset({d.kernel_width() >> 1, d.kernel_height() >> 1, offset().z});
}

ImageDescriptor FullyConnected::destination_image_descriptor(const Image& source) {
  fix_geometry(source, nullptr, "FullyConnected::destination_image_descriptor");
  return Convolution::destination_image_descriptor(source);
}

Image FullyConnected::encode(CommandBuffer& command_buffer, const Image& source) {
  fix_geometry(source, nullptr, "FullyConnected::encode");
  return Convolution::encode(command_buffer, source);
}

Image FullyConnected::encode(CommandBuffer& command_buffer, const Image& source,
                             ConvolutionGradientState& destination_state) {
  fix_geometry(source, nullptr, "FullyConnected::encode");
  return Convolution::encode(command_buffer, source, destination_state);
}

void FullyConnected::encode(CommandBuffer& command_buffer, const Image& source,
                            const Image& destination) {
  fix_geometry(source, &destination, "FullyConnected::encode");
  Convolution::encode(command_buffer, source, destination);
}

void FullyConnected::encode(CommandBuffer& command_buffer, const Image& source,
                            const Image& destination, ConvolutionGradientState& destination_state) {
  fix_geometry(source, &destination, "FullyConnected::encode");
  Convolution::encode(command_buffer, source, destination, destination_state);
}

ImageBatch FullyConnected::encode_batch(CommandBuffer& command_buffer, const ImageBatch& sources,
                                        ConvolutionGradientState& destination_state) {
  const char* where = "FullyConnected::encode_batch";
  for (std::size_t i = 0; i < sources.size(); ++i) {
    try {
      fix_geometry(sources[i], nullptr, where);
    } catch (const InvalidArgument& e) {
      std::string parameter = "sources[" + std::to_string(i) + "]";
      parameter.append(e.parameter().substr(e.parameter().find('.')));
      throw InvalidArgument(where, parameter, e.value(), e.rule());
    }
  }
  return Convolution::encode_batch(command_buffer, sources, destination_state);
}

ConvolutionGradientState FullyConnected::result_state(const Image& source,
                                                      const Image& destination) {
  fix_geometry(source, &destination, "FullyConnected::result_state");
  return Convolution::result_state(source, destination);
}

// ---------------------------------------------------------------------------------------------

FullyConnectedGradient::FullyConnectedGradient(const Device& device,
                                               std::shared_ptr<ConvolutionDataSource> weights)
    : ConvolutionGradient(device, checked(std::move(weights), "FullyConnectedGradient")) {}

void FullyConnectedGradient::check_state(const ConvolutionGradientState& state,
                                         const char* where) const {
  ConvolutionGradient::check_state(state, where);
  const ConvolutionDescriptor& d = descriptor();
  if (state.source_width() != d.kernel_width() || state.source_height() != d.kernel_height() ||
      state.destination_width() != 1 || state.destination_height() != 1) {
    std::string value = "from a ";
    value.append(str(state.source_height())).append("x").append(str(state.source_width()));
    value.append(" source");
    std::string rule = "a fully connected gradient needs the state of a forward pass over a ";
    rule.append(str(d.kernel_height())).append("x").append(str(d.kernel_width()));
    rule.append(" source (the kernel's size) giving one output pixel");
    throw InvalidArgument(where, "gradient_state", value, rule);
  }
}

}  // namespace convgrad
