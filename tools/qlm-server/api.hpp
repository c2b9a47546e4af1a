// The server's HTTP API over one model and its Scheduler: routing, authentication, the small
// endpoints, and Job, the bridge from a generation request's exchange to the scheduler's
// callbacks. The endpoints with generation live in completions.cpp and infill.cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <qlm/chat_template.hpp>
#include <qlm/infill.hpp>
#include <qlm/model.hpp>
#include <qlm/scheduler.hpp>

#include "http_server.hpp"
#include "json_args.hpp"
#include "metrics.hpp"

namespace qlm::server {

using Clock = std::chrono::steady_clock;

/// Settings from the command line.
struct ApiConfig {
  std::string alias;    ///< the model's id in /v1/models and responses
  std::string api_key;  ///< "" = no authentication
  /// The most tokens one request may generate (0: up to the context).
  std::int32_t max_tokens = 0;
  std::size_t max_stop = 16;  ///< stop strings per request
  bool log = true;            ///< one line per request on stderr
};

/// The loaded model and what serves it; fixed once ready.
struct Backend {
  std::shared_ptr<const Model> model;
  Scheduler* scheduler = nullptr;
  std::optional<ChatTemplate> chat;  ///< none: chat requests get a 400 saying why
  std::string no_chat_reason;
  std::uint32_t context = 0;
};

class Api {
 public:
  explicit Api(ApiConfig config);
  /// Serves `backend` from now on; until then everything but /health answers 503.
  void ready(Backend backend);
  /// The HttpServer's handler (I/O thread).
  void handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange);
  /// Cancels every generation in flight (shutdown after the drain time).
  void cancel_all();

  // For the endpoints and jobs.
  const ApiConfig& config() const { return config_; }
  const Backend& backend() const { return backend_; }
  Metrics& metrics() { return metrics_; }
  /// The infill prompt builder, which keeps tokenized context between keystrokes (I/O thread).
  InfillPromptBuilder& infill_builder();
  /// A response id with `prefix` ("chatcmpl-", "cmpl-"): unique in this server's lifetime.
  std::string next_id(const char* prefix);
  /// Registers a submitted generation so cancel_all() reaches it; unregister when it ends.
  void track(RequestId id);
  void untrack(RequestId id);
  /// Answers with an error and logs the request.
  void fail(const HttpRequest& request, HttpExchange& exchange, const ApiError& e);
  /// Answers 200 with JSON and logs the request.
  void ok(const HttpRequest& request, HttpExchange& exchange, const json& body);
  /// The log line and the request counter, for responses sent some other way.
  void log(const HttpRequest& request, int status, const std::string& detail);

 private:
  void route(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange);
  bool authorized(const HttpRequest& request) const;

  ApiConfig config_;
  Backend backend_;
  std::atomic<bool> ready_{false};
  Metrics metrics_;
  std::optional<InfillPromptBuilder> infill_;
  std::atomic<std::uint64_t> ids_{0};
  std::mutex tracked_mutex_;
  std::set<RequestId> tracked_;
  const std::int64_t started_;  // Unix time, as OpenAI's "created"
};

/// A server-sent-events response whose events may be produced (on the scheduler's thread) before
/// the handler (on the I/O thread) has begun it: a token can be quicker than the handler's
/// return. Events wait here until begin(); an end() before begin() is carried out by begin().
class EventStream {
 public:
  explicit EventStream(std::shared_ptr<HttpExchange> exchange) : exchange_(std::move(exchange)) {}
  /// Sends the headers, then `first`, then whatever waited.
  void begin(std::vector<std::string> first = {});
  /// One event ("data: ...\n\n").
  void send(std::string event);
  void end();

 private:
  std::shared_ptr<HttpExchange> exchange_;
  std::mutex mutex_;
  bool begun_ = false, ended_ = false;
  std::vector<std::string> early_;
};

/// One generation in flight. The scheduler's callbacks hold it; the client going away cancels
/// its request. Subclasses format tokens and the end (on the scheduler's thread).
class Job : public std::enable_shared_from_this<Job> {
 public:
  Job(Api& api, HttpRequest request, std::shared_ptr<HttpExchange> exchange);
  virtual ~Job() = default;
  /// Submits `r` with this job's callbacks; throws ApiError when the scheduler refuses it.
  void submit(Request r);

 protected:
  /// Each token; false ends that choice.
  virtual bool on_token(std::uint32_t choice, const GeneratedToken& token) = 0;
  /// The end of the request, however it ended.
  virtual void on_done(const RequestResult& result) = 0;
  /// Prompt progress; false cancels.
  virtual bool on_prompt(std::uint32_t /*done*/, std::uint32_t /*total*/) { return true; }
  /// The log line's tail and the metrics, for on_done.
  void account(const RequestResult& result, int status);

  Api& api_;
  HttpRequest request_;  // method, path and peer for the log (the body is dropped)
  std::shared_ptr<HttpExchange> exchange_;
  Clock::time_point received_ = Clock::now();
  std::vector<Clock::time_point> last_token_;  // per choice, for the inter-token histogram
};

/// /v1/chat/completions and /v1/completions.
void handle_openai(Api& api, const HttpRequest& request,
                   const std::shared_ptr<HttpExchange>& exchange, bool chat);
/// llama.cpp's /infill.
void handle_infill(Api& api, const HttpRequest& request,
                   const std::shared_ptr<HttpExchange>& exchange);

/// OpenAI's finish_reason for a stop reason.
const char* finish_reason(StopReason stop);

}  // namespace qlm::server
