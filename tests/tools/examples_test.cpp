// The programs in examples/ run as documented: several prompts served concurrently through the
// Scheduler, and a long shared prefix evaluated once and then taken from the cache.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>

#include "model/model_helpers.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

std::string example(const std::string& name) {
  return (std::filesystem::path(QLM_BINARY_DIR) / "examples" / name).string();
}

}  // namespace

TEST_CASE("examples: serve_concurrent streams three prompts at once", "[tools][examples]") {
  if (!std::filesystem::exists(example("serve_concurrent"))) {
    WARN("skipped: examples are not built in this configuration");
    return;
  }
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  std::string out;
  REQUIRE(run_command(fmt::format("'{}' '{}' 'Once upon a time' 'The dog' 'Lily was' 2>&1",
                                  example("serve_concurrent"), (tmp / "m.qlm").string()),
                      out) == 0);
  INFO(out);
  for (int i = 1; i <= 3; ++i) CHECK(contains(out, fmt::format("[{}] done: 48 tokens", i)));
}

TEST_CASE("examples: shared_prefix evaluates a document once", "[tools][examples]") {
  if (!std::filesystem::exists(example("shared_prefix"))) {
    WARN("skipped: examples are not built in this configuration");
    return;
  }
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  std::string doc;
  for (int i = 0; i < 8; ++i) doc += "Lily had a red ball. She played with it in the park.\n";
  write_text(tmp / "doc.txt", doc);
  std::string out;
  REQUIRE(run_command(fmt::format("'{}' '{}' '{}' 'Where did Lily play?' 'What did she have?'",
                                  example("shared_prefix"), (tmp / "m.qlm").string(),
                                  (tmp / "doc.txt").string()),
                      out) == 0);
  INFO(out);
  std::smatch m;
  REQUIRE(std::regex_search(out, m, std::regex("question 1: (\\d+) prompt tokens, 0 from")));
  REQUIRE(std::regex_search(out, m, std::regex("question 2: (\\d+) prompt tokens, (\\d+) from")));
  const int cached = std::stoi(m[2].str());
  CHECK(cached >= 96);  // the document's whole pages at least
  CHECK(cached < std::stoi(m[1].str()));
}

}  // namespace qlm::test
