// qlm-run --chat: a conversation rendered with the model's chat template. With --messages it
// answers that conversation once; otherwise it talks on the terminal, one line per user turn,
// keeping the KV cache between turns (generate_continuing re-evaluates only what changed).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <qlm/detail/read_file.hpp>

#include "run.hpp"

namespace qlm::run {
namespace {

using json = nlohmann::ordered_json;  // templates see keys in the order the user wrote them

struct Conversation {
  json messages = json::array();
  std::string tools_json;  // empty: no tools
};

// --messages FILE: a messages array, or an OpenAI request body with "messages" (and "tools").
Result<Conversation> read_messages(const std::string& path) {
  auto text = detail::read_regular_file(path, std::uint64_t{64} << 20, "messages file");
  if (!text) return text.error();
  const json j = json::parse(*text, nullptr, false);
  Conversation c;
  if (j.is_array()) {
    c.messages = j;
  } else if (j.is_object() && j.contains("messages") && j["messages"].is_array()) {
    c.messages = j["messages"];
    if (j.contains("tools") && !j["tools"].is_null()) c.tools_json = j["tools"].dump();
  } else {
    return Error{ErrorCode::InvalidArgument,
                 path +
                     ": expected a JSON array of messages, or an object with a \"messages\" "
                     "array (an OpenAI chat request)"};
  }
  for (const json& m : c.messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return Error{ErrorCode::InvalidArgument, path + ": every message needs a string \"role\""};
    }
  }
  return c;
}

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Renders the conversation; the last message being the assistant's means "continue it".
Result<ChatPrompt> render(const Tokenizer& tok, const ChatTemplate& tmpl, const Conversation& c) {
  const bool prefill = !c.messages.empty() && c.messages.back()["role"] == "assistant";
  ChatTemplateOptions o;
  o.add_generation_prompt = !prefill;
  o.continue_final_message = prefill;
  o.tools_json = c.tools_json;
  return render_chat(tok, tmpl, dump_json(c.messages), std::move(o));
}

int answer_once(const Args& a, std::shared_ptr<const Model> model, const ChatTemplate& tmpl,
                const Conversation& c) {
  auto prompt = render(model->tokenizer(), tmpl, c);
  if (!prompt) return fail(prompt.error().message);
  if (a.dump_prompt) return dump_prompt(prompt->text, prompt->tokens);
  if (prompt->tokens.empty()) return fail("the chat template rendered an empty prompt");
  auto session = make_session(a, model);
  if (!session) return 1;
  Sampler sampler(a.sampling);
  auto r = generate(*session, sampler, prompt->tokens, generate_options(a));
  if (!r) return fail(r.error().message);
  print_stats(*r, *session);
  return 0;
}

void print_help() {
  std::fprintf(stderr,
               "qlm-run: chat: type a message and Enter; /reset starts over, /help shows this, end "
               "of input (Ctrl-D) quits\n");
}

// One user turn: render, generate (reusing the cache), remember the reply.
bool take_turn(const Args& a, const Tokenizer& tok, const ChatTemplate& tmpl, Conversation& c,
               Session& session, Sampler& sampler) {
  auto prompt = render(tok, tmpl, c);
  if (!prompt) {
    fail(prompt.error().message);
    return false;
  }
  auto r = generate_continuing(session, sampler, prompt->tokens, generate_options(a));
  std::fputc('\n', stdout);
  if (!r) {
    fail(r.error().message);
    return false;
  }
  if (r->stop == StopReason::ContextFull) {
    fail("the context is full: /reset to start over");
  }
  c.messages.push_back(json::object({{"role", "assistant"}, {"content", r->text}}));
  return true;
}

int interactive(const Args& a, std::shared_ptr<const Model> model, const ChatTemplate& tmpl,
                const Conversation& start) {
  auto session = make_session(a, model);
  if (!session) return 1;
  Sampler sampler(a.sampling);
  Conversation c = start;
  print_help();
  std::string line;
  while (true) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line == "/reset") {
      c = start;
      sampler = Sampler(a.sampling);
      std::fputs("(new conversation)\n", stdout);
      continue;
    }
    if (line == "/help") {
      print_help();
      continue;
    }
    if (line.empty()) continue;
    c.messages.push_back(json::object({{"role", "user"}, {"content", line}}));
    if (!take_turn(a, model->tokenizer(), tmpl, c, *session, sampler))
      c.messages.erase(c.messages.end() - 1);
  }
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace

int run_chat(const Args& a, std::shared_ptr<const Model> model) {
  Conversation c;
  if (!a.messages_file.empty()) {
    auto read = read_messages(a.messages_file);
    if (!read) return fail(read.error().message);
    c = std::move(*read);
  }
  if (!a.system.empty()) {
    c.messages.insert(c.messages.begin(),
                      json::object({{"role", "system"}, {"content", a.system}}));
  }
  auto tmpl = find_chat_template(model->tokenizer(), a.chat_template, !c.tools_json.empty());
  if (!tmpl) return fail(tmpl.error().message);
  if (!a.messages_file.empty() || a.dump_prompt) return answer_once(a, model, *tmpl, c);
  return interactive(a, model, *tmpl, c);
}

}  // namespace qlm::run
