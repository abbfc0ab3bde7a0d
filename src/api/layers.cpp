// SPDX-License-Identifier: Apache-2.0
// ReLU, 2x2 max pooling and softmax cross-entropy (include/convgrad/layers.hpp): CPU loops here,
// the same loops on a CUDA device through dispatch (src/cuda/layers.cu).
#include "convgrad/layers.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "api/layer_support.hpp"
#include "convgrad/errors.hpp"
#include "convgrad/device_buffer.hpp"
#include "core/parallel.hpp"
#include "dispatch/device_work.hpp"

namespace convgrad {
namespace {

std::string str(std::int64_t v) { return std::to_string(v); }

std::string shape(const Image& image) {
  return str(image.number_of_images()) + "x" + str(image.height()) + "x" + str(image.width()) +
         "x" + str(image.feature_channels());
}

bool on_device(const Device& device) { return device.kind() != DeviceKind::cpu; }

void require(const Image& image, const Device& device, const char* name, const char* where) {
  api::require_image(image, device, name, where);
  if (image.data_type() != DataType::float32) {
    throw InvalidArgument(where, std::string(name) + ".data_type",
                          std::string(to_string(image.data_type())), "must be float32");
  }
}

void require_shape(const Image& image, std::int64_t n, std::int64_t h, std::int64_t w,
                   std::int64_t c, const char* name, const char* where, const char* rule) {
  if (image.number_of_images() != n || image.height() != h || image.width() != w ||
      image.feature_channels() != c) {
    throw InvalidArgument(
        where, std::string(name) + ".shape", shape(image),
        std::string(rule) + " (" + str(n) + "x" + str(h) + "x" + str(w) + "x" + str(c) + ", NHWC)");
  }
}

void require_same_shape(const Image& image, const Image& like, const char* name,
                        const char* like_name, const char* where) {
  require_shape(image, like.number_of_images(), like.height(), like.width(),
                like.feature_channels(), name, where,
                (std::string("must have the shape of ") + like_name).c_str());
}

void require_distinct(const Image& a, const Image& b, const char* name, const char* other,
                      const char* where) {
  if (a.shares_storage_with(b)) {
    throw InvalidArgument(where, name, "shares storage with " + std::string(other),
                          "must be a separate image");
  }
}

float* pixel(const TensorView& v, std::int64_t n, std::int64_t h, std::int64_t w) {
  return static_cast<float*>(v.data) + v.offset(n, h, w, 0);
}

// One task per image row, which keeps every chunk contiguous in memory.
template <typename Body>
void for_each_row(std::int64_t n, std::int64_t h, const Body& body) {
  core::parallel_for(n * h, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) body(i / h, i % h);
  });
}

}  // namespace

// ReLU -------------------------------------------------------------------------------------------

Relu::Relu(const Device& device) : device_(device) {}

Image Relu::encode(CommandBuffer& command_buffer, const Image& source) const {
  require(source, device_, "source_image", "Relu::encode");
  Image destination(device_, source.descriptor());
  encode(command_buffer, source, destination);
  return destination;
}

void Relu::encode(CommandBuffer& command_buffer, const Image& source,
                  const Image& destination) const {
  const char* where = "Relu::encode";
  require(source, device_, "source_image", where);
  require(destination, device_, "destination_image", where);
  require_same_shape(destination, source, "destination_image", "source_image", where);
  if (on_device(device_)) {
    command_buffer.enqueue(
        [source, destination] { dispatch::relu_forward(source.view(), destination.view()); });
    return;
  }
  command_buffer.enqueue([source, destination] {
    const TensorView x = source.view(), y = destination.view();
    const std::int64_t w = x.dims[2], c = x.dims[3];
    for_each_row(x.dims[0], x.dims[1], [&](std::int64_t n, std::int64_t h) {
      for (std::int64_t j = 0; j < w; ++j) {
        const float* in = pixel(x, n, h, j);
        float* out = pixel(y, n, h, j);
        for (std::int64_t k = 0; k < c; ++k) out[k] = in[k] > 0.0f ? in[k] : 0.0f;
      }
    });
  });
}

ReluGradient::ReluGradient(const Device& device) : device_(device) {}

Image ReluGradient::encode(CommandBuffer& command_buffer, const Image& source_gradient,
                           const Image& source) const {
  require(source, device_, "source_image", "ReluGradient::encode");
  Image destination(device_, source.descriptor());
  encode(command_buffer, source_gradient, source, destination);
  return destination;
}

void ReluGradient::encode(CommandBuffer& command_buffer, const Image& source_gradient,
                          const Image& source, const Image& destination_gradient) const {
  const char* where = "ReluGradient::encode";
  require(source_gradient, device_, "source_gradient", where);
  require(source, device_, "source_image", where);
  require(destination_gradient, device_, "destination_gradient", where);
  require_same_shape(source_gradient, source, "source_gradient", "source_image", where);
  require_same_shape(destination_gradient, source, "destination_gradient", "source_image", where);
  if (on_device(device_)) {
    command_buffer.enqueue([source_gradient, source, destination_gradient] {
      dispatch::relu_backward(source_gradient.view(), source.view(), destination_gradient.view());
    });
    return;
  }
  command_buffer.enqueue([source_gradient, source, destination_gradient] {
    const TensorView dy = source_gradient.view(), x = source.view(),
                     dx = destination_gradient.view();
    const std::int64_t w = x.dims[2], c = x.dims[3];
    for_each_row(x.dims[0], x.dims[1], [&](std::int64_t n, std::int64_t h) {
      for (std::int64_t j = 0; j < w; ++j) {
        const float* g = pixel(dy, n, h, j);
        const float* in = pixel(x, n, h, j);
        float* out = pixel(dx, n, h, j);
        for (std::int64_t k = 0; k < c; ++k) out[k] = in[k] > 0.0f ? g[k] : 0.0f;
      }
    });
  });
}

// Max pooling ------------------------------------------------------------------------------------

MaxPooling::MaxPooling(const Device& device) : device_(device) {}

ImageDescriptor MaxPooling::destination_image_descriptor(const Image& source) const {
  const char* where = "MaxPooling::destination_image_descriptor";
  require(source, device_, "source_image", where);
  if (source.height() < 2) {
    throw InvalidArgument(where, "source_image.height", str(source.height()), "must be >= 2");
  }
  if (source.width() < 2) {
    throw InvalidArgument(where, "source_image.width", str(source.width()), "must be >= 2");
  }
  ImageDescriptor d = source.descriptor();
  d.height = source.height() / 2;
  d.width = source.width() / 2;
  return d;
}

Image MaxPooling::encode(CommandBuffer& command_buffer, const Image& source) const {
  Image destination(device_, destination_image_descriptor(source));
  encode(command_buffer, source, destination);
  return destination;
}

void MaxPooling::encode(CommandBuffer& command_buffer, const Image& source,
                        const Image& destination) const {
  const char* where = "MaxPooling::encode";
  const ImageDescriptor d = destination_image_descriptor(source);
  require(destination, device_, "destination_image", where);
  require_shape(destination, d.number_of_images, d.height, d.width, d.feature_channels,
                "destination_image", where, "must be the source pooled 2x2 with stride 2");
  require_distinct(destination, source, "destination_image", "source_image", where);
  if (on_device(device_)) {
    command_buffer.enqueue(
        [source, destination] { dispatch::max_pool_forward(source.view(), destination.view()); });
    return;
  }
  command_buffer.enqueue([source, destination] {
    const TensorView x = source.view(), y = destination.view();
    const std::int64_t q = y.dims[2], c = y.dims[3];
    for_each_row(y.dims[0], y.dims[1], [&](std::int64_t n, std::int64_t p) {
      for (std::int64_t j = 0; j < q; ++j) {
        const float* a = pixel(x, n, 2 * p, 2 * j);
        const float* b = pixel(x, n, 2 * p, 2 * j + 1);
        const float* e = pixel(x, n, 2 * p + 1, 2 * j);
        const float* f = pixel(x, n, 2 * p + 1, 2 * j + 1);
        float* out = pixel(y, n, p, j);
        for (std::int64_t k = 0; k < c; ++k) {
          out[k] = std::max(std::max(a[k], b[k]), std::max(e[k], f[k]));
        }
      }
    });
  });
}

MaxPoolingGradient::MaxPoolingGradient(const Device& device)
    : device_(device) {}

Image MaxPoolingGradient::encode(CommandBuffer& command_buffer, const Image& source_gradient,
                                 const Image& source) const {
  require(source, device_, "source_image", "MaxPoolingGradient::encode");
  Image destination(device_, source.descriptor());
  encode(command_buffer, source_gradient, source, destination);
  return destination;
}

void MaxPoolingGradient::encode(CommandBuffer& command_buffer, const Image& source_gradient,
                                const Image& source, const Image& destination_gradient) const {
  const char* where = "MaxPoolingGradient::encode";
  require(source_gradient, device_, "source_gradient", where);
  const ImageDescriptor d = MaxPooling(device_).destination_image_descriptor(source);
  require(destination_gradient, device_, "destination_gradient", where);
  require_shape(source_gradient, d.number_of_images, d.height, d.width, d.feature_channels,
                "source_gradient", where, "must be the source pooled 2x2 with stride 2");
  require_same_shape(destination_gradient, source, "destination_gradient", "source_image", where);
  require_distinct(destination_gradient, source, "destination_gradient", "source_image", where);
  require_distinct(destination_gradient, source_gradient, "destination_gradient", "source_gradient",
                   where);
  if (on_device(device_)) {
    command_buffer.enqueue([source_gradient, source, destination_gradient] {
      dispatch::max_pool_backward(source_gradient.view(), source.view(),
                                  destination_gradient.view());
    });
    return;
  }
  command_buffer.enqueue([source_gradient, source, destination_gradient] {
    const TensorView dy = source_gradient.view(), x = source.view(),
                     dx = destination_gradient.view();
    const std::int64_t h_in = x.dims[1], w_in = x.dims[2], c = x.dims[3];
    const std::int64_t q = dy.dims[2];
    // One task per source row pair; an odd last row and column receive no gradient.
    for_each_row(x.dims[0], h_in, [&](std::int64_t n, std::int64_t h) {
      if (h % 2 == 1) return;  // the even row's task writes both rows of the window
      const std::int64_t p = h / 2;
      for (std::int64_t r = h; r < std::min(h + 2, h_in); ++r) {
        for (std::int64_t j = 0; j < w_in; ++j) std::fill_n(pixel(dx, n, r, j), c, 0.0f);
      }
      if (p >= dy.dims[1]) return;
      for (std::int64_t j = 0; j < q; ++j) {
        const float* g = pixel(dy, n, p, j);
        const float* window[4] = {pixel(x, n, 2 * p, 2 * j), pixel(x, n, 2 * p, 2 * j + 1),
                                  pixel(x, n, 2 * p + 1, 2 * j), pixel(x, n, 2 * p + 1, 2 * j + 1)};
        float* out[4] = {pixel(dx, n, 2 * p, 2 * j), pixel(dx, n, 2 * p, 2 * j + 1),
                         pixel(dx, n, 2 * p + 1, 2 * j), pixel(dx, n, 2 * p + 1, 2 * j + 1)};
        for (std::int64_t k = 0; k < c; ++k) {
          int best = 0;
          for (int t = 1; t < 4; ++t) {
            // Strictly greater keeps the first of equal maxima; a NaN never wins.
            if (window[t][k] > window[best][k]) best = t;
          }
          out[best][k] = g[k];
        }
      }
    });
  });
}

// Softmax cross-entropy --------------------------------------------------------------------------

SoftmaxCrossEntropyLoss::SoftmaxCrossEntropyLoss(const Device& device)
    : device_(device) {}

SoftmaxCrossEntropyLoss::Result SoftmaxCrossEntropyLoss::encode(
    CommandBuffer& command_buffer, const Image& logits,
    const std::vector<std::int32_t>& labels) const {
  require(logits, device_, "logits", "SoftmaxCrossEntropyLoss::encode");
  Result result{Image(device_, ImageDescriptor{}), Image(device_, logits.descriptor())};
  encode(command_buffer, logits, labels, result.loss, result.gradient);
  return result;
}

void SoftmaxCrossEntropyLoss::encode(CommandBuffer& command_buffer, const Image& logits,
                                     const std::vector<std::int32_t>& labels, const Image& loss,
                                     const Image& gradient) const {
  const char* where = "SoftmaxCrossEntropyLoss::encode";
  require(logits, device_, "logits", where);
  require(loss, device_, "loss", where);
  require(gradient, device_, "gradient", where);
  const std::int64_t n = logits.number_of_images(), c = logits.feature_channels();
  require_shape(logits, n, 1, 1, c, "logits", where, "must be 1x1 pixels per image");
  require_same_shape(gradient, logits, "gradient", "logits", where);
  require_shape(loss, 1, 1, 1, 1, "loss", where, "must hold one value");
  require_distinct(gradient, logits, "gradient", "logits", where);
  require_distinct(loss, logits, "loss", "logits", where);
  require_distinct(loss, gradient, "loss", "gradient", where);
  if (static_cast<std::int64_t>(labels.size()) != n) {
    throw InvalidArgument(where, "labels.size()", str(static_cast<std::int64_t>(labels.size())),
                          "must equal logits.number_of_images (" + str(n) + ")");
  }
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= c) {
      throw InvalidArgument(where, "labels[" + std::to_string(i) + "]", str(labels[i]),
                            "must be in [0, logits.feature_channels = " + str(c) + ")");
    }
  }
  if (on_device(device_)) {
    // The labels go to the device now (the caller may reuse its vector); the per-image losses
    // need scratch there. Both live as long as the work.
    struct Scratch {
      DeviceBuffer labels, per_image;
    };
    auto scratch = std::make_shared<Scratch>(
        Scratch{DeviceBuffer(device_, labels.size() * sizeof(std::int32_t)),
                DeviceBuffer(device_, labels.size() * sizeof(double))});
    scratch->labels.copy_from_host(labels.data(), labels.size() * sizeof(std::int32_t));
    command_buffer.enqueue([logits, loss, gradient, scratch] {
      dispatch::softmax_cross_entropy(logits.view(),
                                      static_cast<const std::int32_t*>(scratch->labels.data()),
                                      static_cast<double*>(scratch->per_image.data()),
                                      static_cast<float*>(loss.view().data), gradient.view());
    });
    return;
  }
  command_buffer.enqueue([logits, labels, loss, gradient] {
    const TensorView z = logits.view(), dz = gradient.view();
    const std::int64_t batch = z.dims[0], classes = z.dims[3];
    const double scale = 1.0 / static_cast<double>(batch);
    std::vector<double> per_image(static_cast<std::size_t>(batch));
    core::parallel_for(batch, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        const float* in = pixel(z, i, 0, 0);
        float* out = pixel(dz, i, 0, 0);
        const double top = *std::max_element(in, in + classes);
        double sum = 0.0;
        for (std::int64_t k = 0; k < classes; ++k) sum += std::exp(in[k] - top);
        const double log_sum = std::log(sum);
        const std::int32_t label = labels[static_cast<std::size_t>(i)];
        per_image[static_cast<std::size_t>(i)] = log_sum - (in[label] - top);
        for (std::int64_t k = 0; k < classes; ++k) {
          const double p = std::exp(in[k] - top - log_sum);
          out[k] = static_cast<float>((p - (k == label ? 1.0 : 0.0)) * scale);
        }
      }
    });
    double total = 0.0;  // summed in order so the loss does not depend on the thread count
    for (double v : per_image) total += v;
    *static_cast<float*>(loss.view().data) = static_cast<float>(total * scale);
  });
}

}  // namespace convgrad
