// A model's chat templates end to end: where the converter finds them, how qlm-inspect shows them,
// how one is chosen, and multi-turn generation that reuses the session's cache.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "model/model_helpers.hpp"
#include "qlm/chat.hpp"
#include "qlm/convert/convert.hpp"
#include "qlm/format/metadata.hpp"
#include "qlm/generate.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"
#include "qlm/tokenizer/vocabulary.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* kDefault =
    "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}";
const char* kToolUse = "TOOLS {{ tools | length }} {{ bos_token }}";

// A copy of stories260K whose tokenizer_config.json carries `chat_template`.
fs::path stories_with(const TempDir& tmp, const json& chat_template) {
  const fs::path dir = tmp / "ckpt";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(stories_dir())) {
    fs::copy_file(e.path(), dir / e.path().filename(), fs::copy_options::overwrite_existing);
  }
  json tc = json::parse(read_text(dir / "tokenizer_config.json"));
  if (!chat_template.is_null()) tc["chat_template"] = chat_template;
  fs::remove(dir / "tokenizer_config.json");
  write_text(dir / "tokenizer_config.json", tc.dump(2));
  return dir;
}

Tokenizer tokenizer_of(const fs::path& dir) {
  auto v = load_hf_tokenizer(dir);
  INFO((v ? "" : v.error().message));
  REQUIRE(v.ok());
  return Tokenizer::create(std::move(*v)).value();
}

}  // namespace

TEST_CASE("the converter takes chat templates from tokenizer_config.json and .jinja files",
          "[chat][convert]") {
  TempDir tmp;
  SECTION("a string is the default") {
    const Tokenizer tok = tokenizer_of(stories_with(tmp, kDefault));
    CHECK(tok.vocabulary().chat_template == kDefault);
    CHECK(tok.vocabulary().chat_templates.empty());
  }
  SECTION("a list gives the default and named templates") {
    const auto dir = stories_with(tmp, json::array({{{"name", "tool_use"}, {"template", kToolUse}},
                                                    {{"name", "default"}, {"template", kDefault}},
                                                    {{"name", "rag"}, {"template", "R"}}}));
    const Tokenizer tok = tokenizer_of(dir);
    CHECK(tok.vocabulary().chat_template == kDefault);
    REQUIRE(tok.vocabulary().chat_templates.size() == 2);
    CHECK(tok.vocabulary().chat_templates[0] == NamedChatTemplate{"tool_use", kToolUse});
    CHECK(tok.vocabulary().chat_templates[1] == NamedChatTemplate{"rag", "R"});
  }
  SECTION("chat_template.jinja and additional_chat_templates/ win over tokenizer_config.json") {
    const auto dir = stories_with(tmp, "from config");
    write_text(dir / "chat_template.jinja", kDefault);
    fs::create_directories(dir / "additional_chat_templates");
    write_text(dir / "additional_chat_templates/tool_use.jinja", kToolUse);
    write_text(dir / "additional_chat_templates/notes.txt", "not a template");
    const Tokenizer tok = tokenizer_of(dir);
    CHECK(tok.vocabulary().chat_template == kDefault);
    REQUIRE(tok.vocabulary().chat_templates.size() == 1);
    CHECK(tok.vocabulary().chat_templates[0].name == "tool_use");
  }
  SECTION("malformed lists are refused, naming the file") {
    expect_error(load_hf_tokenizer(stories_with(tmp, json::array({{{"template", "x"}}}))),
                 ErrorCode::Format, {"tokenizer_config.json", "name"});
    expect_error(load_hf_tokenizer(stories_with(tmp, 42)), ErrorCode::Format,
                 {"tokenizer_config.json", "chat_template"});
  }
}

TEST_CASE("named templates survive the .qlm metadata; bad names are refused", "[chat][format]") {
  TempDir tmp;
  Vocabulary v = tokenizer_of(stories_dir()).vocabulary();
  v.chat_template = kDefault;
  v.chat_templates = {{"tool_use", kToolUse}, {"rag", "R"}};
  format::Metadata meta;
  store_vocabulary(v, meta);
  auto back = load_vocabulary(meta, "m.qlm");
  REQUIRE(back.ok());
  CHECK(*back == v);
  for (const auto& bad :
       {std::vector<NamedChatTemplate>{{"", "x"}}, std::vector<NamedChatTemplate>{{"default", "x"}},
        std::vector<NamedChatTemplate>{{"a", "x"}, {"a", "y"}}}) {
    Vocabulary w = v;
    w.chat_templates = bad;
    format::Metadata m;
    store_vocabulary(w, m);
    expect_error(load_vocabulary(m, "m.qlm"), ErrorCode::Format, {"m.qlm", "chat template"});
  }
  format::Metadata m;
  store_vocabulary(v, m);
  m.set("tokenizer.chat_template.sources", std::vector<std::string>{"only one"});
  expect_error(load_vocabulary(m, "m.qlm"), ErrorCode::Format,
               {"m.qlm", "tokenizer.chat_template.sources"});
}

TEST_CASE("qlm-convert --chat-template replaces the default; qlm-inspect prints templates",
          "[chat][convert][tools]") {
  TempDir tmp;
  const auto dir = stories_with(tmp, json::array({{{"name", "default"}, {"template", "old"}},
                                                  {{"name", "tool_use"}, {"template", kToolUse}}}));
  write_text(tmp / "mine.jinja", kDefault);
  std::string out;
  REQUIRE(run_command(fmt::format("{} {} -o {} --chat-template {} 2>{}", tool_path("qlm-convert"),
                                  dir.string(), (tmp / "m.qlm").string(),
                                  (tmp / "mine.jinja").string(), (tmp / "err").string()),
                      out) == 0);
  CHECK(contains(read_text(tmp / "err"), "chat templates: default (from"));
  auto model = open_or_fail(tmp / "m.qlm");
  CHECK(model->tokenizer().vocabulary().chat_template == kDefault);
  REQUIRE(model->tokenizer().vocabulary().chat_templates.size() == 1);

  const std::string inspect = tool_path("qlm-inspect") + " " + (tmp / "m.qlm").string();
  REQUIRE(run_command(inspect, out) == 0);
  CHECK(contains(out, "chat templates (2)"));
  CHECK(contains(out, "tool_use"));
  REQUIRE(run_command(inspect + " --chat-template default", out) == 0);
  CHECK(out == kDefault);  // exactly the stored bytes, nothing else
  REQUIRE(run_command(inspect + " --chat-template tool_use", out) == 0);
  CHECK(out == kToolUse);
  CHECK(run_command(inspect + " --chat-template rag 2>" + (tmp / "err").string(), out) == 1);
  CHECK(contains(read_text(tmp / "err"), "no chat template 'rag' (it has: default, tool_use)"));

  // A template that does not parse is refused when given, naming the file and line; no output.
  write_text(tmp / "broken.jinja", "line one\n{% for x in %}");
  CHECK(run_command(fmt::format("{} {} -o {} --chat-template {} 2>{}", tool_path("qlm-convert"),
                                dir.string(), (tmp / "b.qlm").string(),
                                (tmp / "broken.jinja").string(), (tmp / "err").string()),
                    out) == 1);
  CHECK(contains(read_text(tmp / "err"), "broken.jinja"));
  CHECK(contains(read_text(tmp / "err"), "line 2"));
  CHECK_FALSE(fs::exists(tmp / "b.qlm"));
}

TEST_CASE("templates are chosen as transformers chooses them, never guessed", "[chat]") {
  TempDir tmp;
  const Tokenizer tok = tokenizer_of(
      stories_with(tmp, json::array({{{"name", "default"}, {"template", kDefault}},
                                     {{"name", "tool_use"}, {"template", kToolUse}}})));
  const std::string conversation = R"([{"role": "user", "content": "hi"}])";
  const auto render = [&](const Result<ChatTemplate>& t, ChatTemplateOptions o = {}) {
    REQUIRE(t.ok());
    return render_chat(tok, *t, conversation, std::move(o)).value().text;
  };
  CHECK(render(model_chat_template(tok)) == "[user] hi\n");
  CHECK(render(model_chat_template(tok, "", true), {.tools_json = "[{}]"}) == "TOOLS 1 <s>");
  CHECK(render(model_chat_template(tok, "tool_use"), {.tools_json = "[]"}) == "TOOLS 0 <s>");
  CHECK(render(find_chat_template(tok, "chatml")) == "<|im_start|>user\nhi<|im_end|>\n");
  write_text(tmp / "t.jinja", "FILE {{ messages[0].content }}");
  CHECK(render(find_chat_template(tok, (tmp / "t.jinja").string())) == "FILE hi");
  expect_error(model_chat_template(tok, "rag"), ErrorCode::Unsupported,
               {"no chat template 'rag'", "default, tool_use"});
  expect_error(find_chat_template(tok, "no-such-thing"), ErrorCode::InvalidArgument,
               {"no-such-thing", "chatml"});

  // A model without a template gets none unless a built-in is asked for by name.
  const Tokenizer bare = tokenizer_of(stories_dir());
  expect_error(model_chat_template(bare), ErrorCode::Unsupported, {"no default chat template"});
  CHECK(find_chat_template(bare, "chatml").ok());
}

TEST_CASE("rendered conversations tokenize with special tokens and no added BOS", "[chat]") {
  TempDir tmp;
  const Tokenizer tok = tokenizer_of(stories_with(tmp, "{{ bos_token }}{{ messages[0].content }}"));
  REQUIRE(tok.vocabulary().add_bos);  // encode() would add one; a chat prompt must not
  const auto p = render_chat(tok, model_chat_template(tok).value(),
                             R"([{"role": "user", "content": "Once upon"}])")
                     .value();
  CHECK(p.text == "<s>Once upon");
  CHECK(p.tokens == tokenize_chat(tok, p.text).value());
  REQUIRE(p.tokens.size() > 1);
  CHECK(p.tokens[0] == tok.bos());
  CHECK(std::count(p.tokens.begin(), p.tokens.end(), tok.bos()) == 1);
  const auto plain = tok.encode("Once upon", {.add_special = false}).value();
  CHECK(std::vector<std::int32_t>(p.tokens.begin() + 1, p.tokens.end()) == plain);
  const auto specials = chat_special_tokens(tok);
  CHECK(specials == std::vector<std::pair<std::string, std::string>>{
                        {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}});
}

TEST_CASE("a chat's turns reuse the cache and see the previous reply's tokens",
          "[chat][generate]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  auto model = open_or_fail(tmp / "m.qlm");
  const Tokenizer& tok = model->tokenizer();
  const ChatTemplate tmpl =
      ChatTemplate::parse(
          "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
          "{% if add_generation_prompt %}assistant:{% endif %}")
          .value();
  json messages = json::array({{{"role", "user"}, {"content", "Tell me about a cat"}}});
  auto session = Session::create(model, {.isa = "reference"}).value();
  Sampler greedy({.temperature = 0.0f});
  std::size_t last_total = 0;
  for (const char* next : {"And a dog?", "Who was happy?", "The end."}) {
    const auto p = render_chat(tok, tmpl, messages.dump(), {.add_generation_prompt = true}).value();
    auto r = generate_continuing(session, greedy, p.tokens, {.max_tokens = 8, .stop = {"\n"}});
    REQUIRE(r.ok());
    // Everything of the previous turn that the new rendering repeats token for token is reused.
    CHECK(r->stats.reused_tokens >= std::min(last_total, p.tokens.size()) / 2);
    CHECK(r->stats.reused_tokens + r->stats.prompt_tokens == p.tokens.size());
    // The same greedy reply as a fresh session given the whole conversation.
    auto fresh = Session::create(model, {.isa = "reference"}).value();
    Sampler greedy2({.temperature = 0.0f});
    auto f = generate(fresh, greedy2, p.tokens, {.max_tokens = 8, .stop = {"\n"}});
    REQUIRE(f.ok());
    CHECK(f->tokens == r->tokens);
    CHECK(f->text == r->text);
    last_total = p.tokens.size() + r->tokens.size();
    messages.push_back({{"role", "assistant"}, {"content", r->text}});
    messages.push_back({{"role", "user"}, {"content", next}});
  }
  // Asking for what the session holds whole re-evaluates only the last token.
  const std::vector<std::int32_t> held(session.tokens().begin(), session.tokens().end());
  Sampler g3({.temperature = 0.0f});
  auto again = generate_continuing(session, g3, held, {.max_tokens = 1});
  REQUIRE(again.ok());
  CHECK(again->stats.reused_tokens == held.size() - 1);
}

}  // namespace qlm::test

namespace qlm::test {

TEST_CASE("tool-call arguments given as a JSON string reach the template as an object", "[chat]") {
  const ChatTemplate t =
      ChatTemplate::parse(
          "{% for c in messages[0].tool_calls %}{{ c.function.arguments | tojson }}"
          "|{{ c.arguments is defined }};{% endfor %}")
          .value();
  const std::string messages = R"([{"role": "assistant", "tool_calls": [
      {"type": "function", "function": {"name": "f", "arguments": "{\"city\": \"Paris\", \"n\": 2}"}},
      {"type": "function", "function": {"name": "g", "arguments": "not json"}},
      {"type": "function", "function": {"name": "h", "arguments": "[1, 2]"}}]}])";
  CHECK(t.render_json(messages).value() ==
        R"({"city": "Paris", "n": 2}|False;"not json"|False;"[1, 2]"|False;)");
  ChatMessage m{"assistant", std::nullopt,
                R"([{"function": {"name": "f", "arguments": "{\"x\": [true]}"}}])", ""};
  CHECK(t.render(std::span(&m, 1)).value() == R"({"x": [true]}|False;)");
}

}  // namespace qlm::test
