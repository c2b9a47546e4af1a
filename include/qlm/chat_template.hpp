// Chat templates: renders a conversation into prompt text with a model's Jinja chat template,
// exactly as Hugging Face transformers' apply_chat_template(tokenize=False) does (docs/chat.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qlm/error.hpp"

namespace qlm {

class Tokenizer;  // qlm/tokenizer.hpp

/// One message of a conversation, as a template sees it (`message.role`, `message.content`...).
struct ChatMessage {
  std::string role;                    ///< "system", "user", "assistant", "tool"...
  std::optional<std::string> content;  ///< nullopt is Python's None
  std::string tool_calls_json;         ///< JSON array of tool calls; empty: no `tool_calls` key
  std::string extra_json;  ///< JSON object of more keys (tool_call_id, name...); empty: none
};

/// Bounds on one render, so that a broken or hostile template fails instead of hanging.
struct ChatTemplateLimits {
  std::uint64_t max_steps = 10'000'000;      ///< statements, expressions, loop iterations
  int max_call_depth = 32;                   ///< nested macro calls
  std::size_t max_output_bytes = 16u << 20;  ///< output, and any one string or list built
};

/// How to render: the arguments transformers' apply_chat_template passes to the template.
struct ChatTemplateOptions {
  bool add_generation_prompt = false;   ///< end with the assistant turn's opening
  bool continue_final_message = false;  ///< cut after the final message's content (prefill)
  std::string tools_json;               ///< JSON array of tool schemas; empty passes None
  std::string documents_json;           ///< JSON array of documents; empty passes None
  std::string
      variables_json;  ///< JSON object of extra variables (enable_thinking...); may be empty
  /// Special tokens by name ("bos_token", "eos_token"...); tokens not listed stay undefined.
  std::vector<std::pair<std::string, std::string>> special_tokens;
  std::function<std::tm()> clock;  ///< the time strftime_now() formats; empty: local time now
  ChatTemplateLimits limits;
};

/// A parsed chat template; parse once, render many times. Copies share the parsed tree.
class ChatTemplate {
 public:
  /// Parses Jinja source; a syntax error comes back as ErrorCode::Format naming `name` and the
  /// line.
  static Result<ChatTemplate> parse(std::string_view source,
                                    std::string_view name = "chat_template");
  /// A template shipped with qlm: "chatml" (<|im_start|>role\ncontent<|im_end|>\n).
  static Result<ChatTemplate> builtin(std::string_view name);

  /// Renders a conversation. Errors the template raises (raise_exception, TypeError...) come back
  /// as ErrorCode::InvalidArgument, limits as ErrorCode::Unsupported, with name, line and message.
  Result<std::string> render(std::span<const ChatMessage> messages,
                             const ChatTemplateOptions& options = {}) const;
  /// Same, with the messages as a JSON array of objects (any keys, content lists included).
  Result<std::string> render_json(std::string_view messages_json,
                                  const ChatTemplateOptions& options = {}) const;

  /// The name given to parse() (used in error messages).
  const std::string& name() const;

 private:
  struct Impl;
  explicit ChatTemplate(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

/// Parses and renders in one call.
Result<std::string> render_chat_template(std::string_view source,
                                         std::span<const ChatMessage> messages,
                                         const ChatTemplateOptions& options = {},
                                         std::string_view name = "chat_template");

/// The Jinja source of a built-in template ("chatml"); ErrorCode::InvalidArgument otherwise.
Result<std::string> builtin_chat_template(std::string_view name);

/// Token ids of a rendered prompt as transformers gives them (add_special_tokens=False): special
/// tokens in the text become their ids and nothing is added, so the only BOS is one the template
/// wrote. That is Tokenizer::encode with add_special = false and parse_special = true.
Result<std::vector<std::int32_t>> encode_chat_prompt(const Tokenizer& tokenizer,
                                                     std::string_view rendered);

}  // namespace qlm
