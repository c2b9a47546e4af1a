// qlm-bench's bandwidth accounting: a tg row's GB/s is its tokens per second times the bytes one
// token reads, and --bandwidth adds a probe per thread count.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "model/model_helpers.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  for (std::string f; std::getline(ss, f, sep);) out.push_back(f);
  return out;
}

}  // namespace

TEST_CASE("qlm-bench reports the bytes a generated token streams", "[tools]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  std::string out;
  const std::string cmd =
      fmt::format("'{}' -m '{}' -p 8 -n 4 -d 0,40 -t 1,2 -r 1 --kv-type f16 --bandwidth -o csv",
                  tool_path("qlm-bench"), (tmp / "m.qlm").string());
  REQUIRE(run_command(cmd, out) == 0);
  INFO(out);
  std::stringstream lines(out);
  std::string line;
  std::getline(lines, line);
  const auto header = split(line, ',');
  REQUIRE(header.size() == 15);
  CHECK(header[11] == "stream_gbs");
  CHECK(header[12] == "probe_gbs");
  CHECK(header[13] == "activations");
  CHECK(header[14] == "seqs");
  int tg_rows = 0;
  while (std::getline(lines, line)) {
    const auto f = split(line, ',');
    REQUIRE(f.size() == 15);
    CHECK(f[13] == "auto");
    CHECK(f[14] == "1");  // one sequence without --parallel
    const double size = std::stod(f[1]), tps = std::stod(f[8]), gbs = std::stod(f[11]);
    CHECK(std::stod(f[12]) > 0.0);  // the probe ran for this thread count
    if (f[7].rfind("pp", 0) == 0) {
      CHECK(gbs == 0.0);
      continue;
    }
    ++tg_rows;
    // stories260K ties its embedding (read whole, as the LM head); an f16 cache position holds
    // K and V for 5 layers x 4 KV heads x head_dim 8. A tg4 token attends on average to
    // depth + 2.5 positions, plus the untimed first token at depth 0.
    const double depth = f[7].find("@ d40") != std::string::npos ? 40.0 : 1.0;
    const double per_token = size + (depth + 2.5) * (2 * 5 * 4 * 8 * 2);
    CHECK(gbs == Approx(tps * per_token / 1e9).epsilon(2e-3));
  }
  CHECK(tg_rows == 4);
}

// --parallel S runs S distinct sequences together through one Engine: a row per count, the
// count in the seqs column, and rates over all sequences.
TEST_CASE("qlm-bench --parallel reports one row per sequence count", "[tools]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q4);
  std::string out;
  const std::string cmd =
      fmt::format("'{}' -m '{}' -p 16 -n 8 -t 2 -r 1 --kv-type f16 --parallel 1,3 -o csv",
                  tool_path("qlm-bench"), (tmp / "m.qlm").string());
  REQUIRE(run_command(cmd, out) == 0);
  INFO(out);
  std::stringstream lines(out);
  std::string line;
  std::getline(lines, line);
  std::vector<std::string> seen;
  while (std::getline(lines, line)) {
    const auto f = split(line, ',');
    REQUIRE(f.size() == 15);
    seen.push_back(f[7] + "/" + f[14]);
    CHECK(std::stod(f[8]) > 0.0);
    // The pool holds each sequence's context (16 + 8 + 8 tokens: one page of 32) in f16.
    CHECK(std::stoul(f[5]) == std::stoul(f[14]) * 2 * 5 * 4 * 8 * 2 * 32);
  }
  // Each tg row decodes after the prompt, as llama-batched-bench's S_TG (at depth 16).
  CHECK(seen == std::vector<std::string>{"pp16/1", "tg8 @ d16/1", "pp16/3", "tg8 @ d16/3"});
  std::string md;
  REQUIRE(run_command(fmt::format("'{}' -m '{}' -p 0 -n 4 -t 1 -r 1 --parallel 2",
                                  tool_path("qlm-bench"), (tmp / "m.qlm").string()),
                      md) == 0);
  CHECK(contains(md, "| threads | seqs | test |"));
  CHECK(contains(md, "| 1 | 2 | tg4 |"));
  CHECK(run_command(fmt::format("'{}' -m '{}' --parallel 0 2>&1", tool_path("qlm-bench"),
                                (tmp / "m.qlm").string()),
                    md) != 0);
}

}  // namespace qlm::test
