// SPDX-License-Identifier: Apache-2.0
// The tensor-core kernel entries: what they accept, and the small kernels around CUTLASS.
//
// - fprop: CUTLASS fprop; the bias is added in its epilogue.
// - dgrad: fprops of dy, one per stride phase, each with its taps of the filter rotated by 180
//   degrees and transposed to [c][r][s][k] (a small copy into a workspace), writing every
//   stride-th row and column of dx (see dgrad_phases). One kernel type then serves fprop and
//   dgrad, tf32 included (wgmma takes tf32 only K-major, which CUTLASS's own dgrad B operand is
//   not), and CUTLASS's sm90 dgrad, which accepts stride > 1 and leaves the output unwritten, is
//   never used.
// - wgrad (f16, bf16; there is no tf32 wgrad: wgmma reads tf32 operands only K-major, and
//   wgrad's are MN-major in both): its GEMM (M = k, N = r*s*c, reduced over n*p*q) has few output tiles, so the images are
//   split into slices, each slice's float32 partial goes to a workspace in one launch, and a
//   kernel of ours sums the partials in slice order, adds into dw under `accumulate`, rounds to the
//   storage type; db comes from a two-pass fixed-order sum over dy. No atomics: bit-identical runs.
//
// The kernel interface carries no pointers, so rejects() decides on the problem alone; run()
// hands views that are not packed or not 16-byte aligned (TMA needs both) to the direct kernels.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <tuple>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "cuda/check.hpp"
#include "cuda/direct.hpp"
#include "cuda/memory.hpp"
#include "cuda/special_common.cuh"
#include "cuda/stream.hpp"
#include "cuda/tc/accurate.hpp"
#include "cuda/tc/cutlass_ops.hpp"
#include "cuda/tc/im2col_gemm.hpp"
#include "cuda/tc/runs.hpp"
#include "cuda/tc/tensor_core.hpp"

namespace convgrad::cuda::tc {

// The tile follows the GEMM's shape: with 64 output channels (fprop) or filters (wgrad) or
// fewer, half of a 128-wide tile would be padding; with a short reduction (<= 576, nine k-tiles)
// the epilogue's stores outweigh the main loop, and the 64-wide tile's two CTAs per SM overlap
// them (measured on resnet50_res2_1x1_expand: 157 us with 128x128 tiles).
const CutlassOps& fprop_ops(Kind kind, std::int64_t output_channels, std::int64_t reduction) {
  if (kind == Kind::tf32) return fprop_tf32;
  if (output_channels <= 64 || reduction <= 576) {
    return kind == Kind::f16 ? fprop_f16_n64 : fprop_bf16_n64;
  }
  return kind == Kind::f16 ? fprop_f16 : fprop_bf16;
}
namespace {
const CutlassOps& wgrad_ops(Kind kind, std::int64_t filters) {
  if (filters <= 64) return kind == Kind::f16 ? wgrad_f16_m64 : wgrad_bf16_m64;
  return kind == Kind::f16 ? wgrad_f16 : wgrad_bf16;
}

std::string str(std::int64_t v) { return std::to_string(v); }
}  // namespace

std::optional<std::string> storage_rejects(const ConvProblem& p, Kind kind) {
  const DataType t = storage(kind);
  if (p.x_type != t || p.w_type != t || p.y_type != t) {
    return "storage types x " + std::string(to_string(p.x_type)) + ", w " +
           std::string(to_string(p.w_type)) + ", y " + std::string(to_string(p.y_type)) +
           ": this kernel takes " + std::string(to_string(t)) + " for all three";
  }
  if (kind == Kind::tf32 && p.math != MathMode::tf32) {
    return "math = " + std::string(to_string(p.math)) +
           ": float32 storage runs on these tensor-core kernels only under MathMode::tf32";
  }
  return std::nullopt;
}

std::optional<std::string> common_rejects(const ConvProblem& p, Kind kind) {
  if (auto reason = storage_rejects(p, kind)) return reason;
  if (p.groups != 1) {
    return "groups = " + str(p.groups) + ": CUTLASS 3.x sm90 convolutions take groups = 1 only";
  }
  const std::int64_t a = alignment(kind);
  if (p.c % a != 0) return "c = " + str(p.c) + ": must be a multiple of " + str(a) + " (16-byte TMA rows)";
  if (p.k % a != 0) return "k = " + str(p.k) + ": must be a multiple of " + str(a) + " (16-byte TMA rows)";
  if (p.pad_top < 0 || p.pad_left < 0 || p.pad_bottom < 0 || p.pad_right < 0) {
    return "negative pads (" + str(p.pad_top) + ", " + str(p.pad_left) + ", " + str(p.pad_bottom) +
           ", " + str(p.pad_right) + "): TMA im2col takes pads >= 0";
  }
  // CUTLASS's conv problem shape holds extents, and GEMM extents made of their products, as int.
  constexpr std::int64_t int_max = std::numeric_limits<std::int32_t>::max();
  const std::int64_t largest = std::max({x_elements(p), y_elements(p), w_elements(p)});
  if (largest > int_max) {
    return "a tensor of " + str(largest) + " elements: CUTLASS indexes conv extents with 32-bit int";
  }
  return std::nullopt;
}

ConvShape fprop_shape(const ConvProblem& p) {
  return {static_cast<int>(p.n), static_cast<int>(p.h), static_cast<int>(p.w),
          static_cast<int>(p.c), static_cast<int>(p.k), static_cast<int>(p.r),
          static_cast<int>(p.s), p.pad_top, p.pad_left, p.pad_bottom, p.pad_right,
          p.stride_h, p.stride_w, p.dilation_h, p.dilation_w};
}

namespace {
// dgrad as fprops, one per phase (the residue of h + pad_top and of w + pad_left modulo the
// stride). Along one axis, the rows h = first + stride * i of dx read only the taps r with
// r * dilation = phase (mod stride): taps first_tap + j * tap_step, j < taps; and row i of the
// phase reads dy[i + base - j * dilation'] with dilation' = tap_step * dilation / stride. Reversed,
// that is a stride-1 correlation over dy; its pads come out negative where a phase never reaches
// the first or last rows of dy, which the fprop reads as a crop of dy instead (TMA takes no
// negative pads). At stride 1 there is one phase, the 180-degree rotation with pads
// dilated - 1 - pad, written in place; otherwise each phase's result is written packed into the
// workspace and scattered into dx.
struct AxisPhase {
  int first = 0;    // first dx row of the phase
  int outputs = 0;  // dx rows of the phase
  int first_tap = 0, tap_step = 1, taps = 0;
  int dilation = 1;
  int pad_lo = 0, pad_hi = 0;    // of the stride-1 fprop over the cropped dy
  int crop_lo = 0, crop_hi = 0;  // dy rows the phase never reads
};

AxisPhase axis_phase(int phase, std::int64_t in, std::int64_t out, std::int64_t kernel, int stride,
                     int dilation, int pad) {
  AxisPhase a;
  a.first = ((phase - pad) % stride + stride) % stride;
  if (a.first >= in) return a;
  a.outputs = static_cast<int>((in - a.first + stride - 1) / stride);
  a.first_tap = -1;
  for (int r = 0; r < kernel; ++r) {
    if (((static_cast<std::int64_t>(r) * dilation - phase) % stride + stride) % stride == 0) {
      if (a.first_tap < 0) a.first_tap = r;
      ++a.taps;
    }
  }
  if (a.taps == 0) return a;
  a.tap_step = stride / std::gcd(stride, dilation);
  a.dilation = a.tap_step * dilation / stride;
  const std::int64_t base = (a.first + pad - static_cast<std::int64_t>(a.first_tap) * dilation) / stride;
  const std::int64_t span = static_cast<std::int64_t>(a.taps - 1) * a.dilation;
  std::int64_t lo = span - base;
  std::int64_t hi = a.outputs - out - lo + span;
  if (lo < 0) a.crop_lo = static_cast<int>(-lo), lo = 0;
  if (hi < 0) a.crop_hi = static_cast<int>(-hi), hi = 0;
  a.pad_lo = static_cast<int>(lo);
  a.pad_hi = static_cast<int>(hi);
  return a;
}

struct Phase {
  AxisPhase h, w;
  // Nothing to compute: no dx rows, or no taps or no dy rows reach them (the latter are zero).
  bool empty() const { return h.outputs == 0 || w.outputs == 0; }
  bool zero(std::int64_t p, std::int64_t q) const {
    return h.taps == 0 || w.taps == 0 || p - h.crop_lo - h.crop_hi < 1 ||
           q - w.crop_lo - w.crop_hi < 1;
  }
};

std::vector<Phase> dgrad_phases(const ConvProblem& p) {
  std::vector<Phase> phases;
  for (int ph = 0; ph < p.stride_h; ++ph) {
    for (int pw = 0; pw < p.stride_w; ++pw) {
      Phase phase{axis_phase(ph, p.h, p.p, p.r, p.stride_h, p.dilation_h, p.pad_top),
                  axis_phase(pw, p.w, p.q, p.s, p.stride_w, p.dilation_w, p.pad_left)};
      if (!phase.empty()) phases.push_back(phase);
    }
  }
  return phases;
}

// The fprop of one phase: dy (cropped) as the image, the phase's filter [c][taps_h][taps_w][k],
// k of dy's p.k channels (a chunk of the reduction).
ConvShape phase_shape(const ConvProblem& p, const Phase& f, std::int64_t k) {
  ConvShape s{static_cast<int>(p.n),
              static_cast<int>(p.p - f.h.crop_lo - f.h.crop_hi),
              static_cast<int>(p.q - f.w.crop_lo - f.w.crop_hi),
              static_cast<int>(k), static_cast<int>(p.c), f.h.taps, f.w.taps,
              f.h.pad_lo, f.w.pad_lo, f.h.pad_hi, f.w.pad_hi, 1, 1, f.h.dilation, f.w.dilation};
  s.act_stride_w = p.k;
  s.act_stride_h = p.q * p.k;
  s.act_stride_n = p.p * p.q * p.k;
  return s;
}

}  // namespace

std::optional<std::string> fprop_rejects(const ConvProblem& p, Kind kind) {
  if (auto reason = common_rejects(p, kind)) return reason;
  return fprop_ops(kind, p.k, p.c * p.r * p.s).can_implement(fprop_shape(p));
}

std::optional<std::string> dgrad_rejects(const ConvProblem& p, Kind kind) {
  if (auto reason = common_rejects(p, kind)) return reason;
  for (const Phase& phase : dgrad_phases(p)) {
    if (phase.zero(p.p, p.q)) continue;
    const std::int64_t reduction = p.k * phase.h.taps * phase.w.taps;
    if (auto reason = fprop_ops(kind, p.c, reduction).can_implement(phase_shape(p, phase, p.k))) {
      return reason;
    }
  }
  return std::nullopt;
}

std::optional<std::string> wgrad_rejects(const ConvProblem& p, Kind kind) {
  if (auto reason = common_rejects(p, kind)) return reason;
  return wgrad_ops(kind, p.k).can_implement(fprop_shape(p));
}

// ---- operands -----------------------------------------------------------------------------

bool aligned16(const void* pointer) {
  return reinterpret_cast<std::uintptr_t>(pointer) % 16 == 0;
}

bool packed(const TensorView& v) {
  std::int64_t expected = 1;
  for (int i = 3; i >= 0; --i) {
    if (v.dims[i] != 1 && v.strides[i] != expected) return false;
    expected *= v.dims[i];
  }
  return aligned16(v.data);
}

bool bias_readable(const TensorView& b) {
  return b.empty() || (b.strides[0] == 1 && aligned16(b.data));
}

namespace {
// A per-thread, per-device, per-stream grow-only buffer: work queued earlier on the same stream
// finishes before later work reuses it, and no two streams share one.
class Workspace {
 public:
  ~Workspace() {
    for (auto& entry : buffers_) release(entry.second.first);
  }
  void* get(std::size_t bytes, cudaStream_t stream, Slot slot) {
    int device = 0;
    CONVGRAD_CUDA_CHECK(cudaGetDevice(&device));
    auto& [pointer, size] = buffers_[{device, stream, slot}];
    if (size < bytes) {
      // release() is cudaFree, which waits for the device, so nothing still reads the old buffer.
      const std::size_t grown = std::max(bytes, size * 2);
      release(pointer);
      pointer = nullptr;
      size = 0;
      pointer = allocate(grown, device);
      size = grown;
    }
    return pointer;
  }

 private:
  std::map<std::tuple<int, cudaStream_t, Slot>, std::pair<void*, std::size_t>> buffers_;
};
}  // namespace

void* workspace(std::size_t bytes, cudaStream_t stream, Slot slot) {
  thread_local Workspace cache;
  return cache.get(bytes, stream, slot);
}

namespace {

template <class T>
struct Storage;
template <>
struct Storage<__half> {
  __device__ static float load(const __half* p) { return __half2float(*p); }
  __device__ static void store(__half* p, float v) { *p = __float2half_rn(v); }
};
template <>
struct Storage<__nv_bfloat16> {
  __device__ static float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
  __device__ static void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
};

// ---- dgrad: rotate and transpose the filter -------------------------------------------------

// A phase's filter: out[c][j][l][k] = w[k][r][s][c] with r = first_r + (taps_r - 1 - j) * step_r
// and s likewise (taps reversed: the correlation runs the other way). A bit copy through a 32x32
// shared tile per (j, l), so that both the reads (along c) and the writes (along k) coalesce.
struct FilterTaps {
  int k, r, s, c;
  int first_r, step_r, taps_r, first_s, step_s, taps_s;
};

template <class Bits>
__global__ void phase_filter(const Bits* __restrict__ w, Bits* __restrict__ out, FilterTaps t) {
  __shared__ Bits tile[32][33];
  const int j = blockIdx.z / t.taps_s, l = blockIdx.z % t.taps_s;
  const int r = t.first_r + (t.taps_r - 1 - j) * t.step_r;
  const int s = t.first_s + (t.taps_s - 1 - l) * t.step_s;
  const int c0 = blockIdx.x * 32, k0 = blockIdx.y * 32;
  const std::int64_t rsc = static_cast<std::int64_t>(t.r) * t.s * t.c;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int k = k0 + i, c = c0 + threadIdx.x;
    if (k < t.k && c < t.c) {
      tile[i][threadIdx.x] = w[k * rsc + (static_cast<std::int64_t>(r) * t.s + s) * t.c + c];
    }
  }
  __syncthreads();
  const std::int64_t jlk = static_cast<std::int64_t>(t.taps_r) * t.taps_s * t.k;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int c = c0 + i, k = k0 + threadIdx.x;
    if (k < t.k && c < t.c) {
      out[c * jlk + (static_cast<std::int64_t>(j) * t.taps_s + l) * t.k + k] = tile[threadIdx.x][i];
    }
  }
}

// Zeros into the rows and columns of one phase that no tap reaches.
template <class Bits>
__global__ void zero_phase(Bits* __restrict__ dx, std::int64_t rows, int outputs_w, int c_count,
                           std::int64_t row_stride, std::int64_t col_stride, int outputs_h,
                           std::int64_t image_stride) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * outputs_w * c_count) return;
  const std::int64_t c = i % c_count, col = (i / c_count) % outputs_w;
  const std::int64_t row = (i / c_count / outputs_w) % outputs_h;
  const std::int64_t n = i / c_count / outputs_w / outputs_h;
  dx[n * image_stride + row * row_stride + col * col_stride + c] = Bits(0);
}

// A strided phase's packed result into its rows and columns of dx, 16 bytes a thread. (The
// fprop writes it packed because CUTLASS's NoSmem epilogue addresses the linearized pixel index
// with the innermost pixel stride alone, so it cannot write every stride-th column itself.)
__global__ void scatter_phase(const uint4* __restrict__ phase, uint4* __restrict__ dx,
                              std::int64_t chunks, int chunks_per_pixel, int outputs_w,
                              int outputs_h, std::int64_t row_stride, std::int64_t col_stride,
                              std::int64_t image_stride) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= chunks) return;
  const std::int64_t chunk = i % chunks_per_pixel, pixel = i / chunks_per_pixel;
  const std::int64_t col = pixel % outputs_w, row = (pixel / outputs_w) % outputs_h;
  const std::int64_t n = pixel / outputs_w / outputs_h;
  dx[n * image_stride + row * row_stride + col * col_stride + chunk] = phase[i];
}

// ---- wgrad: db partials and the final fixed-order sums ----------------------------------------

constexpr int kBiasColumns = 64, kBiasLanes = 4;

// partial[chunk][k] = sum of dy[row][k] over the chunk's rows, in a fixed order.
template <class T>
__global__ void bias_partials(const T* __restrict__ dy, std::int64_t rows, int k_count,
                              std::int64_t rows_per_chunk, float* __restrict__ partial) {
  __shared__ float lanes[kBiasLanes][kBiasColumns];
  const int k = blockIdx.x * kBiasColumns + threadIdx.x;
  const std::int64_t begin = blockIdx.y * rows_per_chunk;
  const std::int64_t end = min(rows, begin + rows_per_chunk);
  float sum = 0.0f;
  if (k < k_count) {
    for (std::int64_t row = begin + threadIdx.y; row < end; row += kBiasLanes) {
      sum += Storage<T>::load(dy + row * k_count + k);
    }
  }
  lanes[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && k < k_count) {
    float total = 0.0f;
    for (int lane = 0; lane < kBiasLanes; ++lane) total += lanes[lane][threadIdx.x];
    partial[static_cast<std::int64_t>(blockIdx.y) * k_count + k] = total;
  }
}

struct WgradFinish {
  const float* partials;  // [splits][k*r*s*c]
  int splits;
  std::int64_t k, r, s, c;
  std::int64_t c_written;  // channels of dw: the partials' further ones are padding
  void* dw;
  std::int64_t dw_stride[4];
  const float* bias_partials;  // [chunks][k], null without bias
  int chunks;
  float* db;
  std::int64_t db_stride;
  bool accumulate;
};

template <class T>
__global__ void finish_wgrad(const WgradFinish f) {
  const std::int64_t count = f.k * f.r * f.s * f.c;
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) {
    float sum = 0.0f;
    for (int split = 0; split < f.splits; ++split) sum += f.partials[split * count + i];
    const std::int64_t c = i % f.c, s = (i / f.c) % f.s, r = (i / (f.c * f.s)) % f.r;
    const std::int64_t k = i / (f.c * f.s * f.r);
    if (c >= f.c_written) return;
    T* out = static_cast<T*>(f.dw) + k * f.dw_stride[0] + r * f.dw_stride[1] +
             s * f.dw_stride[2] + c * f.dw_stride[3];
    if (f.accumulate) sum = Storage<T>::load(out) + sum;
    Storage<T>::store(out, sum);
  } else if (f.bias_partials != nullptr && i < count + f.k) {
    const std::int64_t k = i - count;
    float sum = 0.0f;
    for (int chunk = 0; chunk < f.chunks; ++chunk) sum += f.bias_partials[chunk * f.k + k];
    float* out = f.db + k * f.db_stride;
    if (f.accumulate) sum = *out + sum;
    *out = sum;
  }
}

// ---- runs -----------------------------------------------------------------------------------

template <class Bits>
void dgrad_phases_run(Kind kind, const ConvProblem& p, void* dx_data,
                      std::span<const KChunk> chunks) {
  const cudaStream_t stream = current_stream();
  const std::vector<Phase> phases = dgrad_phases(p);
  // One phase's filter at a time (the stream orders the reuse); a strided dgrad also needs room
  // for the largest phase's packed result.
  const bool strided = p.stride_h != 1 || p.stride_w != 1;
  std::int64_t largest = 0;
  if (strided) {
    for (const Phase& f : phases) {
      largest = std::max<std::int64_t>(largest, p.n * f.h.outputs * f.w.outputs * p.c);
    }
  }
  const std::size_t filter_bytes = aligned_bytes(w_elements(p) * static_cast<std::int64_t>(sizeof(Bits)));
  char* space = static_cast<char*>(workspace(filter_bytes + largest * sizeof(Bits), stream));
  Bits* filter = reinterpret_cast<Bits*>(space);
  Bits* packed_phase = reinterpret_cast<Bits*>(space + filter_bytes);
  Bits* dx = static_cast<Bits*>(dx_data);
  for (const Phase& f : phases) {
    Bits* out = dx + (static_cast<std::int64_t>(f.h.first) * p.w + f.w.first) * p.c;
    if (f.zero(p.p, p.q)) {
      const std::int64_t count = p.n * f.h.outputs * f.w.outputs * p.c;
      zero_phase<<<static_cast<unsigned>((count + 255) / 256), 256, 0, stream>>>(
          out, p.n * f.h.outputs, f.w.outputs, static_cast<int>(p.c), p.stride_h * p.w * p.c,
          p.stride_w * p.c, f.h.outputs, p.h * p.w * p.c);
      CONVGRAD_CUDA_CHECK(cudaGetLastError());
      continue;
    }
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      const KChunk& chunk = chunks[i];
      const FilterTaps taps{static_cast<int>(chunk.k), static_cast<int>(p.r), static_cast<int>(p.s),
                            static_cast<int>(p.c), f.h.first_tap, f.h.tap_step, f.h.taps,
                            f.w.first_tap, f.w.tap_step, f.w.taps};
      const dim3 grid(static_cast<unsigned>((p.c + 31) / 32),
                      static_cast<unsigned>((chunk.k + 31) / 32),
                      static_cast<unsigned>(f.h.taps * f.w.taps));
      phase_filter<<<grid, dim3(32, 8), 0, stream>>>(static_cast<const Bits*>(chunk.w), filter,
                                                      taps);
      CONVGRAD_CUDA_CHECK(cudaGetLastError());
      const Bits* crop = static_cast<const Bits*>(chunk.dy) +
                         (static_cast<std::int64_t>(f.h.crop_lo) * p.q + f.w.crop_lo) * p.k;
      ConvShape shape = phase_shape(p, f, chunk.k);
      shape.add_to_output = i > 0;
      fprop_ops(kind, p.c, chunk.k * f.h.taps * f.w.taps)
          .fprop(shape, crop, filter, nullptr, strided ? packed_phase : out, stream);
    }
    if (strided) {
      const int per_pixel = static_cast<int>(p.c * sizeof(Bits) / 16);
      const std::int64_t count = p.n * f.h.outputs * f.w.outputs * per_pixel;
      const std::int64_t pixel_chunks = p.c * static_cast<std::int64_t>(sizeof(Bits)) / 16;
      scatter_phase<<<static_cast<unsigned>((count + 255) / 256), 256, 0, stream>>>(
          reinterpret_cast<const uint4*>(packed_phase), reinterpret_cast<uint4*>(out), count,
          per_pixel, f.w.outputs, f.h.outputs, p.stride_h * p.w * pixel_chunks,
          p.stride_w * pixel_chunks, p.h * p.w * pixel_chunks);
      CONVGRAD_CUDA_CHECK(cudaGetLastError());
    }
  }
}

// Slices of whole images: as many as fill the multiprocessors once, each still long enough
// (>= 512 reduction rows) to pay for its partial's round trip.
int slice_images(const ConvProblem& p, long long tiles, int ctas_per_sm) {
  const long long wanted =
      std::max<long long>(1, special::multiprocessors() * ctas_per_sm / std::max<long long>(tiles, 1));
  long long slices = std::min<long long>({wanted, p.n, kMaxSplits});
  const long long pixels = p.p * p.q;
  while (slices > 1 && (p.n / slices) * pixels < 512) --slices;
  const long long per_slice = (p.n + slices - 1) / slices;
  return static_cast<int>(per_slice);
}

template <class T>
void wgrad_gemm_as(Kind kind, const ConvProblem& p, const void* x, const void* dy,
                   const TensorView& dw, const TensorView& db, bool accumulate) {
  const cudaStream_t stream = current_stream();
  const CutlassOps& ops = wgrad_ops(kind, p.k);
  const ConvShape full = fprop_shape(p);
  const int per_slice = slice_images(p, ops.tiles(full), ops.ctas_per_sm());
  const int slices = static_cast<int>((p.n + per_slice - 1) / per_slice);

  const std::int64_t filter = w_elements(p);
  const std::int64_t rows = p.n * p.p * p.q;
  const bool with_bias = !db.empty();
  const std::int64_t rows_per_chunk = std::max<std::int64_t>(256, (rows + 255) / 256);
  const int chunks = with_bias ? static_cast<int>((rows + rows_per_chunk - 1) / rows_per_chunk) : 0;
  const std::size_t bytes =
      (static_cast<std::size_t>(slices) * filter + static_cast<std::size_t>(chunks) * p.k) *
      sizeof(float);
  float* partials = static_cast<float*>(workspace(bytes, stream));
  float* bias = partials + static_cast<std::int64_t>(slices) * filter;

  std::array<WgradSplit, kMaxSplits> splits{};
  const std::size_t element = size_of(storage(kind));
  for (int i = 0; i < slices; ++i) {
    const std::int64_t n0 = static_cast<std::int64_t>(i) * per_slice;
    ConvShape shape = full;
    shape.n = static_cast<int>(std::min<std::int64_t>(per_slice, p.n - n0));
    splits[i] = {shape,
                 static_cast<const char*>(x) + n0 * p.h * p.w * p.c * element,
                 static_cast<const char*>(dy) + n0 * p.p * p.q * p.k * element,
                 partials + i * filter};
  }
  ops.wgrad(splits.data(), slices, stream);

  if (with_bias) {
    const dim3 grid(static_cast<unsigned>((p.k + kBiasColumns - 1) / kBiasColumns),
                    static_cast<unsigned>(chunks));
    bias_partials<T><<<grid, dim3(kBiasColumns, kBiasLanes), 0, stream>>>(
        static_cast<const T*>(dy), rows, static_cast<int>(p.k), rows_per_chunk, bias);
    CONVGRAD_CUDA_CHECK(cudaGetLastError());
  }
  WgradFinish f{};
  f.partials = partials;
  f.splits = slices;
  f.k = p.k, f.r = p.r, f.s = p.s, f.c = p.c;
  f.c_written = dw.dims[3];
  f.dw = dw.data;
  for (int i = 0; i < 4; ++i) f.dw_stride[i] = dw.strides[i];
  f.bias_partials = with_bias ? bias : nullptr;
  f.chunks = chunks;
  f.db = with_bias ? static_cast<float*>(db.data) : nullptr;
  f.db_stride = with_bias ? db.strides[0] : 0;
  f.accumulate = accumulate;
  const std::int64_t total = filter + (with_bias ? p.k : 0);
  finish_wgrad<T><<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(f);
  CONVGRAD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void fprop_run(Kind kind, const ConvProblem& p, const core::Operands& o, bool accumulate) {
  const bool with_bias = !o.b.empty();
  if (!packed(o.x) || !packed(o.w) || !packed(o.y) || !bias_readable(o.b)) {
    fprop_direct(p, o, accumulate);
    return;
  }
  fprop_ops(kind, p.k, p.c * p.r * p.s).fprop(fprop_shape(p), o.x.data, o.w.data,
                        with_bias ? static_cast<const float*>(o.b.data) : nullptr, o.y.data,
                        current_stream());
  finish_launches();
}

void dgrad_run(Kind kind, const ConvProblem& p, const core::Operands& o, bool accumulate) {
  if (!packed(o.x) || !packed(o.w) || !packed(o.y)) {
    dgrad_direct(p, o, accumulate);
    return;
  }
  const KChunk whole{o.y.data, o.w.data, p.k};
  dgrad_chunks_run(kind, p, o.x.data, std::span<const KChunk>(&whole, 1));
  finish_launches();
}

void dgrad_chunks_run(Kind kind, const ConvProblem& p, void* dx, std::span<const KChunk> chunks) {
  if (kind == Kind::tf32) {
    dgrad_phases_run<std::uint32_t>(kind, p, dx, chunks);
  } else {
    dgrad_phases_run<std::uint16_t>(kind, p, dx, chunks);
  }
}

void wgrad_gemm(Kind kind, const ConvProblem& gemm, const void* x, const void* dy,
                const TensorView& dw, const TensorView& db, bool accumulate) {
  if (kind == Kind::f16) {
    wgrad_gemm_as<__half>(kind, gemm, x, dy, dw, db, accumulate);
  } else {
    wgrad_gemm_as<__nv_bfloat16>(kind, gemm, x, dy, dw, db, accumulate);
  }
}

namespace {

template <Kind kind>
void fprop_as(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  fprop_run(kind, p, o, accumulate);
}
template <Kind kind>
void dgrad_as(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  dgrad_run(kind, p, o, accumulate);
}
template <Kind kind>
void wgrad_as(const ConvProblem& p, const core::Operands& o, bool accumulate) {
  if (!packed(o.x) || !packed(o.y)) {
    wgrad_direct(p, o, accumulate);
    return;
  }
  wgrad_gemm(kind, p, o.x.data, o.y.data, o.w, o.b, accumulate);
  finish_launches();
}

template <Kind kind>
std::optional<std::string> fprop_rejects_as(const ConvProblem& p) { return fprop_rejects(p, kind); }
template <Kind kind>
std::optional<std::string> dgrad_rejects_as(const ConvProblem& p) { return dgrad_rejects(p, kind); }
template <Kind kind>
std::optional<std::string> wgrad_rejects_as(const ConvProblem& p) { return wgrad_rejects(p, kind); }

// Per direction: the dense implicit GEMMs, the 3xTF32 ones (float32 under fp32_accurate), then
// the explicit-im2col ones for channel counts the dense ones cannot align.
constexpr std::array<core::KernelInfo, 17> kernel_list{{
    {"cuda.fprop.igemm.sm90a.bf16", Direction::fprop, fprop_rejects_as<Kind::bf16>, fprop_as<Kind::bf16>},
    {"cuda.fprop.igemm.sm90a.f16", Direction::fprop, fprop_rejects_as<Kind::f16>, fprop_as<Kind::f16>},
    {"cuda.fprop.igemm.sm90a.tf32", Direction::fprop, fprop_rejects_as<Kind::tf32>, fprop_as<Kind::tf32>},
    {"cuda.fprop.igemm3xtf32.sm90a.f32", Direction::fprop, accurate_fprop_rejects, accurate_fprop},
    {"cuda.fprop.im2col.sm90a.bf16", Direction::fprop, im2col_rejects_as<Kind::bf16, Direction::fprop>, im2col_run_as<Kind::bf16, Direction::fprop>},
    {"cuda.fprop.im2col.sm90a.f16", Direction::fprop, im2col_rejects_as<Kind::f16, Direction::fprop>, im2col_run_as<Kind::f16, Direction::fprop>},
    {"cuda.fprop.im2col.sm90a.tf32", Direction::fprop, im2col_rejects_as<Kind::tf32, Direction::fprop>, im2col_run_as<Kind::tf32, Direction::fprop>},
    {"cuda.dgrad.igemm.sm90a.bf16", Direction::dgrad, dgrad_rejects_as<Kind::bf16>, dgrad_as<Kind::bf16>},
    {"cuda.dgrad.igemm.sm90a.f16", Direction::dgrad, dgrad_rejects_as<Kind::f16>, dgrad_as<Kind::f16>},
    {"cuda.dgrad.igemm.sm90a.tf32", Direction::dgrad, dgrad_rejects_as<Kind::tf32>, dgrad_as<Kind::tf32>},
    {"cuda.dgrad.igemm3xtf32.sm90a.f32", Direction::dgrad, accurate_dgrad_rejects, accurate_dgrad},
    {"cuda.dgrad.col2im.sm90a.bf16", Direction::dgrad, im2col_rejects_as<Kind::bf16, Direction::dgrad>, im2col_run_as<Kind::bf16, Direction::dgrad>},
    {"cuda.dgrad.col2im.sm90a.f16", Direction::dgrad, im2col_rejects_as<Kind::f16, Direction::dgrad>, im2col_run_as<Kind::f16, Direction::dgrad>},
    {"cuda.wgrad.igemm.sm90a.bf16", Direction::wgrad, wgrad_rejects_as<Kind::bf16>, wgrad_as<Kind::bf16>},
    {"cuda.wgrad.igemm.sm90a.f16", Direction::wgrad, wgrad_rejects_as<Kind::f16>, wgrad_as<Kind::f16>},
    {"cuda.wgrad.im2col.sm90a.bf16", Direction::wgrad, im2col_rejects_as<Kind::bf16, Direction::wgrad>, im2col_run_as<Kind::bf16, Direction::wgrad>},
    {"cuda.wgrad.im2col.sm90a.f16", Direction::wgrad, im2col_rejects_as<Kind::f16, Direction::wgrad>, im2col_run_as<Kind::f16, Direction::wgrad>},
}};

}  // namespace

std::span<const core::KernelInfo> kernels() { return kernel_list; }

}  // namespace convgrad::cuda::tc
