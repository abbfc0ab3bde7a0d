// SPDX-License-Identifier: Apache-2.0
// Problem strings in oneDNN benchdnn convolution syntax (`g32mb32ic256ih28oc256oh28kh3ph1`):
// the one text form of a ConvProblem, used in messages, test names, repro commands and lists.
#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "convgrad/errors.hpp"
#include "convgrad/problem.hpp"

namespace convgrad {
namespace {

constexpr const char* kWhere = "parse_problem";

enum Field : std::size_t { g, mb, ic, ih, iw, oc, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, kCount };

constexpr std::array<std::string_view, kCount> kFieldNames = {
    "g", "mb", "ic", "ih", "iw", "oc", "oh", "ow", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw"};

// benchdnn also knows the depth fields; naming them separately lets a pasted 3-D line fail with
// "2-D only" rather than the misleading "unknown field".
constexpr std::array<std::string_view, 6> kDepthFields = {"id", "od", "kd", "sd", "pd", "dd"};

struct Fields {
  std::array<std::optional<std::int64_t>, kCount> value;
  std::array<std::string, kCount> text;  // as written, for messages

  bool has(Field f) const noexcept { return value[f].has_value(); }
  std::int64_t get(Field f) const noexcept { return *value[f]; }
};

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  [[noreturn]] void fail(std::string_view parameter, std::string_view value,
                         std::string_view rule) const {
    throw InvalidArgument(kWhere, std::string(parameter), std::string(value), std::string(rule),
                          std::string(text_));
  }

  Fields parse() {
    const std::string_view body = trim(text_);
    Fields fields;
    std::size_t i = 0;
    while (i < body.size()) {
      const char ch = body[i];
      if (ch == '_') {
        ++i;
        continue;
      }
      if (ch == 'n') {
        check_name(body.substr(i + 1));
        break;
      }
      if (!is_lower(ch)) {
        fail(std::string(1, ch), body.substr(i),
             "unexpected character; expected a field such as 'ic' or 'kh' followed by a number");
      }
      std::size_t end = i;
      while (end < body.size() && is_lower(body[end])) ++end;
      const std::string_view run = body.substr(i, end - i);
      const Field field = lookup(run);
      // A letter run longer than the field means the number is missing ("mbic3").
      const std::size_t key_end = i + kFieldNames[field].size();
      const std::string_view key = kFieldNames[field];
      if (key_end != end) fail(key, "", "missing number after the field name");
      i = key_end;
      std::size_t num_end = i;
      if (num_end < body.size() && body[num_end] == '-') ++num_end;
      const std::size_t digits_begin = num_end;
      while (num_end < body.size() && is_digit(body[num_end])) ++num_end;
      const std::string_view number = body.substr(i, num_end - i);
      if (num_end == digits_begin) fail(key, number, "missing number after the field name");
      if (fields.has(field)) fail(key, number, "field given twice");
      std::int64_t value = 0;
      const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
      if (ec != std::errc() || ptr != number.data() + number.size()) {
        fail(key, number, "value does not fit in a signed 64-bit integer");
      }
      fields.value[field] = value;
      fields.text[field] = std::string(number);
      i = num_end;
    }
    check_ranges(fields);
    return fields;
  }

 private:
  static bool is_lower(char ch) noexcept { return ch >= 'a' && ch <= 'z'; }
  static bool is_digit(char ch) noexcept { return ch >= '0' && ch <= '9'; }
  static bool is_space(char ch) noexcept {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
  }

  static std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
  }

  // Longest known field that prefixes `run`; fields are 1 or 2 letters.
  Field lookup(std::string_view run) const {
    const std::string_view two = run.substr(0, 2);
    for (std::size_t f = 0; f < kCount; ++f) {
      if (kFieldNames[f].size() == 2 && kFieldNames[f] == two) return static_cast<Field>(f);
    }
    for (const std::string_view depth : kDepthFields) {
      if (depth == two) {
        fail(depth, "", "3-D (depth) fields are not supported; convgrad problems are 2-D");
      }
    }
    if (run.front() == 'g') return Field::g;
    fail(run, "", "unknown field; fields are g mb ic ih iw oc oh ow kh kw sh sw ph pw dh dw n");
  }

  // The name only labels the problem; it is checked for shape so that trailing junk after a
  // quoted name is not silently dropped.
  void check_name(std::string_view name) const {
    if (!name.empty() && name.front() == '"') {
      const std::size_t close = name.find('"', 1);
      if (close == std::string_view::npos) fail("n", name, "unterminated quoted name");
      if (close + 1 != name.size()) fail("n", name, "text after the closing quote of the name");
      return;
    }
    if (std::any_of(name.begin(), name.end(), is_space)) {
      fail("n", name, "an unquoted name cannot contain spaces; write n\"...\"");
    }
  }

  void check_ranges(const Fields& fields) const {
    constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();
    constexpr std::int64_t kInt32Min = std::numeric_limits<std::int32_t>::min();
    for (const Field f : {mb, ic, ih, iw, oc, oh, ow, kh, kw, sh, sw, g}) {
      if (fields.has(f) && fields.get(f) <= 0) {
        fail(kFieldNames[f], fields.text[f], "must be positive");
      }
    }
    for (const Field f : {dh, dw}) {
      if (fields.has(f) && fields.get(f) < 0) {
        fail(kFieldNames[f], fields.text[f],
             "must be non-negative (benchdnn dilation counts from 0: dh0 is dense)");
      }
      // ConvProblem stores dilation + 1 in 32 bits.
      if (fields.has(f) && fields.get(f) >= kInt32Max) {
        fail(kFieldNames[f], fields.text[f], "dilation + 1 must fit in a signed 32-bit integer");
      }
    }
    for (const Field f : {g, sh, sw, ph, pw}) {
      if (fields.has(f) && (fields.get(f) > kInt32Max || fields.get(f) < kInt32Min)) {
        fail(kFieldNames[f], fields.text[f], "must fit in a signed 32-bit integer");
      }
    }
  }

  std::string_view text_;
};

// The geometry of one spatial axis after defaults; dilation is 1-based here.
struct Axis {
  std::int64_t in = 0, kernel = 0, out = 0;
  std::int64_t stride = 1, dilation = 1, pad_begin = 0, pad_end = 0;
};

std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// benchdnn's compute_pad: C (truncating) division, so odd totals round toward zero.
std::optional<std::int64_t> benchdnn_pad(std::int64_t out, std::int64_t in,
                                         std::int64_t dilated_kernel, std::int64_t stride) {
  std::int64_t total = 0;
  if (__builtin_mul_overflow(out - 1, stride, &total) ||
      __builtin_sub_overflow(total, in, &total) ||
      __builtin_add_overflow(total, dilated_kernel, &total)) {
    return std::nullopt;
  }
  return total / 2;
}

// Fills the derived parts of one axis: output size when absent, begin pad when absent, and the
// end pad that the output size implies (benchdnn's init_pad_r).
void resolve_axis(const Parser& parser, Axis& axis, bool pad_given, bool out_given,
                  std::string_view out_name) {
  constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();
  constexpr std::int64_t kInt32Min = std::numeric_limits<std::int32_t>::min();
  const auto in_int32 = [&](std::int64_t v) { return v >= kInt32Min && v <= kInt32Max; };
  const std::string out_text = std::to_string(axis.out);

  std::int64_t dilated = 0;
  if (__builtin_mul_overflow(axis.kernel - 1, axis.dilation, &dilated) ||
      __builtin_add_overflow(dilated, 1, &dilated)) {
    parser.fail(out_name, "", "the dilated kernel extent overflows 64 bits");
  }

  if (out_given) {
    if (!pad_given) {
      const auto pad = benchdnn_pad(axis.out, axis.in, dilated, axis.stride);
      if (!pad || !in_int32(*pad)) {
        parser.fail(out_name, out_text, "the implied padding does not fit in 32 bits");
      }
      axis.pad_begin = std::max<std::int64_t>(0, *pad);
    }
    std::int64_t end = 0;
    if (__builtin_mul_overflow(axis.out - 1, axis.stride, &end) ||
        __builtin_add_overflow(end, dilated, &end) || __builtin_sub_overflow(end, axis.in, &end) ||
        __builtin_sub_overflow(end, axis.pad_begin, &end) || !in_int32(end)) {
      parser.fail(out_name, out_text, "the implied end padding does not fit in 32 bits");
    }
    axis.pad_end = end;
    return;
  }

  if (!pad_given) axis.pad_begin = 0;
  axis.pad_end = axis.pad_begin;
  std::int64_t span = 0;
  if (__builtin_add_overflow(axis.in, 2 * axis.pad_begin, &span) ||
      __builtin_sub_overflow(span, dilated, &span)) {
    parser.fail(out_name, "", "the padded input size overflows 64 bits");
  }
  axis.out = floor_div(span, axis.stride) + 1;
  if (axis.out <= 0) {
    parser.fail(out_name, std::to_string(axis.out),
                "the derived output size must be positive (the dilated kernel is larger than "
                "the padded input)");
  }
}

}  // namespace

ConvProblem parse_problem(std::string_view text) {
  Parser parser(text);
  const Fields f = parser.parse();

  if (!f.has(ic)) parser.fail("ic", "", "required");
  if (!f.has(oc)) parser.fail("oc", "", "required");
  if (!f.has(ih)) parser.fail("ih", "", "required (a 2-D problem needs ih and kh)");
  if (!f.has(kh)) parser.fail("kh", "", "required (a 2-D problem needs ih and kh)");

  Axis h;
  h.in = f.get(ih);
  h.kernel = f.get(kh);
  h.stride = f.has(sh) ? f.get(sh) : 1;
  h.dilation = (f.has(dh) ? f.get(dh) : 0) + 1;
  h.pad_begin = f.has(ph) ? f.get(ph) : 0;
  h.out = f.has(oh) ? f.get(oh) : 0;
  resolve_axis(parser, h, f.has(ph), f.has(oh), "oh");

  // benchdnn's square form: with no width field at all the width axis is the height axis.
  const bool any_w = f.has(iw) || f.has(ow) || f.has(kw) || f.has(sw) || f.has(pw) || f.has(dw);
  Axis w = h;
  if (any_w) {
    w.in = f.has(iw) ? f.get(iw) : h.in;
    w.kernel = f.has(kw) ? f.get(kw) : h.kernel;
    w.stride = f.has(sw) ? f.get(sw) : h.stride;
    w.dilation = f.has(dw) ? f.get(dw) + 1 : h.dilation;
    w.out = f.has(ow) ? f.get(ow) : 0;
    // pw copies the final ph only when nothing else fixes it; with ow given it is derived.
    const bool pw_known = f.has(pw) || !f.has(ow);
    w.pad_begin = f.has(pw) ? f.get(pw) : h.pad_begin;
    resolve_axis(parser, w, pw_known, f.has(ow), "ow");
  }

  ConvProblem problem;
  problem.n = f.has(mb) ? f.get(mb) : 2;
  problem.c = f.get(ic);
  problem.k = f.get(oc);
  problem.h = h.in;
  problem.w = w.in;
  problem.r = h.kernel;
  problem.s = w.kernel;
  problem.p = h.out;
  problem.q = w.out;
  problem.stride_h = static_cast<std::int32_t>(h.stride);
  problem.stride_w = static_cast<std::int32_t>(w.stride);
  problem.dilation_h = static_cast<std::int32_t>(h.dilation);
  problem.dilation_w = static_cast<std::int32_t>(w.dilation);
  problem.pad_top = static_cast<std::int32_t>(h.pad_begin);
  problem.pad_bottom = static_cast<std::int32_t>(h.pad_end);
  problem.pad_left = static_cast<std::int32_t>(w.pad_begin);
  problem.pad_right = static_cast<std::int32_t>(w.pad_end);
  problem.groups = static_cast<std::int32_t>(f.has(g) ? f.get(g) : 1);
  return problem;
}

namespace {

// Whether a parser (ours or benchdnn's) given the output size and no pad would come back with a
// zero pad; only then may a zero pad be left out of the string.
bool zero_pad_is_implied(std::int64_t out, std::int64_t in, std::int64_t kernel,
                         std::int64_t dilation, std::int64_t stride) {
  std::int64_t dilated = 0;
  if (__builtin_mul_overflow(kernel - 1, dilation, &dilated)) return false;
  const auto implied = benchdnn_pad(out, in, dilated + 1, stride);
  return implied && *implied == 0;
}

}  // namespace

std::string to_string(const ConvProblem& p) {
  // Square form (height fields only) when the width axis is the height axis: benchdnn then
  // copies every height field, output and end pad included. Otherwise every width field that
  // benchdnn would not default the same way is written, so the line pastes into benchdnn too.
  const bool square = p.w == p.h && p.s == p.r && p.q == p.p && p.stride_w == p.stride_h &&
                      p.dilation_w == p.dilation_h && p.pad_left == p.pad_top;
  std::string out;
  const auto put = [&out](const char* key, std::int64_t value) {
    out += key;
    out += std::to_string(value);
  };
  if (p.groups != 1) put("g", p.groups);
  put("mb", p.n);
  put("ic", p.c);
  put("ih", p.h);
  if (!square) put("iw", p.w);
  put("oc", p.k);
  put("oh", p.p);
  if (!square) put("ow", p.q);
  put("kh", p.r);
  if (!square) put("kw", p.s);
  if (square) {
    if (p.stride_h != 1) put("sh", p.stride_h);
  } else if (p.stride_h != 1 || p.stride_w != 1) {
    put("sh", p.stride_h);
    put("sw", p.stride_w);
  }
  // A zero pad is left out when the output size implies it, as benchdnn writes 1x1 layers.
  if (p.pad_top != 0 || !zero_pad_is_implied(p.p, p.h, p.r, p.dilation_h, p.stride_h)) {
    put("ph", p.pad_top);
  }
  if (!square &&
      (p.pad_left != 0 || !zero_pad_is_implied(p.q, p.w, p.s, p.dilation_w, p.stride_w))) {
    put("pw", p.pad_left);
  }
  if (square) {
    if (p.dilation_h != 1) put("dh", std::int64_t{p.dilation_h} - 1);
  } else if (p.dilation_h != 1 || p.dilation_w != 1) {
    put("dh", std::int64_t{p.dilation_h} - 1);
    put("dw", std::int64_t{p.dilation_w} - 1);
  }
  return out;
}

}  // namespace convgrad
