// SPDX-License-Identifier: Apache-2.0
// The reference backend against oneDNN: random problems over every feature, three directions
// each, dense and strided views, float32 and 16-bit storage. oneDNN is an independent
// implementation, so agreement here is what lets the reference judge every other backend.
//
// Routes to oneDNN. Our layouts are oneDNN's `nhwc` images and `ohwi` / `gohwi` weights, so
// dense float32 copies are passed as they are. oneDNN 2.6 requires padding_l >= 0 and
// padding_r > -stride. A problem is first offered as it is ("direct"); when oneDNN refuses it
// (negative start pads, end pads at or below -stride), the rows and columns that negative pads
// skip are cropped from the image and the pads clamped to zero ("cropped"): the same convolution,
// with dx zero on the cropped border. Refusals are counted by kind and printed; they do not fail.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <dnnl.hpp>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "convgrad/dtype.hpp"
#include "convgrad/functional.hpp"
#include "convgrad/problem.hpp"
#include "support/oracle_support.hpp"
#include "support/tensors.hpp"

namespace convgrad {
namespace {

using dnnl::memory;
using test::Layout;
using test::StridedTensor;

// fp32: oneDNN sums in float32 in its own order; for reductions of at most a few hundred terms
// of uniform data the difference to the double-accumulating reference stays near 1e-6 of the
// largest output.
constexpr double kFp32Tolerance = 1e-5;
// 16-bit storage: the reference rounds only its output, by up to 2^-8 of the value in bfloat16
// (8 significant bits; 2^-11 in float16); oneDNN runs in float32 on the same rounded inputs.
constexpr double kLowPrecisionTolerance = 1e-2;

// ------------------------------------------------------------------------------------------------
// oneDNN

// Single-threaded oneDNN: these problems are far too small to gain from threads, and idle OpenMP
// workers spin for milliseconds after each primitive, starving the reference's own threads on a
// loaded machine (a 5x slowdown on 2 cores). libgomp comes in through libdnnl, not through our
// link line, hence the lookup instead of a call.
void single_threaded_onednn() {
#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
  using SetThreads = void (*)(int);
  if (void* symbol = dlsym(RTLD_DEFAULT, "omp_set_num_threads")) {
    reinterpret_cast<SetThreads>(symbol)(1);
  }
#endif
}

dnnl::engine& cpu_engine() {
  static dnnl::engine engine = [] {
    single_threaded_onednn();
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return engine;
}

dnnl::stream& cpu_stream() {
  static dnnl::stream stream(cpu_engine());
  return stream;
}

// oneDNN declined to create a primitive descriptor for the problem.
struct Refused {
  std::string direction;
};

struct OnednnShapes {
  memory::desc src, weights, bias, dst;
  memory::dims strides, dilates, padding_l, padding_r;

  explicit OnednnShapes(const ConvProblem& p)
      : src({p.n, p.c, p.h, p.w}, memory::data_type::f32, memory::format_tag::nhwc),
        weights(p.groups == 1 ? memory::desc({p.k, p.c, p.r, p.s}, memory::data_type::f32,
                                             memory::format_tag::ohwi)
                              : memory::desc({p.groups, p.k_per_group(), p.c_per_group(), p.r, p.s},
                                             memory::data_type::f32, memory::format_tag::gohwi)),
        bias({p.k}, memory::data_type::f32, memory::format_tag::x),
        dst({p.n, p.k, p.p, p.q}, memory::data_type::f32, memory::format_tag::nhwc),
        strides{p.stride_h, p.stride_w},
        dilates{p.dilation_h - 1, p.dilation_w - 1},  // oneDNN counts dilation from 0
        padding_l{p.pad_top, p.pad_left},
        padding_r{p.pad_bottom, p.pad_right} {}
};

template <class Make>
auto create_or_refuse(const char* direction, Make make) {
  try {
    return make();
  } catch (const dnnl::error& error) {
    if (error.status == dnnl_unimplemented || error.status == dnnl_invalid_arguments) {
      throw Refused{direction};
    }
    throw;
  }
}

dnnl::convolution_forward::primitive_desc forward_pd(const ConvProblem& p, const OnednnShapes& s) {
  return create_or_refuse("fprop", [&] {
    using dnnl::convolution_forward;
    const auto desc =
        p.with_bias
            ? convolution_forward::desc(
                  dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, s.src,
                  s.weights, s.bias, s.dst, s.strides, s.dilates, s.padding_l, s.padding_r)
            : convolution_forward::desc(dnnl::prop_kind::forward_training,
                                        dnnl::algorithm::convolution_direct, s.src, s.weights,
                                        s.dst, s.strides, s.dilates, s.padding_l, s.padding_r);
    return convolution_forward::primitive_desc(desc, cpu_engine());
  });
}

memory wrap(const memory::desc& desc, std::vector<float>& data) {
  return memory(desc, cpu_engine(), data.data());
}

// Dense float32 tensors in our layouts (NHWC images, OHWI weights).
struct Tensors {
  std::vector<float> x, w, b, y;
};

// All three directions: `in` holds x, w, b and dy (in `y`); the result holds y, dx (in `x`),
// dw (in `w`) and db (in `b`).
Tensors onednn_all(const ConvProblem& p, Tensors in) {
  const OnednnShapes s(p);
  const auto fwd = forward_pd(p, s);
  const auto bwd_data = create_or_refuse("dgrad", [&] {
    const dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, s.src,
                                                     s.weights, s.dst, s.strides, s.dilates,
                                                     s.padding_l, s.padding_r);
    return dnnl::convolution_backward_data::primitive_desc(desc, cpu_engine(), fwd);
  });
  const auto bwd_weights = create_or_refuse("wgrad", [&] {
    using dnnl::convolution_backward_weights;
    const auto desc =
        p.with_bias ? convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, s.src,
                                                         s.weights, s.bias, s.dst, s.strides,
                                                         s.dilates, s.padding_l, s.padding_r)
                    : convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, s.src,
                                                         s.weights, s.dst, s.strides, s.dilates,
                                                         s.padding_l, s.padding_r);
    return convolution_backward_weights::primitive_desc(desc, cpu_engine(), fwd);
  });

  Tensors out;
  out.y.assign(static_cast<std::size_t>(y_elements(p)), 0.0f);
  out.x.assign(static_cast<std::size_t>(x_elements(p)), 0.0f);
  out.w.assign(static_cast<std::size_t>(w_elements(p)), 0.0f);
  out.b.assign(static_cast<std::size_t>(p.k), 0.0f);
  dnnl::stream& stream = cpu_stream();

  std::unordered_map<int, memory> fwd_args{{DNNL_ARG_SRC, wrap(s.src, in.x)},
                                           {DNNL_ARG_WEIGHTS, wrap(s.weights, in.w)},
                                           {DNNL_ARG_DST, wrap(s.dst, out.y)}};
  if (p.with_bias) fwd_args.emplace(DNNL_ARG_BIAS, wrap(s.bias, in.b));
  dnnl::convolution_forward(fwd).execute(stream, fwd_args);

  dnnl::convolution_backward_data(bwd_data).execute(stream,
                                                    {{DNNL_ARG_DIFF_DST, wrap(s.dst, in.y)},
                                                     {DNNL_ARG_WEIGHTS, wrap(s.weights, in.w)},
                                                     {DNNL_ARG_DIFF_SRC, wrap(s.src, out.x)}});

  std::unordered_map<int, memory> bwd_args{{DNNL_ARG_SRC, wrap(s.src, in.x)},
                                           {DNNL_ARG_DIFF_DST, wrap(s.dst, in.y)},
                                           {DNNL_ARG_DIFF_WEIGHTS, wrap(s.weights, out.w)}};
  if (p.with_bias) bwd_args.emplace(DNNL_ARG_DIFF_BIAS, wrap(s.bias, out.b));
  dnnl::convolution_backward_weights(bwd_weights).execute(stream, bwd_args);
  stream.wait();
  return out;
}

// ------------------------------------------------------------------------------------------------
// Cropping: negative pads as a smaller image.

struct Crop {
  std::int64_t top = 0, bottom = 0, left = 0, right = 0;
};

// The rows and columns that negative pads skip lie outside every window, so removing them and
// clamping the pads to zero keeps p, q and every window's contents. Empty when nothing is left.
std::optional<std::pair<ConvProblem, Crop>> cropped(const ConvProblem& p) {
  Crop crop;
  crop.top = std::max(0, -p.pad_top);
  crop.bottom = std::max(0, -p.pad_bottom);
  crop.left = std::max(0, -p.pad_left);
  crop.right = std::max(0, -p.pad_right);
  ConvProblem c = p;
  c.h = p.h - crop.top - crop.bottom;
  c.w = p.w - crop.left - crop.right;
  c.pad_top = std::max(0, p.pad_top);
  c.pad_bottom = std::max(0, p.pad_bottom);
  c.pad_left = std::max(0, p.pad_left);
  c.pad_right = std::max(0, p.pad_right);
  if (c.h < 1 || c.w < 1) return std::nullopt;
  return std::pair{c, crop};
}

std::vector<float> crop_image(const std::vector<float>& full, const ConvProblem& p,
                              const ConvProblem& c, const Crop& crop) {
  std::vector<float> out(static_cast<std::size_t>(x_elements(c)));
  for (std::int64_t n = 0; n < c.n; ++n)
    for (std::int64_t h = 0; h < c.h; ++h)
      for (std::int64_t w = 0; w < c.w; ++w)
        for (std::int64_t ch = 0; ch < c.c; ++ch)
          out[static_cast<std::size_t>(((n * c.h + h) * c.w + w) * c.c + ch)] =
              full[static_cast<std::size_t>(((n * p.h + h + crop.top) * p.w + w + crop.left) * p.c +
                                            ch)];
  return out;
}

std::vector<float> uncrop_image(const std::vector<float>& small, const ConvProblem& p,
                                const ConvProblem& c, const Crop& crop) {
  std::vector<float> out(static_cast<std::size_t>(x_elements(p)), 0.0f);
  for (std::int64_t n = 0; n < c.n; ++n)
    for (std::int64_t h = 0; h < c.h; ++h)
      for (std::int64_t w = 0; w < c.w; ++w)
        for (std::int64_t ch = 0; ch < c.c; ++ch)
          out[static_cast<std::size_t>(((n * p.h + h + crop.top) * p.w + w + crop.left) * p.c +
                                       ch)] =
              small[static_cast<std::size_t>(((n * c.h + h) * c.w + w) * c.c + ch)];
  return out;
}

// Which rule of oneDNN a refused problem touches, for the printed tally.
std::string refusal_kind(const ConvProblem& p, const Refused& refused, const char* route) {
  std::string kind = std::string(route) + " " + refused.direction + ": ";
  if (std::min(p.pad_top, p.pad_left) < 0) return kind + "negative start pad";
  if (p.pad_bottom <= -p.stride_h || p.pad_right <= -p.stride_w) {
    return kind + "end pad <= -stride";
  }
  if (std::min(p.pad_bottom, p.pad_right) < 0) return kind + "negative end pad > -stride";
  return kind + "other";
}

class Oracle {
 public:
  // The three directions from oneDNN, or empty when it refuses every route.
  std::optional<Tensors> run(const ConvProblem& p, const Tensors& in) {
    try {
      Tensors out = onednn_all(p, in);
      last_cropped_ = false;
      return out;
    } catch (const Refused& refused) {
      ++refused_[refusal_kind(p, refused, "direct")];
    }
    const auto crop = cropped(p);
    if (!crop || crop->first == p) {
      ++refused_[crop ? "no route: refused without negative pads" : "no route: empty crop"];
      return std::nullopt;
    }
    const auto& [c, box] = *crop;
    try {
      Tensors small = onednn_all(c, {crop_image(in.x, p, c, box), in.w, in.b, in.y});
      small.x = uncrop_image(small.x, p, c, box);
      last_cropped_ = true;
      return small;
    } catch (const Refused& refused) {
      ++refused_[refusal_kind(c, refused, "cropped")];
      return std::nullopt;
    }
  }

  // Counts the route of the last run as one that ran (problems redrawn afterwards do not count).
  void count_route(const ConvProblem& p) {
    ++(last_cropped_ ? cropped_ : direct_);
    if (!last_cropped_ && std::min(p.pad_bottom, p.pad_right) < 0) ++direct_negative_end_;
  }
  std::int64_t direct() const { return direct_; }
  std::int64_t direct_negative_end() const { return direct_negative_end_; }
  std::int64_t cropped_count() const { return cropped_; }
  std::string refusals() const {
    std::string out;
    for (const auto& [kind, count] : refused_) {
      out += "\n    " + std::to_string(count) + " x " + kind;
    }
    return out.empty() ? " none" : out;
  }

 private:
  std::int64_t direct_ = 0, cropped_ = 0, direct_negative_end_ = 0;
  bool last_cropped_ = false;
  std::map<std::string, std::int64_t> refused_;
};

// ------------------------------------------------------------------------------------------------
// The suites

struct SuiteSpec {
  const char* name;
  std::uint64_t salt;
  std::int64_t problems;  // that must run against oneDNN
  test::DrawSpec draw;
  Layout layout = Layout::dense;
  // Storage types: fixed, or drawn per tensor when `mixed`.
  DataType type = DataType::float32;
  bool mixed = false;
  // Keep only problems whose end pads are negative (the implied-pad suite).
  bool negative_end_pads_only = false;
  double tolerance = kFp32Tolerance;
  // Require that the problems that ran covered every feature of test::required_features().
  bool require_coverage = false;
};

std::array<std::int64_t, 4> image_dims(const ConvProblem& p) { return {p.n, p.h, p.w, p.c}; }
std::array<std::int64_t, 4> filter_dims(const ConvProblem& p) {
  return {p.k, p.r, p.s, p.c_per_group()};
}
std::array<std::int64_t, 4> output_dims(const ConvProblem& p) { return {p.n, p.p, p.q, p.k}; }
std::array<std::int64_t, 4> bias_dims(const ConvProblem& p) { return {p.k, 1, 1, 1}; }

// What one output of the reference must match: oneDNN's values up to the tolerance plus `slack`
// per element, and exactly `unreached` where no tap reaches (see test::reached).
struct Want {
  const std::vector<float>& values;
  std::vector<float> slack;
  std::vector<bool> mask;
  std::vector<float> unreached;
};

// oneDNN sums `terms` float32 products per element, so it may miss the exact sum by up to about
// terms * u * sum|products| (the classic gamma_n bound of recursive summation). Where the products
// cancel, that exceeds 1e-5 of the largest output: db of one or two channels, ~300 uniform terms
// summing near zero, misses by 5e-5 now and then. So each element may also miss by twice that
// bound. The reference sums in double, so the slack covers oneDNN's error only; an indexing
// mistake misses by whole products, far beyond it. `magnitudes` holds sum|products| per element.
std::vector<float> summation_slack(const std::vector<float>& magnitudes, std::int64_t terms) {
  std::vector<float> slack(magnitudes.size());
  for (std::size_t i = 0; i < slack.size(); ++i) {
    slack[i] = static_cast<float>(2.0 * static_cast<double>(terms) * 0x1p-24 * magnitudes[i]);
  }
  return slack;
}

// sum|products| of every output element: the three directions on the absolute values of the
// inputs, by the reference in float32 (exact enough for a bound).
Tensors magnitudes(ConvProblem p, const Tensors& in) {
  p.x_type = p.w_type = p.y_type = DataType::float32;
  const auto absolute = [](std::vector<float> values) {
    for (float& value : values) value = std::abs(value);
    return values;
  };
  const auto dense = [](const std::vector<float>& values, const std::array<std::int64_t, 4>& d) {
    test::HostTensor tensor(DataType::float32, d[0], d[1], d[2], d[3]);
    for (std::size_t i = 0; i < values.size(); ++i) {
      tensor.set(static_cast<std::int64_t>(i), values[i]);
    }
    return tensor;
  };
  const test::HostTensor x = dense(absolute(in.x), {p.n, p.h, p.w, p.c});
  const test::HostTensor w = dense(absolute(in.w), {p.k, p.r, p.s, p.c_per_group()});
  const test::HostTensor b = dense(absolute(in.b), {p.k, 1, 1, 1});
  const test::HostTensor dy = dense(absolute(in.y), {p.n, p.p, p.q, p.k});
  test::HostTensor y(DataType::float32, p.n, p.p, p.q, p.k);
  test::HostTensor dx(DataType::float32, p.n, p.h, p.w, p.c);
  test::HostTensor dw(DataType::float32, p.k, p.r, p.s, p.c_per_group());
  test::HostTensor db(DataType::float32, p.k, 1, 1, 1);
  RunOptions ref;
  ref.backend = "ref";
  fprop(p, x.view(), w.view(), p.with_bias ? b.view() : TensorView{}, y.view(), ref);
  dgrad(p, dy.view(), w.view(), dx.view(), ref);
  wgrad(p, x.view(), dy.view(), dw.view(), p.with_bias ? db.view() : TensorView{}, ref);
  return {dx.to_floats(), dw.to_floats(), db.to_floats(), y.to_floats()};
}

// Compares one output of the reference with oneDNN's; returns whether it passed. `max_error`
// collects the plain relative error, before any slack.
bool check_output(const char* name, const StridedTensor& got_tensor, const Want& want,
                  double tolerance, double& max_error) {
  const std::vector<float> got = got_tensor.gather();
  const std::int64_t unwritten = test::count_nan(got);
  const std::int64_t outside = got_tensor.outside_written();
  const bool mostly_zero = test::mostly_zero_where(got, want.mask);
  const double plain = test::relative_error(got, want.values);
  max_error = std::max(max_error, plain);
  double largest = 0.0, beyond_slack = 0.0;
  std::int64_t wrong_unreached = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double miss = std::abs(static_cast<double>(got[i]) - want.values[i]);
    beyond_slack = std::max(beyond_slack, miss - want.slack[i]);
    largest = std::max(largest, std::abs(static_cast<double>(want.values[i])));
    if (!want.mask[i] && got[i] != want.unreached[i]) ++wrong_unreached;
  }
  // relative_error is infinite when NaNs disagree; the slack never excuses that.
  const double error =
      std::isinf(plain) || largest == 0.0 ? plain : std::min(plain, beyond_slack / largest);
  EXPECT_EQ(unwritten, 0) << name << ": the reference left elements unwritten (NaN)";
  EXPECT_EQ(outside, 0) << name << ": the reference wrote outside its view";
  EXPECT_FALSE(mostly_zero) << name << ": the reference output is mostly zeros where taps reach";
  EXPECT_EQ(wrong_unreached, 0) << name << ": elements no tap reaches are not exactly "
                                << (name[0] == 'f' ? "the bias" : "zero");
  EXPECT_LE(error, tolerance) << name << ": relative error against oneDNN beyond its float32 "
                              << "summation bound (plain relative error " << plain << ")";
  return unwritten == 0 && outside == 0 && !mostly_zero && wrong_unreached == 0 &&
         error <= tolerance;
}

void run_suite(const SuiteSpec& spec) {
  std::mt19937_64 rng = test::make_rng(spec.salt);
  RunOptions ref;
  ref.backend = "ref";
  Oracle oracle;
  test::Census census;
  std::int64_t ran = 0, drawn = 0, mostly_zero = 0, filtered = 0, failures = 0;
  double max_error = 0.0;
  const std::int64_t max_draws = spec.problems * 20;
  while (ran < spec.problems && drawn < max_draws && failures < 10) {
    ConvProblem p = test::draw_problem(rng, spec.draw, static_cast<std::size_t>(drawn++));
    if (spec.negative_end_pads_only) {
      p = test::with_implied_end_pads(p);
      if (std::min(p.pad_bottom, p.pad_right) >= 0) {
        ++filtered;
        continue;
      }
    }
    const auto draw_type = [&] {
      if (!spec.mixed) return spec.type;
      constexpr std::array<DataType, 3> types{DataType::float32, DataType::float16,
                                              DataType::bfloat16};
      return types[std::uniform_int_distribution<std::size_t>(0, 2)(rng)];
    };
    p.x_type = draw_type();
    p.w_type = draw_type();
    p.y_type = draw_type();
    SCOPED_TRACE(test::describe(p) + "; " + test::repro_hint());

    StridedTensor x(p.x_type, image_dims(p), spec.layout, rng);
    StridedTensor w(p.w_type, filter_dims(p), spec.layout, rng);
    StridedTensor b(DataType::float32, bias_dims(p), spec.layout, rng);
    StridedTensor dy(p.y_type, output_dims(p), spec.layout, rng);
    for (StridedTensor* t : {&x, &w, &b, &dy}) t->fill_uniform(rng);
    // oneDNN sees the stored (rounded) values as dense float32.
    const Tensors in{x.gather(), w.gather(), b.gather(), dy.gather()};

    const std::optional<Tensors> want = oracle.run(p, in);
    if (!want) continue;
    std::vector<float> bias_at_y(want->y.size(), 0.0f);
    if (p.with_bias) {
      const std::vector<float> bias = test::rounded(in.b, p.y_type);
      for (std::size_t i = 0; i < bias_at_y.size(); ++i) {
        bias_at_y[i] = bias[i % static_cast<std::size_t>(p.k)];
      }
    }
    const Tensors scale = magnitudes(p, in);
    const std::int64_t window = p.c_per_group() * p.r * p.s + 1;  // + 1: the bias
    const std::int64_t taps = p.k_per_group() * p.r * p.s;
    const std::int64_t outputs = p.n * p.p * p.q;
    const Want want_y{want->y, summation_slack(scale.y, window), test::reached(p, Direction::fprop),
                      bias_at_y};
    const Want want_dx{want->x, summation_slack(scale.x, taps), test::reached(p, Direction::dgrad),
                       std::vector<float>(want->x.size(), 0.0f)};
    const Want want_dw{want->w, summation_slack(scale.w, outputs),
                       test::reached(p, Direction::wgrad),
                       std::vector<float>(want->w.size(), 0.0f)};
    const Want want_db{
        want->b, summation_slack(scale.b, outputs), std::vector<bool>(want->b.size(), true), {}};
    if (test::mostly_zero_where(want->y, want_y.mask) ||
        test::mostly_zero_where(want->x, want_dx.mask) ||
        test::mostly_zero_where(want->w, want_dw.mask) ||
        (p.with_bias && test::mostly_zero(want->b))) {
      ++mostly_zero;  // windows wholly in the padding: redraw
      continue;
    }
    ++ran;
    oracle.count_route(p);
    census.add(p);

    StridedTensor y(p.y_type, output_dims(p), spec.layout, rng);
    StridedTensor dx(p.x_type, image_dims(p), spec.layout, rng);
    StridedTensor dw(p.w_type, filter_dims(p), spec.layout, rng);
    StridedTensor db(DataType::float32, bias_dims(p), spec.layout, rng);
    bool ok = true;
    try {
      fprop(p, x.view(), w.view(), p.with_bias ? b.view() : TensorView{}, y.view(), ref);
      dgrad(p, dy.view(), w.view(), dx.view(), ref);
      wgrad(p, x.view(), dy.view(), dw.view(), p.with_bias ? db.view() : TensorView{}, ref);
    } catch (const std::exception& error) {
      ADD_FAILURE() << "the reference threw: " << error.what();
      ++failures;
      continue;
    }
    ok &= check_output("fprop y", y, want_y, spec.tolerance, max_error);
    ok &= check_output("dgrad dx", dx, want_dx, spec.tolerance, max_error);
    ok &= check_output("wgrad dw", dw, want_dw, spec.tolerance, max_error);
    if (p.with_bias) {
      ok &= check_output("wgrad db", db, want_db, spec.tolerance, max_error);
      // db is simple enough to get exactly without oneDNN, whose float32 sum is the loose one.
      std::vector<double> sums(static_cast<std::size_t>(p.k), 0.0);
      for (std::size_t i = 0; i < in.y.size(); ++i) sums[i % sums.size()] += in.y[i];
      const std::vector<float> exact(sums.begin(), sums.end());
      const double error = test::relative_error(db.gather(), exact);
      EXPECT_LE(error, 1e-6) << "wgrad db: not the sum of dy rounded once";
      ok &= error <= 1e-6;
    }
    if (!ok) ++failures;
  }
  std::cout << "[oracle] " << spec.name << ": " << ran << " problems ran against oneDNN ("
            << oracle.direct() << " direct (" << oracle.direct_negative_end()
            << " of them with negative end pads), " << oracle.cropped_count() << " cropped), "
            << drawn << " drawn, " << mostly_zero << " redrawn as mostly zero, " << filtered
            << " filtered; largest relative error " << max_error
            << "; oneDNN refused:" << oracle.refusals() << "\n  census: " << census.summary()
            << "\n";
  EXPECT_LT(failures, 10) << "stopped after 10 failing problems";
  if (spec.require_coverage) {
    for (const std::string& feature : test::required_features()) {
      EXPECT_GT(census.count(feature), 0) << "no problem with " << feature << " ran";
    }
  }
  EXPECT_GE(ran, spec.problems) << "too few problems ran against oneDNN; refused:"
                                << oracle.refusals();
}

test::DrawSpec small_spec() {
  test::DrawSpec draw;
  draw.max_size = 12;
  draw.max_channels = 20;
  return draw;
}

TEST(RefVsOnednn, Float32DenseViews) {
  SuiteSpec spec{.name = "Float32DenseViews",
                 .salt = 0x0de0,
                 .problems = 1000,
                 .draw = small_spec(),
                 .require_coverage = true};
  run_suite(spec);
}

// Negative end pads that keep the output size: oneDNN takes them directly (padding_r > -stride).
TEST(RefVsOnednn, ImpliedNegativeEndPads) {
  test::DrawSpec draw = small_spec();
  draw.negative_pad_rate = 0.0;
  SuiteSpec spec{.name = "ImpliedNegativeEndPads",
                 .salt = 0x0de1,
                 .problems = 100,
                 .draw = draw,
                 .negative_end_pads_only = true};
  run_suite(spec);
}

// Channel windows, channel strides of 2, slack rows, batch slices, channels-first strides: the
// reference on the views, oneDNN on dense copies.
TEST(RefVsOnednn, Float32StridedViews) {
  SuiteSpec spec{.name = "Float32StridedViews",
                 .salt = 0x0de2,
                 .problems = 150,
                 .draw = small_spec(),
                 .layout = Layout::strided};
  run_suite(spec);
}

TEST(RefVsOnednn, Float16Storage) {
  SuiteSpec spec{.name = "Float16Storage",
                 .salt = 0x0de3,
                 .problems = 100,
                 .draw = small_spec(),
                 .type = DataType::float16,
                 .tolerance = kLowPrecisionTolerance};
  run_suite(spec);
}

TEST(RefVsOnednn, Bfloat16Storage) {
  SuiteSpec spec{.name = "Bfloat16Storage",
                 .salt = 0x0de4,
                 .problems = 100,
                 .draw = small_spec(),
                 .type = DataType::bfloat16,
                 .tolerance = kLowPrecisionTolerance};
  run_suite(spec);
}

TEST(RefVsOnednn, MixedStorageStridedViews) {
  SuiteSpec spec{.name = "MixedStorageStridedViews",
                 .salt = 0x0de5,
                 .problems = 100,
                 .draw = small_spec(),
                 .layout = Layout::strided,
                 .mixed = true,
                 .tolerance = kLowPrecisionTolerance};
  run_suite(spec);
}

}  // namespace
}  // namespace convgrad
