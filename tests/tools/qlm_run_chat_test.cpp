// qlm-run --chat and --dump-prompt: the prompt is exactly what Python's Jinja2 renders, a template
// that raises fails cleanly, and the interactive chat works on a real terminal (tmux).
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "model/model_helpers.hpp"
#include "qlm/chat.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // key order reaches the template (tojson of tools)

const fs::path kTemplates = fs::path(QLM_SHARED_DIR) / "chat-templates";

// stories260K converted with Qwen2.5-Instruct's chat template as its default.
fs::path stories_with_qwen_template(const TempDir& tmp) {
  const json tc =
      json::parse(read_text(kTemplates / "Qwen--Qwen2.5-0.5B-Instruct/tokenizer_config.json"));
  write_text(tmp / "qwen.jinja", tc["chat_template"].get<std::string>());
  std::string out;
  const int rc = run_command(
      fmt::format("{} {} -o {} --chat-template {} 2>&1", tool_path("qlm-convert"),
                  stories_dir().string(), (tmp / "m.qlm").string(), (tmp / "qwen.jinja").string()),
      out);
  INFO(out);
  REQUIRE(rc == 0);
  return tmp / "m.qlm";
}

std::string run_cmd(const fs::path& model, const std::string& args, int& rc, const fs::path& err) {
  std::string out;
  rc = run_command(
      fmt::format("{} -m {} {} 2>{}", tool_path("qlm-run"), model.string(), args, err.string()),
      out);
  return out;
}

// Text with every run of whitespace removed: a terminal wraps and pads what it shows.
std::string squeeze(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') out += c;
  }
  return out;
}

}  // namespace

TEST_CASE("qlm-run --dump-prompt shows exactly the templated prompt and its tokens",
          "[tools][chat]") {
  TempDir tmp;
  const fs::path model = stories_with_qwen_template(tmp);
  const json expected =
      json::parse(read_text(kTemplates / "expected/Qwen--Qwen2.5-0.5B-Instruct.json"))["results"];
  const json conversations = json::parse(read_text(kTemplates / "conversations.json"));
  auto m = Model::open(model);
  REQUIRE(m.ok());
  int compared = 0;
  for (const json& c : conversations) {
    // qlm-run asks for the generation prompt unless the assistant spoke last (then it continues).
    const bool last_assistant = c["messages"].back()["role"] == "assistant";
    const bool gen = c.value("add_generation_prompt", false);
    const bool cont = c.value("continue_final_message", false);
    if (c.contains("kwargs") || (last_assistant ? (gen || !cont) : !gen)) continue;
    json body = {{"model", "any"}, {"messages", c["messages"]}};
    if (c.contains("tools")) body["tools"] = c["tools"];
    write_text(tmp / "body.json", body.dump());
    int rc = 0;
    const std::string out = run_cmd(
        model, "--chat --dump-prompt --messages " + (tmp / "body.json").string(), rc, tmp / "err");
    INFO(c["name"] << ": " << read_text(tmp / "err"));
    REQUIRE(rc == 0);
    REQUIRE(std::count(out.begin(), out.end(), '\n') == 1);
    const json dumped = json::parse(out);
    std::string want;
    for (const json& r : expected) {
      if (r["name"] == c["name"]) want = r["rendered"].get<std::string>();
    }
    REQUIRE(!want.empty());
    CHECK(dumped["prompt"] == want);
    CHECK(dumped["tokens"].get<std::vector<std::int32_t>>() ==
          tokenize_chat((*m)->tokenizer(), want).value());
    ++compared;
  }
  CHECK(compared >= 8);

  // A plain prompt: the text as given, with the model's BOS.
  int rc = 0;
  const json plain = json::parse(run_cmd(model, "-p 'Once upon' --dump-prompt", rc, tmp / "err"));
  CHECK(rc == 0);
  CHECK(plain["prompt"] == "Once upon");
  CHECK(plain["tokens"].get<std::vector<std::int32_t>>() ==
        (*m)->tokenizer().encode("Once upon").value());
}

TEST_CASE("qlm-run --chat: a template that raises prints nothing and fails", "[tools][chat]") {
  TempDir tmp;
  const fs::path model = stories_with_qwen_template(tmp);
  write_text(tmp / "raise.jinja",
             "{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start "
             "with a user message') }}{% endif %}{{ messages[0].content }}");
  write_text(tmp / "msgs.json", R"([{"role": "system", "content": "hi"}])");
  int rc = 0;
  const std::string out =
      run_cmd(model,
              fmt::format("--chat --chat-template {} --messages {} --dump-prompt",
                          (tmp / "raise.jinja").string(), (tmp / "msgs.json").string()),
              rc, tmp / "err");
  CHECK(rc == 1);
  CHECK(out.empty());
  const std::string err = read_text(tmp / "err");
  CHECK(contains(err, "Conversations must start with a user message"));
  CHECK(contains(err, "raise.jinja"));
  // Without --dump-prompt too, and for files that are not conversations.
  CHECK(run_cmd(model,
                "--chat --chat-template " + (tmp / "raise.jinja").string() + " --messages " +
                    (tmp / "msgs.json").string(),
                rc, tmp / "err")
            .empty());
  CHECK(rc == 1);
  write_text(tmp / "bad.json", R"({"prompt": "x"})");
  CHECK(
      run_cmd(model, "--chat --messages " + (tmp / "bad.json").string(), rc, tmp / "err").empty());
  CHECK(rc == 1);
  CHECK(contains(read_text(tmp / "err"), "bad.json"));
  // A model without a template needs one named: no silent guess.
  convert_or_fail(stories_dir(), tmp / "bare.qlm", DType::Q8);
  CHECK(run_cmd(tmp / "bare.qlm", "--chat --messages " + (tmp / "msgs.json").string(), rc,
                tmp / "err")
            .empty());
  CHECK(rc == 1);
  CHECK(contains(read_text(tmp / "err"), "chatml"));
}

// The interactive chat on a real pseudo-terminal: each reply equals what --messages gives for
// the same conversation (the cache reuse between turns changes nothing), /reset starts over, and
// end of input quits.
TEST_CASE("qlm-run --chat talks on a terminal, reusing the cache between turns",
          "[tools][chat][tty]") {
  std::string out;
  REQUIRE(run_command("command -v tmux", out) == 0);  // scripts/install-deps.sh installs it
  TempDir tmp;
  const fs::path model = stories_with_qwen_template(tmp);
  // --reference: its logits do not depend on how a sequence is split into evaluations.
  const std::string common = "--temp 0 -n 12 --reference";
  json messages = json::array({{{"role", "system"}, {"content", "Tell stories."}}});
  std::vector<std::string> replies;
  for (const char* user : {"Once upon a time", "What did the dog do?"}) {
    messages.push_back({{"role", "user"}, {"content", user}});
    write_text(tmp / "msgs.json", messages.dump());
    int rc = 0;
    replies.push_back(
        run_cmd(model, fmt::format("--chat --messages {} {}", (tmp / "msgs.json").string(), common),
                rc, tmp / "err"));
    REQUIRE(rc == 0);
    messages.push_back({{"role", "assistant"}, {"content", replies.back()}});
  }

  const std::string socket = fmt::format("qlm-test-{}", ::getpid());
  const std::string tmux = "tmux -L " + socket;
  struct Cleanup {
    std::string tmux;
    ~Cleanup() {
      std::string ignored;
      run_command(tmux + " kill-server 2>/dev/null", ignored);
    }
  } cleanup{tmux};
  // The exit status is written aside and renamed into place: `echo $? > rc` creates rc before it
  // writes, and the wait below once read it empty (CI, session 31).
  const std::string rc = (tmp / "rc").string();
  const std::string command = fmt::format(
      "{} -m {} --chat --system 'Tell stories.' {} 2>{}; echo $? > {}.part; mv {}.part {}",
      tool_path("qlm-run"), model.string(), common, (tmp / "chat.err").string(), rc, rc, rc);
  REQUIRE(run_command(fmt::format("{} new-session -d -s chat -x 200 -y 60 \"{}\"", tmux, command),
                      out) == 0);
  const auto screen = [&] {
    std::string s;
    run_command(tmux + " capture-pane -p -J -S - -t chat", s);
    return s;
  };
  // Waits (at most 30 s) until the screen shows `n` prompts.
  const auto wait_prompts = [&](std::size_t n) {
    for (int i = 0; i < 300; ++i) {
      const std::string s = screen();
      std::size_t count = 0;
      for (std::size_t p = s.find("> "); p != std::string::npos; p = s.find("> ", p + 2)) ++count;
      if (count >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  };
  const auto type = [&](const std::string& line) {
    run_command(fmt::format("{} send-keys -t chat -l '{}'", tmux, line), out);
    run_command(tmux + " send-keys -t chat Enter", out);
  };
  REQUIRE(wait_prompts(1));
  type("Once upon a time");
  REQUIRE(wait_prompts(2));
  type("What did the dog do?");
  REQUIRE(wait_prompts(3));
  type("/reset");
  REQUIRE(wait_prompts(4));
  type("Once upon a time");
  REQUIRE(wait_prompts(5));
  const std::string seen = screen();  // the pane closes when the program ends
  const std::string shown = squeeze(seen);
  run_command(tmux + " send-keys -t chat C-d", out);
  for (int i = 0; i < 100 && !fs::exists(tmp / "rc"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO("screen:\n" << seen << "\nstderr: " << read_text(tmp / "chat.err"));
  REQUIRE(fs::exists(tmp / "rc"));
  CHECK(squeeze(read_text(tmp / "rc")) == "0");
  const std::string turn1 = squeeze("> Once upon a time\n" + replies[0]);
  const std::string turn2 = squeeze("> What did the dog do?\n" + replies[1]);
  CHECK(contains(shown, turn1 + turn2));
  // After /reset the first reply comes again.
  CHECK(contains(shown, squeeze("(new conversation)\n") + turn1));
}

}  // namespace qlm::test
