// The public chat-template API: messages as structs, options, the built-in ChatML template,
// continue_final_message, and clean errors for broken, raising and runaway templates.
#include <catch2/catch.hpp>

#include <ctime>
#include <string>
#include <vector>

#include "qlm/chat_template.hpp"

namespace {

std::vector<qlm::ChatMessage> conversation() {
  return {{"system", "Be brief.", "", ""}, {"user", "Hi!", "", ""}};
}

// The error message of a render that must fail.
std::string render_error(std::string_view source, const qlm::ChatTemplateOptions& o = {}) {
  auto r = qlm::render_chat_template(source, conversation(), o, "broken.jinja");
  REQUIRE_FALSE(r.ok());
  return r.error().message;
}

}  // namespace

TEST_CASE("chat: built-in chatml template", "[chat]") {
  auto t = qlm::ChatTemplate::builtin("chatml");
  REQUIRE(t.ok());
  qlm::ChatTemplateOptions o;
  o.add_generation_prompt = true;
  auto r = t->render(conversation(), o);
  REQUIRE(r.ok());
  CHECK(*r ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\n");
  CHECK_FALSE(qlm::ChatTemplate::builtin("nonesuch").ok());
  CHECK(qlm::builtin_chat_template("chatml").ok());
}

TEST_CASE("chat: message fields, tools, special tokens, variables and clock", "[chat]") {
  std::vector<qlm::ChatMessage> messages = {
      {"assistant", std::nullopt, R"([{"function": {"name": "f", "arguments": {"x": 1}}}])", ""},
      {"tool", "42", "", R"({"tool_call_id": "c1", "name": "f"})"}};
  qlm::ChatTemplateOptions o;
  o.tools_json = R"([{"function": {"name": "f"}}])";
  o.special_tokens = {{"bos_token", "<s>"}};
  o.variables_json = R"({"enable_thinking": false})";
  o.clock = [] {
    std::tm tm{};
    tm.tm_year = 125;
    tm.tm_mon = 0;
    tm.tm_mday = 15;
    return tm;
  };
  const char* source =
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}|{{ m.content }}|"
      "{{ m.tool_calls[0].function.arguments|tojson if m.tool_calls is defined }}|"
      "{{ m.tool_call_id }}]{% endfor %}{{ tools|length }}{{ documents }}"
      "{{ enable_thinking }}{{ eos_token is defined }}{{ strftime_now('%d %b %Y') }}";
  auto r = qlm::render_chat_template(source, messages, o);
  REQUIRE(r.ok());
  CHECK(*r == "<s>[assistant|None|{\"x\": 1}|][tool|42||c1]1NoneFalseFalse15 Jan 2025");
}

TEST_CASE("chat: continue_final_message cuts after the final message", "[chat]") {
  std::vector<qlm::ChatMessage> messages = {{"user", "Hi", "", ""},
                                            {"assistant", "Hello there", "", ""}};
  qlm::ChatTemplateOptions o;
  o.continue_final_message = true;
  auto t = qlm::ChatTemplate::builtin("chatml");
  REQUIRE(t.ok());
  auto r = t->render(messages, o);
  REQUIRE(r.ok());
  CHECK(*r == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there");
  o.add_generation_prompt = true;
  auto both = t->render(messages, o);
  REQUIRE_FALSE(both.ok());
  CHECK(both.error().code == qlm::ErrorCode::InvalidArgument);
}

TEST_CASE("chat: malformed templates fail with name and line", "[chat]") {
  struct Bad {
    const char* source;
    const char* expect;
  };
  const Bad cases[] = {
      {"ok\n{% if x %}\nno end", "line 3"},
      {"a\nb\n{{ x ", "line 3"},
      {"{% frobnicate %}", "unknown tag 'frobnicate'"},
      {"{{ 'unterminated }}", "unexpected end of string"},
      {"{# comment", "missing end of comment tag"},
      {"{% for x in %}{% endfor %}", "line 1"},
      {"{{ (1 + }}", "line 1"},
      {"{% endif %}", "line 1"},
      {"{{ a b }}", "line 1"},
      {"{% raw %}never closed", "missing end of raw"},
  };
  for (const Bad& b : cases) {
    auto t = qlm::ChatTemplate::parse(b.source, "broken.jinja");
    CAPTURE(b.source);
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().code == qlm::ErrorCode::Format);
    CHECK_THAT(t.error().message, Catch::Contains("broken.jinja") && Catch::Contains(b.expect));
  }
}

TEST_CASE("chat: errors raised while rendering name the line", "[chat]") {
  std::string m = render_error("line one\n{{ raise_exception('Only user and assistant roles') }}");
  CHECK_THAT(m, Catch::Contains("broken.jinja") && Catch::Contains("line 2") &&
                    Catch::EndsWith("TemplateError: Only user and assistant roles"));
  CHECK_THAT(render_error("{% for x in tools %}{% endfor %}"),
             Catch::EndsWith("TypeError: 'NoneType' object is not iterable"));
  CHECK_THAT(render_error("{{ 'x' + eos_token }}"),
             Catch::EndsWith("UndefinedError: 'eos_token' is undefined"));
  CHECK_THAT(
      render_error("{{ messages.append(1) }}"),
      Catch::EndsWith("SecurityError: access to attribute 'append' of 'list' object is unsafe."));
  CHECK_THAT(render_error("{{ messages|nofilter }}"),
             Catch::Contains("No filter named 'nofilter'"));
  qlm::ChatTemplateOptions bad_json;
  bad_json.tools_json = "[not json";
  CHECK_THAT(render_error("{{ tools }}", bad_json), Catch::Contains("tools_json"));
}

TEST_CASE("chat: runaway templates stop at the limits", "[chat]") {
  qlm::ChatTemplateOptions o;
  o.limits.max_steps = 100'000;
  o.limits.max_output_bytes = 1 << 20;
  // A loop that would run for hours.
  auto steps = qlm::render_chat_template(
      "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
      conversation(), o);
  REQUIRE_FALSE(steps.ok());
  CHECK(steps.error().code == qlm::ErrorCode::Unsupported);
  CHECK_THAT(steps.error().message, Catch::Contains("steps"));
  // Unbounded recursion.
  auto depth = qlm::render_chat_template("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
                                         conversation(), o);
  REQUIRE_FALSE(depth.ok());
  CHECK_THAT(depth.error().message, Catch::Contains("nested deeper"));
  // Output that doubles until it is huge.
  auto huge = qlm::render_chat_template(
      "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
      "{% endfor %}{{ ns.s }}",
      conversation(), o);
  REQUIRE_FALSE(huge.ok());
  CHECK_THAT(huge.error().message, Catch::Contains("bytes"));
  auto repeat = qlm::render_chat_template("{{ 'x' * 100000000000 }}", conversation(), o);
  REQUIRE_FALSE(repeat.ok());
  // Deeply nested source is refused by the parser instead of overflowing the stack.
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  auto nested = qlm::ChatTemplate::parse(deep, "deep");
  REQUIRE_FALSE(nested.ok());
  CHECK_THAT(nested.error().message, Catch::Contains("nesting"));
  std::string deep_json(100000, '[');
  qlm::ChatTemplateOptions dj;
  dj.variables_json = "{\"x\": " + deep_json + std::string(100000, ']') + "}";
  CHECK_FALSE(qlm::render_chat_template("{{ x }}", conversation(), dj).ok());
}

TEST_CASE("chat: values cannot nest without bound or form cycles", "[chat]") {
  auto deep = qlm::render_chat_template(
      "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}"
      "{% endfor %}{{ ns.l }}",
      conversation());
  REQUIRE_FALSE(deep.ok());
  CHECK_THAT(deep.error().message, Catch::Contains("nested deeper"));
  auto cycle = qlm::render_chat_template("{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns }}",
                                         conversation());
  REQUIRE_FALSE(cycle.ok());
  CHECK_THAT(cycle.error().message, Catch::Contains("namespace cannot hold a namespace"));
}
