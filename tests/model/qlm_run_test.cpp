// The qlm-run tool: stdout is exactly the generated text; diagnostics go to stderr.
#include <catch2/catch.hpp>

#include "model/model_helpers.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {

TEST_CASE("qlm-run prints exactly the greedy story on stdout", "[tools][model]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  std::string out;
  const int rc = run_command(tool_path("qlm-run") + " -m '" + (tmp / "m.qlm").string() +
                                 "' -p '' --temp 0 -n 60 2>/dev/null",
                             out);
  CHECK(rc == 0);
  CHECK(out ==
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
        "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high");
}

TEST_CASE("qlm-run reads -f prompt files and does not echo the prompt", "[tools][model]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  write_text(tmp / "prompt.txt", "Once upon a time");
  std::string out;
  const int rc = run_command(tool_path("qlm-run") + " -m '" + (tmp / "m.qlm").string() + "' -f '" +
                                 (tmp / "prompt.txt").string() + "' --temp 0 -n 8 2>/dev/null",
                             out);
  CHECK(rc == 0);
  CHECK(out.starts_with(", there was a little girl"));
}

TEST_CASE("qlm-run fails with one line on a bad model path", "[tools][model]") {
  std::string out;
  const int rc = run_command(tool_path("qlm-run") + " -m /nonexistent.qlm -p hi 2>&1", out);
  CHECK(rc != 0);
  CHECK(out.find("/nonexistent.qlm") != std::string::npos);
  CHECK(std::count(out.begin(), out.end(), '\n') == 1);
}

}  // namespace qlm::test
