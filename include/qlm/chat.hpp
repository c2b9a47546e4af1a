// A model's chat: which template to use, and a conversation rendered and tokenized exactly as
// transformers' apply_chat_template(tokenize=True) gives it to the model (docs/chat.md).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qlm/chat_template.hpp"
#include "qlm/error.hpp"
#include "qlm/tokenizer.hpp"

namespace qlm {

/// A conversation as the model sees it: the rendered text and its token ids.
struct ChatPrompt {
  std::string text;
  std::vector<std::int32_t> tokens;
};

/// The template a model stores. `name` "" picks as transformers does: "tool_use" when
/// `with_tools` and the model has one, else the default; "default" or a stored name picks that
/// one. No such template is ErrorCode::Unsupported, naming the ones there are: qlm never guesses
/// a format (ask for a built-in such as "chatml" with find_chat_template).
Result<ChatTemplate> model_chat_template(const Tokenizer& tokenizer, std::string_view name = {},
                                         bool with_tools = false);

/// A user's choice of template, as qlm-run's --chat-template takes it: "" or a name the model
/// stores (see model_chat_template), else a built-in ("chatml"), else a Jinja file's path.
Result<ChatTemplate> find_chat_template(const Tokenizer& tokenizer, std::string_view choice,
                                        bool with_tools = false);

/// The special-token variables a template may refer to (bos_token, eos_token, unk_token,
/// pad_token), spelled as in the vocabulary; tokens the model lacks are left undefined.
std::vector<std::pair<std::string, std::string>> chat_special_tokens(const Tokenizer& tokenizer);

/// Tokenizes rendered template text as transformers does (add_special_tokens=False): special
/// tokens written in the text become their ids, and no BOS/EOS is added beyond what it contains.
Result<std::vector<std::int32_t>> tokenize_chat(const Tokenizer& tokenizer, std::string_view text);

/// Renders `messages_json` (a JSON array of message objects) with `tmpl` and tokenizes the text
/// with tokenize_chat. options.special_tokens defaults to chat_special_tokens(tokenizer).
Result<ChatPrompt> render_chat(const Tokenizer& tokenizer, const ChatTemplate& tmpl,
                               std::string_view messages_json, ChatTemplateOptions options = {});
/// Same, with ChatMessage structs.
Result<ChatPrompt> render_chat(const Tokenizer& tokenizer, const ChatTemplate& tmpl,
                               std::span<const ChatMessage> messages,
                               ChatTemplateOptions options = {});

}  // namespace qlm
