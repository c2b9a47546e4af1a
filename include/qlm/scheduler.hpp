// Scheduler: serves generation requests submitted from any thread over one Engine, with
// continuous batching: each step evaluates the next token of every running choice together with
// chunks of waiting prompts under a token budget (chunked prefill), samples, streams tokens
// through callbacks and ends requests at their stop conditions. The application owns the
// threads: it calls run() on a thread of its own (or step() in a loop of its own).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qlm/engine.hpp"
#include "qlm/error.hpp"
#include "qlm/generate.hpp"
#include "qlm/sampler.hpp"

namespace qlm {

/// Names a submitted request; never reused by one Scheduler.
using RequestId = std::uint64_t;

/// Scheduling limits.
struct SchedulerOptions {
  /// Most tokens one step evaluates: one per running choice, the rest for prompt chunks. Must
  /// exceed max_running, so prompts always advance.
  std::uint32_t step_tokens = 256;
  std::uint32_t max_running = 16;  ///< requests served at once (their choices may be more rows)
  std::uint32_t max_queue = 64;    ///< requests waiting for room; submit() fails beyond
  bool prefix_cache = true;        ///< start each prompt from pages cached by earlier ones
};

/// How a request's tokens and end are reported.
struct RequestResult;
/// A generation request.
struct Request {
  std::vector<std::int32_t> prompt;  ///< at least one token (e.g. [BOS])
  SamplerOptions sampler{};          ///< choice c samples with seed sampler.seed + c
  /// max_tokens (0: evaluate and cache the prompt only), stop strings and tokens; its on_token
  /// is not used (see below).
  GenerateOptions options{};
  std::uint32_t n = 1;  ///< completions of the prompt, sharing its pages (1 to 16)
  /// Start from pages cached by earlier prompts (when SchedulerOptions::prefix_cache is on);
  /// false evaluates the whole prompt (its pages are still cached for later requests).
  bool reuse_prefix = true;
  /// Each token of each choice, on the scheduler's thread; false ends that choice (Cancelled).
  std::function<bool(std::uint32_t choice, const GeneratedToken& token)> on_token{};
  /// (prompt tokens done, prompt tokens) after each step that evaluated part of the prompt, on
  /// the scheduler's thread; false cancels the request.
  std::function<bool(std::uint32_t done, std::uint32_t total)> on_prompt_progress{};
  /// Once, when the request ends however it ends, on the scheduler's thread (or the thread that
  /// destroys the Scheduler).
  std::function<void(const RequestResult& result)> on_done{};
};

/// Timings and counts of one request.
struct RequestStats {
  std::size_t prompt_tokens = 0;
  std::size_t cached_tokens = 0;     ///< prompt tokens taken from cached pages, not evaluated
  std::size_t generated_tokens = 0;  ///< over all choices
  double queue_seconds = 0.0;        ///< submitted to admitted
  double time_to_first_token = 0.0;  ///< submitted to the first token of any choice
  double generation_seconds = 0.0;   ///< first token to the end
  /// Generated tokens per second after the first.
  double tokens_per_second() const {
    return generation_seconds > 0.0 && generated_tokens > 1
               ? static_cast<double>(generated_tokens - 1) / generation_seconds
               : 0.0;
  }
};

/// One completion of a request.
struct ChoiceResult {
  std::string text;
  std::vector<std::int32_t> tokens;
  std::vector<float> logprobs;
  StopReason stop = StopReason::MaxTokens;
};

/// What a request produced: its choices, or an error when it failed as a whole.
struct RequestResult {
  RequestId id = 0;
  std::vector<ChoiceResult> choices;  ///< n of them (none for max_tokens 0 or an error)
  RequestStats stats;
  bool cancelled = false;      ///< by cancel(), the prompt progress callback or the Scheduler's end
  std::optional<Error> error;  ///< a failure (a callback threw, the engine refused a batch)
};

/// Counters since creation, and the current load.
struct SchedulerStats {
  std::size_t waiting = 0, running = 0;
  std::uint64_t requests_done = 0, prompt_tokens = 0, cached_tokens = 0, generated_tokens = 0;
  KvPoolStats pool;
};

/// Serves requests over an Engine it owns. submit(), cancel(), stop() and stats() may be called
/// from any thread; step() and run() from one thread at a time.
class Scheduler {
 public:
  static Result<Scheduler> create(std::shared_ptr<const Model> model, EngineOptions engine = {},
                                  SchedulerOptions options = {});
  Scheduler(Scheduler&&) noexcept;
  Scheduler& operator=(Scheduler&&) noexcept;
  /// Ends every request still waiting or running as cancelled (their on_done runs here). run()
  /// must have returned.
  ~Scheduler();

  /// Queues a request. Fails at once on an empty or out-of-vocabulary prompt, a prompt longer
  /// than the context, a request that could never fit the pool (PoolFull), or a full queue
  /// (QueueFull).
  Result<RequestId> submit(Request request);
  /// Ends a request at the next step (its pages released); unknown or finished ids are ignored.
  void cancel(RequestId id);
  /// Runs one step: takes cancellations, admits waiting requests that fit, evaluates one batch
  /// and delivers its tokens. Returns false when there was nothing to do.
  bool step();
  /// Steps until stop(), sleeping while there is nothing to do.
  void run();
  /// Makes run() return after its current step (now and on any later call).
  void stop();
  SchedulerStats stats() const;
  const Engine& engine() const;

 private:
  struct Impl;
  explicit Scheduler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qlm
