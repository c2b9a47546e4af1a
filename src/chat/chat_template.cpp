// The public entry points: builds the variables transformers passes, runs the interpreter and
// turns every internal exception into a qlm::Error.
#include "qlm/chat_template.hpp"

#include <utility>

#include "chat/error.hpp"
#include "chat/interpreter.hpp"
#include "chat/json.hpp"
#include "chat/lexer.hpp"
#include "chat/parser.hpp"
#include "chat/text.hpp"
#include "qlm/tokenizer.hpp"
#include "util/fail.hpp"

namespace qlm {

namespace {

// Deep enough for real tool schemas, shallow enough to keep recursion off the stack's end.
constexpr int kMaxJsonDepth = 64;
constexpr int kMaxNesting = 128;

// transformers' old default ChatML template.
constexpr std::string_view kChatMl =
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

}  // namespace

struct ChatTemplate::Impl {
  std::string name;
  chat::Body body;
};

namespace {

chat::Value message_value(const ChatMessage& m, std::size_t index) {
  chat::DictData d;
  d.set(chat::Value::string("role"), chat::Value::string(m.role));
  d.set(chat::Value::string("content"),
        m.content ? chat::Value::string(*m.content) : chat::Value::none());
  std::string what = fmt::format("message {}", index);
  if (!m.tool_calls_json.empty()) {
    d.set(chat::Value::string("tool_calls"),
          chat::parse_json(m.tool_calls_json, what + " tool_calls", kMaxJsonDepth));
  }
  if (!m.extra_json.empty()) {
    chat::Value extra = chat::parse_json(m.extra_json, what + " extra_json", kMaxJsonDepth);
    if (!extra.is(chat::Kind::Dict)) {
      detail::fail(ErrorCode::InvalidArgument, "{} extra_json is not a JSON object", what);
    }
    for (const auto& [k, v] : extra.dict_data().items) d.set(k, v);
  }
  return chat::Value::dict(std::move(d));
}

chat::Value optional_json(const std::string& text, std::string_view what) {
  return text.empty() ? chat::Value::none() : chat::parse_json(text, what, kMaxJsonDepth);
}

// The variables transformers' render() receives, in its order; later keys override.
chat::DictData variables(chat::Value messages, const ChatTemplateOptions& o) {
  chat::DictData vars;
  vars.set(chat::Value::string("messages"), std::move(messages));
  vars.set(chat::Value::string("tools"), optional_json(o.tools_json, "tools_json"));
  vars.set(chat::Value::string("documents"), optional_json(o.documents_json, "documents_json"));
  vars.set(chat::Value::string("add_generation_prompt"),
           chat::Value::boolean(o.add_generation_prompt));
  for (const auto& [k, v] : o.special_tokens) {
    vars.set(chat::Value::string(k), chat::Value::string(v));
  }
  if (!o.variables_json.empty()) {
    chat::Value extra = chat::parse_json(o.variables_json, "variables_json", kMaxJsonDepth);
    if (!extra.is(chat::Kind::Dict)) {
      detail::fail(ErrorCode::InvalidArgument, "variables_json is not a JSON object");
    }
    for (const auto& [k, v] : extra.dict_data().items) vars.set(k, v);
  }
  return vars;
}

// The text of the final message (a string, or the last text block of a content list).
std::string final_content(const chat::Value& messages, const std::string& name) {
  const auto& items = messages.items();
  const chat::Value* content =
      items.empty() ? nullptr : items.back().dict_data().find(std::string_view("content"));
  if (content && content->is_string()) return content->as_string();
  if (content && content->is(chat::Kind::List)) {
    for (auto it = content->items().rbegin(); it != content->items().rend(); ++it) {
      const chat::Value* text = it->dict_data().find(std::string_view("text"));
      if (text && text->is_string()) return text->as_string();
    }
  }
  detail::fail(ErrorCode::InvalidArgument,
               "chat template '{}': continue_final_message needs text in the final message", name);
}

// transformers' continue_final_message: cut the output right after the final message's text.
std::string cut_after_final(std::string out, const std::string& final, const std::string& name) {
  std::string stripped = chat::py_strip(final, nullptr, true, true);
  std::string lstripped = chat::py_strip(final, nullptr, true, false);
  std::size_t loc = out.rfind(stripped);
  if (loc == std::string::npos) {
    detail::fail(ErrorCode::InvalidArgument,
                 "chat template '{}': ValueError: continue_final_message: final message not "
                 "found in the rendered output",
                 name);
  }
  // As transformers: keep trailing whitespace of the final message only when it was rendered
  // exactly (out[loc:loc+len(lstripped)] == final).
  bool exact = out.compare(loc, lstripped.size(), final) == 0;
  out.resize(loc + (exact ? lstripped.size() : stripped.size()));
  return out;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::parse(std::string_view source, std::string_view name) {
  return detail::capture([&]() -> ChatTemplate {
    auto impl = std::make_shared<Impl>();
    impl->name = std::string(name);
    try {
      impl->body = chat::parse(chat::tokenize(source), kMaxNesting);
    } catch (const chat::SyntaxError& e) {
      detail::fail(ErrorCode::Format, "chat template '{}', line {}: TemplateSyntaxError: {}", name,
                   e.line, e.message);
    }
    return ChatTemplate(std::move(impl));
  });
}

Result<ChatTemplate> ChatTemplate::builtin(std::string_view name) {
  Result<std::string> source = builtin_chat_template(name);
  if (!source.ok()) return source.error();
  return parse(*source, name);
}

const std::string& ChatTemplate::name() const {
  return impl_->name;
}

namespace {

std::string run(const std::string& name, const chat::Body& body, chat::Value messages,
                const ChatTemplateOptions& o) {
  if (o.continue_final_message && o.add_generation_prompt) {
    detail::fail(ErrorCode::InvalidArgument,
                 "chat template '{}': continue_final_message and add_generation_prompt are not "
                 "compatible",
                 name);
  }
  chat::Environment env{
      variables(messages, o), o.clock,
      chat::Limits{o.limits.max_steps, o.limits.max_call_depth, o.limits.max_output_bytes}};
  chat::Interpreter interp(env);
  std::string out;
  try {
    out = interp.render(body);
  } catch (const chat::TemplateException& e) {
    detail::fail(ErrorCode::InvalidArgument, "chat template '{}', line {}: {}: {}", name,
                 interp.line(), e.type, e.message);
  } catch (const chat::LimitExceeded& e) {
    detail::fail(ErrorCode::Unsupported, "chat template '{}', line {}: {}", name, interp.line(),
                 e.message);
  }
  if (!o.continue_final_message) return out;
  return cut_after_final(std::move(out), final_content(messages, name), name);
}

}  // namespace

Result<std::string> ChatTemplate::render(std::span<const ChatMessage> messages,
                                         const ChatTemplateOptions& options) const {
  return detail::capture([&] {
    std::vector<chat::Value> list;
    for (std::size_t i = 0; i < messages.size(); ++i) list.push_back(message_value(messages[i], i));
    return run(impl_->name, impl_->body, chat::Value::list(std::move(list)), options);
  });
}

Result<std::string> ChatTemplate::render_json(std::string_view messages_json,
                                              const ChatTemplateOptions& options) const {
  return detail::capture([&] {
    chat::Value messages = chat::parse_json(messages_json, "messages_json", kMaxJsonDepth);
    if (!messages.is(chat::Kind::List)) {
      detail::fail(ErrorCode::InvalidArgument, "messages_json is not a JSON array");
    }
    return run(impl_->name, impl_->body, std::move(messages), options);
  });
}

Result<std::string> render_chat_template(std::string_view source,
                                         std::span<const ChatMessage> messages,
                                         const ChatTemplateOptions& options,
                                         std::string_view name) {
  Result<ChatTemplate> t = ChatTemplate::parse(source, name);
  if (!t.ok()) return t.error();
  return t->render(messages, options);
}

Result<std::string> builtin_chat_template(std::string_view name) {
  if (name == "chatml") return std::string(kChatMl);
  return Error{ErrorCode::InvalidArgument, fmt::format("no built-in chat template '{}'", name)};
}

Result<std::vector<std::int32_t>> encode_chat_prompt(const Tokenizer& tokenizer,
                                                     std::string_view rendered) {
  return tokenizer.encode(rendered, {.add_special = false, .parse_special = true});
}

}  // namespace qlm
