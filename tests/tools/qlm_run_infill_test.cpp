// qlm-run --infill: the prompt is Qwen2.5-Coder's published FIM layout with the vocabulary's FIM
// ids (checked literally), the cursor of --infill-file splits the file at the right byte, and
// models or cursors that cannot work fail with one clear line.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "model/model_helpers.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// Qwen2's FIM ids (shared/chat-templates/FIM.md, from the real tokenizer_config.json files).
constexpr std::int32_t kPrefix = 151659, kMiddle = 151660, kSuffix = 151661, kFileSep = 151664;

// A tiny random-weight model with the real Qwen2.5 tokenizer (its FIM tokens included).
fs::path tiny_qwen(const TempDir& tmp) {
  const fs::path tok = fs::path(QLM_SHARED_DIR) / "tokenizers/qwen2.5-0.5b";
  json config = json::parse(read_text(tok / "config.json"));
  config["hidden_size"] = 64;
  config["intermediate_size"] = 128;
  config["num_attention_heads"] = 4;
  config["num_key_value_heads"] = 2;
  config["num_hidden_layers"] = 2;
  write_text(tmp / "config.json", config.dump());
  std::string out;
  int rc = run_command(
      fmt::format("{} --config {} --tokenizer {} -o {} 2>&1", tool_path("qlm-synth"),
                  (tmp / "config.json").string(), tok.string(), (tmp / "ckpt").string()),
      out);
  INFO(out);
  REQUIRE(rc == 0);
  rc = run_command(fmt::format("{} {} -o {} 2>&1", tool_path("qlm-convert"),
                               (tmp / "ckpt").string(), (tmp / "m.qlm").string()),
                   out);
  REQUIRE(rc == 0);
  return tmp / "m.qlm";
}

struct Run {
  int rc = 0;
  std::string out, err;
};

Run qlm_run(const TempDir& tmp, const fs::path& model, const std::string& args) {
  Run r;
  r.rc = run_command(fmt::format("{} -m {} {} 2>{}", tool_path("qlm-run"), model.string(), args,
                                 (tmp / "err").string()),
                     r.out);
  r.err = read_text(tmp / "err");
  return r;
}

std::vector<std::int32_t> cat(std::initializer_list<std::vector<std::int32_t>> parts) {
  std::vector<std::int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace

TEST_CASE("qlm-run --infill builds Qwen2.5-Coder's FIM prompt", "[tools][infill]") {
  TempDir tmp;
  const fs::path model = tiny_qwen(tmp);
  auto m = Model::open(model);
  REQUIRE(m.ok());
  const Tokenizer& tok = (*m)->tokenizer();
  const auto text = [&](std::string_view s) {
    return tok.encode(s, {.add_special = false, .parse_special = false}).value();
  };

  SECTION("prefix, suffix and typed text: <PRE>prefix<SUF>suffix<MID>typed") {
    const Run r = qlm_run(tmp, model,
                          "--infill --fim-prefix 'def add(a, b):\n    return ' --fim-suffix "
                          "'\n\nprint(add(1, 2))\n' -p 'a +' --dump-prompt");
    INFO(r.err);
    REQUIRE(r.rc == 0);
    const json j = json::parse(r.out);
    CHECK(j["prompt"] ==
          "<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>\n\nprint(add(1, 2))\n"
          "<|fim_middle|>a +");
    CHECK(j["tokens"].get<std::vector<std::int32_t>>() == cat({{kPrefix},
                                                               text("def add(a, b):\n    return "),
                                                               {kSuffix},
                                                               text("\n\nprint(add(1, 2))\n"),
                                                               {kMiddle},
                                                               text("a +")}));
  }
  SECTION("--infill-file --cursor splits the file at LINE:COL (bytes) and names it") {
    // Line 2 is "    return a+b"; column 12 is just before "a+b" ("é" is two bytes on line 1).
    write_text(tmp / "add.py", "def add(a, b):  # é\n    return a+b\n");
    write_text(tmp / "util.py", "X = 1\n");
    const Run r = qlm_run(tmp, model,
                          fmt::format("--infill --infill-file {} --cursor 2:12 --extra {} "
                                      "--dump-prompt",
                                      (tmp / "add.py").string(), (tmp / "util.py").string()));
    INFO(r.err);
    REQUIRE(r.rc == 0);
    const json j = json::parse(r.out);
    const std::string add = (tmp / "add.py").string(), util = (tmp / "util.py").string();
    CHECK(j["prompt"] == fmt::format("<|file_sep|>{}\nX = 1\n<|file_sep|>{}\n<|fim_prefix|>def "
                                     "add(a, b):  # é\n    return <|fim_suffix|>a+b\n"
                                     "<|fim_middle|>",
                                     util, add));
    CHECK(j["tokens"].get<std::vector<std::int32_t>>() ==
          cat({{kFileSep},
               text(util + "\nX = 1\n"),
               {kFileSep},
               text(add + "\n"),
               {kPrefix},
               text("def add(a, b):  # é\n    return "),
               {kSuffix},
               text("a+b\n"),
               {kMiddle}}));
    // The end of a line and the end of the file are cursors too.
    CHECK(qlm_run(tmp, model,
                  fmt::format("--infill --infill-file {} --cursor 2:15 --dump-prompt", add))
              .rc == 0);
    CHECK(qlm_run(tmp, model,
                  fmt::format("--infill --infill-file {} --cursor 3:1 --dump-prompt", add))
              .rc == 0);
  }
  SECTION("generation runs and stops within -n") {
    const Run r =
        qlm_run(tmp, model, "--infill --fim-prefix 'x = ' --fim-suffix '\n' -n 5 --temp 0");
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(contains(r.err, "generated"));
  }
  SECTION("bad cursors and option mixes are one clear line") {
    write_text(tmp / "a.py", "ab\ncd\n");
    const std::string a = (tmp / "a.py").string();
    for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
             {"--cursor 2:4", "line 2 of " + a + " has 2 bytes"},
             {"--cursor 9:1", a + " has only 3 lines"},
             {"--cursor 0:1", "LINE:COL"},
             {"--cursor x", "LINE:COL"},
             {"--cursor 1:1x", "LINE:COL"},
             {"", "needs --cursor"},
             {"--cursor 1:1 --fim-prefix p", "exclude each other"}}) {
      const Run r = qlm_run(tmp, model, fmt::format("--infill --infill-file {} {}", a, args));
      INFO(args << ": " << r.err);
      CHECK(r.rc == 1);
      CHECK(r.out.empty());
      CHECK(contains(r.err, needle));
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
    const Run r = qlm_run(tmp, model, "--fim-prefix p");
    CHECK(r.rc == 1);
    CHECK(contains(r.err, "need --infill"));
  }
}

TEST_CASE("qlm-run --infill on a model without FIM tokens is a clear error", "[tools][infill]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  const Run r = qlm_run(tmp, tmp / "m.qlm", "--infill --fim-prefix a --fim-suffix b");
  CHECK(r.rc == 1);
  CHECK(r.out.empty());
  CHECK(contains(r.err, "prefix"));
}

}  // namespace qlm::test
