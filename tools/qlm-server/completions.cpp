// POST /v1/chat/completions and /v1/completions, with OpenAI's request fields and its response
// and streaming-chunk contract (docs/serving.md lists what is and is not supported).
#include <fmt/format.h>

#include <ctime>
#include <optional>
#include <qlm/chat.hpp>
#include <qlm/version.hpp>

#include "api.hpp"

namespace qlm::server {

namespace {

constexpr std::size_t kMaxMessages = 4096;
constexpr std::int64_t kMaxTokensField = 1LL << 31;

// How the request asked for log-probabilities.
struct LogprobsWanted {
  bool on = false;
  std::int32_t top = 0;
};

struct Parsed {
  Request request;
  bool stream = false, include_usage = false;
  LogprobsWanted logprobs;
};

void refuse_unsupported(const json& body, bool chat) {
  auto present = [&](const char* key) {
    const auto it = body.find(key);
    return it != body.end() && !it->is_null() && !(it->is_array() && it->empty());
  };
  for (const char* key : {"tools", "functions", "function_call"}) {
    if (present(key)) {
      throw ApiError(400, fmt::format("'{}': tool calling is not supported yet", key), key);
    }
  }
  if (present("tool_choice") && body["tool_choice"] != "none") {
    throw ApiError(400, "'tool_choice': tool calling is not supported yet", "tool_choice");
  }
  if (present("response_format")) {
    const json& f = body["response_format"];
    if (!f.is_object() || f.value("type", "") != "text") {
      throw ApiError(400, "'response_format': only {\"type\": \"text\"} is supported",
                     "response_format");
    }
  }
  if (!chat) {
    if (get_bool(body, "echo").value_or(false)) {
      throw ApiError(400, "'echo' is not supported", "echo");
    }
    if (get_integer(body, "best_of", 1, 1000).value_or(1) > 1) {
      throw ApiError(400, "'best_of' above 1 is not supported (use 'n')", "best_of");
    }
    if (!get_string(body, "suffix").value_or("").empty()) {
      throw ApiError(400, "'suffix' is not supported here: use POST /infill", "suffix");
    }
  }
}

// A message's content as the template expects it: a string (text parts joined) or null.
json message_content(const json& content, std::size_t i) {
  if (content.is_null() || content.is_string()) return content;
  const std::string param = fmt::format("messages[{}].content", i);
  if (!content.is_array()) throw ApiError(400, "'" + param + "' must be a string or a list", param);
  std::string text;
  for (const json& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      throw ApiError(400, "'" + param + "': only text parts ({\"type\": \"text\"}) are supported",
                     param);
    }
    if (!text.empty()) text += '\n';
    text += part["text"].get<std::string>();
  }
  return text;
}

std::vector<std::int32_t> chat_prompt(Api& api, const json& body) {
  const Backend& b = api.backend();
  const auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty()) {
    throw ApiError(400, "'messages' must be a non-empty array of messages", "messages");
  }
  if (it->size() > kMaxMessages) {
    throw ApiError(400, fmt::format("'messages' may hold at most {} messages", kMaxMessages),
                   "messages");
  }
  if (!b.chat) throw ApiError(400, b.no_chat_reason, "messages");
  json messages = json::array();
  for (std::size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      throw ApiError(400, fmt::format("'messages[{}]' must be an object with a string 'role'", i),
                     fmt::format("messages[{}]", i));
    }
    json msg = m;
    msg["content"] = message_content(m.value("content", json(nullptr)), i);
    messages.push_back(std::move(msg));
  }
  ChatTemplateOptions options;
  options.add_generation_prompt = true;
  if (const auto kw = body.find("chat_template_kwargs"); kw != body.end() && !kw->is_null()) {
    if (!kw->is_object()) {
      throw ApiError(400, "'chat_template_kwargs' must be an object", "chat_template_kwargs");
    }
    options.variables_json = dump(*kw);
  }
  auto prompt = render_chat(b.model->tokenizer(), *b.chat, dump(messages), options);
  if (!prompt) throw ApiError(400, prompt.error().message, "messages");
  return std::move(prompt->tokens);
}

std::vector<std::int32_t> token_ids(const json& a, std::int32_t vocab) {
  std::vector<std::int32_t> ids;
  for (const json& t : a) {
    if (!t.is_number_integer() || t.get<std::int64_t>() < 0 || t.get<std::int64_t>() >= vocab) {
      throw ApiError(
          400, fmt::format("'prompt' holds something other than a token id in [0, {})", vocab),
          "prompt");
    }
    ids.push_back(t.get<std::int32_t>());
  }
  return ids;
}

std::vector<std::int32_t> text_prompt(Api& api, const json& body) {
  const Tokenizer& tok = api.backend().model->tokenizer();
  const auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) throw ApiError(400, "'prompt' is required", "prompt");
  const json* p = &*it;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) {
    p = &(*p)[0];  // a batch of one prompt
  }
  std::vector<std::int32_t> ids;
  if (p->is_string()) {
    auto enc = tok.encode(p->get<std::string>());
    if (!enc) throw ApiError(400, enc.error().message, "prompt");
    ids = std::move(*enc);
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    ids = token_ids(*p, tok.size());
  } else {
    throw ApiError(400,
                   "'prompt' must be a string or an array of token ids (one prompt per request)",
                   "prompt");
  }
  if (ids.empty()) {
    if (tok.bos() < 0) throw ApiError(400, "'prompt' is empty", "prompt");
    ids.push_back(tok.bos());
  }
  return ids;
}

Parsed parse(Api& api, const json& body, bool chat) {
  refuse_unsupported(body, chat);
  const Backend& b = api.backend();
  const std::int32_t vocab = b.model->tokenizer().size();
  Parsed p;
  (void)get_string(body, "model");  // any model name is served by this one, as llama-server does
  p.stream = get_bool(body, "stream").value_or(false);
  if (const auto so = body.find("stream_options"); so != body.end() && !so->is_null()) {
    if (!so->is_object())
      throw ApiError(400, "'stream_options' must be an object", "stream_options");
    p.include_usage = get_bool(*so, "include_usage").value_or(false);
  }
  if (chat) {
    p.logprobs.on = get_bool(body, "logprobs").value_or(false);
    const auto top = get_integer(body, "top_logprobs", 0, kMaxTopLogprobs);
    if (top && !p.logprobs.on) {
      throw ApiError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
    }
    p.logprobs.top = static_cast<std::int32_t>(top.value_or(0));
  } else if (auto lp = get_integer(body, "logprobs", 0, 5)) {
    p.logprobs = {true, static_cast<std::int32_t>(*lp)};
  }
  Request& r = p.request;
  r.n = static_cast<std::uint32_t>(get_integer(body, "n", 1, 16).value_or(1));
  r.sampler = sampler_options(body, vocab);
  r.options.stop = get_strings(body, "stop", api.config().max_stop);
  r.options.top_logprobs = p.logprobs.top;
  auto max = get_integer(body, "max_completion_tokens", 0, kMaxTokensField);
  if (!max || !chat) max = get_integer(body, "max_tokens", 0, kMaxTokensField);
  r.prompt = chat ? chat_prompt(api, body) : text_prompt(api, body);
  if (r.prompt.size() >= b.context) {
    throw ApiError(400,
                   fmt::format("this model's context is {} tokens; the prompt has {} (and needs "
                               "room for at least one more)",
                               b.context, r.prompt.size()),
                   chat ? "messages" : "prompt", "invalid_request_error",
                   "context_length_exceeded");
  }
  std::int64_t room = b.context - r.prompt.size();
  if (api.config().max_tokens > 0) room = std::min<std::int64_t>(room, api.config().max_tokens);
  r.options.max_tokens = static_cast<std::int32_t>(std::min(max.value_or(room), room));
  return p;
}

json usage(const RequestStats& s) {
  return {{"prompt_tokens", s.prompt_tokens},
          {"completion_tokens", s.generated_tokens},
          {"total_tokens", s.prompt_tokens + s.generated_tokens},
          {"prompt_tokens_details", {{"cached_tokens", s.cached_tokens}}}};
}

// Per choice: the log-probabilities gathered and not yet sent.
struct ChoiceState {
  json logprobs_content = json::array();  // chat: entries
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(),
       text_offset = json::array();           // completions: parallel lists
  std::optional<TokenStreamDecoder> decoder;  // token strings that continue the text exactly
  std::size_t offset = 0;
  bool finished = false;
  void clear_logprobs() {
    logprobs_content = json::array();
    tokens = token_logprobs = top_logprobs = text_offset = json::array();
  }
};

class OpenAiJob final : public Job {
 public:
  OpenAiJob(Api& api, const HttpRequest& request, std::shared_ptr<HttpExchange> exchange, bool chat,
            const Parsed& p)
      : Job(api, request, std::move(exchange)),
        chat_(chat),
        stream_(p.stream),
        include_usage_(p.include_usage),
        logprobs_(p.logprobs),
        id_(api.next_id(chat ? "chatcmpl-" : "cmpl-")),
        created_(std::time(nullptr)),
        choices_(p.request.n),
        tok_(api.backend().model->tokenizer()) {
    if (!logprobs_.on) return;
    for (auto& c : choices_) {
      c.decoder.emplace(tok_);
      c.decoder->skip(p.request.prompt);
    }
  }

  // Submits, then starts the stream (chunks made before it began wait for it).
  void start(Request r) {
    submit(std::move(r));
    if (!stream_) return;
    std::vector<std::string> roles;
    if (chat_) {  // each choice's first delta carries the role
      for (std::uint32_t c = 0; c < choices_.size(); ++c) {
        json ch = {{"index", c},
                   {"delta", {{"role", "assistant"}, {"content", ""}}},
                   {"logprobs", nullptr},
                   {"finish_reason", nullptr}};
        roles.push_back(event(chunk(json::array({std::move(ch)}))));
      }
    }
    events_.begin(std::move(roles));
  }

 private:
  bool on_token(std::uint32_t c, const GeneratedToken& t) override {
    if (exchange_->gone()) return false;
    if (logprobs_.on) add_logprobs(choices_[c], t);
    if (!stream_) return true;
    if (!t.text.empty() || t.last) {
      json delta = chat_ ? json{{"content", std::string(t.text)}} : json();
      json ch = choice_chunk(c, delta, t.last ? finish_reason(t.stop) : nullptr);
      if (!chat_) ch["text"] = std::string(t.text);
      emit(event(chunk(json::array({std::move(ch)}))));
    }
    if (t.last) choices_[c].finished = true;
    return true;
  }

  void on_done(const RequestResult& result) override {
    if (stream_) {
      end_stream(result);
    } else if (result.error) {
      exchange_->reply(500, "application/json",
                       dump(error_body(ApiError(500, result.error->message, {}, "server_error"))));
    } else {
      exchange_->reply(200, "application/json", dump(response(result)));
    }
    account(result, result.error ? 500 : 200);
  }

  void end_stream(const RequestResult& result) {
    if (result.error) {
      emit(event(error_body(ApiError(500, result.error->message, {}, "server_error"))));
    }
    for (std::uint32_t c = 0; c < choices_.size(); ++c) {  // ended early (shutdown)
      if (!choices_[c].finished && !result.error) {
        json ch = choice_chunk(c, json::object(), "stop");
        if (!chat_) ch["text"] = "";
        emit(event(chunk(json::array({std::move(ch)}))));
      }
    }
    if (include_usage_) {
      json last = chunk(json::array());
      last["usage"] = usage(result.stats);
      emit(event(last));
    }
    emit("data: [DONE]\n\n");
    events_.end();
  }

  json response(const RequestResult& result) {
    json choices = json::array();
    for (std::uint32_t c = 0; c < result.choices.size(); ++c) {
      const ChoiceResult& r = result.choices[c];
      json ch = {{"index", c},
                 {"logprobs", logprobs_json(choices_[c])},
                 {"finish_reason", finish_reason(r.stop)}};
      if (chat_) {
        ch["message"] = {{"role", "assistant"}, {"content", r.text}};
      } else {
        ch["text"] = r.text;
      }
      choices.push_back(std::move(ch));
    }
    return {{"id", id_},
            {"object", chat_ ? "chat.completion" : "text_completion"},
            {"created", created_},
            {"model", api_.config().alias},
            {"system_fingerprint", "qlm-" QLM_VERSION_STRING},
            {"choices", choices},
            {"usage", usage(result.stats)}};
  }

  json chunk(json choices) const {
    json j = {{"id", id_},
              {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
              {"created", created_},
              {"model", api_.config().alias},
              {"system_fingerprint", "qlm-" QLM_VERSION_STRING},
              {"choices", std::move(choices)}};
    if (include_usage_) j["usage"] = nullptr;
    return j;
  }

  json choice_chunk(std::uint32_t c, json delta, const char* finish = nullptr) {
    json ch = {{"index", c}, {"logprobs", logprobs_json(choices_[c])}};
    if (chat_) ch["delta"] = std::move(delta);
    ch["finish_reason"] = finish ? json(finish) : json(nullptr);
    choices_[c].clear_logprobs();
    return ch;
  }

  static std::string event(const json& j) { return "data: " + dump(j) + "\n\n"; }

  void emit(std::string e) { events_.send(std::move(e)); }

  // A token's text where the choice's text stands: an alternative's, with any incomplete
  // character's bytes as they are.
  static std::string alternative_text(const TokenStreamDecoder& at, std::int32_t id) {
    TokenStreamDecoder d = at;
    std::string text = d.push(id);
    return text + d.flush();
  }

  static json token_entry(const std::string& text, float logprob) {
    json bytes = json::array();
    for (unsigned char ch : text) bytes.push_back(ch);
    return {{"token", text}, {"logprob", logprob}, {"bytes", bytes}};
  }

  // Token strings concatenate to the choice's text (a token ending inside a character gets "",
  // the next one the whole character).
  void add_logprobs(ChoiceState& s, const GeneratedToken& t) {
    json alternatives = chat_ ? json::array() : json::object();
    for (const auto& alt : t.top) {
      std::string text = alternative_text(*s.decoder, alt.id);
      if (chat_) {
        alternatives.push_back(token_entry(text, alt.logprob));
      } else {
        alternatives[text] = alt.logprob;
      }
    }
    const std::string text = s.decoder->push(t.id);
    if (chat_) {
      json e = token_entry(text, t.logprob);
      e["top_logprobs"] = std::move(alternatives);
      s.logprobs_content.push_back(std::move(e));
      return;
    }
    s.tokens.push_back(text);
    s.token_logprobs.push_back(t.logprob);
    s.top_logprobs.push_back(std::move(alternatives));
    s.text_offset.push_back(s.offset);
    s.offset += text.size();
  }

  json logprobs_json(const ChoiceState& s) const {
    if (!logprobs_.on) return nullptr;
    if (chat_) return {{"content", s.logprobs_content}, {"refusal", nullptr}};
    return {{"tokens", s.tokens},
            {"token_logprobs", s.token_logprobs},
            {"top_logprobs", s.top_logprobs},
            {"text_offset", s.text_offset}};
  }

  const bool chat_, stream_, include_usage_;
  const LogprobsWanted logprobs_;
  const std::string id_;
  const std::int64_t created_;
  std::vector<ChoiceState> choices_;  // the scheduler thread's
  const Tokenizer& tok_;
  EventStream events_{exchange_};
};

}  // namespace

void handle_openai(Api& api, const HttpRequest& request,
                   const std::shared_ptr<HttpExchange>& exchange, bool chat) {
  const json body = parse_object(request.body);
  Parsed p = parse(api, body, chat);
  auto job = std::make_shared<OpenAiJob>(api, request, exchange, chat, p);
  job->start(std::move(p.request));
}

}  // namespace qlm::server
