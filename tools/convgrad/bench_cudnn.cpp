// SPDX-License-Identifier: Apache-2.0
// The legacy API is used because it is the one frameworks have called for a decade (PyTorch's
// cudnn_convolution is built on the same Find/Get of these algorithms), and because in cuDNN 9 it
// runs on the same engines as the graph API.
#include "bench_cudnn.hpp"

#include <cudnn.h>

#include <algorithm>
#include <cstdio>
#include <tuple>
#include <type_traits>
#include <vector>

#include "convgrad/errors.hpp"
#include "cuda/check.hpp"
#include "dispatch/memory.hpp"

namespace convgrad::tool {
namespace {

std::string status_text(cudnnStatus_t status, const char* what) {
  return std::string(cudnnGetErrorString(status)) + " in " + what;
}

// Bad parameters and unsupported configurations are cuDNN declining the problem; anything else
// (not initialised, internal error, execution failure) is a failure worth stopping the row for.
void check_setup(cudnnStatus_t status, const char* what) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  const int family = static_cast<int>(status) / 1000;
  if (family == 2 || family == 3) throw CudnnRefused("cuDNN refuses: " + status_text(status, what));
  throw DeviceError("cuDNN error " + status_text(status, what));
}

void check(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS) throw DeviceError("cuDNN error " + status_text(status, what));
}

// One handle for the process: creating one loads the engine libraries (a large part of a second).
cudnnHandle_t handle() {
  static cudnnHandle_t created = [] {
    cudnnHandle_t h = nullptr;
    check(cudnnCreate(&h), "cudnnCreate");
    return h;
  }();
  return created;
}

cudnnDataType_t cudnn_type(DataType type) {
  switch (type) {
    case DataType::float32: return CUDNN_DATA_FLOAT;
    case DataType::float16: return CUDNN_DATA_HALF;
    case DataType::bfloat16: return CUDNN_DATA_BFLOAT16;
  }
  return CUDNN_DATA_FLOAT;
}

int to_int(std::int64_t value, const char* what) {
  if (value > 0x7fffffff) throw CudnnRefused(std::string("cuDNN's 4-d descriptors take int: ") + what);
  return static_cast<int>(value);
}

const char* forward_name(int algo) {
  static const char* names[] = {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT",
                                "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  return algo >= 0 && algo < 8 ? names[algo] : "?";
}
const char* backward_data_name(int algo) {
  static const char* names[] = {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD",
                                "WINOGRAD_NONFUSED"};
  return algo >= 0 && algo < 6 ? names[algo] : "?";
}
const char* backward_filter_name(int algo) {
  static const char* names[] = {"ALGO_0", "ALGO_1",           "FFT",        "ALGO_3",
                                "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"};
  return algo >= 0 && algo < 7 ? names[algo] : "?";
}

// The legacy API's three directions take their arguments in the same places and differ in the
// types of some (the algorithm, its search results): this reads a type off the function itself,
// so that one piece of code calls any direction.
template <typename Function, std::size_t index>
struct ParameterOf;
template <typename... Params, std::size_t index>
struct ParameterOf<cudnnStatus_t (*)(Params...), index> {
  using type = std::tuple_element_t<index, std::tuple<Params...>>;
};
template <typename Function, std::size_t index>
using Parameter = typename ParameterOf<Function, index>::type;

// The workspace offered to the algorithm search: enough for every implicit-GEMM and Winograd
// algorithm on these layers; FFT variants that want more are left out by cuDNN itself.
constexpr std::size_t kWorkspaceBytes = std::size_t{1} << 30;

}  // namespace

struct CudnnConvolution::State {
  ConvProblem p;
  Direction direction = Direction::fprop;
  cudaStream_t stream = nullptr;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  const void *xp = nullptr, *wp = nullptr, *dyp = nullptr;
  const void* bp = nullptr;  // b, float32 or a copy in the storage type
  const float* b_float = nullptr;
  void *yp = nullptr, *dxp = nullptr, *dwp = nullptr;
  void* dbp = nullptr;  // db, float32 or a buffer in the storage type
  float* db_float = nullptr;
  DataType bias_type = DataType::float32;  // of bp (fprop) or dbp (wgrad)
  void* workspace = nullptr;
  std::size_t workspace_used = 0;
  void* bias_copy = nullptr;  // the storage-type bias buffer, when float32 is refused
  int algo = 0;
  cudnnMathType_t math = CUDNN_FMA_MATH;
  bool deterministic = true;
  std::string note;

  ~State() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (bias) cudnnDestroyTensorDescriptor(bias);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (reduce) cudnnDestroyReduceTensorDescriptor(reduce);
    // The stream may still run this row's work: nothing is freed under it.
    if (stream) cudaStreamSynchronize(stream);
    dispatch::release(DeviceKind::cuda, workspace);
    dispatch::release(DeviceKind::cuda, bias_copy);
    dispatch::release(DeviceKind::cuda, reduce_workspace);
  }

  // Which call makes the bias pass: fprop y += b; wgrad db, by the call made for it or, where
  // cuDNN 9 refuses that for the storage type, by a sum over N, P, Q (cudnnReduceTensor).
  enum class BiasCall { none, add_tensor, backward_bias, reduce_tensor };
  BiasCall bias_call = BiasCall::none;
  cudnnReduceTensorDescriptor_t reduce = nullptr;
  void* reduce_workspace = nullptr;
  std::size_t reduce_workspace_bytes = 0;

  cudnnStatus_t call_bias(BiasCall call) {
    const float one = 1.0f, zero = 0.0f;
    switch (call) {
      case BiasCall::none:
        return CUDNN_STATUS_SUCCESS;
      case BiasCall::add_tensor:
        return cudnnAddTensor(handle(), &one, bias, bp, &one, y, yp);
      case BiasCall::backward_bias:
        return cudnnConvolutionBackwardBias(handle(), &one, y, dyp, &zero, bias, dbp);
      case BiasCall::reduce_tensor:
        return cudnnReduceTensor(handle(), reduce, nullptr, 0, reduce_workspace,
                                 reduce_workspace_bytes, &one, y, dyp, &zero, bias, dbp);
    }
    return CUDNN_STATUS_SUCCESS;
  }

  void run_bias() { check(call_bias(bias_call), "the bias pass"); }

  // Sets the bias descriptor and buffer to `type` (a converted copy of b for fprop, a buffer of
  // that type for db) and tries the call once.
  cudnnStatus_t try_bias(BiasCall call, DataType type) {
    const int k = to_int(p.k, "k");
    check(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, cudnn_type(type), 1, k, 1, 1),
          "cudnnSetTensor4dDescriptor(bias)");
    bias_type = type;
    bp = b_float;
    dbp = db_float;
    if (type != DataType::float32) {
      if (bias_copy == nullptr) {
        bias_copy = dispatch::allocate(DeviceKind::cuda, 0,
                                       static_cast<std::size_t>(p.k) * sizeof(float));
      }
      if (direction == Direction::fprop) {
        std::vector<float> values(static_cast<std::size_t>(p.k));
        dispatch::copy_to_host(DeviceKind::cuda, values.data(), b_float,
                               values.size() * sizeof(float));
        std::vector<unsigned char> converted(values.size() * size_of(type));
        for (std::size_t i = 0; i < values.size(); ++i) {
          store_from_float(converted.data(), type, static_cast<std::int64_t>(i), values[i]);
        }
        dispatch::copy_to_device(DeviceKind::cuda, bias_copy, converted.data(), converted.size());
        bp = bias_copy;
      } else {
        dbp = bias_copy;
      }
    }
    if (call == BiasCall::reduce_tensor) {
      if (reduce == nullptr) {
        check(cudnnCreateReduceTensorDescriptor(&reduce), "cudnnCreateReduceTensorDescriptor");
        check(cudnnSetReduceTensorDescriptor(reduce, CUDNN_REDUCE_TENSOR_ADD, CUDNN_DATA_FLOAT,
                                             CUDNN_NOT_PROPAGATE_NAN,
                                             CUDNN_REDUCE_TENSOR_NO_INDICES, CUDNN_32BIT_INDICES),
              "cudnnSetReduceTensorDescriptor");
      }
      std::size_t bytes = 0;
      const cudnnStatus_t status =
          cudnnGetReductionWorkspaceSize(handle(), reduce, y, bias, &bytes);
      if (status != CUDNN_STATUS_SUCCESS) return status;
      if (bytes > reduce_workspace_bytes) {
        dispatch::release(DeviceKind::cuda, reduce_workspace);
        reduce_workspace = nullptr;
        reduce_workspace = dispatch::allocate(DeviceKind::cuda, 0, bytes);
        reduce_workspace_bytes = bytes;
      }
    }
    return call_bias(call);
  }

  // cuDNN documents no type rules for these calls: float32 b and db are tried first (what
  // convgrad uses), then the storage type (what a framework with bf16 parameters would use).
  void choose_bias_pass() {
    if (direction == Direction::dgrad || !p.with_bias) return;
    check(cudnnCreateTensorDescriptor(&bias), "cudnnCreateTensorDescriptor");
    std::vector<std::pair<BiasCall, DataType>> tries;
    const BiasCall main = direction == Direction::fprop ? BiasCall::add_tensor
                                                        : BiasCall::backward_bias;
    tries.emplace_back(main, DataType::float32);
    if (p.y_type != DataType::float32) tries.emplace_back(main, p.y_type);
    if (direction == Direction::wgrad) {
      tries.emplace_back(BiasCall::reduce_tensor, DataType::float32);
      if (p.y_type != DataType::float32) tries.emplace_back(BiasCall::reduce_tensor, p.y_type);
    }
    std::string refusals;
    for (const auto& [call, type] : tries) {
      const cudnnStatus_t status = try_bias(call, type);
      const char* name = call == BiasCall::add_tensor      ? "cudnnAddTensor"
                         : call == BiasCall::backward_bias ? "cudnnConvolutionBackwardBias"
                                                           : "cudnnReduceTensor";
      if (status == CUDNN_STATUS_SUCCESS) {
        bias_call = call;
        if (!refusals.empty()) {
          note = std::string("cuDNN bias pass: ") + name + " with " +
                 std::string(to_string(type)) + " b/db (refused: " + refusals + ")";
        }
        return;
      }
      const int family = static_cast<int>(status) / 1000;
      if (family != 2 && family != 3) check(status, name);
      if (!refusals.empty()) refusals += "; ";
      refusals += std::string(name) + " " + std::string(to_string(type)) + ": " +
                  cudnnGetErrorString(status);
    }
    cudnnDestroyTensorDescriptor(bias);
    bias = nullptr;
    note = "cuDNN has no bias pass for this problem (" + refusals + ")";
  }
};

CudnnConvolution::CudnnConvolution(const ConvProblem& p, Direction direction,
                                   const DeviceOperands& o, cudaStream_t stream)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.p = p;
  s.direction = direction;
  if (p.pad_top < 0 || p.pad_left < 0) {
    throw CudnnRefused("cuDNN refuses: negative pads");
  }
  if (p.x_type != p.w_type || p.x_type != p.y_type) {
    throw CudnnRefused("cuDNN refuses: mixed storage types");
  }
  check(cudnnSetStream(handle(), stream), "cudnnSetStream");
  s.stream = stream;
  s.xp = o.x;
  s.wp = o.w;
  s.dyp = o.dy;
  s.bp = s.b_float = o.b;
  s.yp = o.theirs.y;
  s.dxp = o.theirs.dx;
  s.dwp = o.theirs.dw;
  s.dbp = s.db_float = o.theirs.db;

  const cudnnDataType_t type = cudnn_type(p.x_type);
  check(cudnnCreateTensorDescriptor(&s.x), "cudnnCreateTensorDescriptor");
  check(cudnnCreateTensorDescriptor(&s.y), "cudnnCreateTensorDescriptor");
  check(cudnnCreateFilterDescriptor(&s.w), "cudnnCreateFilterDescriptor");
  check(cudnnCreateConvolutionDescriptor(&s.conv), "cudnnCreateConvolutionDescriptor");
  check_setup(cudnnSetTensor4dDescriptor(s.x, CUDNN_TENSOR_NHWC, type, to_int(p.n, "n"),
                                         to_int(p.c, "c"), to_int(p.h, "h"), to_int(p.w, "w")),
              "cudnnSetTensor4dDescriptor(x)");
  check_setup(cudnnSetTensor4dDescriptor(s.y, CUDNN_TENSOR_NHWC, type, to_int(p.n, "n"),
                                         to_int(p.k, "k"), to_int(p.p, "p"), to_int(p.q, "q")),
              "cudnnSetTensor4dDescriptor(y)");
  check_setup(cudnnSetFilter4dDescriptor(s.w, type, CUDNN_TENSOR_NHWC, to_int(p.k, "k"),
                                         to_int(p.c_per_group(), "c/groups"), to_int(p.r, "r"),
                                         to_int(p.s, "s")),
              "cudnnSetFilter4dDescriptor");
  check_setup(cudnnSetConvolution2dDescriptor(s.conv, p.pad_top, p.pad_left, p.stride_h,
                                              p.stride_w, p.dilation_h, p.dilation_w,
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
              "cudnnSetConvolution2dDescriptor");
  check_setup(cudnnSetConvolutionGroupCount(s.conv, p.groups), "cudnnSetConvolutionGroupCount");
  const bool tensor_ops = p.x_type != DataType::float32 || p.math == MathMode::tf32;
  s.math = tensor_ops ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
  check_setup(cudnnSetConvolutionMathType(s.conv, s.math), "cudnnSetConvolutionMathType");

  // cuDNN pads symmetrically and derives the output size; a problem whose bottom/right pads
  // differ in a way that changes P or Q is not one cuDNN can express.
  int on = 0, ok = 0, op = 0, oq = 0;
  check_setup(cudnnGetConvolution2dForwardOutputDim(s.conv, s.x, s.w, &on, &ok, &op, &oq),
              "cudnnGetConvolution2dForwardOutputDim");
  if (on != p.n || ok != p.k || op != p.p || oq != p.q) {
    throw CudnnRefused("cuDNN refuses: with symmetric pads its output is " + std::to_string(op) +
                       "x" + std::to_string(oq) + ", not " + std::to_string(p.p) + "x" +
                       std::to_string(p.q));
  }

  s.workspace = dispatch::allocate(DeviceKind::cuda, 0, kWorkspaceBytes);
  // The search times every algorithm on these buffers (it writes the outputs) and returns them
  // fastest first. With FMA math asked for, a result that still reports tensor ops is skipped:
  // --dtype f32 compares with fp32 arithmetic, not TF32.
  const auto search = [&](auto find, int capacity, const char* call, const char* what,
                          auto... operands) {
    // cudnnFind*AlgorithmEx(handle, 7 operands, requested, &returned, results, workspace, size)
    using Result = std::remove_pointer_t<Parameter<decltype(find), 10>>;
    std::vector<Result> results(static_cast<std::size_t>(capacity));
    int count = 0;
    check_setup(
        find(handle(), operands..., capacity, &count, results.data(), s.workspace, kWorkspaceBytes),
        call);
    for (int i = 0; i < count; ++i) {
      const auto& r = results[static_cast<std::size_t>(i)];
      if (r.status != CUDNN_STATUS_SUCCESS) continue;
      // Without tensor ops the descriptor keeps CUDNN_FMA_MATH whatever the result reports.
      const bool uses_tensor_ops = r.mathType == CUDNN_TENSOR_OP_MATH ||
                                   r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
      if (!tensor_ops && uses_tensor_ops) continue;
      s.algo = static_cast<int>(r.algo);
      s.workspace_used = r.memory;
      s.deterministic = r.determinism == CUDNN_DETERMINISTIC;
      if (tensor_ops) s.math = r.mathType;
      check(cudnnSetConvolutionMathType(s.conv, s.math), "cudnnSetConvolutionMathType");
      return;
    }
    throw CudnnRefused(std::string("cuDNN refuses: no ") + what + " algorithm runs " +
                       (tensor_ops ? "here" : "with fp32 FMA math") + " (" +
                       std::to_string(count) + " tried)");
  };
  switch (direction) {
    case Direction::fprop:
      search(cudnnFindConvolutionForwardAlgorithmEx, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
             "cudnnFindConvolutionForwardAlgorithmEx", "forward", s.x, s.xp, s.w, s.wp, s.conv, s.y,
             s.yp);
      break;
    case Direction::dgrad:
      search(cudnnFindConvolutionBackwardDataAlgorithmEx, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
             "cudnnFindConvolutionBackwardDataAlgorithmEx", "backward-data", s.w, s.wp, s.y, s.dyp,
             s.conv, s.x, s.dxp);
      break;
    case Direction::wgrad:
      search(cudnnFindConvolutionBackwardFilterAlgorithmEx, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
             "cudnnFindConvolutionBackwardFilterAlgorithmEx", "backward-filter", s.x, s.xp, s.y,
             s.dyp, s.conv, s.w, s.dwp);
      break;
  }
  s.choose_bias_pass();
  CONVGRAD_CUDA_CHECK(cudaStreamSynchronize(stream));
}

CudnnConvolution::~CudnnConvolution() = default;

void CudnnConvolution::enqueue() {
  State& s = *state_;
  const float one = 1.0f, zero = 0.0f;
  // cudnnConvolution*(handle, &alpha, 2 inputs, conv, algo, workspace, size, &beta, output)
  const auto run = [&](auto convolution, const char* call, auto a, auto a_data, auto b, auto b_data,
                       auto out, auto out_data) {
    using Algorithm = Parameter<decltype(convolution), 7>;
    check(convolution(handle(), &one, a, a_data, b, b_data, s.conv, static_cast<Algorithm>(s.algo),
                      s.workspace, s.workspace_used, &zero, out, out_data),
          call);
  };
  switch (s.direction) {
    case Direction::fprop:
      run(cudnnConvolutionForward, "cudnnConvolutionForward", s.x, s.xp, s.w, s.wp, s.y, s.yp);
      break;
    case Direction::dgrad:
      run(cudnnConvolutionBackwardData, "cudnnConvolutionBackwardData", s.w, s.wp, s.y, s.dyp,
          s.x, s.dxp);
      break;
    case Direction::wgrad:
      run(cudnnConvolutionBackwardFilter, "cudnnConvolutionBackwardFilter", s.x, s.xp, s.y, s.dyp,
          s.w, s.dwp);
      break;
  }
}

void CudnnConvolution::enqueue_bias() { state_->run_bias(); }

bool CudnnConvolution::has_bias_pass() const { return state_->bias != nullptr; }

std::string CudnnConvolution::algorithm() const {
  const State& s = *state_;
  std::string text = s.direction == Direction::fprop   ? forward_name(s.algo)
                     : s.direction == Direction::dgrad ? backward_data_name(s.algo)
                                                       : backward_filter_name(s.algo);
  text += s.math == CUDNN_FMA_MATH ? ", fma" : s.math == CUDNN_DEFAULT_MATH ? ", default math" : ", tensor ops";
  if (!s.deterministic) text += ", nondeterministic";
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, ", %.1f MiB workspace",
                static_cast<double>(s.workspace_used) / (1024.0 * 1024.0));
  return text + buffer;
}

std::string CudnnConvolution::bias_note() const { return state_->note; }

std::vector<float> CudnnConvolution::bias_gradient() const {
  const State& s = *state_;
  if (s.direction != Direction::wgrad || s.bias == nullptr) return {};
  std::vector<unsigned char> bytes(static_cast<std::size_t>(s.p.k) * size_of(s.bias_type));
  CONVGRAD_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  dispatch::copy_to_host(DeviceKind::cuda, bytes.data(), s.dbp, bytes.size());
  std::vector<float> values(static_cast<std::size_t>(s.p.k));
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i] = load_as_float(bytes.data(), s.bias_type, static_cast<std::int64_t>(i));
  }
  return values;
}

std::string cudnn_version() {
  const auto text = [](std::size_t version) {
    // 9.x encodes major * 10000 + minor * 100 + patch.
    return std::to_string(version / 10000) + "." + std::to_string(version % 10000 / 100) + "." +
           std::to_string(version % 100);
  };
  return text(cudnnGetVersion()) + " (built with " + text(CUDNN_VERSION) + ")";
}

}  // namespace convgrad::tool
