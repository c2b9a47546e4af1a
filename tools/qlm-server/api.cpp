// Routing, authentication, /health, /v1/models, /tokenize, /detokenize, /metrics, and Job.
#include "api.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace qlm::server {

namespace {

constexpr std::int32_t kMaxDetokenize = 1 << 20;

double ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

}  // namespace

const char* finish_reason(StopReason stop) {
  switch (stop) {
    case StopReason::MaxTokens:
    case StopReason::ContextFull:
      return "length";
    default:
      return "stop";
  }
}

Api::Api(ApiConfig config) : config_(std::move(config)), started_(std::time(nullptr)) {}

void Api::ready(Backend backend) {
  backend_ = std::move(backend);
  if (auto b = InfillPromptBuilder::create(backend_.model->tokenizer())) {
    infill_.emplace(std::move(*b));
  }
  ready_.store(true);
}

InfillPromptBuilder& Api::infill_builder() {
  if (!infill_) {
    throw ApiError(
        400,
        "infill is not supported by this model: its vocabulary has no fill-in-the-middle "
        "prefix, suffix and middle tokens",
        {}, "not_supported_error");
  }
  return *infill_;
}

std::string Api::next_id(const char* prefix) {
  return fmt::format("{}{:x}{:08x}", prefix, started_, ids_.fetch_add(1) + 1);
}

void Api::track(RequestId id) {
  std::lock_guard lock(tracked_mutex_);
  tracked_.insert(id);
}

void Api::untrack(RequestId id) {
  std::lock_guard lock(tracked_mutex_);
  tracked_.erase(id);
}

void Api::cancel_all() {
  std::lock_guard lock(tracked_mutex_);
  for (RequestId id : tracked_) backend_.scheduler->cancel(id);
}

void Api::log(const HttpRequest& request, int status, const std::string& detail) {
  metrics_.request(request.path, status);
  if (!config_.log) return;
  std::fprintf(stderr, "%s %s %s %d%s%s\n", request.peer.c_str(), request.method.c_str(),
               request.path.c_str(), status, detail.empty() ? "" : " ", detail.c_str());
}

void Api::fail(const HttpRequest& request, HttpExchange& exchange, const ApiError& e) {
  std::vector<HttpHeader> headers;
  if (e.status == 503) headers.push_back({"Retry-After", "1"});
  if (e.status == 401) headers.push_back({"WWW-Authenticate", "Bearer"});
  exchange.reply(e.status, "application/json", dump(error_body(e)), std::move(headers));
  log(request, e.status, e.what());
}

void Api::ok(const HttpRequest& request, HttpExchange& exchange, const json& body) {
  exchange.reply(200, "application/json", dump(body));
  log(request, 200, {});
}

bool Api::authorized(const HttpRequest& request) const {
  if (config_.api_key.empty() || request.path == "/health") return true;
  const std::string_view auth = request.header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  return auth.size() > kBearer.size() && auth.substr(0, kBearer.size()) == kBearer &&
         auth.substr(kBearer.size()) == config_.api_key;
}

void Api::handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange) {
  try {
    if (request.method == "OPTIONS") {  // a browser's CORS preflight
      exchange->reply(204, "text/plain", {},
                      {{"Access-Control-Allow-Methods", "GET, POST, OPTIONS"},
                       {"Access-Control-Allow-Headers", "Authorization, Content-Type"}});
      return;
    }
    if (!authorized(request)) {
      throw ApiError(401, "invalid or missing API key (send Authorization: Bearer KEY)", {},
                     "authentication_error", "invalid_api_key");
    }
    if (!ready_.load()) {
      throw ApiError(503, "the model is loading", {}, "unavailable_error");
    }
    route(request, exchange);
  } catch (const ApiError& e) {
    fail(request, *exchange, e);
  } catch (const std::exception& e) {
    fail(request, *exchange, ApiError(500, e.what(), {}, "server_error"));
  }
}

void Api::route(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange) {
  const std::string& p = request.path;
  const bool get = request.method == "GET", post = request.method == "POST";
  auto only = [&](bool allowed) {
    if (!allowed) throw ApiError(405, fmt::format("{} does not take {}", p, request.method));
  };
  if (p == "/health" || p == "/v1/health") {
    only(get);
    return ok(request, *exchange, {{"status", "ok"}});
  }
  if (p == "/v1/models" || p == "/models") {
    only(get);
    json model = {{"id", config_.alias},
                  {"object", "model"},
                  {"created", started_},
                  {"owned_by", "qlm"},
                  {"meta",
                   {{"n_ctx", backend_.context},
                    {"n_vocab", backend_.model->tokenizer().size()},
                    {"architecture", std::string(to_string(backend_.model->config().arch))}}}};
    return ok(request, *exchange, {{"object", "list"}, {"data", json::array({model})}});
  }
  if (p == "/v1/chat/completions" || p == "/chat/completions") {
    only(post);
    return handle_openai(*this, request, exchange, true);
  }
  if (p == "/v1/completions" || p == "/completions") {
    only(post);
    return handle_openai(*this, request, exchange, false);
  }
  if (p == "/infill") {
    only(post);
    return handle_infill(*this, request, exchange);
  }
  const Tokenizer& tok = backend_.model->tokenizer();
  if (p == "/tokenize") {
    only(post);
    const json body = parse_object(request.body);
    const std::string content = get_string(body, "content").value_or("");
    EncodeOptions options;
    options.add_special = get_bool(body, "add_special").value_or(false);
    options.parse_special = get_bool(body, "parse_special").value_or(true);
    auto ids = tok.encode(content, options);
    if (!ids) throw ApiError(400, ids.error().message, "content");
    json tokens = json::array();
    if (get_bool(body, "with_pieces").value_or(false)) {
      for (std::int32_t id : *ids) tokens.push_back({{"id", id}, {"piece", tok.piece(id)}});
    } else {
      tokens = *ids;
    }
    return ok(request, *exchange, {{"tokens", tokens}});
  }
  if (p == "/detokenize") {
    only(post);
    const json body = parse_object(request.body);
    std::vector<std::int32_t> ids;
    if (const auto it = body.find("tokens"); it != body.end() && !it->is_null()) {
      if (!it->is_array() || it->size() > kMaxDetokenize) {
        throw ApiError(400, "'tokens' must be an array of token ids", "tokens");
      }
      for (const auto& t : *it) {
        if (!t.is_number_integer() || t.get<std::int64_t>() < 0 ||
            t.get<std::int64_t>() >= tok.size()) {
          throw ApiError(
              400, fmt::format("'tokens' holds something other than an id in [0, {})", tok.size()),
              "tokens");
        }
        ids.push_back(t.get<std::int32_t>());
      }
    }
    return ok(request, *exchange, {{"content", tok.decode(ids)}});
  }
  if (p == "/metrics") {
    only(get);
    exchange->reply(200, "text/plain; version=0.0.4", metrics_.render(backend_.scheduler->stats()));
    metrics_.request(p, 200);
    return;
  }
  throw ApiError(404, fmt::format("no endpoint {} {}", request.method, p), {}, "not_found_error");
}

void EventStream::begin(std::vector<std::string> first) {
  std::lock_guard lock(mutex_);
  exchange_->begin_stream(200, "text/event-stream");
  for (auto& e : first) exchange_->write(std::move(e));
  for (auto& e : early_) exchange_->write(std::move(e));
  early_.clear();
  begun_ = true;
  if (ended_) exchange_->end_stream();
}

void EventStream::send(std::string event) {
  std::lock_guard lock(mutex_);
  if (begun_) {
    exchange_->write(std::move(event));
  } else {
    early_.push_back(std::move(event));
  }
}

void EventStream::end() {
  std::lock_guard lock(mutex_);
  ended_ = true;
  if (begun_) exchange_->end_stream();
}

Job::Job(Api& api, HttpRequest request, std::shared_ptr<HttpExchange> exchange)
    : api_(api), request_(std::move(request)), exchange_(std::move(exchange)) {
  request_.body.clear();
  request_.headers.clear();
}

void Job::submit(Request r) {
  auto self = shared_from_this();
  last_token_.assign(r.n, Clock::time_point{});
  r.on_token = [self](std::uint32_t c, const GeneratedToken& t) {
    const auto now = Clock::now();
    if (self->last_token_[c] != Clock::time_point{}) {
      self->api_.metrics().inter_token(
          std::chrono::duration<double>(now - self->last_token_[c]).count());
    }
    self->last_token_[c] = now;
    return self->on_token(c, t);
  };
  r.on_prompt_progress = [self](std::uint32_t done, std::uint32_t total) {
    return self->on_prompt(done, total);
  };
  r.on_done = [self](const RequestResult& result) {
    self->api_.untrack(result.id);
    self->on_done(result);
  };
  Scheduler& scheduler = *api_.backend().scheduler;
  auto id = scheduler.submit(std::move(r));
  if (!id) {
    const Error& e = id.error();
    switch (e.code) {
      case ErrorCode::QueueFull:
        throw ApiError(503, "the server is busy: too many requests are waiting; retry later", {},
                       "unavailable_error");
      case ErrorCode::ContextFull:
        throw ApiError(400, e.message, {}, "invalid_request_error", "context_length_exceeded");
      case ErrorCode::PoolFull:
        throw ApiError(400, e.message + " (ask for fewer tokens or choices)");
      default:
        throw ApiError(400, e.message);
    }
  }
  api_.track(*id);
  // The client going away (a closed stream, a killed curl) ends the request at the next step.
  exchange_->on_gone([&scheduler, rid = *id] { scheduler.cancel(rid); });
}

void Job::account(const RequestResult& result, int status) {
  const RequestStats& s = result.stats;
  // A choice stops itself (Cancelled) when its client is found gone before the scheduler hears.
  const bool cancelled =
      result.cancelled ||
      std::any_of(result.choices.begin(), result.choices.end(),
                  [](const ChoiceResult& c) { return c.stop == StopReason::Cancelled; });
  api_.metrics().generation(s, cancelled);
  api_.log(
      request_, status,
      fmt::format("prompt={} cached={} generated={} queue={:.0f}ms ttft={:.0f}ms "
                  "total={:.0f}ms {:.1f} tok/s{}",
                  s.prompt_tokens, s.cached_tokens, s.generated_tokens, s.queue_seconds * 1e3,
                  s.time_to_first_token * 1e3, ms(Clock::now() - received_), s.tokens_per_second(),
                  result.error       ? " error: " + result.error->message
                  : result.cancelled ? " cancelled"
                                     : ""));
}

}  // namespace qlm::server
