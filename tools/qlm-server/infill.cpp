// POST /infill, llama.cpp's code-completion endpoint as llama.vim and llama.vscode call it:
// the prefix and suffix around the cursor, other files as context, text already typed; the
// response carries llama.cpp's fields, and `response_fields` picks and flattens them.
#include <fmt/format.h>

#include <qlm/version.hpp>

#include "api.hpp"

namespace qlm::server {

namespace {

constexpr std::size_t kMaxExtraChunks = 1024;

struct InfillArgs {
  InfillRequest request;
  std::int64_t n_predict = -1;  // -1: until the end of generation or the context
  std::int64_t n_indent = 0;
  std::int64_t t_max_predict_ms = -1;
  bool stream = false;
  bool cache_prompt = true;
  std::vector<std::string> response_fields;
};

std::string required_string(const json& body, const char* key) {
  auto s = get_string(body, key);
  if (!s) throw ApiError(400, fmt::format("'{}' is required", key), key);
  return *s;
}

InfillArgs parse_args(const json& body) {
  InfillArgs a;
  a.request.prefix = required_string(body, "input_prefix");
  a.request.suffix = required_string(body, "input_suffix");
  a.request.typed = get_string(body, "prompt").value_or("");
  if (const auto it = body.find("input_extra"); it != body.end() && !it->is_null()) {
    if (!it->is_array() || it->size() > kMaxExtraChunks) {
      throw ApiError(400,
                     fmt::format("'input_extra' must be an array of at most {} "
                                 "{{\"filename\": string, \"text\": string}}",
                                 kMaxExtraChunks),
                     "input_extra");
    }
    for (const json& chunk : *it) {
      if (!chunk.is_object())
        throw ApiError(400, "'input_extra' items must be objects", "input_extra");
      auto text = get_string(chunk, "text");
      if (!text) throw ApiError(400, "'input_extra' items need a string 'text'", "input_extra");
      a.request.extra.push_back({get_string(chunk, "filename").value_or(""), std::move(*text)});
    }
  }
  a.n_predict = get_integer(body, "n_predict", -1, 1LL << 31).value_or(-1);
  a.n_indent = get_integer(body, "n_indent", 0, 1 << 16).value_or(0);
  a.t_max_predict_ms = get_integer(body, "t_max_predict_ms", -1, 1LL << 40).value_or(-1);
  (void)get_integer(body, "t_max_prompt_ms", -1, 1LL << 40);  // unimplemented, as in llama.cpp
  (void)get_integer(body, "id_slot", -1, 1LL << 31);          // one pool serves every request
  a.stream = get_bool(body, "stream").value_or(false);
  a.cache_prompt = get_bool(body, "cache_prompt").value_or(true);
  if (const auto it = body.find("response_fields"); it != body.end() && !it->is_null()) {
    if (!it->is_array())
      throw ApiError(400, "'response_fields' must be an array of strings", "response_fields");
    for (const json& f : *it) {
      if (!f.is_string())
        throw ApiError(400, "'response_fields' must be an array of strings", "response_fields");
      a.response_fields.push_back(f.get<std::string>());
    }
  }
  return a;
}

// llama.cpp's response_fields: each slash path found becomes a top-level key of that name.
json pick_fields(const json& full, const std::vector<std::string>& paths) {
  json out = json::object();
  for (const std::string& path : paths) {
    const json* cur = &full;
    bool found = true;
    std::size_t start = 0;
    while (found) {
      const std::size_t slash = path.find('/', start);
      const std::string key = path.substr(start, slash - start);
      if (cur->is_object() && cur->contains(key)) {
        cur = &(*cur)[key];
      } else {
        found = false;
      }
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    if (found) out[path] = *cur;
  }
  return out;
}

class InfillJob final : public Job {
 public:
  InfillJob(Api& api, const HttpRequest& request, std::shared_ptr<HttpExchange> exchange,
            InfillArgs args, const InfillPrompt& prompt, const SamplerOptions& sampler,
            std::int32_t max_tokens)
      : Job(api, request, std::move(exchange)),
        args_(std::move(args)),
        prompt_text_(prompt.text),
        prompt_cut_(prompt.prefix_tokens_cut + prompt.suffix_tokens_cut > 0),
        prompt_tokens_(prompt.ids.size()),
        sampler_(sampler),
        max_tokens_(max_tokens) {}

  void start(Request r) {
    submit(std::move(r));
    if (args_.stream) events_.begin();
  }

 private:
  bool on_token(std::uint32_t, const GeneratedToken& t) override {
    if (exchange_->gone()) return false;
    const auto now = Clock::now();
    if (tokens_.empty()) first_token_ = now;
    tokens_.push_back(t.id);
    const std::size_t sent = content_.size();
    content_ += t.text;
    bool go_on = true;
    // llama.cpp's limits once a line is complete: a time limit, and a minimum indentation.
    if (has_new_line_ && args_.t_max_predict_ms > 0 &&
        now - first_token_ > std::chrono::milliseconds(args_.t_max_predict_ms)) {
      go_on = false;
    }
    if (args_.n_indent > 0 && !indented_enough()) go_on = false;
    if (t.text.find('\n') != std::string_view::npos) has_new_line_ = true;
    if (!go_on) limited_ = true;
    if (args_.stream && content_.size() > sent) {
      emit(json{{"index", 0},
                {"content", content_.substr(sent)},
                {"tokens", {t.id}},
                {"stop", false},
                {"id_slot", -1},
                {"tokens_predicted", tokens_.size()},
                {"tokens_evaluated", prompt_tokens_}});
    }
    return go_on;
  }

  // n_indent: each line after the first must reach n_indent spaces or tabs before its first other
  // character (a blank line does not); the first line that does not is cut there and ends the
  // request. Checked on every token, so the text returned never ends in an unchecked line.
  bool indented_enough() {
    for (;;) {
      if (line_start_ == 0) {  // still on the first line
        const std::size_t nl = content_.find('\n');
        if (nl == std::string::npos) return true;
        line_start_ = nl + 1;
        continue;
      }
      std::size_t pos = line_start_;
      while (pos < content_.size() && (content_[pos] == ' ' || content_[pos] == '\t')) ++pos;
      if (pos == content_.size()) return true;  // only indentation so far
      if (static_cast<std::int64_t>(pos - line_start_) < args_.n_indent) {
        content_.erase(pos);
        return false;
      }
      const std::size_t nl = content_.find('\n', pos);
      if (nl == std::string::npos) return true;
      line_start_ = nl + 1;
    }
  }

  void on_done(const RequestResult& result) override {
    const int status = result.error ? 500 : 200;
    if (result.error) {
      const json err = error_body(ApiError(500, result.error->message, {}, "server_error"));
      if (args_.stream) {
        emit(err);
        finish_stream();
      } else {
        exchange_->reply(500, "application/json", dump(err));
      }
    } else {
      json full = final_json(result);
      if (args_.stream) {
        full["content"] = "";
        full["tokens"] = json::array();
        emit(args_.response_fields.empty() ? full : pick_fields(full, args_.response_fields));
        finish_stream();
      } else {
        exchange_->reply(
            200, "application/json",
            dump(args_.response_fields.empty() ? full : pick_fields(full, args_.response_fields)));
      }
    }
    account(result, status);
  }

  json final_json(const RequestResult& result) const {
    const RequestStats& s = result.stats;
    const StopReason stop = result.choices.empty() ? StopReason::MaxTokens : result.choices[0].stop;
    const bool eos = stop == StopReason::EndOfGeneration;
    const bool word = stop == StopReason::StopString;
    const bool limit = limited_ || stop == StopReason::MaxTokens || stop == StopReason::ContextFull;
    const std::string stop_type = eos ? "eos" : word ? "word" : limit ? "limit" : "none";
    // The prompt's time: from admission to the first token (or to the end, when warming only).
    const double to_first = s.time_to_first_token > 0.0
                                ? s.time_to_first_token
                                : std::chrono::duration<double>(Clock::now() - received_).count();
    const double prompt_ms = std::max(0.0, (to_first - s.queue_seconds) * 1e3);
    const auto prompt_n = static_cast<double>(s.prompt_tokens - s.cached_tokens);
    const auto predicted_n = static_cast<double>(s.generated_tokens);
    const double predicted_ms = s.generation_seconds * 1e3;
    json timings = {
        {"prompt_n", s.prompt_tokens - s.cached_tokens},
        {"prompt_ms", prompt_ms},
        {"prompt_per_token_ms", prompt_n > 0 ? prompt_ms / prompt_n : 0.0},
        {"prompt_per_second", prompt_ms > 0 ? prompt_n * 1e3 / prompt_ms : 0.0},
        {"predicted_n", s.generated_tokens},
        {"predicted_ms", predicted_ms},
        {"predicted_per_token_ms", predicted_n > 0 ? predicted_ms / predicted_n : 0.0},
        {"predicted_per_second", predicted_ms > 0 ? predicted_n * 1e3 / predicted_ms : 0.0}};
    std::string stopping_word;
    return {{"index", 0},
            {"content", content_},
            {"tokens", tokens_},
            {"id_slot", -1},
            {"stop", true},
            {"model", api_.config().alias},
            {"tokens_predicted", s.generated_tokens},
            {"tokens_evaluated", s.prompt_tokens},
            {"generation_settings",
             {{"n_predict", args_.n_predict},
              {"temperature", sampler_.temperature},
              {"top_k", sampler_.top_k},
              {"top_p", sampler_.top_p},
              {"min_p", sampler_.min_p},
              {"seed", sampler_.seed},
              {"n_indent", args_.n_indent},
              {"t_max_predict_ms", args_.t_max_predict_ms},
              {"max_tokens", max_tokens_},
              {"cache_prompt", args_.cache_prompt}}},
            {"prompt", prompt_text_},
            {"has_new_line", has_new_line_},
            {"truncated", prompt_cut_ || stop == StopReason::ContextFull},
            {"stop_type", stop_type},
            {"stopping_word", stopping_word},
            {"tokens_cached", s.prompt_tokens + s.generated_tokens},
            {"timings", timings}};
  }

  void emit(const json& j) { events_.send("data: " + dump(j) + "\n\n"); }
  void finish_stream() { events_.end(); }

  const InfillArgs args_;
  const std::string prompt_text_;
  const bool prompt_cut_;
  const std::size_t prompt_tokens_;
  const SamplerOptions sampler_;
  const std::int32_t max_tokens_;
  // The scheduler thread's.
  std::string content_;
  std::vector<std::int32_t> tokens_;
  Clock::time_point first_token_{};
  bool has_new_line_ = false, limited_ = false;
  std::size_t line_start_ = 0;  // first unchecked line after the first (0: none yet)
  EventStream events_{exchange_};
};

}  // namespace

void handle_infill(Api& api, const HttpRequest& request,
                   const std::shared_ptr<HttpExchange>& exchange) {
  const json body = parse_object(request.body);
  InfillArgs args = parse_args(body);
  const Backend& b = api.backend();
  const SamplerOptions sampler = sampler_options(body, b.model->tokenizer().size());
  std::vector<std::string> stop = get_strings(body, "stop", api.config().max_stop);
  // The prompt leaves room for the answer: n_predict tokens, or a quarter of the context (at
  // most 256) when the answer is unbounded.
  const auto ctx = static_cast<std::int64_t>(b.context);
  const std::int64_t reserve =
      args.n_predict >= 0 ? args.n_predict : std::min<std::int64_t>(256, ctx / 4);
  InfillPromptBuilder& builder = api.infill_builder();
  InfillOptions options = builder.options();
  options.max_tokens = static_cast<std::int32_t>(
      std::max<std::int64_t>(1, ctx - std::max<std::int64_t>(reserve, 1)));
  if (auto set = builder.set_options(options); !set) throw ApiError(400, set.error().message);
  auto prompt = builder.build(args.request);
  if (!prompt) throw ApiError(400, prompt.error().message);

  Request r;
  r.prompt = prompt->ids;
  r.sampler = sampler;
  r.reuse_prefix = args.cache_prompt;
  std::int64_t room = ctx - static_cast<std::int64_t>(r.prompt.size());
  if (api.config().max_tokens > 0) room = std::min<std::int64_t>(room, api.config().max_tokens);
  r.options.max_tokens =
      static_cast<std::int32_t>(args.n_predict < 0 ? room : std::min(args.n_predict, room));
  r.options.stop = std::move(stop);
  r.options.stop_tokens = prompt->end_ids;
  const std::int32_t max_tokens = r.options.max_tokens;
  auto job = std::make_shared<InfillJob>(api, request, exchange, std::move(args), *prompt, sampler,
                                         max_tokens);
  job->start(std::move(r));
}

}  // namespace qlm::server
