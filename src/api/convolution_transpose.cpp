// SPDX-License-Identifier: Apache-2.0
// The transposed convolution and its gradient, run as the convolution they reverse: the
// transpose is that convolution's dgrad (weights rotated and swapped once, at load), its data
// gradient that convolution's fprop and its weight gradient that convolution's wgrad with the
// roles of image and gradient swapped.
#include "convgrad/convolution_transpose.hpp"

#include <string>
#include <vector>

#include "api/layer_support.hpp"
#include "api/state_impl.hpp"
#include "convgrad/errors.hpp"
#include "convgrad/functional.hpp"
#include "dispatch/device_work.hpp"

namespace convgrad {
namespace {

std::string str(std::int64_t v) { return std::to_string(v); }

std::string size_text(std::int64_t h, std::int64_t w) {
  std::string text = str(h);
  text.append("x").append(str(w));
  return text;
}

bool has(GradientOption option, GradientOption part) {
  return (static_cast<std::uint32_t>(option) & static_cast<std::uint32_t>(part)) != 0;
}

// A kind the transpose cannot serve, refused before the weights are loaded.
std::shared_ptr<ConvolutionDataSource> checked(std::shared_ptr<ConvolutionDataSource> source,
                                               const char* where) {
  if (source != nullptr && source->descriptor().kind() != ConvolutionKind::regular) {
    const ConvolutionDescriptor& d = source->descriptor();
    throw InvalidArgument(where, "descriptor.kind",
                          d.kind() == ConvolutionKind::depthwise ? "depthwise" : "sub_pixel",
                          "a transposed convolution takes a regular descriptor (use groups)",
                          d.to_string());
  }
  return source;
}

SharedKernelWeights reversed_of(const KernelWeights& weights, const ConvolutionDescriptor& t) {
  auto reversed = std::make_shared<KernelWeights>();
  reversed->weights.resize(weights.weights.size());
  api::reverse_weights(weights.weights, reversed->weights, t, false, false);
  return reversed;
}

// Publishes the reversed weights of `state` when the command buffer reaches this point (the
// counterpart of api::reload_from_state for the reversed layout); on a CUDA device the reversal
// runs there, from the state's device memory when it lives on one.
SharedKernelWeights reload_reversed(const Device& device, CommandBuffer& command_buffer,
                                    const ConvolutionWeightsAndBiasesState& state,
                                    const ConvolutionDescriptor& t, const KernelWeights& current,
                                    const char* where) {
  if (!(state.descriptor() == t)) {
    throw InvalidArgument(where, "state.descriptor", state.descriptor().to_string(),
                          "must equal the kernel's descriptor " + t.to_string());
  }
  if (current.on_device()) {
    std::shared_ptr<KernelWeights> fresh = api::device_copy(device, current);
    command_buffer.enqueue([fresh, state, t] {
      auto* to = static_cast<float*>(fresh->device_weights.data());
      if (state.device().kind() == DeviceKind::cuda) {
        api::reverse_weights_on_device(static_cast<const float*>(state.weights_view().data), to,
                                       t, false, false);
      } else {
        std::vector<float> reversed(state.weight_count());
        api::reverse_weights(state.weights(), reversed, t, false, false);
        fresh->device_weights.copy_from_host(reversed.data(), reversed.size() * sizeof(float));
      }
    });
    return fresh;
  }
  auto fresh = std::make_shared<KernelWeights>();
  fresh->weights = current.weights;
  command_buffer.enqueue([fresh, state, t] {
    api::reverse_weights(state.device().kind() == DeviceKind::cpu
                             ? std::vector<float>(state.weights().begin(), state.weights().end())
                             : state.read_weights(),
                         fresh->weights, t, false, false);
  });
  return fresh;
}

// The reversed convolution's top (left) pad for a kernel centred at `kernel_offset` in the
// zero-inserted source: MPS's data-gradient placement read backwards (kernelOffset = -o + (kd
// even), pad = (kd >> 1) - o).
std::int64_t reversed_pad(std::int64_t kernel_offset, std::int64_t dilated_kernel) {
  return kernel_offset - (dilated_kernel >> 1) + dilated_kernel - 1;
}

}  // namespace

const ConvolutionTranspose& ConvolutionTransposeGradientState::convolution_transpose() const {
  if (!from_transpose()) {
    throw InvalidArgument("ConvolutionTransposeGradientState::convolution_transpose", "state",
                          "empty", "the state was never created by a ConvolutionTranspose");
  }
  return *impl_->transpose;
}

// ---------------------------------------------------------------------------------------------

struct ConvolutionTranspose::Placement {
  std::int64_t height = 0, width = 0;  // the result's size
  std::int64_t kernel_offset_y = 0, kernel_offset_x = 0;
  std::int64_t pad_top = 0, pad_left = 0;  // of the reversed convolution
};

ConvolutionTranspose::ConvolutionTranspose(const Device& device,
                                           std::shared_ptr<ConvolutionDataSource> data_source)
    : device_(device), data_source_(checked(std::move(data_source), "ConvolutionTranspose")) {
  const SharedKernelWeights host =
      api::load_kernel_weights(data_source_.get(), "ConvolutionTranspose");
  descriptor_ = data_source_->descriptor();
  reversed_ = api::on_device(device_, reversed_of(*host, descriptor_));
  weights_ = api::on_device(device_, host);
  label_ = data_source_->label();
}

ConvolutionTranspose::Placement ConvolutionTranspose::placement_for(
    const Image& source, std::int64_t height, std::int64_t width, std::int64_t kernel_offset_y,
    std::int64_t kernel_offset_x, const char* where) const {
  const ConvolutionDescriptor& d = descriptor_;
  Placement placement{height,
                      width,
                      kernel_offset_y,
                      kernel_offset_x,
                      reversed_pad(kernel_offset_y, d.dilated_kernel_height()),
                      reversed_pad(kernel_offset_x, d.dilated_kernel_width())};
  // The reversed convolution must not have windows wholly in its padding: here, the first and
  // last source pixels must each reach a result pixel.
  const struct {
    const char* name;
    std::int64_t offset, pad, kd, stride, source, result;
  } axes[] = {{"offset.y * stride + kernel_offset_y", kernel_offset_y, placement.pad_top,
               d.dilated_kernel_height(), d.stride_in_pixels_y(), source.height(), height},
              {"offset.x * stride + kernel_offset_x", kernel_offset_x, placement.pad_left,
               d.dilated_kernel_width(), d.stride_in_pixels_x(), source.width(), width}};
  for (const auto& a : axes) {
    const std::int64_t after = (a.source - 1) * a.stride + a.kd - a.result - a.pad;
    if (a.pad >= a.kd || after >= a.kd) {
      std::string rule = "places the ";
      rule.append(a.pad >= a.kd ? "first" : "last")
          .append(" source pixel outside every window of the ")
          .append(str(a.result))
          .append("-pixel result (the transposed kernel extent is ")
          .append(str(a.kd))
          .append(")");
      throw InvalidArgument(where, a.name, str(a.offset), rule);
    }
  }
  return placement;
}

ConvolutionTranspose::Placement ConvolutionTranspose::policy_placement(const Image& source,
                                                                       const char* where) const {
  const ConvolutionDescriptor& d = descriptor_;
  const std::int64_t kdh = d.dilated_kernel_height(), kdw = d.dilated_kernel_width();
  const std::int64_t sy = d.stride_in_pixels_y(), sx = d.stride_in_pixels_x();
  // The smallest source of the reversed convolution that gives our source under the policy.
  std::int64_t height = 0, width = 0;
  if (padding_.is_explicit()) {
    const ExplicitPadding& e = padding_.pads();
    height = (source.height() - 1) * sy + kdh - e.top - e.bottom;
    width = (source.width() - 1) * sx + kdw - e.left - e.right;
  } else {
    const auto size = static_cast<std::uint32_t>(padding_.method()) & 48u;
    const std::int64_t style = size == 0 ? 1 : size == 16 ? 0 : -1;  // valid <-> full
    height = (source.height() - 1) * sy + 1 + style * (kdh - 1);
    width = (source.width() - 1) * sx + 1 + style * (kdw - 1);
  }
  if (height < 1 || width < 1) {
    throw InvalidArgument(
        where, "padding", padding_.label(),
        "gives an empty result for a " + size_text(source.height(), source.width()) + " source");
  }
  const ConvolutionGeometry g = padding_.resolve(height, width, kdh, kdw, sy, sx);
  if (g.output_height != source.height() || g.output_width != source.width()) {
    throw InvalidArgument(
        where, "padding", padding_.label(),
        "no result size reverses to a " + size_text(source.height(), source.width()) + " source");
  }
  return placement_for(source, height, width, -g.offset_y + ((kdh & 1) == 0 ? 1 : 0),
                       -g.offset_x + ((kdw & 1) == 0 ? 1 : 0), where);
}

ImageDescriptor ConvolutionTranspose::destination_image_descriptor(const Image& source) {
  const char* where = "ConvolutionTranspose::destination_image_descriptor";
  api::require_image(source, device_, "source_image", where);
  api::require_first_image(offset_.z, source, where);
  const Placement placement = policy_placement(source, where);
  offset_.x = offset_.y = 0;
  kernel_offset_y_ = placement.kernel_offset_y;
  kernel_offset_x_ = placement.kernel_offset_x;
  ImageDescriptor d;
  d.height = placement.height;
  d.width = placement.width;
  d.feature_channels = descriptor_.output_feature_channels();
  d.number_of_images = source.number_of_images() - offset_.z;
  d.data_type = source.data_type();
  return d;
}

void ConvolutionTranspose::encode_with(CommandBuffer& command_buffer, const Image& source,
                                       const Image& destination, const Placement& placement,
                                       ConvolutionTransposeGradientState* state,
                                       const char* where) {
  api::require_image(source, device_, "source_image", where);
  api::require_image(destination, device_, "destination_image", where);
  const std::int64_t n = destination.number_of_images();
  if (offset_.z < 0 || offset_.z + n > source.number_of_images()) {
    throw InvalidArgument(where, "offset.z", str(offset_.z),
                          "the source holds " + str(source.number_of_images()) +
                              " images; the destination needs " + str(n) + " from offset.z");
  }
  const Image x = source.images(offset_.z, n);
  if (x.feature_channels() != descriptor_.input_feature_channels()) {
    throw InvalidArgument(where, "source_image.feature_channels", str(x.feature_channels()),
                          "must equal the input feature channels (" +
                              str(descriptor_.input_feature_channels()) + ")");
  }
  if (destination.feature_channels() != descriptor_.output_feature_channels()) {
    throw InvalidArgument(where, "destination_image.feature_channels",
                          str(destination.feature_channels()),
                          "must equal the output feature channels (" +
                              str(descriptor_.output_feature_channels()) + ")");
  }
  if (destination.height() != placement.height || destination.width() != placement.width) {
    throw InvalidArgument(where, "destination_image.size",
                          size_text(destination.height(), destination.width()),
                          "must be " + size_text(placement.height, placement.width));
  }
  if (destination.shares_storage_with(source)) {
    throw InvalidArgument(where, "destination_image", "aliases the source",
                          "the destination must not share storage with the source");
  }
  const ConvolutionDescriptor reversed = api::reversed_descriptor(descriptor_);
  const ConvProblem problem = api::layer_problem(
      reversed, n, placement.height, placement.width, x.height(), x.width(), placement.pad_top,
      placement.pad_left, destination.data_type(), x.data_type(), false, where);
  const SharedKernelWeights w = reversed_, weights = weights_;
  validate(problem, Direction::dgrad, destination.view(), api::weight_view(*w, reversed), {},
           x.view(), where);
  ConvolutionTransposeGradientState fresh;
  if (state != nullptr) {
    auto impl = std::make_shared<ConvolutionGradientState::Impl>();
    impl->transpose = std::make_shared<const ConvolutionTranspose>(*this);
    impl->descriptor = descriptor_;
    impl->geometry.output_height = placement.height;
    impl->geometry.output_width = placement.width;
    impl->geometry.pads = {problem.pad_top, problem.pad_left, problem.pad_bottom,
                           problem.pad_right};
    impl->geometry.offset_y = (descriptor_.dilated_kernel_height() >> 1) - problem.pad_top;
    impl->geometry.offset_x = (descriptor_.dilated_kernel_width() >> 1) - problem.pad_left;
    impl->source_height = x.height();
    impl->source_width = x.width();
    impl->allocate_gradients(device_, descriptor_);
    fresh = ConvolutionTransposeGradientState(ConvolutionGradientState(std::move(impl)));
  }
  RunOptions options;
  options.backend = device_.backend();
  command_buffer.enqueue([problem, reversed, x, y = destination, w, weights, options] {
    dgrad(problem, x.view(), api::weight_view(*w, reversed), y.view(), options);
    if (weights->on_device()) {
      // dgrad has no bias term; the transpose adds its own per output channel.
      if (!weights->device_biases.empty()) {
        dispatch::add_channel_bias(y.view(),
                                   static_cast<const float*>(weights->device_biases.data()));
      }
      return;
    }
    if (weights->biases.empty()) return;
    // dgrad has no bias term; the transpose adds its own per output channel.
    std::vector<float> values = y.read();
    const std::size_t channels = weights->biases.size();
    for (std::size_t i = 0; i < values.size(); ++i) values[i] += weights->biases[i % channels];
    Image out = y;
    out.write(values);
  });
  if (state != nullptr) *state = std::move(fresh);
}

Image ConvolutionTranspose::encode(CommandBuffer& command_buffer, const Image& source) {
  const char* where = "ConvolutionTranspose::encode";
  Image destination(device_, destination_image_descriptor(source));
  encode_with(command_buffer, source, destination, policy_placement(source, where), nullptr, where);
  return destination;
}

Image ConvolutionTranspose::encode(CommandBuffer& command_buffer, const Image& source,
                                   ConvolutionTransposeGradientState& destination_state) {
  const char* where = "ConvolutionTranspose::encode";
  Image destination(device_, destination_image_descriptor(source));
  encode_with(command_buffer, source, destination, policy_placement(source, where),
              &destination_state, where);
  return destination;
}

Image ConvolutionTranspose::encode(CommandBuffer& command_buffer, const Image& source,
                                   const ConvolutionGradientState& convolution_state) {
  const char* where = "ConvolutionTranspose::encode";
  api::require_image(source, device_, "source_image", where);
  if (!convolution_state.valid() || convolution_state.from_transpose()) {
    throw InvalidArgument(where, "convolution_state",
                          convolution_state.valid() ? "from a transpose" : "empty",
                          "pass the state of the convolution this transpose reverses");
  }
  const ConvolutionDescriptor& c = convolution_state.descriptor();
  const ConvolutionDescriptor& d = descriptor_;
  if (c.kind() != ConvolutionKind::regular || c.kernel_width() != d.kernel_width() ||
      c.kernel_height() != d.kernel_height() || c.stride_in_pixels_x() != d.stride_in_pixels_x() ||
      c.stride_in_pixels_y() != d.stride_in_pixels_y() ||
      c.dilation_rate_x() != d.dilation_rate_x() || c.dilation_rate_y() != d.dilation_rate_y() ||
      c.groups() != d.groups() || c.input_feature_channels() != d.output_feature_channels() ||
      c.output_feature_channels() != d.input_feature_channels()) {
    throw InvalidArgument(where, "convolution_state", "from a " + c.to_string() + " convolution",
                          "must come from a convolution with this transpose's kernel, stride, "
                          "dilation and groups and the channel counts swapped (" +
                              d.to_string() + ")");
  }
  if (source.height() != convolution_state.destination_height() ||
      source.width() != convolution_state.destination_width()) {
    throw InvalidArgument(where, "source_image.size", size_text(source.height(), source.width()),
                          "must be the convolution's result size (" +
                              size_text(convolution_state.destination_height(),
                                        convolution_state.destination_width()) +
                              ")");
  }
  api::require_first_image(offset_.z, source, where);
  const ConvolutionGeometry& g = convolution_state.geometry();
  const Placement placement =
      placement_for(source, convolution_state.source_height(), convolution_state.source_width(),
                    -g.offset_y + ((d.dilated_kernel_height() & 1) == 0 ? 1 : 0),
                    -g.offset_x + ((d.dilated_kernel_width() & 1) == 0 ? 1 : 0), where);
  ImageDescriptor descriptor;
  descriptor.height = placement.height;
  descriptor.width = placement.width;
  descriptor.feature_channels = d.output_feature_channels();
  descriptor.number_of_images = source.number_of_images() - offset_.z;
  descriptor.data_type = source.data_type();
  Image destination(device_, descriptor);
  encode_with(command_buffer, source, destination, placement, nullptr, where);
  offset_.x = offset_.y = 0;
  kernel_offset_y_ = placement.kernel_offset_y;
  kernel_offset_x_ = placement.kernel_offset_x;
  return destination;
}

void ConvolutionTranspose::encode_given(CommandBuffer& command_buffer, const Image& source,
                                        const Image& destination,
                                        ConvolutionTransposeGradientState* state) {
  const char* where = "ConvolutionTranspose::encode";
  api::require_image(source, device_, "source_image", where);
  api::require_image(destination, device_, "destination_image", where);
  const Placement placement =
      placement_for(source, destination.height(), destination.width(),
                    offset_.y * descriptor_.stride_in_pixels_y() + kernel_offset_y_,
                    offset_.x * descriptor_.stride_in_pixels_x() + kernel_offset_x_, where);
  encode_with(command_buffer, source, destination, placement, state, where);
}

void ConvolutionTranspose::encode(CommandBuffer& command_buffer, const Image& source,
                                  const Image& destination) {
  encode_given(command_buffer, source, destination, nullptr);
}

void ConvolutionTranspose::encode(CommandBuffer& command_buffer, const Image& source,
                                  const Image& destination,
                                  ConvolutionTransposeGradientState& destination_state) {
  encode_given(command_buffer, source, destination, &destination_state);
}

ConvolutionWeightsAndBiasesState ConvolutionTranspose::export_weights_and_biases(
    CommandBuffer& /*command_buffer*/) const {
  return api::export_state(device_, descriptor_, *weights_);
}

void ConvolutionTranspose::reload_weights_and_biases_from_data_source() {
  const SharedKernelWeights fresh = api::load_kernel_weights(
      data_source_.get(), "ConvolutionTranspose::reload_weights_and_biases_from_data_source",
      &descriptor_);
  reversed_ = api::on_device(device_, reversed_of(*fresh, descriptor_));
  weights_ = api::on_device(device_, fresh);
}

void ConvolutionTranspose::reload_weights_and_biases(
    CommandBuffer& command_buffer, const ConvolutionWeightsAndBiasesState& state) {
  const char* where = "ConvolutionTranspose::reload_weights_and_biases";
  SharedKernelWeights weights =
      api::reload_from_state(device_, command_buffer, state, descriptor_, *weights_, where);
  reversed_ = reload_reversed(device_, command_buffer, state, descriptor_, *reversed_, where);
  weights_ = std::move(weights);
}

// ---------------------------------------------------------------------------------------------

ConvolutionTransposeGradient::ConvolutionTransposeGradient(
    const Device& device, std::shared_ptr<ConvolutionDataSource> weights)
    : GradientKernel(device),
      data_source_(checked(std::move(weights), "ConvolutionTransposeGradient")) {
  const SharedKernelWeights loaded =
      api::load_kernel_weights(data_source_.get(), "ConvolutionTransposeGradient");
  descriptor_ = data_source_->descriptor();
  reversed_ = api::on_device(device, reversed_of(*loaded, descriptor_));
  set_label(data_source_->label());
}

std::int64_t ConvolutionTransposeGradient::expected_gradient_channels() const {
  return source_gradient_feature_channels();
}

std::int64_t ConvolutionTransposeGradient::expected_image_channels() const {
  return source_image_feature_channels();
}

void ConvolutionTransposeGradient::set_gradient_option(GradientOption option) {
  const auto bits = static_cast<std::uint32_t>(option);
  if (bits < 1 || bits > 3) {
    throw InvalidArgument("ConvolutionTransposeGradient::set_gradient_option", "gradient_option",
                          str(bits),
                          "must be gradient_with_data (1), gradient_with_weights_and_bias (2) "
                          "or all (3)");
  }
  gradient_option_ = option;
}

void ConvolutionTransposeGradient::check_state(const ConvolutionGradientState& state,
                                               const char* where) const {
  if (!state.valid() || !state.from_transpose()) {
    throw InvalidArgument(where, "gradient_state", state.valid() ? "from a convolution" : "empty",
                          "pass the state that the ConvolutionTranspose's encode produced");
  }
  if (!(state.descriptor() == descriptor_)) {
    throw InvalidArgument(
        where, "gradient_state", "from a " + state.descriptor().to_string() + " transpose",
        "must come from a transpose of this kernel's descriptor (" + descriptor_.to_string() + ")");
  }
}

std::function<void()> ConvolutionTransposeGradient::prepare_work(
    const Resolved& r, const ConvolutionGradientState& state, const char* where) {
  const ConvolutionDescriptor& d = descriptor_;
  const ConvolutionDescriptor reversed = api::reversed_descriptor(d);
  const std::int64_t n = r.source_gradient.number_of_images();
  const std::int64_t pad_top = reversed_pad(r.kernel_offset_y, d.dilated_kernel_height());
  const std::int64_t pad_left = reversed_pad(r.kernel_offset_x, d.dilated_kernel_width());
  const auto problem = [&](DataType x_type, DataType y_type) {
    return api::layer_problem(reversed, n, state.destination_height(), state.destination_width(),
                              state.source_height(), state.source_width(), pad_top, pad_left,
                              x_type, y_type, false, where);
  };
  const bool data = has(gradient_option_, GradientOption::gradient_with_data);
  const bool weights = has(gradient_option_, GradientOption::gradient_with_weights_and_bias);
  const SharedKernelWeights w = reversed_;
  ConvProblem data_problem, weight_problem;
  // The reversed convolution maps the transpose's result (its x side) to the transpose's source
  // (its y side): fprop of dL/dY is dL/dX, wgrad of (dL/dY, X) is the reversed dL/dW.
  if (data) {
    data_problem = problem(r.source_gradient.data_type(), r.destination.data_type());
    validate(data_problem, Direction::fprop, r.source_gradient.view(),
             api::weight_view(*w, reversed), {}, r.destination.view(), where);
  }
  TensorView dw, db;
  if (weights) {
    dw = state.gradient_for_weights_view();
    db = state.gradient_for_biases_view();
    weight_problem = problem(r.source_gradient.data_type(), r.source_image.data_type());
    validate(weight_problem, Direction::wgrad, r.source_gradient.view(),
             api::weight_view(*w, reversed), {}, r.source_image.view(), where);
  }
  RunOptions options;
  options.backend = device().backend();
  const Device on = device();
  return [=, dy = r.source_gradient, x = r.source_image, dx = r.destination, state = state] {
    if (data)
      fprop(data_problem, dy.view(), api::weight_view(*w, reversed), {}, dx.view(), options);
    if (!weights) return;
    const auto count = static_cast<std::size_t>(d.weight_count());
    if (w->on_device()) {
      // The reversed dL/dW in scratch device memory, turned and added into the state there.
      const DeviceBuffer scratch(on, count * sizeof(float));
      const TensorView scratch_view =
          dense_view(scratch.data(), DataType::float32, reversed.output_feature_channels(),
                     reversed.kernel_height(), reversed.kernel_width(),
                     reversed.input_feature_channels() / reversed.groups(), DeviceKind::cuda);
      wgrad(weight_problem, dy.view(), x.view(), scratch_view, {}, options);
      api::reverse_weights_on_device(static_cast<const float*>(scratch.data()),
                                     static_cast<float*>(dw.data), d, true, true);
      if (!db.empty()) dispatch::accumulate_channel_sums(dy.view(), static_cast<float*>(db.data));
      return;
    }
    KernelWeights scratch;
    scratch.weights.resize(count);
    wgrad(weight_problem, dy.view(), x.view(), api::weight_view(scratch, reversed), {}, options);
    api::reverse_weights(scratch.weights, std::span<float>(static_cast<float*>(dw.data), count), d,
                         true, true);
    if (db.empty()) return;
    // The bias gradient sums dL/dY per output channel (no convolution involved).
    float* bias = static_cast<float*>(db.data);
    const auto channels = static_cast<std::size_t>(db.dims[0]);
    const std::vector<float> values = dy.read();
    for (std::size_t i = 0; i < values.size(); ++i) bias[i % channels] += values[i];
  };
}

void ConvolutionTransposeGradient::reload_weights_and_biases_from_data_source() {
  const SharedKernelWeights loaded = api::load_kernel_weights(
      data_source_.get(),
      "ConvolutionTransposeGradient::reload_weights_and_biases_from_data_source", &descriptor_);
  reversed_ = api::on_device(device(), reversed_of(*loaded, descriptor_));
}

void ConvolutionTransposeGradient::reload_weights_and_biases(
    CommandBuffer& command_buffer, const ConvolutionWeightsAndBiasesState& state) {
  reversed_ = reload_reversed(device(), command_buffer, state, descriptor_, *reversed_,
                              "ConvolutionTransposeGradient::reload_weights_and_biases");
}

}  // namespace convgrad
