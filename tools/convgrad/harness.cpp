// SPDX-License-Identifier: Apache-2.0
#include "harness.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "convgrad/device.hpp"
#include "convgrad/errors.hpp"
#include "convgrad/image.hpp"
#include "core/npy.hpp"
#include "core/validate.hpp"

namespace convgrad::tool {
namespace {

constexpr float kPoison = std::numeric_limits<float>::quiet_NaN();

// splitmix64 rather than <random>'s distributions, whose output differs between standard
// libraries: a seed printed on one machine must give the same tensors on every other.
class Uniform {
 public:
  explicit Uniform(std::uint64_t seed) : state_(seed) {}

  // 24 random bits: every value is exact in float, and the grid is symmetric about 0.
  float next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    constexpr std::int64_t kHalf = std::int64_t{1} << 23;
    return static_cast<float>(static_cast<std::int64_t>(z >> 40) - kHalf) /
           static_cast<float>(kHalf);
  }

  std::vector<float> tensor(std::int64_t count) {
    std::vector<float> values(static_cast<std::size_t>(count));
    for (float& v : values) v = next();
    return values;
  }

 private:
  std::uint64_t state_;
};

// Tensors live where the backend reads them; Image already knows how to allocate on a device and
// convert floats to the storage type, so the CLI needs no memory code of its own.
Device device_for(const std::string& backend) {
  if (backend == "cuda") return Device::cuda();
  if (backend == "ref") return Device::reference();
  return Device::cpu();
}

Image make_image(const Device& device, DataType type, std::int64_t d0, std::int64_t d1,
                 std::int64_t d2, std::int64_t d3) {
  return Image(device, ImageDescriptor{.width = d2,
                                       .height = d1,
                                       .feature_channels = d3,
                                       .number_of_images = d0,
                                       .data_type = type});
}

// A bias is stored as a 1x1x1xK image, but kernels expect the {K, 1, 1, 1} view of bias_view.
TensorView bias_of(const Image& image) {
  TensorView view = image.view();
  view.dims = {image.feature_channels(), 1, 1, 1};
  view.strides = {1, 1, 1, 1};
  return view;
}

void poison(Image& image) {
  const ImageDescriptor d = image.descriptor();
  image.write(std::vector<float>(
      static_cast<std::size_t>(d.number_of_images * d.height * d.width * d.feature_channels),
      kPoison));
}

template <class Call>
double median_ms(int repeat, const Call& call) {
  std::vector<double> times;
  for (int i = 0; i < std::max(repeat, 1); ++i) {
    const auto start = std::chrono::steady_clock::now();
    call();
    const auto stop = std::chrono::steady_clock::now();
    times.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  std::sort(times.begin(), times.end());
  const std::size_t mid = times.size() / 2;
  return times.size() % 2 == 1 ? times[mid] : 0.5 * (times[mid - 1] + times[mid]);
}

// std::max would drop a NaN depending on the argument order.
double worst(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b); }

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char ch : text) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(ch));
      out += buffer;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string json_shape(const std::vector<std::int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return out + "]";
}

}  // namespace

DataType BackendOptions::data_type() const {
  // CLI11 has already restricted --dtype to the names parse_data_type knows.
  return parse_data_type(dtype).value_or(DataType::float32);
}

RunOptions BackendOptions::run_options() const {
  RunOptions options;
  options.backend = backend;
  options.kernel = kernel;
  return options;
}

std::uint64_t BackendOptions::resolved_seed() const {
  return seed_option != nullptr && seed_option->count() > 0 ? seed : random_seed();
}

void add_backend_options(CLI::App& command, BackendOptions& options) {
  command.add_option("--backend", options.backend, "Backend under test (see `convgrad list`)")
      ->check(CLI::IsMember(backend_names()))
      ->capture_default_str();
  command.add_option("--dtype", options.dtype, "Storage type of x, w, y and their gradients")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}))
      ->capture_default_str();
  command.add_option("--kernel", options.kernel,
                     "Glob over kernel names, e.g. 'cpu.dgrad.*' (default: the first kernel "
                     "that accepts the problem)");
  options.seed_option = command.add_option(
      "--seed", options.seed, "Seed of the random inputs (default: a fresh one, printed)");
}

ConvProblem parse_checked_problem(std::string_view text) {
  ConvProblem problem = parse_problem(text);
  core::validate_problem(problem, "problem");
  return problem;
}

ConvProblem with_data_type(ConvProblem problem, DataType type) {
  problem.x_type = problem.w_type = problem.y_type = type;
  return problem;
}

std::vector<core::NamedProblem> read_layers(const std::string& path) {
  try {
    return core::read_layer_csv(path);
  } catch (const FormatError& error) {
    throw UsageError(std::string("--layers: ") + error.what());
  }
}

core::NamedProblem find_layer(const std::string& path, const std::string& name) {
  const std::vector<core::NamedProblem> layers = read_layers(path);
  std::string names;
  for (const core::NamedProblem& layer : layers) {
    if (layer.name == name) return layer;
    names += (names.empty() ? "" : ", ") + layer.name;
  }
  throw UsageError("--layer " + name + ": no such layer in " + path + " (it has: " + names + ")");
}

std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (const BackendInfo& info : list_backends()) names.push_back(info.name);
  return names;
}

std::uint64_t random_seed() {
  std::random_device device;
  return device();  // 32 bits: short enough to copy from a log into --seed
}

double multiply_adds(const ConvProblem& problem) {
  double most = 0;
  for (const Direction d : {Direction::fprop, Direction::dgrad, Direction::wgrad}) {
    most = std::max(most, flop_count(problem, d) / 2);
  }
  return most;
}

double tolerance(DataType type) { return type == DataType::float32 ? 1e-5 : 1e-2; }

double max_relative_error(std::span<const float> actual, std::span<const float> expected) {
  double max_diff = 0, max_ref = 0;
  const std::size_t count = std::min(actual.size(), expected.size());
  for (std::size_t i = 0; i < count; ++i) {
    const double diff = std::abs(static_cast<double>(actual[i]) - expected[i]);
    if (std::isnan(diff)) return NAN;
    max_diff = std::max(max_diff, diff);
    max_ref = std::max(max_ref, std::abs(static_cast<double>(expected[i])));
  }
  if (actual.size() != expected.size()) return NAN;
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

Stats summarize(std::span<const float> values) {
  Stats stats;
  if (values.empty()) return stats;
  stats.min = stats.max = values[0];
  double sum = 0, squares = 0;
  for (const float v : values) {
    stats.min = std::min<double>(stats.min, v);
    stats.max = std::max<double>(stats.max, v);
    sum += v;
    squares += static_cast<double>(v) * v;
  }
  stats.mean = sum / static_cast<double>(values.size());
  stats.l2 = std::sqrt(squares);
  return stats;
}

bool Evaluation::passed() const {
  return std::all_of(directions.begin(), directions.end(),
                     [](const DirectionResult& d) { return d.pass; });
}

Evaluation evaluate(const ConvProblem& problem, const EvaluateOptions& options) {
  const ConvProblem& p = problem;
  Evaluation e;
  e.problem = p;
  e.seed = options.seed;

  // Fixed draw order x, w, b, dy: `run --seed S` reproduces what `check` reported for seed S.
  Uniform uniform(options.seed);
  const std::vector<float> x = uniform.tensor(x_elements(p));
  const std::vector<float> w = uniform.tensor(w_elements(p));
  const std::vector<float> b = uniform.tensor(p.k);
  const std::vector<float> dy = uniform.tensor(y_elements(p));

  const Device device = device_for(options.run.backend);
  Image xi = make_image(device, p.x_type, p.n, p.h, p.w, p.c);
  Image wi = make_image(device, p.w_type, p.k, p.r, p.s, p.c_per_group());
  Image bi = make_image(device, DataType::float32, 1, 1, 1, p.k);
  Image dyi = make_image(device, p.y_type, p.n, p.p, p.q, p.k);
  Image yi = make_image(device, p.y_type, p.n, p.p, p.q, p.k);
  Image dxi = make_image(device, p.x_type, p.n, p.h, p.w, p.c);
  Image dwi = make_image(device, p.w_type, p.k, p.r, p.s, p.c_per_group());
  Image dbi = make_image(device, DataType::float32, 1, 1, 1, p.k);
  xi.write(x);
  wi.write(w);
  bi.write(b);
  dyi.write(dy);
  // Reading back gives the rounded f16/bf16 values, which the reference must see too.
  e.x = xi.read();
  e.w = wi.read();
  e.b = bi.read();
  e.dy = dyi.read();
  // An element a kernel forgets to write stays NaN and fails the comparison.
  for (Image* out : {&yi, &dxi, &dwi, &dbi}) poison(*out);

  const std::array<Direction, 3> order{Direction::fprop, Direction::dgrad, Direction::wgrad};
  for (std::size_t i = 0; i < order.size(); ++i) {
    e.directions[i].direction = order[i];
    e.directions[i].kernel = kernel_name(p, order[i], options.run);
  }
  const RunOptions& run = options.run;
  e.directions[0].median_ms = median_ms(
      options.repeat, [&] { fprop(p, xi.view(), wi.view(), bias_of(bi), yi.view(), run); });
  e.directions[1].median_ms =
      median_ms(options.repeat, [&] { dgrad(p, dyi.view(), wi.view(), dxi.view(), run); });
  e.directions[2].median_ms = median_ms(
      options.repeat, [&] { wgrad(p, xi.view(), dyi.view(), dwi.view(), bias_of(dbi), run); });
  e.y = yi.read();
  e.dx = dxi.read();
  e.dw = dwi.read();
  e.db = dbi.read();

  // The reference reads the stored values as float32 and writes float32: its answer is not
  // rounded to the storage type, so the error includes the backend's own output rounding.
  const ConvProblem rp = with_data_type(p, DataType::float32);
  RunOptions ref;
  ref.backend = "ref";
  std::vector<float> rx = e.x, rw = e.w, rb = e.b, rdy = e.dy;
  std::vector<float> ry(e.y.size(), kPoison), rdx(e.x.size(), kPoison);
  std::vector<float> rdw(e.w.size(), kPoison), rdb(e.b.size(), kPoison);
  const DataType f32 = DataType::float32;
  const TensorView x_view = dense_view(rx.data(), f32, p.n, p.h, p.w, p.c);
  const TensorView w_view = dense_view(rw.data(), f32, p.k, p.r, p.s, p.c_per_group());
  const TensorView dy_view = dense_view(rdy.data(), f32, p.n, p.p, p.q, p.k);
  fprop(rp, x_view, w_view, bias_view(rb.data(), p.k),
        dense_view(ry.data(), f32, p.n, p.p, p.q, p.k), ref);
  dgrad(rp, dy_view, w_view, dense_view(rdx.data(), f32, p.n, p.h, p.w, p.c), ref);
  wgrad(rp, x_view, dy_view, dense_view(rdw.data(), f32, p.k, p.r, p.s, p.c_per_group()),
        bias_view(rdb.data(), p.k), ref);

  // The loosest storage type sets the bar; mixed types come only from the API, not the CLI.
  const double limit = std::max({tolerance(p.x_type), tolerance(p.w_type), tolerance(p.y_type)});
  e.directions[0].rel_error = max_relative_error(e.y, ry);
  e.directions[1].rel_error = max_relative_error(e.dx, rdx);
  e.dw_error = max_relative_error(e.dw, rdw);
  e.db_error = max_relative_error(e.db, rdb);
  e.directions[2].rel_error = worst(e.dw_error, e.db_error);
  for (DirectionResult& d : e.directions) d.pass = within(d.rel_error, limit);
  return e;
}

void make_dump_folder(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) throw FormatError("--dump " + dir + ": cannot create the folder: " + error.message());
}

void dump(const Evaluation& e, const std::string& backend, const std::string& dir) {
  make_dump_folder(dir);
  const ConvProblem& p = e.problem;
  const std::vector<std::int64_t> x_shape{p.n, p.h, p.w, p.c};
  const std::vector<std::int64_t> w_shape{p.k, p.r, p.s, p.c_per_group()};
  const std::vector<std::int64_t> y_shape{p.n, p.p, p.q, p.k};
  const std::vector<std::int64_t> b_shape{p.k};
  const struct {
    const char* name;
    const std::vector<float>* data;
    const std::vector<std::int64_t>* shape;
  } files[] = {{"x", &e.x, &x_shape},   {"w", &e.w, &w_shape},  {"b", &e.b, &b_shape},
               {"dy", &e.dy, &y_shape}, {"y", &e.y, &y_shape},  {"dx", &e.dx, &x_shape},
               {"dw", &e.dw, &w_shape}, {"db", &e.db, &b_shape}};
  const std::filesystem::path folder(dir);
  for (const auto& file : files) {
    core::write_npy((folder / (std::string(file.name) + ".npy")).string(), file.data->data(),
                    *file.shape);
  }

  std::ostringstream json;
  json << "{\n  \"problem\": " << json_string(to_string(p)) << ",\n";
  const std::pair<const char*, std::int64_t> fields[] = {{"n", p.n},
                                                         {"h", p.h},
                                                         {"w", p.w},
                                                         {"c", p.c},
                                                         {"k", p.k},
                                                         {"r", p.r},
                                                         {"s", p.s},
                                                         {"p", p.p},
                                                         {"q", p.q},
                                                         {"stride_h", p.stride_h},
                                                         {"stride_w", p.stride_w},
                                                         {"dilation_h", p.dilation_h},
                                                         {"dilation_w", p.dilation_w},
                                                         {"pad_top", p.pad_top},
                                                         {"pad_left", p.pad_left},
                                                         {"pad_bottom", p.pad_bottom},
                                                         {"pad_right", p.pad_right},
                                                         {"groups", p.groups}};
  for (const auto& [name, value] : fields) json << "  \"" << name << "\": " << value << ",\n";
  json << "  \"x_type\": " << json_string(to_string(p.x_type)) << ",\n"
       << "  \"w_type\": " << json_string(to_string(p.w_type)) << ",\n"
       << "  \"y_type\": " << json_string(to_string(p.y_type)) << ",\n"
       << "  \"math\": " << json_string(to_string(p.math)) << ",\n"
       << "  \"with_bias\": " << (p.with_bias ? "true" : "false") << ",\n"
       << "  \"dtype\": " << json_string(to_string(p.x_type)) << ",\n"
       << "  \"backend\": " << json_string(backend) << ",\n"
       << "  \"kernels\": {";
  for (std::size_t i = 0; i < e.directions.size(); ++i) {
    json << (i ? ", " : "") << json_string(convgrad::to_string(e.directions[i].direction)) << ": "
         << json_string(e.directions[i].kernel);
  }
  json << "},\n  \"seed\": " << e.seed << ",\n"
       << "  \"layout\": {\"x\": \"NHWC\", \"dx\": \"NHWC\", \"y\": \"NPQK\", \"dy\": \"NPQK\", "
          "\"w\": \"KRSC (OHWI, C per group)\", \"dw\": \"KRSC (OHWI, C per group)\", "
          "\"b\": \"K\", \"db\": \"K\"},\n"
       << "  \"shapes\": {";
  for (std::size_t i = 0; i < std::size(files); ++i) {
    json << (i ? ", " : "") << json_string(files[i].name) << ": " << json_shape(*files[i].shape);
  }
  json << "}\n}\n";

  const std::string path = (folder / "problem.json").string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << json.str();
  out.close();
  if (!out) throw FormatError(path + ": cannot write the file");
}

std::string shape_string(std::span<const std::int64_t> dims) {
  std::string out;
  for (std::size_t i = 0; i < dims.size(); ++i) out += (i ? "x" : "") + std::to_string(dims[i]);
  return out;
}

std::string scientific(double value, int digits) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.*e", digits, value);
  return buffer;
}

}  // namespace convgrad::tool
