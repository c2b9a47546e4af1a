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
  REQUIRE(header.size() == 14);
  CHECK(header[11] == "stream_gbs");
  CHECK(header[12] == "probe_gbs");
  CHECK(header[13] == "activations");
  int tg_rows = 0;
  while (std::getline(lines, line)) {
    const auto f = split(line, ',');
    REQUIRE(f.size() == 14);
    CHECK(f[13] == "auto");
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

}  // namespace qlm::test
