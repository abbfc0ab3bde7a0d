// SPDX-License-Identifier: Apache-2.0
// The dependency rule of docs/architecture.md: core knows no backend and no MPS object; backends
// include only core and the plain public headers; nothing below src/api includes src/api.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>

namespace {

namespace fs = std::filesystem;

const fs::path kSource = fs::path(__FILE__).parent_path().parent_path().parent_path() / "src";

// Public headers a backend may use: plain data, no MPS-like objects.
const std::set<std::string> kPlainPublic = {"convgrad/problem.hpp", "convgrad/tensor_view.hpp",
                                            "convgrad/dtype.hpp", "convgrad/errors.hpp",
                                            "convgrad/functional.hpp"};

std::vector<std::pair<fs::path, std::string>> includes_of(const std::string& layer) {
  std::vector<std::pair<fs::path, std::string>> result;
  const std::regex include(R"re(#include\s+"([^"]+)")re");
  for (const auto& entry : fs::recursive_directory_iterator(kSource / layer)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line)) {
      std::smatch m;
      if (std::regex_search(line, m, include)) result.emplace_back(entry.path(), m[1]);
    }
  }
  return result;
}

void check_layer(const std::string& layer, const std::set<std::string>& allowed_prefixes,
                 bool plain_public_only) {
  ASSERT_TRUE(fs::exists(kSource / layer)) << kSource / layer;
  for (const auto& [file, header] : includes_of(layer)) {
    if (header.rfind("convgrad/", 0) == 0) {
      if (plain_public_only) {
        EXPECT_TRUE(kPlainPublic.count(header)) << file << " includes " << header;
      }
      continue;
    }
    const std::string prefix = header.substr(0, header.find('/'));
    EXPECT_TRUE(allowed_prefixes.count(prefix)) << file << " includes " << header;
  }
}

TEST(Layering, CoreKnowsNoBackendAndNoObjects) { check_layer("core", {"core"}, true); }
TEST(Layering, RefIncludesOnlyCore) { check_layer("ref", {"core", "ref"}, true); }
TEST(Layering, CpuIncludesOnlyCore) { check_layer("cpu", {"core", "cpu"}, true); }
TEST(Layering, CudaIncludesOnlyCore) {
  check_layer("cuda", {"core", "cuda"}, true);
  check_layer("cuda_stub", {"core", "cuda"}, true);
}
TEST(Layering, DispatchSeesBackendsNotObjects) {
  check_layer("dispatch", {"core", "dispatch", "ref", "cpu", "cuda"}, true);
}
TEST(Layering, ApiReachesBackendsOnlyThroughDispatch) {
  check_layer("api", {"api", "core", "dispatch"}, false);
}

}  // namespace
