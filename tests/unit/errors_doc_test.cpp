// SPDX-License-Identifier: Apache-2.0
// docs/errors.md lists every rule with the test that covers it. These checks keep the table and
// the tests in step: a renamed or deleted test, a rule test missing from the table, or a
// parameter name that no test uses fails here instead of leaving the document stale.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace convgrad {
namespace {

namespace fs = std::filesystem;

const fs::path kTestsDir = fs::path(__FILE__).parent_path().parent_path();
const fs::path kDocPath = kTestsDir.parent_path() / "docs" / "errors.md";

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct Row {
  int line = 0;
  std::vector<std::string> cells;  // where, parameter, rule, exception, test
};

std::string trim(const std::string& text) {
  const auto begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return {};
  return text.substr(begin, text.find_last_not_of(" \t") - begin + 1);
}

// The body rows of every five-column rule table (header rows name "Test", separators are dashes).
std::vector<Row> rule_rows(const std::string& doc) {
  std::vector<Row> rows;
  std::istringstream in(doc);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.rfind("|", 0) != 0) continue;
    Row row{number, {}};
    std::string cell;
    for (std::size_t i = 1; i < line.size(); ++i) {
      if (line[i] == '|') {
        row.cells.push_back(trim(cell));
        cell.clear();
      } else {
        cell += line[i];
      }
    }
    if (row.cells.empty() || row.cells.back() == "Test" || row.cells[0].rfind("---", 0) == 0) {
      continue;
    }
    rows.push_back(row);
  }
  return rows;
}

std::vector<std::string> backticked(const std::string& cell) {
  std::vector<std::string> names;
  static const std::regex code("`([^`]+)`");
  for (std::sregex_iterator it(cell.begin(), cell.end(), code), end; it != end; ++it) {
    names.push_back((*it)[1]);
  }
  return names;
}

// Every TEST / TEST_F / TEST_P under tests/, as "Suite.Name", and the text of all test sources.
struct TestSources {
  std::set<std::string> tests;
  std::string text;
};

TestSources scan_tests() {
  TestSources sources;
  static const std::regex test_macro(R"(\bTEST(?:_F|_P)?\(\s*(\w+)\s*,\s*(\w+)\s*\))");
  for (const auto& entry : fs::recursive_directory_iterator(kTestsDir)) {
    const std::string ext = entry.path().extension().string();
    if (!entry.is_regular_file() || (ext != ".cpp" && ext != ".hpp")) continue;
    const std::string text = read_text(entry.path());
    for (std::sregex_iterator it(text.begin(), text.end(), test_macro), end; it != end; ++it) {
      sources.tests.insert((*it)[1].str() + "." + (*it)[2].str());
    }
    sources.text += text;
  }
  return sources;
}

class ErrorsDoc : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kDocPath)) << kDocPath;
    rows_ = rule_rows(read_text(kDocPath));
  }
  static const TestSources& sources() {
    static const TestSources scanned = scan_tests();  // the tree does not change during a run
    return scanned;
  }
  std::vector<Row> rows_;
  const TestSources& sources_ = sources();
};

TEST_F(ErrorsDoc, TablesAreWellFormed) {
  ASSERT_GE(rows_.size(), 60u) << "the rule tables were not found in " << kDocPath;
  for (const Row& row : rows_) {
    SCOPED_TRACE("docs/errors.md:" + std::to_string(row.line));
    ASSERT_EQ(row.cells.size(), 5u);
    EXPECT_FALSE(row.cells[0].empty()) << "where";
    EXPECT_FALSE(row.cells[2].empty()) << "rule";
    const std::string& type = row.cells[3];
    EXPECT_TRUE(type == "InvalidArgument" || type == "Unsupported" || type == "FormatError")
        << type;
    // A rule without a test must say why.
    if (backticked(row.cells[4]).empty()) {
      EXPECT_EQ(row.cells[4].rfind("— not", 0), 0u) << row.cells[4];
    }
  }
}

TEST_F(ErrorsDoc, EveryListedTestExists) {
  for (const Row& row : rows_) {
    for (const std::string& name : backticked(row.cells.at(4))) {
      EXPECT_TRUE(sources_.tests.count(name) == 1)
          << "docs/errors.md:" << row.line << " names " << name
          << ", which is no TEST(Suite, Name) or TEST_F(Suite, Name) under tests/";
    }
  }
}

TEST_F(ErrorsDoc, EveryRuleTestIsListed) {
  std::set<std::string> listed;
  for (const Row& row : rows_) {
    for (const std::string& name : backticked(row.cells.at(4))) listed.insert(name);
  }
  for (const std::string& test : sources_.tests) {
    if (test.rfind("InvalidProblem.", 0) == 0 || test.rfind("InvalidApi.", 0) == 0) {
      EXPECT_TRUE(listed.count(test) == 1) << test << " is missing from docs/errors.md";
    }
  }
}

TEST_F(ErrorsDoc, EveryParameterNameIsUsedByATest) {
  // The names are what e.parameter() returns; a test expecting each one keeps the spelling true.
  // `<t>`-style placeholders stand for several names and are skipped.
  for (const Row& row : rows_) {
    for (const std::string& name : backticked(row.cells.at(1))) {
      if (name.find('<') != std::string::npos) continue;
      EXPECT_NE(sources_.text.find("\"" + name + "\""), std::string::npos)
          << "docs/errors.md:" << row.line << ": no test expects parameter \"" << name << "\"";
    }
  }
}

}  // namespace
}  // namespace convgrad
