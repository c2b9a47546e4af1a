// Scheduler: a queue guarded by a mutex (the only state other threads touch) in front of an
// Engine that only the stepping thread uses. Admission reserves, per request, the most pages it
// can ever hold, so a running request never finds the pool full; the queue is first come, first
// served, and every step gives each running choice its token before prompts share the rest.
#include "qlm/scheduler.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <unordered_set>

#include "generate_stream.hpp"
#include "kv/kv_layout.hpp"
#include "util/fail.hpp"

namespace qlm {

using detail::fail;

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

struct Waiting {
  RequestId id;
  Request request;
  Clock::time_point submitted;
  std::uint32_t pages;  // the most pages it can hold
};

struct Choice {
  SequenceId seq = 0;
  Sampler sampler;
  detail::GenerationStream stream;
  ChoiceResult result;
  std::int32_t next = 0;  // sampled, evaluated by the next step
  std::uint32_t index;
  bool done = false;
  Choice(const Tokenizer& tok, const Request& r, std::uint32_t c)
      : sampler([&] {
          SamplerOptions o = r.sampler;
          o.seed += c;
          return o;
        }()),
        stream(tok, r.options),
        index(c) {}
};

struct Active {
  Waiting w;
  Clock::time_point admitted, first_token{};
  SequenceId prompt_seq = 0;
  std::uint32_t prompt_done = 0;  // prompt tokens in prompt_seq
  std::vector<std::unique_ptr<Choice>> choices;
  RequestStats stats;
  bool cancelled = false;
  std::optional<Error> error;
  bool prefilling() const { return choices.empty(); }
};

// Who a batch item belongs to.
struct Owner {
  Active* active;
  Choice* choice;  // null for a prompt chunk
};

}  // namespace

struct Scheduler::Impl {
  Engine engine;  // the stepping thread's alone
  SchedulerOptions options;
  // Fixed at creation, so submit() on other threads need not touch the engine.
  const std::uint32_t pool_pages, context, vocab;
  const detail::KvLayout layout;
  // Shared with other threads, under `mutex`.
  mutable std::mutex mutex;
  std::condition_variable wake;
  std::deque<Waiting> waiting;
  std::unordered_set<RequestId> cancelled;
  bool stopping = false;
  RequestId next_id = 1;
  SchedulerStats snapshot;
  // The stepping thread's own.
  std::vector<std::unique_ptr<Active>> active;
  std::uint32_t reserved = 0;      // pages reserved by active requests
  std::vector<TokenLogprob> top_;  // the current token's alternatives
  SchedulerStats counters;

  Impl(Engine e, SchedulerOptions o)
      : engine(std::move(e)),
        options(o),
        pool_pages(engine.pool_stats().pages),
        context(engine.context_size()),
        vocab(engine.model().config().vocab_size),
        layout(detail::KvLayout::of(engine.model().config())) {}

  // The prompt's sequence in chunks of at most step_tokens, then each further choice's own pages
  // (one token a step, after a copy of the shared last page).
  std::uint64_t pages_needed(const Request& r) const {
    const auto gen = static_cast<std::size_t>(std::max(r.options.max_tokens, 0));
    const std::size_t first = std::min<std::size_t>(r.prompt.size() + gen, context);
    return layout.max_pages(first, options.step_tokens) +
           (r.n - 1) * layout.max_pages(gen + kKvPageTokens, 1);
  }
  void admit(std::vector<Waiting>& admitted);
  void start(Waiting w);
  void finish(Active& a);
  bool build(std::vector<BatchItem>& items, std::vector<Owner>& owners);
  void deliver(const BatchLogits& logits, std::span<const BatchItem> items,
               std::span<const Owner> owners);
  void start_choices(Active& a, std::span<const float> logits);
  void push(Active& a, Choice& c, std::span<const float> logits);
  void sweep();
  void publish_stats();
};

void Scheduler::Impl::admit(std::vector<Waiting>& admitted) {
  std::lock_guard lock(mutex);
  for (auto& a : active) {
    if (cancelled.erase(a->w.id) != 0) a->cancelled = true;
  }
  for (auto it = waiting.begin(); it != waiting.end();) {
    if (cancelled.erase(it->id) != 0) {
      admitted.push_back(std::move(*it));  // started only to be ended as cancelled
      admitted.back().pages = 0;
      it = waiting.erase(it);
    } else {
      ++it;
    }
  }
  cancelled.clear();  // ids that were not found had finished
  while (!waiting.empty() && active.size() + admitted.size() < options.max_running &&
         reserved + waiting.front().pages <= pool_pages) {
    reserved += waiting.front().pages;
    admitted.push_back(std::move(waiting.front()));
    waiting.pop_front();
  }
}

void Scheduler::Impl::start(Waiting w) {
  auto a = std::make_unique<Active>();
  a->w = std::move(w);
  a->admitted = Clock::now();
  a->stats.prompt_tokens = a->w.request.prompt.size();
  a->stats.queue_seconds = seconds(a->w.submitted, a->admitted);
  if (a->w.pages == 0) a->cancelled = true;  // cancelled while waiting
  a->prompt_seq = engine.add();
  if (options.prefix_cache && a->w.request.reuse_prefix && !a->cancelled) {
    auto taken = engine.reuse_prefix(a->prompt_seq, a->w.request.prompt);
    a->prompt_done = taken ? *taken : 0;
    a->stats.cached_tokens = a->prompt_done;
  }
  active.push_back(std::move(a));
}

void Scheduler::Impl::finish(Active& a) {
  for (auto& c : a.choices) {
    if (!c->done) {
      c->result.stop = StopReason::Cancelled;
      (void)engine.remove(c->seq);
    }
    a.stats.generated_tokens += c->result.tokens.size();
  }
  if (a.choices.empty()) (void)engine.remove(a.prompt_seq);
  if (a.stats.time_to_first_token > 0.0) {
    a.stats.generation_seconds = seconds(a.first_token, Clock::now());
  }
  RequestResult r{
      .id = a.w.id, .choices = {}, .stats = a.stats, .cancelled = a.cancelled, .error = a.error};
  for (auto& c : a.choices) r.choices.push_back(std::move(c->result));
  reserved -= a.w.pages;
  counters.requests_done += 1;
  counters.prompt_tokens += a.stats.prompt_tokens;
  counters.cached_tokens += a.stats.cached_tokens;
  counters.generated_tokens += a.stats.generated_tokens;
  if (a.w.request.on_done) {
    try {
      a.w.request.on_done(r);
    } catch (...) {  // nothing is left to report it to; the request is over either way
    }
  }
}

// Decode rows first (one per running choice), then prompt chunks, first come first served, in
// what is left of the step's budget; prompts always get an eighth of it, even when choices (up to
// 16 per request) outnumber the budget.
bool Scheduler::Impl::build(std::vector<BatchItem>& items, std::vector<Owner>& owners) {
  std::uint32_t decode = 0;
  for (auto& a : active) {
    for (auto& c : a->choices) {
      if (c->done) continue;
      items.push_back({c->seq, {&c->next, 1}, LogitsWanted::Last});
      owners.push_back({a.get(), c.get()});
      ++decode;
    }
  }
  const std::uint32_t floor = std::max(1u, options.step_tokens / 8);
  std::uint32_t budget =
      decode + floor < options.step_tokens ? options.step_tokens - decode : floor;
  for (auto& a : active) {
    if (!a->prefilling() || budget == 0) continue;
    const auto& prompt = a->w.request.prompt;
    const auto n =
        std::min<std::uint32_t>(budget, static_cast<std::uint32_t>(prompt.size()) - a->prompt_done);
    const bool last = a->prompt_done + n == prompt.size();
    const bool want = last && a->w.request.options.max_tokens > 0;
    items.push_back({a->prompt_seq, std::span(prompt).subspan(a->prompt_done, n),
                     want ? LogitsWanted::Last : LogitsWanted::None});
    owners.push_back({a.get(), nullptr});
    budget -= n;
  }
  return !items.empty();
}

void Scheduler::Impl::start_choices(Active& a, std::span<const float> logits) {
  const Request& r = a.w.request;
  const Tokenizer& tok = engine.model().tokenizer();
  for (std::uint32_t c = 0; c < r.n; ++c) {
    auto choice = std::make_unique<Choice>(tok, r, c);
    choice->seq = c == 0 ? a.prompt_seq : detail::unwrap(engine.fork(a.prompt_seq));
    choice->stream.skip(r.prompt);
    for (std::int32_t t : r.prompt) choice->sampler.accept(t);
    a.choices.push_back(std::move(choice));
  }
  for (auto& c : a.choices) push(a, *c, logits);
}

void Scheduler::Impl::push(Active& a, Choice& c, std::span<const float> logits) {
  const Request& r = a.w.request;
  // Ids past the tokenizer's vocabulary (padded heads) stand for nothing: never candidates.
  const auto real = std::min<std::size_t>(logits.size(), engine.model().tokenizer().size());
  const std::int32_t id = detail::unwrap(c.sampler.sample(logits.first(real)));
  const float logprob = detail::log_softmax_top(
      logits.first(real), id, static_cast<std::size_t>(r.options.top_logprobs), top_);
  c.sampler.accept(id);
  if (a.stats.time_to_first_token == 0.0) {
    a.first_token = Clock::now();
    a.stats.time_to_first_token = std::max(seconds(a.w.submitted, a.first_token), 1e-9);
  }
  c.result.tokens.push_back(id);
  c.result.logprobs.push_back(logprob);
  const bool full = detail::unwrap(engine.tokens(c.seq)).size() >= engine.context_size();
  const bool max = c.result.tokens.size() >= static_cast<std::size_t>(r.options.max_tokens);
  const auto step = c.stream.push(id, full || max);
  const StopReason reason = step.reason(full);
  bool go_on = true;
  if (r.on_token) {
    go_on = detail::call_back("on_token", r.on_token, c.index,
                              GeneratedToken{id, step.text, logprob, top_, step.last, reason});
  }
  if (!go_on || step.last) {
    c.result.stop = go_on ? reason : StopReason::Cancelled;
    c.done = true;
    (void)engine.remove(c.seq);
  }
  c.next = id;
  if (step.last || !go_on) c.result.text = c.stream.text();
}

void Scheduler::Impl::deliver(const BatchLogits& logits, std::span<const BatchItem> items,
                              std::span<const Owner> owners) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    Active& a = *owners[i].active;
    if (a.error || a.cancelled) continue;
    try {
      if (owners[i].choice) {
        push(a, *owners[i].choice, logits.item(i));
        continue;
      }
      a.prompt_done += static_cast<std::uint32_t>(items[i].tokens.size());
      const auto total = static_cast<std::uint32_t>(a.w.request.prompt.size());
      if (a.w.request.on_prompt_progress && a.prompt_done < total &&
          !detail::call_back("on_prompt_progress", a.w.request.on_prompt_progress, a.prompt_done,
                             total)) {
        a.cancelled = true;
      } else if (a.prompt_done == total && a.w.request.options.max_tokens > 0) {
        start_choices(a, logits.item(i));
      }
    } catch (detail::Failure& f) {
      a.error = std::move(f.error);
    }
  }
}

// Ends requests that are cancelled, failed, done with all choices, or (max_tokens 0) prefilled.
void Scheduler::Impl::sweep() {
  auto over = [](const Active& a) {
    if (a.cancelled || a.error) return true;
    if (a.prefilling()) {
      return a.w.request.options.max_tokens <= 0 && a.prompt_done == a.w.request.prompt.size();
    }
    return std::all_of(a.choices.begin(), a.choices.end(), [](auto& c) { return c->done; });
  };
  for (auto it = active.begin(); it != active.end();) {
    if (over(**it)) {
      finish(**it);
      it = active.erase(it);
    } else {
      ++it;
    }
  }
}

void Scheduler::Impl::publish_stats() {
  std::lock_guard lock(mutex);
  snapshot = counters;
  snapshot.running = active.size();
  snapshot.pool = engine.pool_stats();
}

Result<Scheduler> Scheduler::create(std::shared_ptr<const Model> model, EngineOptions engine,
                                    SchedulerOptions options) {
  return detail::capture([&] {
    if (options.max_running == 0 || options.step_tokens <= options.max_running) {
      fail(ErrorCode::InvalidArgument,
           "SchedulerOptions: step_tokens ({}) must exceed max_running ({}), which must be > 0",
           options.step_tokens, options.max_running);
    }
    Engine e = detail::unwrap(Engine::create(std::move(model), std::move(engine)));
    return Scheduler(std::make_unique<Impl>(std::move(e), options));
  });
}

Scheduler::Scheduler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Scheduler::Scheduler(Scheduler&&) noexcept = default;
Scheduler& Scheduler::operator=(Scheduler&&) noexcept = default;

Scheduler::~Scheduler() {
  if (!impl_) return;
  std::deque<Waiting> left;
  {
    std::lock_guard lock(impl_->mutex);
    left.swap(impl_->waiting);
  }
  for (auto& a : impl_->active) a->cancelled = true;
  for (Waiting& w : left) {
    w.pages = 0;
    impl_->start(std::move(w));
  }
  impl_->sweep();
}

Result<RequestId> Scheduler::submit(Request request) {
  return detail::capture([&] {
    Impl& s = *impl_;
    const auto& prompt = request.prompt;
    if (prompt.empty()) fail(ErrorCode::InvalidArgument, "submit: the prompt is empty");
    for (std::int32_t t : prompt) {
      if (t < 0 || static_cast<std::uint32_t>(t) >= s.vocab) {
        fail(ErrorCode::InvalidArgument, "submit: token id {} is outside the vocabulary [0, {})", t,
             s.vocab);
      }
    }
    if (prompt.size() > s.context) {
      fail(ErrorCode::ContextFull, "submit: a prompt of {} tokens exceeds the context of {}",
           prompt.size(), s.context);
    }
    detail::check_top_logprobs(request.options, "submit");
    if (request.n == 0 || request.n > 16) {
      fail(ErrorCode::InvalidArgument, "submit: n = {} (1 to 16)", request.n);
    }
    const std::uint64_t pages = s.pages_needed(request);
    if (pages > s.pool_pages) {
      fail(ErrorCode::PoolFull, "submit: the request could need {} KV pages; the pool has {}",
           pages, s.pool_pages);
    }
    std::lock_guard lock(s.mutex);
    if (s.waiting.size() >= s.options.max_queue) {
      fail(ErrorCode::QueueFull, "submit: {} requests are already waiting", s.waiting.size());
    }
    const RequestId id = s.next_id++;
    s.waiting.push_back({id, std::move(request), Clock::now(), static_cast<std::uint32_t>(pages)});
    s.wake.notify_all();
    return id;
  });
}

void Scheduler::cancel(RequestId id) {
  std::lock_guard lock(impl_->mutex);
  if (id != 0 && id < impl_->next_id) impl_->cancelled.insert(id);
  impl_->wake.notify_all();
}

bool Scheduler::step() {
  Impl& s = *impl_;
  std::vector<Waiting> admitted;
  s.admit(admitted);
  for (Waiting& w : admitted) s.start(std::move(w));
  s.sweep();  // cancelled ones end before anything more is evaluated for them
  std::vector<BatchItem> items;
  std::vector<Owner> owners;
  const bool work = s.build(items, owners);
  if (work) {
    auto logits = s.engine.eval(items);
    if (logits) {
      s.deliver(*logits, items, owners);
    } else {
      for (const Owner& o : owners) o.active->error = logits.error();
    }
    s.sweep();
  }
  s.publish_stats();
  return work || !admitted.empty();
}

void Scheduler::run() {
  for (;;) {
    {
      std::lock_guard lock(impl_->mutex);
      if (impl_->stopping) return;
    }
    if (step()) continue;
    std::unique_lock lock(impl_->mutex);
    impl_->wake.wait(lock, [&] {
      return impl_->stopping || !impl_->waiting.empty() || !impl_->cancelled.empty();
    });
  }
}

void Scheduler::stop() {
  std::lock_guard lock(impl_->mutex);
  impl_->stopping = true;
  impl_->wake.notify_all();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(impl_->mutex);
  SchedulerStats s = impl_->snapshot;
  s.waiting = impl_->waiting.size();
  return s;
}

const Engine& Scheduler::engine() const {
  return impl_->engine;
}

}  // namespace qlm
