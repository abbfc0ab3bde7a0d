// SPDX-License-Identifier: Apache-2.0
// Images are oneDNN `nhwc`, which is convgrad's NHWC, so x, dy, y and dx are the bench's own
// buffers. Weights are created with format_tag::any: oneDNN picks the blocked layout its fastest
// kernel wants, and the reorder from KRSC is done once here, outside the timed region, as a
// framework holding weights in oneDNN's layout would. dw is written in that layout too and
// reordered back only for the correctness check.
#include "bench_onednn.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <dnnl.hpp>
#include <numeric>
#include <unordered_map>

namespace convgrad::tool {
namespace {

using dnnl::memory;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpu_stream() {
  static dnnl::stream stream(cpu_engine());
  return stream;
}

// `what` names the primitive descriptor: the forward one is made for every direction, since the
// backward ones take it as a hint, so a refused dgrad may read "forward (the hint)".
template <class Make>
auto create_or_refuse(const char* what, Make make) {
  try {
    return make();
  } catch (const dnnl::error& error) {
    if (error.status == dnnl_unimplemented || error.status == dnnl_invalid_arguments) {
      std::string message = "oneDNN refuses the problem: no ";
      message.append(what);
      message.append(" implementation (");
      message.append(error.what());
      message.append(")");
      throw OnednnRefused(message);
    }
    throw;
  }
}

memory::desc image_desc(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
  return memory::desc({n, c, h, w}, memory::data_type::f32, memory::format_tag::nhwc);
}

memory::desc weights_desc(const ConvProblem& p, memory::format_tag plain) {
  if (p.groups == 1) return memory::desc({p.k, p.c, p.r, p.s}, memory::data_type::f32, plain);
  return memory::desc({p.groups, p.k_per_group(), p.c_per_group(), p.r, p.s},
                      memory::data_type::f32, plain);
}

memory::desc plain_weights_desc(const ConvProblem& p) {
  return weights_desc(p, p.groups == 1 ? memory::format_tag::ohwi : memory::format_tag::gohwi);
}

// A blocked layout as oneDNN's tags spell it, with the convolution's letters: outer dimensions
// from the largest stride down (upper case when also blocked), then the inner blocks.
std::string layout_name(const memory::desc& desc) {
  const dnnl_memory_desc_t& md = desc.data;
  if (md.format_kind != dnnl_blocked) return "non-blocked";
  const char* letters = md.ndims == 5 ? "goihw" : "oihw";
  const dnnl_blocking_desc_t& blocking = md.format_desc.blocking;
  std::vector<int> order(static_cast<std::size_t>(md.ndims));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return blocking.strides[a] > blocking.strides[b]; });
  std::string name;
  for (const int dim : order) {
    bool blocked = false;
    for (int i = 0; i < blocking.inner_nblks; ++i) blocked |= blocking.inner_idxs[i] == dim;
    const char letter = letters[dim];
    name += blocked ? static_cast<char>(letter - 'a' + 'A') : letter;
  }
  for (int i = 0; i < blocking.inner_nblks; ++i) {
    name.append(std::to_string(blocking.inner_blks[i]));
    name += letters[blocking.inner_idxs[i]];
  }
  return name;
}

}  // namespace

struct OnednnConvolution::State {
  Direction direction = Direction::fprop;
  dnnl::primitive primitive;
  std::unordered_map<int, memory> args;
  memory plain_weights;  // KRSC view of w (fprop, dgrad) or of nothing (wgrad)
  memory weights;        // what the primitive reads or writes, in its chosen layout
  std::vector<float> output, bias_gradient;
  std::string implementation;
};

OnednnConvolution::OnednnConvolution(const ConvProblem& p, Direction direction,
                                     const OnednnInputs& in)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.direction = direction;
  dnnl::engine& engine = cpu_engine();
  const memory::desc src = image_desc(p.n, p.c, p.h, p.w);
  const memory::desc dst = image_desc(p.n, p.k, p.p, p.q);
  const memory::desc bias({p.k}, memory::data_type::f32, memory::format_tag::x);
  const memory::desc any_weights = weights_desc(p, memory::format_tag::any);
  const memory::dims strides{p.stride_h, p.stride_w};
  const memory::dims dilates{p.dilation_h - 1, p.dilation_w - 1};  // oneDNN counts from 0
  const memory::dims pad_l{p.pad_top, p.pad_left}, pad_r{p.pad_bottom, p.pad_right};
  const auto algorithm = dnnl::algorithm::convolution_direct;

  // The backward primitives want the forward one as a hint, with the same weights choice.
  const char* forward_name = direction == Direction::fprop ? "forward" : "forward (the hint)";
  const auto forward = create_or_refuse(forward_name, [&] {
    const auto desc =
        p.with_bias
            ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algorithm, src,
                                              any_weights, bias, dst, strides, dilates, pad_l,
                                              pad_r)
            : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algorithm, src,
                                              any_weights, dst, strides, dilates, pad_l, pad_r);
    return dnnl::convolution_forward::primitive_desc(desc, engine);
  });

  memory::desc chosen;
  s.plain_weights = memory(plain_weights_desc(p), engine, in.w);
  switch (direction) {
    case Direction::fprop: {
      chosen = forward.weights_desc();
      s.implementation = forward.impl_info_str();
      s.primitive = dnnl::convolution_forward(forward);
      s.output.assign(static_cast<std::size_t>(y_elements(p)), 0.0f);
      s.args = {{DNNL_ARG_SRC, memory(src, engine, in.x)},
                {DNNL_ARG_DST, memory(dst, engine, s.output.data())}};
      if (p.with_bias) s.args.emplace(DNNL_ARG_BIAS, memory(bias, engine, in.b));
      break;
    }
    case Direction::dgrad: {
      const auto backward = create_or_refuse("backward data", [&] {
        const dnnl::convolution_backward_data::desc desc(algorithm, src, any_weights, dst, strides,
                                                         dilates, pad_l, pad_r);
        return dnnl::convolution_backward_data::primitive_desc(desc, engine, forward);
      });
      chosen = backward.weights_desc();
      s.implementation = backward.impl_info_str();
      s.primitive = dnnl::convolution_backward_data(backward);
      s.output.assign(static_cast<std::size_t>(x_elements(p)), 0.0f);
      s.args = {{DNNL_ARG_DIFF_DST, memory(dst, engine, in.dy)},
                {DNNL_ARG_DIFF_SRC, memory(src, engine, s.output.data())}};
      break;
    }
    case Direction::wgrad: {
      const auto backward = create_or_refuse("backward weights", [&] {
        using Desc = dnnl::convolution_backward_weights::desc;
        const Desc desc =
            p.with_bias
                ? Desc(algorithm, src, any_weights, bias, dst, strides, dilates, pad_l, pad_r)
                : Desc(algorithm, src, any_weights, dst, strides, dilates, pad_l, pad_r);
        return dnnl::convolution_backward_weights::primitive_desc(desc, engine, forward);
      });
      chosen = backward.diff_weights_desc();
      s.implementation = backward.impl_info_str();
      s.primitive = dnnl::convolution_backward_weights(backward);
      s.args = {{DNNL_ARG_SRC, memory(src, engine, in.x)},
                {DNNL_ARG_DIFF_DST, memory(dst, engine, in.dy)}};
      if (p.with_bias) {
        s.bias_gradient.assign(static_cast<std::size_t>(p.k), 0.0f);
        s.args.emplace(DNNL_ARG_DIFF_BIAS, memory(bias, engine, s.bias_gradient.data()));
      }
      break;
    }
  }

  if (direction == Direction::wgrad) {
    s.weights = memory(chosen, engine);  // oneDNN allocates dw in its layout
    s.args.emplace(DNNL_ARG_DIFF_WEIGHTS, s.weights);
  } else {
    s.weights = chosen == s.plain_weights.get_desc() ? s.plain_weights : memory(chosen, engine);
    if (s.weights != s.plain_weights) {
      dnnl::reorder(s.plain_weights, s.weights).execute(cpu_stream(), s.plain_weights, s.weights);
      cpu_stream().wait();
    }
    s.args.emplace(DNNL_ARG_WEIGHTS, s.weights);
  }
}

OnednnConvolution::~OnednnConvolution() = default;

void OnednnConvolution::execute() {
  state_->primitive.execute(cpu_stream(), state_->args);
  cpu_stream().wait();
}

std::vector<float> OnednnConvolution::output() const {
  const State& s = *state_;
  if (s.direction != Direction::wgrad) return s.output;
  const memory::desc plain = s.plain_weights.get_desc();
  std::vector<float> dw(plain.get_size() / sizeof(float));
  memory out(plain, cpu_engine(), dw.data());
  memory from = s.weights;
  dnnl::reorder(from, out).execute(cpu_stream(), from, out);
  cpu_stream().wait();
  return dw;
}

std::vector<float> OnednnConvolution::bias_gradient() const { return state_->bias_gradient; }

std::string OnednnConvolution::implementation() const { return state_->implementation; }

std::string OnednnConvolution::weights_layout() const {
  const memory::desc chosen = state_->weights.get_desc();
  return chosen == state_->plain_weights.get_desc() ? (chosen.data.ndims == 5 ? "gohwi" : "ohwi")
                                                    : layout_name(chosen);
}

std::string set_onednn_threads(int threads) {
#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
  // libgomp comes in through libdnnl, not through our link line, hence the lookup.
  using SetThreads = void (*)(int);
  if (void* symbol = dlsym(RTLD_DEFAULT, "omp_set_num_threads")) {
    reinterpret_cast<SetThreads>(symbol)(threads);
    return {};
  }
  return "omp_set_num_threads not found: oneDNN uses OpenMP's default thread count";
#elif DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_SEQ
  (void)threads;
  return "this oneDNN is sequential: it runs on one thread";
#else
  (void)threads;
  return "this oneDNN's threading runtime is not OpenMP: its thread count is its default";
#endif
}

int onednn_threads() {
#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
  using GetThreads = int (*)();
  if (void* symbol = dlsym(RTLD_DEFAULT, "omp_get_max_threads")) {
    return reinterpret_cast<GetThreads>(symbol)();
  }
  return 0;
#elif DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_SEQ
  return 1;
#else
  return 0;
#endif
}

std::string onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  std::string text = std::to_string(v->major);
  text.append(".").append(std::to_string(v->minor)).append(".").append(std::to_string(v->patch));
  const char* runtime = v->cpu_runtime == DNNL_RUNTIME_OMP   ? "OpenMP"
                        : v->cpu_runtime == DNNL_RUNTIME_TBB ? "TBB"
                        : v->cpu_runtime == DNNL_RUNTIME_SEQ ? "sequential"
                                                             : "threadpool";
  text.append(" (").append(runtime).append(")");
  return text;
}

}  // namespace convgrad::tool
