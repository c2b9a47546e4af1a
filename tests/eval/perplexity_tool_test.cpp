// The qlm-perplexity tool end to end on stories260K: save f32 logits, compare f32 with itself
// (KLD 0, same top 100%) and q8 with f32 (small KLD, high agreement), check the printed PPL
// against one computed here from Session logits, and its errors on bad input.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <sstream>

#include "eval/story_text.hpp"
#include "model/model_helpers.hpp"
#include "qlm/eval/perplexity.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

// The value after `prefix` on the line of `out` that starts with it; NaN when there is none.
double script_value(const std::string& out, const std::string& prefix) {
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.starts_with(prefix)) return std::strtod(line.c_str() + prefix.size(), nullptr);
  }
  return NAN;
}

std::string quoted(const std::filesystem::path& p) {
  return fmt::format("'{}'", p.string());  // not "'" + …: GCC 12 reports a false -Wrestrict
}

// Runs qlm-perplexity on one thread (tests run in parallel) with `args`; stdout (and stderr with
// `merge`) in `out`.
int run_tool(const std::string& args, std::string& out, bool merge = false) {
  return run_command(
      tool_path("qlm-perplexity") + " -t 1 " + args + (merge ? " 2>&1" : " 2>/dev/null"), out);
}

}  // namespace

TEST_CASE("qlm-perplexity: f32 against itself and q8 against f32", "[tools][eval]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "f32.qlm", DType::F32);
  convert_or_fail(stories_dir(), tmp / "q8.qlm", DType::Q8);
  const std::string text = story_text(80);
  write_text(tmp / "text.txt", text);
  const std::string common = "-f " + quoted(tmp / "text.txt") + " -c 64 --chunks 6";

  std::string out;
  REQUIRE(run_tool("-m " + quoted(tmp / "f32.qlm") + " " + common + " --save-logits " +
                       quoted(tmp / "ref.bin"),
                   out) == 0);
  INFO(out);
  const double ppl = script_value(out, "PPL = ");
  CHECK(std::isnan(script_value(out, "KLD mean = ")));
  CHECK(std::filesystem::exists(tmp / "ref.bin"));

  // The printed perplexity is the library-independent one of the same windows.
  auto model = open_or_fail(tmp / "f32.qlm");
  auto session = Session::create(model, {.context = 64, .threads = 1});
  REQUIRE(session.ok());
  const double expected =
      independent_perplexity(*session, model->tokenizer().encode(text).value(), 64, 6);
  CHECK(ppl == Approx(expected).epsilon(1e-5));

  REQUIRE(
      run_tool("-m " + quoted(tmp / "f32.qlm") + " " + common + " --kl " + quoted(tmp / "ref.bin"),
               out) == 0);
  INFO(out);
  CHECK(script_value(out, "PPL = ") == Approx(ppl).epsilon(1e-9));
  CHECK(script_value(out, "reference PPL = ") == Approx(ppl).epsilon(1e-9));
  CHECK(script_value(out, "KLD mean = ") <= 1e-9);
  CHECK(script_value(out, "KLD p99 = ") <= 1e-9);
  CHECK(script_value(out, "same top = ") == 100.0);

  REQUIRE(
      run_tool("-m " + quoted(tmp / "q8.qlm") + " " + common + " --kl " + quoted(tmp / "ref.bin"),
               out) == 0);
  INFO(out);
  const double q8_ppl = script_value(out, "PPL = ");
  CHECK(q8_ppl == Approx(ppl).epsilon(0.05));
  CHECK(q8_ppl != ppl);
  const double kld = script_value(out, "KLD mean = ");
  CHECK(kld > 0.0);
  CHECK(kld < 0.01);
  CHECK(script_value(out, "KLD p99 = ") >= kld);
  CHECK(script_value(out, "same top = ") > 90.0);
  // The script lines end the output, in this order.
  CHECK(out.find("PPL = ") < out.find("KLD mean = "));
  CHECK(out.find("KLD mean = ") < out.find("KLD p99 = "));
  CHECK(out.find("KLD p99 = ") < out.find("same top = "));
  CHECK(out.ends_with("%\n"));
}

TEST_CASE("qlm-perplexity fails clearly on bad input", "[tools][eval]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  write_text(tmp / "text.txt", story_text(30));
  write_text(tmp / "short.txt", "Once upon a time.");
  const std::string m = "-m " + quoted(tmp / "m.qlm");
  const std::string f = " -f " + quoted(tmp / "text.txt");
  std::string out;

  SECTION("a missing model") {
    CHECK(run_tool("-m " + quoted(tmp / "none.qlm") + f, out, true) != 0);
    CHECK(contains(out, "none.qlm"));
  }
  SECTION("a missing text") {
    CHECK(run_tool(m + " -f " + quoted(tmp / "none.txt"), out, true) != 0);
    CHECK(contains(out, "none.txt"));
  }
  SECTION("a text shorter than one window") {
    CHECK(run_tool(
              m + " -f " + quoted(tmp / "short.txt") + " --save-logits " + quoted(tmp / "out.bin"),
              out, true) != 0);
    CHECK(contains(out, "short.txt"));
    CHECK(contains(out, "fewer than one window of 256"));
    CHECK_FALSE(std::filesystem::exists(tmp / "out.bin"));
  }
  SECTION("a bad window size") {
    CHECK(run_tool(m + f + " -c 2", out, true) != 0);
    CHECK(contains(out, "window of 2 tokens"));
    CHECK(run_tool(m + f + " -c abc", out, true) != 0);
    CHECK(run_tool(m + f + " --chunks 0", out, true) != 0);
  }
  SECTION("a logits file of another window size") {
    REQUIRE(run_tool(m + f + " -c 32 --chunks 2 --save-logits " + quoted(tmp / "ref.bin"), out) ==
            0);
    CHECK(run_tool(m + f + " -c 16 --kl " + quoted(tmp / "ref.bin"), out, true) != 0);
    CHECK(contains(out, (tmp / "ref.bin").string()));
    CHECK(contains(out, "windows of 32 tokens, this run uses 16"));
  }
  SECTION("a corrupt logits file") {
    write_text(tmp / "ref.bin", "QLMLOGIT but not really");
    CHECK(run_tool(m + f + " -c 32 --kl " + quoted(tmp / "ref.bin"), out, true) != 0);
    CHECK(contains(out, (tmp / "ref.bin").string()));
  }
  SECTION("--save-logits and --kl together") {
    CHECK(run_tool(m + f + " --save-logits a.bin --kl b.bin", out, true) != 0);
    CHECK(contains(out, "excludes"));
  }
}

}  // namespace qlm::test
