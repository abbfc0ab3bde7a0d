// SPDX-License-Identifier: Apache-2.0
// Archives of convolutions and gradient kernels: a safetensors file whose metadata holds the
// descriptor and options (JSON strings) and whose tensors hold the weights and biases. The layout
// is documented in docs/archive.md; a file that breaks it is a FormatError, never a crash.
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "api/layer_support.hpp"
#include "convgrad/convolution.hpp"
#include "convgrad/convolution_gradient.hpp"
#include "convgrad/errors.hpp"
#include "convgrad/optimizer.hpp"
#include "core/safetensors.hpp"

namespace convgrad {
namespace {

constexpr const char* kFormat = "convgrad";
constexpr int kVersion = 1;

using nlohmann::json;

json descriptor_to_json(const ConvolutionDescriptor& d) {
  const char* kind = d.kind() == ConvolutionKind::depthwise   ? "depthwise"
                     : d.kind() == ConvolutionKind::sub_pixel ? "sub_pixel"
                                                              : "regular";
  return json{{"kind", kind},
              {"kernel_width", d.kernel_width()},
              {"kernel_height", d.kernel_height()},
              {"input_feature_channels", d.input_feature_channels()},
              {"output_feature_channels", d.output_feature_channels()},
              {"stride_in_pixels_x", d.stride_in_pixels_x()},
              {"stride_in_pixels_y", d.stride_in_pixels_y()},
              {"dilation_rate_x", d.dilation_rate_x()},
              {"dilation_rate_y", d.dilation_rate_y()},
              {"groups", d.kind() == ConvolutionKind::depthwise ? 1 : d.groups()},
              {"bias_enabled", d.bias_enabled()},
              {"sub_pixel_scale_factor", d.sub_pixel_scale_factor()}};
}

[[noreturn]] void fail(const std::string& what) { throw FormatError("convgrad archive: " + what); }

json parse_json(const std::string& text, const char* key) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(std::string("metadata \"") + key + "\" is not valid JSON: " + e.what());
  }
}

std::int64_t integer_field(const json& object, const char* key, std::int64_t lo, std::int64_t hi,
                           const char* section = "descriptor") {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) {
    fail(std::string(section) + " field \"" + key + "\" is missing or not an integer");
  }
  const std::int64_t value = it->get<std::int64_t>();
  if (value < lo || value > hi) {
    fail(std::string(section) + " field \"" + key + "\" = " + std::to_string(value) +
         " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return value;
}

ConvolutionDescriptor descriptor_from_json(const json& j) {
  if (!j.is_object()) fail("metadata \"descriptor\" is not a JSON object");
  constexpr std::int64_t kMax = (std::int64_t{1} << 31) - 1;
  const std::int64_t kw = integer_field(j, "kernel_width", 1, kMax);
  const std::int64_t kh = integer_field(j, "kernel_height", 1, kMax);
  const std::int64_t in = integer_field(j, "input_feature_channels", 1, kMax);
  const std::int64_t out = integer_field(j, "output_feature_channels", 1, kMax);
  const auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string()) fail("descriptor field \"kind\" is missing");
  ConvolutionDescriptor d(kw, kh, in, out);
  if (*kind == "depthwise") {
    d = DepthwiseConvolutionDescriptor(kw, kh, in, out);
  } else if (*kind == "sub_pixel") {
    d = SubPixelConvolutionDescriptor(kw, kh, in, out,
                                      integer_field(j, "sub_pixel_scale_factor", 1, kMax));
  } else if (*kind != "regular") {
    fail("descriptor field \"kind\" = " + kind->dump() + " is not regular, depthwise or sub_pixel");
  }
  d.set_stride_in_pixels_x(integer_field(j, "stride_in_pixels_x", 1, kMax));
  d.set_stride_in_pixels_y(integer_field(j, "stride_in_pixels_y", 1, kMax));
  d.set_dilation_rate_x(integer_field(j, "dilation_rate_x", 1, kMax));
  d.set_dilation_rate_y(integer_field(j, "dilation_rate_y", 1, kMax));
  d.set_groups(integer_field(j, "groups", 1, kMax));
  const auto bias = j.find("bias_enabled");
  if (bias == j.end() || !bias->is_boolean()) fail("descriptor field \"bias_enabled\" is missing");
  d.set_bias_enabled(bias->get<bool>());
  try {
    d.validate("archive");
  } catch (const InvalidArgument& e) {
    fail(std::string("invalid descriptor: ") + e.what());
  }
  return d;
}

const std::string& metadata(const core::StFile& file, const char* key) {
  const auto it = file.metadata.find(key);
  if (it == file.metadata.end()) fail(std::string("metadata \"") + key + "\" is missing");
  return it->second;
}

// Checks the format name, version and kind; returns the descriptor.
ConvolutionDescriptor read_header(const core::StFile& file, const char* kind) {
  if (metadata(file, "format") != kFormat) {
    fail("metadata \"format\" = \"" + metadata(file, "format").substr(0, 64) +
         "\": not a convgrad archive");
  }
  if (metadata(file, "format_version") != std::to_string(kVersion)) {
    fail("format_version \"" + metadata(file, "format_version").substr(0, 32) +
         "\" is not supported (this build reads version " + std::to_string(kVersion) + ")");
  }
  if (metadata(file, "kind") != kind) {
    fail("the archive holds a \"" + metadata(file, "kind").substr(0, 64) + "\", not a " + kind);
  }
  return descriptor_from_json(parse_json(metadata(file, "descriptor"), "descriptor"));
}

core::StTensor float_tensor(const char* name, std::span<const float> values,
                            std::vector<std::int64_t> shape) {
  core::StTensor t;
  t.name = name;
  t.dtype = DataType::float32;
  t.shape = std::move(shape);
  t.bytes.resize(values.size() * sizeof(float));
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

std::vector<float> read_floats(const core::StFile& file, const char* name,
                               const std::vector<std::int64_t>& shape) {
  const core::StTensor* t = file.find(name);
  if (t == nullptr) fail(std::string("tensor \"") + name + "\" is missing");
  if (t->dtype != DataType::float32) fail(std::string("tensor \"") + name + "\" is not F32");
  if (t->shape != shape) fail(std::string("tensor \"") + name + "\" has the wrong shape");
  std::vector<float> values(t->bytes.size() / sizeof(float));
  std::memcpy(values.data(), t->bytes.data(), values.size() * sizeof(float));
  return values;
}

void write_weights(core::StFile& file, const ConvolutionDescriptor& d,
                   const KernelWeights& kernel) {
  const KernelWeights w = api::host_copy(kernel);  // a download for a kernel on a CUDA device
  file.tensors.push_back(float_tensor("weights", w.weights,
                                      {d.output_feature_channels(), d.kernel_height(),
                                       d.kernel_width(), d.input_feature_channels() / d.groups()}));
  if (!w.biases.empty()) {
    file.tensors.push_back(float_tensor("biases", w.biases, {d.output_feature_channels()}));
  }
}

// The archived weights as a data source; a descriptor validated by descriptor_from_json keeps
// every dimension below 2^31, and the tensors' shapes must match it exactly, so the sizes below
// are bounded by the bytes present in the file.
std::shared_ptr<MemoryConvolutionDataSource> archived_data_source(const core::StFile& file,
                                                                  const ConvolutionDescriptor& d) {
  std::vector<float> weights =
      read_floats(file, "weights",
                  {d.output_feature_channels(), d.kernel_height(), d.kernel_width(),
                   d.input_feature_channels() / d.groups()});
  std::vector<float> biases;
  if (d.bias_enabled()) {
    biases = read_floats(file, "biases", {d.output_feature_channels()});
  } else if (file.find("biases") != nullptr) {
    fail("tensor \"biases\" is present but the descriptor has no bias");
  }
  std::string label;
  if (const auto it = file.metadata.find("label"); it != file.metadata.end()) label = it->second;
  return std::make_shared<MemoryConvolutionDataSource>(d, std::move(weights), std::move(biases),
                                                       label);
}

std::int64_t option_integer(const json& options, const char* key, std::int64_t lo,
                            std::int64_t hi) {
  return integer_field(options, key, lo, hi, "options");
}

core::StFile header_file(const char* kind, const ConvolutionDescriptor& d,
                         const std::string& label) {
  core::StFile file;
  file.metadata = {{"format", kFormat},
                   {"format_version", std::to_string(kVersion)},
                   {"kind", kind},
                   {"descriptor", descriptor_to_json(d).dump()},
                   {"label", label}};
  return file;
}

core::StFile convolution_file(const Convolution& c) {
  core::StFile file = header_file("Convolution", c.descriptor(), c.label());
  const Padding& padding = c.padding();
  json options{{"padding_explicit", padding.is_explicit()},
               {"padding_method", static_cast<std::uint32_t>(padding.method())},
               {"padding_pads",
                {padding.pads().top, padding.pads().left, padding.pads().bottom,
                 padding.pads().right}},
               {"offset", {c.offset().x, c.offset().y, c.offset().z}},
               {"source_feature_channel_offset", c.source_feature_channel_offset()},
               {"destination_feature_channel_offset", c.destination_feature_channel_offset()}};
  file.metadata["options"] = options.dump();
  write_weights(file, c.descriptor(), *c.kernel_weights());
  return file;
}

Convolution convolution_from_file(const core::StFile& file, const Device& device) {
  const ConvolutionDescriptor d = read_header(file, "Convolution");
  Convolution convolution(device, archived_data_source(file, d));
  const json options = parse_json(metadata(file, "options"), "options");
  if (!options.is_object()) fail("metadata \"options\" is not a JSON object");
  constexpr std::int64_t kBig = std::int64_t{1} << 31;
  const auto pads = options.find("padding_pads");
  const auto offset = options.find("offset");
  const auto is_explicit = options.find("padding_explicit");
  if (pads == options.end() || !pads->is_array() || pads->size() != 4 ||
      offset == options.end() || !offset->is_array() || offset->size() != 3 ||
      is_explicit == options.end() || !is_explicit->is_boolean()) {
    fail("metadata \"options\" lacks padding_pads[4], offset[3] or padding_explicit");
  }
  auto element = [&](const json& array, std::size_t i, const char* what) {
    if (!array[i].is_number_integer()) fail(std::string("options ") + what + " is not an integer");
    const std::int64_t v = array[i].get<std::int64_t>();
    if (v <= -kBig || v >= kBig) fail(std::string("options ") + what + " is out of range");
    return v;
  };
  if (is_explicit->get<bool>()) {
    convolution.set_padding(Padding::explicit_pads(
        static_cast<std::int32_t>(element(*pads, 0, "padding_pads")),
        static_cast<std::int32_t>(element(*pads, 1, "padding_pads")),
        static_cast<std::int32_t>(element(*pads, 2, "padding_pads")),
        static_cast<std::int32_t>(element(*pads, 3, "padding_pads"))));
  } else {
    const std::int64_t method = option_integer(options, "padding_method", 0, 63);
    if ((method & 3) == 3 || (method & 48) == 48) {
      fail("options field \"padding_method\" = " + std::to_string(method) +
           " uses a reserved alignment or size value");
    }
    convolution.set_padding(Padding(static_cast<PaddingMethod>(method)));
  }
  convolution.set_offset({element(*offset, 0, "offset"), element(*offset, 1, "offset"),
                          element(*offset, 2, "offset")});
  convolution.set_source_feature_channel_offset(
      option_integer(options, "source_feature_channel_offset", 0, kBig));
  convolution.set_destination_feature_channel_offset(
      option_integer(options, "destination_feature_channel_offset", 0, kBig));
  return convolution;
}

core::StFile gradient_file(const ConvolutionGradient& g) {
  core::StFile file = header_file("ConvolutionGradient", g.descriptor(), g.label());
  json options{{"gradient_option", static_cast<std::uint32_t>(g.gradient_option())},
               {"serialize_weights_and_biases", g.serialize_weights_and_biases()},
               {"destination_feature_channel_offset", g.destination_feature_channel_offset()},
               {"primary_source_feature_channel_offset", g.primary_source_feature_channel_offset()},
               {"secondary_source_feature_channel_offset",
                g.secondary_source_feature_channel_offset()},
               {"primary_source_feature_channel_max_count",
                g.primary_source_feature_channel_max_count()},
               {"secondary_source_feature_channel_max_count",
                g.secondary_source_feature_channel_max_count()}};
  file.metadata["options"] = options.dump();
  if (g.serialize_weights_and_biases()) write_weights(file, g.descriptor(), *g.kernel_weights());
  return file;
}

ConvolutionGradient gradient_from_file(const core::StFile& file, const Device& device,
                                       std::shared_ptr<ConvolutionDataSource> data_source) {
  const ConvolutionDescriptor d = read_header(file, "ConvolutionGradient");
  const json options = parse_json(metadata(file, "options"), "options");
  if (!options.is_object()) fail("metadata \"options\" is not a JSON object");
  const auto serialized = options.find("serialize_weights_and_biases");
  if (serialized == options.end() || !serialized->is_boolean()) {
    fail("options field \"serialize_weights_and_biases\" is missing");
  }
  const bool has_weights = file.find("weights") != nullptr;
  if (has_weights != serialized->get<bool>()) {
    fail(has_weights ? "tensor \"weights\" is present but serialize_weights_and_biases is false"
                     : "tensor \"weights\" is missing but serialize_weights_and_biases is true");
  }
  const char* where = "ConvolutionGradient::load";
  if (has_weights) {
    // The archive's own weights win; a data source passed as well must describe the same layer.
    if (data_source != nullptr && !(data_source->descriptor() == d)) {
      throw InvalidArgument(where, "data_source.descriptor", data_source->descriptor().to_string(),
                            "must equal the archived descriptor " + d.to_string());
    }
    data_source = archived_data_source(file, d);
  } else if (data_source == nullptr) {
    throw InvalidArgument(where, "data_source", "null",
                          "the archive holds no weights (saved with serialize_weights_and_biases "
                          "= false): pass the data source that supplies them");
  } else if (!(data_source->descriptor() == d)) {
    throw InvalidArgument(where, "data_source.descriptor", data_source->descriptor().to_string(),
                          "must equal the archived descriptor " + d.to_string());
  }
  // Anything the archive describes that a gradient kernel refuses (a sub-pixel descriptor) is a
  // fault of the file.
  std::optional<ConvolutionGradient> built;
  try {
    built.emplace(device, std::move(data_source));
  } catch (const InvalidArgument& e) {
    fail(std::string("the archived layer cannot have a gradient kernel: ") + e.what());
  }
  ConvolutionGradient& gradient = *built;
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  gradient.set_gradient_option(
      static_cast<GradientOption>(option_integer(options, "gradient_option", 1, 3)));
  gradient.set_serialize_weights_and_biases(serialized->get<bool>());
  gradient.set_destination_feature_channel_offset(
      option_integer(options, "destination_feature_channel_offset", 0, kMax));
  gradient.set_primary_source_feature_channel_offset(
      option_integer(options, "primary_source_feature_channel_offset", 0, kMax));
  gradient.set_secondary_source_feature_channel_offset(
      option_integer(options, "secondary_source_feature_channel_offset", 0, kMax));
  gradient.set_primary_source_feature_channel_max_count(
      option_integer(options, "primary_source_feature_channel_max_count", 1, kMax));
  gradient.set_secondary_source_feature_channel_max_count(
      option_integer(options, "secondary_source_feature_channel_max_count", 1, kMax));
  if (const auto it = file.metadata.find("label"); it != file.metadata.end()) {
    gradient.set_label(it->second);
  }
  return std::move(gradient);
}

}  // namespace

std::vector<std::byte> Convolution::serialize() const {
  return core::write_safetensors(convolution_file(*this));
}

void Convolution::save(const std::string& path) const {
  core::save_safetensors(path, convolution_file(*this));
}

Convolution Convolution::deserialize(std::span<const std::byte> bytes, const Device& device) {
  return convolution_from_file(core::parse_safetensors(bytes), device);
}

Convolution Convolution::load(const std::string& path, const Device& device) {
  return convolution_from_file(core::load_safetensors(path), device);
}

std::vector<std::byte> ConvolutionGradient::serialize() const {
  return core::write_safetensors(gradient_file(*this));
}

void ConvolutionGradient::save(const std::string& path) const {
  core::save_safetensors(path, gradient_file(*this));
}

ConvolutionGradient ConvolutionGradient::deserialize(
    std::span<const std::byte> bytes, const Device& device,
    std::shared_ptr<ConvolutionDataSource> data_source) {
  return gradient_from_file(core::parse_safetensors(bytes), device, std::move(data_source));
}

ConvolutionGradient ConvolutionGradient::load(const std::string& path, const Device& device,
                                              std::shared_ptr<ConvolutionDataSource> data_source) {
  return gradient_from_file(core::load_safetensors(path), device, std::move(data_source));
}

// Optimizer archives --------------------------------------------------------------------------

namespace {

struct NamedState {
  const char* name;
  const OptimizerStateVectors* vectors;
};

// Every vector of one layer's optimizer, its settings and the step counter, in one file: a resume
// then continues with exactly the values the saved run would have used next.
void save_optimizer(const std::string& path, const char* kind, const json& settings,
                    std::span<const NamedState> states) {
  const ConvolutionDescriptor& d = states.front().vectors->descriptor();
  core::StFile file = header_file(kind, d, "");
  file.metadata["options"] = settings.dump();
  for (const NamedState& state : states) {
    const std::string weights = std::string(state.name) + ".weights";
    const std::string biases = std::string(state.name) + ".biases";
    if (!(state.vectors->descriptor() == d)) {
      throw InvalidArgument(std::string(kind) + "::save_state", state.name,
                            state.vectors->descriptor().to_string(),
                            "every optimizer vector must have the descriptor " + d.to_string());
    }
    file.tensors.push_back(float_tensor(weights.c_str(), state.vectors->read_weights(),
                                        {d.output_feature_channels(), d.kernel_height(),
                                         d.kernel_width(), d.input_feature_channels() / d.groups()}));
    if (d.bias_enabled()) {
      file.tensors.push_back(
          float_tensor(biases.c_str(), state.vectors->read_biases(), {d.output_feature_channels()}));
    }
  }
  core::save_safetensors(path, file);
}

// Reads the vectors into `states` (which must have the archived descriptor) and returns the
// settings.
json load_optimizer(const std::string& path, const char* kind, std::span<const NamedState> states) {
  const core::StFile file = core::load_safetensors(path);
  const ConvolutionDescriptor d = read_header(file, kind);
  for (const NamedState& state : states) {
    if (!(state.vectors->descriptor() == d)) {
      fail("the archived optimizer belongs to a " + d.to_string() + " layer, not to " +
           state.vectors->descriptor().to_string() + " (" + state.name + ")");
    }
  }
  const json settings = parse_json(metadata(file, "options"), "options");
  if (!settings.is_object()) fail("metadata \"options\" is not a JSON object");
  // Everything is read before anything is written, so a bad file changes no vector.
  std::vector<std::pair<std::vector<float>, std::vector<float>>> values;
  for (const NamedState& state : states) {
    const std::string weights = std::string(state.name) + ".weights";
    const std::string biases = std::string(state.name) + ".biases";
    values.emplace_back(
        read_floats(file, weights.c_str(),
                    {d.output_feature_channels(), d.kernel_height(), d.kernel_width(),
                     d.input_feature_channels() / d.groups()}),
        d.bias_enabled() ? read_floats(file, biases.c_str(), {d.output_feature_channels()})
                         : std::vector<float>());
  }
  for (std::size_t i = 0; i < states.size(); ++i) {
    auto& target = const_cast<OptimizerStateVectors&>(*states[i].vectors);
    target.write_weights(values[i].first);
    target.write_biases(values[i].second);
  }
  return settings;
}

json common_settings(const Optimizer& o) {
  return json{{"learning_rate", o.learning_rate()},
              {"gradient_rescale", o.gradient_rescale()},
              {"apply_gradient_clipping", o.apply_gradient_clipping()},
              {"regularization_type", static_cast<int>(o.regularization_type())},
              {"regularization_scale", o.regularization_scale()}};
}

}  // namespace

void StochasticGradientDescent::save_state(const std::string& path,
                                           const OptimizerStateVectors& momentum) const {
  json settings = common_settings(*this);
  settings["momentum_scale"] = momentum_scale_;
  settings["use_nesterov_momentum"] = use_nesterov_;
  const NamedState states[] = {{"momentum", &momentum}};
  save_optimizer(path, "StochasticGradientDescent", settings, states);
}

void StochasticGradientDescent::load_state(const std::string& path,
                                           OptimizerStateVectors& momentum) const {
  const NamedState states[] = {{"momentum", &momentum}};
  load_optimizer(path, "StochasticGradientDescent", states);
}

void RMSProp::save_state(const std::string& path,
                         const OptimizerStateVectors& sum_of_squares) const {
  json settings = common_settings(*this);
  settings["decay"] = decay_;
  settings["epsilon"] = epsilon_;
  const NamedState states[] = {{"sum_of_squares", &sum_of_squares}};
  save_optimizer(path, "RMSProp", settings, states);
}

void RMSProp::load_state(const std::string& path, OptimizerStateVectors& sum_of_squares) const {
  const NamedState states[] = {{"sum_of_squares", &sum_of_squares}};
  load_optimizer(path, "RMSProp", states);
}

void Adam::save_state(const std::string& path, const OptimizerStateVectors& momentum,
                      const OptimizerStateVectors& velocity,
                      const OptimizerStateVectors* maximum_velocity) const {
  if ((maximum_velocity != nullptr) != amsgrad_) {
    throw InvalidArgument("Adam::save_state", "amsgrad", amsgrad_ ? "true" : "false",
                          amsgrad_ ? "AMSGrad needs the maximum_velocity vectors"
                                   : "maximum_velocity vectors are used only with "
                                     "set_amsgrad(true)");
  }
  json settings = common_settings(*this);
  settings["beta1"] = beta1_;
  settings["beta2"] = beta2_;
  settings["epsilon"] = epsilon_;
  settings["time_step"] = time_step_;
  settings["amsgrad"] = amsgrad_;
  std::vector<NamedState> states{{"momentum", &momentum}, {"velocity", &velocity}};
  if (maximum_velocity != nullptr) states.push_back({"maximum_velocity", maximum_velocity});
  save_optimizer(path, "Adam", settings, states);
}

void Adam::load_state(const std::string& path, OptimizerStateVectors& momentum,
                      OptimizerStateVectors& velocity, OptimizerStateVectors* maximum_velocity) {
  if ((maximum_velocity != nullptr) != amsgrad_) {
    throw InvalidArgument("Adam::load_state", "amsgrad", amsgrad_ ? "true" : "false",
                          amsgrad_ ? "AMSGrad needs the maximum_velocity vectors"
                                   : "maximum_velocity vectors are used only with "
                                     "set_amsgrad(true)");
  }
  std::vector<NamedState> states{{"momentum", &momentum}, {"velocity", &velocity}};
  if (maximum_velocity != nullptr) states.push_back({"maximum_velocity", maximum_velocity});
  // The step counter is checked before any vector is written.
  const core::StFile file = core::load_safetensors(path);
  read_header(file, "Adam");
  const json peek = parse_json(metadata(file, "options"), "options");
  if (!peek.is_object()) fail("metadata \"options\" is not a JSON object");
  const std::int64_t step =
      integer_field(peek, "time_step", 0, std::numeric_limits<std::int64_t>::max(), "options");
  const auto amsgrad = peek.find("amsgrad");
  if (amsgrad == peek.end() || !amsgrad->is_boolean() || amsgrad->get<bool>() != amsgrad_) {
    fail(std::string("the archived Adam ") +
         (amsgrad_ ? "has no maximum_velocity vectors (saved without AMSGrad)"
                   : "was saved with AMSGrad; set_amsgrad(true) and pass maximum_velocity"));
  }
  load_optimizer(path, "Adam", states);
  time_step_ = step;
}

}  // namespace convgrad
