// A model's chat templates, chosen as transformers chooses them, and rendered prompts tokenized as
// transformers tokenizes them.
#include <filesystem>

#include "qlm/chat.hpp"
#include "qlm/detail/read_file.hpp"
#include "qlm/tokenizer/vocabulary.hpp"
#include "util/fail.hpp"

namespace qlm {

using detail::fail;

namespace {

std::string stored_names(const Vocabulary& v) {
  std::string names = v.chat_template.empty() ? "" : "default";
  for (const NamedChatTemplate& t : v.chat_templates) {
    names += fmt::format("{}{}", names.empty() ? "" : ", ", t.name);
  }
  return names.empty() ? "none" : names;
}

const std::string* find_stored(const Vocabulary& v, std::string_view name) {
  if (name == "default") return v.chat_template.empty() ? nullptr : &v.chat_template;
  for (const NamedChatTemplate& t : v.chat_templates) {
    if (t.name == name) return &t.source;
  }
  return nullptr;
}

bool is_builtin(std::string_view name) {
  return builtin_chat_template(name).ok();
}

// Parsing the stored source can fail only if the file was made by other means than qlm-convert,
// which refuses templates that do not parse unless they came with the checkpoint.
ChatTemplate parse_stored(const std::string& source, std::string_view name) {
  return detail::unwrap(ChatTemplate::parse(source, name));
}

}  // namespace

Result<ChatTemplate> model_chat_template(const Tokenizer& tokenizer, std::string_view name,
                                         bool with_tools) {
  return detail::capture([&] {
    const Vocabulary& v = tokenizer.vocabulary();
    if (name.empty()) {
      if (with_tools) {
        if (const std::string* t = find_stored(v, "tool_use")) return parse_stored(*t, "tool_use");
      }
      if (v.chat_template.empty()) {
        fail(ErrorCode::Unsupported,
             "the model has no default chat template (it has: {}); choose one by name, e.g. the "
             "built-in 'chatml'",
             stored_names(v));
      }
      return parse_stored(v.chat_template, "default");
    }
    const std::string* t = find_stored(v, name);
    if (t == nullptr) {
      fail(ErrorCode::Unsupported, "the model has no chat template '{}' (it has: {})", name,
           stored_names(v));
    }
    return parse_stored(*t, name);
  });
}

Result<ChatTemplate> find_chat_template(const Tokenizer& tokenizer, std::string_view choice,
                                        bool with_tools) {
  if (choice.empty() || find_stored(tokenizer.vocabulary(), choice) != nullptr) {
    return model_chat_template(tokenizer, choice, with_tools);
  }
  if (is_builtin(choice)) return ChatTemplate::builtin(choice);
  return detail::capture([&] {
    const std::filesystem::path path(choice);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      fail(ErrorCode::InvalidArgument,
           "'{}' is neither a chat template of the model (it has: {}), a built-in (chatml) nor a "
           "file",
           choice, stored_names(tokenizer.vocabulary()));
    }
    const std::string source =
        detail::unwrap(detail::read_regular_file(path, std::uint64_t{16} << 20, "chat template"));
    return detail::unwrap(ChatTemplate::parse(source, path.string()));
  });
}

std::vector<std::pair<std::string, std::string>> chat_special_tokens(const Tokenizer& tokenizer) {
  const Vocabulary& v = tokenizer.vocabulary();
  std::vector<std::pair<std::string, std::string>> out;
  const std::pair<const char*, std::int32_t> ids[] = {{"bos_token", v.bos_id},
                                                      {"eos_token", v.eos_id},
                                                      {"unk_token", v.unk_id},
                                                      {"pad_token", v.pad_id}};
  for (const auto& [name, id] : ids) {
    if (id >= 0) out.emplace_back(name, std::string(tokenizer.piece(id)));
  }
  return out;
}

Result<std::vector<std::int32_t>> tokenize_chat(const Tokenizer& tokenizer, std::string_view text) {
  return tokenizer.encode(text, {.add_special = false, .parse_special = true});
}

namespace {

template <class Render>
Result<ChatPrompt> render_with(const Tokenizer& tokenizer, ChatTemplateOptions& options,
                               Render&& render) {
  if (options.special_tokens.empty()) options.special_tokens = chat_special_tokens(tokenizer);
  auto text = render(options);
  if (!text) return text.error();
  auto tokens = tokenize_chat(tokenizer, *text);
  if (!tokens) return tokens.error();
  return ChatPrompt{std::move(*text), std::move(*tokens)};
}

}  // namespace

Result<ChatPrompt> render_chat(const Tokenizer& tokenizer, const ChatTemplate& tmpl,
                               std::string_view messages_json, ChatTemplateOptions options) {
  return render_with(tokenizer, options, [&](const ChatTemplateOptions& o) {
    return tmpl.render_json(messages_json, o);
  });
}

Result<ChatPrompt> render_chat(const Tokenizer& tokenizer, const ChatTemplate& tmpl,
                               std::span<const ChatMessage> messages, ChatTemplateOptions options) {
  return render_with(tokenizer, options,
                     [&](const ChatTemplateOptions& o) { return tmpl.render(messages, o); });
}

}  // namespace qlm
