// SPDX-License-Identifier: Apache-2.0
#include "gpu/gpu_support.hpp"

#include <cstdlib>
#include <exception>
#include <string>

#include "convgrad/errors.hpp"

namespace convgrad::test {
namespace {

Outputs make_outputs(const ConvProblem& p, Layout layout, const Inputs& in, std::mt19937_64& rng) {
  Outputs out{StridedTensor(p.y_type, output_dims(p), layout, rng),
              StridedTensor(p.x_type, image_dims(p), layout, rng),
              StridedTensor(p.w_type, filter_dims(p), layout, rng),
              StridedTensor(DataType::float32, bias_dims(p), layout, rng),
              StridedTensor(p.w_type, filter_dims(p), layout, rng),
              StridedTensor(DataType::float32, bias_dims(p), layout, rng),
              StridedTensor(p.w_type, filter_dims(p), layout, rng),
              StridedTensor(DataType::float32, bias_dims(p), layout, rng)};
  out.dw_acc.scatter(in.dw0.gather());
  out.db_acc.scatter(in.db0.gather());
  return out;
}

void run_reference(const ConvProblem& p, const Inputs& in, Outputs& ref, const Kernels& kernels) {
  const TensorView none{};
  if (kernels.fprop) {
    fprop(p, in.x.view(), in.w.view(), p.with_bias ? in.b.view() : none, ref.y.view(),
          run_on("ref"));
  }
  if (kernels.dgrad) dgrad(p, in.dy.view(), in.w.view(), ref.dx.view(), run_on("ref"));
  if (kernels.wgrad) {
    wgrad(p, in.x.view(), in.dy.view(), ref.dw.view(), p.with_bias ? ref.db.view() : none,
          run_on("ref"));
    wgrad(p, in.x.view(), in.dy.view(), ref.dw_acc.view(), p.with_bias ? ref.db_acc.view() : none,
          run_on("ref", {}, true));
  }
}

bool mostly_zero(const ConvProblem& p, const Outputs& ref, const Kernels& kernels) {
  return (kernels.fprop && mostly_zero_where(ref.y.gather(), reached(p, Direction::fprop))) ||
         (kernels.dgrad && mostly_zero_where(ref.dx.gather(), reached(p, Direction::dgrad))) ||
         (kernels.wgrad && mostly_zero_where(ref.dw.gather(), reached(p, Direction::wgrad)));
}

void run_cuda(const ConvProblem& p, const Inputs& in, Outputs& out, const Kernels& kernels) {
  const TensorView none{};
  const DeviceMirror gx(in.x), gw(in.w), gb(in.b), gdy(in.dy);
  DeviceMirror gy(out.y), gdx(out.dx), gdw(out.dw), gdb(out.db), gdw_acc(out.dw_acc),
      gdb_acc(out.db_acc), gdw2(out.dw2), gdb2(out.db2);
  for (DeviceMirror* poisoned : {&gy, &gdx, &gdw, &gdb, &gdw2, &gdb2}) poisoned->poison();
  if (kernels.fprop) {
    fprop(p, gx.view(), gw.view(), p.with_bias ? gb.view() : none, gy.view(),
          run_on("cuda", *kernels.fprop));
  }
  if (kernels.dgrad) {
    dgrad(p, gdy.view(), gw.view(), gdx.view(), run_on("cuda", *kernels.dgrad));
  }
  if (kernels.wgrad) {
    const std::string& kernel = *kernels.wgrad;
    wgrad(p, gx.view(), gdy.view(), gdw.view(), p.with_bias ? gdb.view() : none,
          run_on("cuda", kernel));
    wgrad(p, gx.view(), gdy.view(), gdw2.view(), p.with_bias ? gdb2.view() : none,
          run_on("cuda", kernel));
    wgrad(p, gx.view(), gdy.view(), gdw_acc.view(), p.with_bias ? gdb_acc.view() : none,
          run_on("cuda", kernel, true));
  }
  gy.download(out.y);
  gdx.download(out.dx);
  gdw.download(out.dw);
  gdb.download(out.db);
  gdw_acc.download(out.dw_acc);
  gdb_acc.download(out.db_acc);
  gdw2.download(out.dw2);
  gdb2.download(out.db2);
}

bool compare(const ConvProblem& p, const Outputs& got, const Outputs& want, const CudaCheck& check,
             double& max_error) {
  const auto close = [&](const char* name, const StridedTensor& a, const StridedTensor& b) {
    return expect_close(name, check.backend, a, b, check.tolerance, max_error, check.reference);
  };
  const auto repeatable = [](const char* name, const StridedTensor& first,
                             const StridedTensor& second) {
    const bool same = same_bits(first, second);
    EXPECT_TRUE(same) << name << " differs between two runs";
    return same;
  };
  bool ok = true;
  if (check.kernels.fprop) ok &= close("fprop y", got.y, want.y);
  if (check.kernels.dgrad) ok &= close("dgrad dx", got.dx, want.dx);
  if (check.kernels.wgrad) {
    ok &= close("wgrad dw", got.dw, want.dw);
    ok &= close("wgrad dw (accumulate)", got.dw_acc, want.dw_acc);
    ok &= repeatable("wgrad dw", got.dw, got.dw2);
    if (p.with_bias) {
      ok &= close("wgrad db", got.db, want.db);
      ok &= close("wgrad db (accumulate)", got.db_acc, want.db_acc);
      ok &= repeatable("wgrad db", got.db, got.db2);
    }
  }
  return ok;
}

}  // namespace

std::int64_t problem_count(std::int64_t wanted) {
  if (const char* env = std::getenv("CONVGRAD_GPU_PROBLEMS")) {
    const long long value = std::atoll(env);
    if (value > 0) return value;
  }
  return wanted;
}

Outcome check_problem(const ConvProblem& p, Layout layout, const CudaCheck& check,
                      std::mt19937_64& rng, double& max_error,
                      const std::function<void()>& before_cuda) {
  // The starting dw and db of accumulate mode are dense whatever the layout.
  Inputs in{StridedTensor(p.x_type, image_dims(p), layout, rng),
                  StridedTensor(p.w_type, filter_dims(p), layout, rng),
                  StridedTensor(DataType::float32, bias_dims(p), layout, rng),
                  StridedTensor(p.y_type, output_dims(p), layout, rng),
                  StridedTensor(p.w_type, filter_dims(p), Layout::dense, rng),
                  StridedTensor(DataType::float32, bias_dims(p), Layout::dense, rng)};
  for (StridedTensor* t : {&in.x, &in.w, &in.b, &in.dy, &in.dw0, &in.db0}) fill(*t, check.data, rng);
  Outputs ref = make_outputs(p, layout, in, rng);
  try {
    run_reference(p, in, ref, check.kernels);
  } catch (const std::exception& error) {
    ADD_FAILURE() << "the reference threw: " << error.what();
    return Outcome::threw;
  }
  // Windows wholly in the padding, or integer data cancelled: draw another.
  if (mostly_zero(p, ref, check.kernels)) return Outcome::redrawn;
  Outputs got = make_outputs(p, layout, in, rng);
  try {
    if (before_cuda) before_cuda();
    run_cuda(p, in, got, check.kernels);
  } catch (const std::exception& error) {
    ADD_FAILURE() << check.backend << " threw: " << error.what();
    return Outcome::threw;
  }
  return compare(p, got, ref, check, max_error) ? Outcome::passed : Outcome::mismatched;
}

bool Tally::add(Outcome outcome) {
  redrawn += outcome == Outcome::redrawn;
  failures += outcome == Outcome::threw || outcome == Outcome::mismatched;
  const bool was_run = outcome == Outcome::passed || outcome == Outcome::mismatched;
  ran += was_run;
  return was_run;
}

void Tally::expect_done(std::int64_t problems) const {
  EXPECT_LT(failures, 10) << "stopped after 10 failing problems";
  EXPECT_GE(ran, problems);
}

void expect_refused(const ConvProblem& p, Direction direction, const std::string& kernel,
                    const std::string& reason) {
  SCOPED_TRACE(kernel + " on " + describe(p));
  try {
    (void)kernel_name(p, direction, run_on("cuda", kernel));
    ADD_FAILURE() << "accepted, expected a refusal naming \"" << reason << "\"";
  } catch (const Unsupported& error) {
    EXPECT_NE(std::string(error.what()).find(reason), std::string::npos) << error.what();
  }
}

}  // namespace convgrad::test
