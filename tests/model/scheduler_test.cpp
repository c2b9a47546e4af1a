// Scheduler: outputs equal generate()'s on a Session whatever else is running (batch invariance
// end to end, sampled and greedy, n > 1 choices), streaming and stop strings, chunked prefill
// that keeps running streams moving, prompt progress, cancellation from another thread, the
// queue bound and requests that could never fit, prefix reuse across requests, the cache
// warm-up request, and the whole thing driven from its own thread ([tsan]).
#include <catch2/catch.hpp>
#include <future>
#include <thread>

#include "model/model_helpers.hpp"
#include "qlm/generate.hpp"
#include "qlm/scheduler.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

std::shared_ptr<const Model> stories(const TempDir& tmp) {
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  return open_or_fail(tmp / "m.qlm");
}

// Prompts of different lengths: a BOS-started story and slices of pseudo-random ids.
std::vector<std::vector<std::int32_t>> prompts(const Model& model, std::size_t n) {
  std::vector<std::vector<std::int32_t>> out{story_tokens(model)};
  const auto random = pseudo_random_tokens(400);
  for (std::size_t i = 1; i < n; ++i) {
    std::vector<std::int32_t> p{1};
    p.insert(p.end(), random.begin() + static_cast<std::ptrdiff_t>(i * 37),
             random.begin() + static_cast<std::ptrdiff_t>(i * 37 + 5 + i * 13));
    out.push_back(std::move(p));
  }
  return out;
}

// What generate() gives on a Session of its own.
GenerateResult expected(std::shared_ptr<const Model> model, std::span<const std::int32_t> prompt,
                        SamplerOptions sampler, GenerateOptions options) {
  auto s = Session::create(std::move(model), {.threads = 1});
  REQUIRE(s.ok());
  Sampler sm(sampler);
  auto r = generate(*s, sm, prompt, options);
  REQUIRE(r.ok());
  return std::move(*r);
}

// Steps until every submitted request is done (bounded).
void drain(Scheduler& s) {
  for (int i = 0; i < 10000 && (s.stats().running + s.stats().waiting) != 0; ++i) s.step();
  for (int i = 0; i < 10000 && s.step(); ++i) {
  }
  REQUIRE(s.stats().running == 0);
  REQUIRE(s.stats().waiting == 0);
}

}  // namespace

TEST_CASE("Scheduler: each request gets what generate() gives it alone", "[scheduler]") {
  TempDir tmp;
  auto model = stories(tmp);
  const auto ps = prompts(*model, 8);
  auto sched = Scheduler::create(model, {.threads = 2}, {.step_tokens = 40, .max_running = 8});
  REQUIRE(sched.ok());
  std::vector<RequestResult> results(ps.size() + 1);
  std::vector<std::string> streamed(ps.size() + 3);
  const GenerateOptions gen{.max_tokens = 20, .stop = {"park"}};
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const SamplerOptions so{.temperature = i % 2 == 0 ? 0.0f : 0.9f, .seed = 100 + i};
    auto id = sched->submit({.prompt = ps[i],
                             .sampler = so,
                             .options = gen,
                             .on_token =
                                 [&, i](std::uint32_t, const GeneratedToken& t) {
                                   streamed[i] += t.text;
                                   return true;
                                 },
                             .on_done = [&, i](const RequestResult& r) { results[i] = r; }});
    REQUIRE(id.ok());
  }
  // Three sampled choices of one prompt, forked after it.
  const SamplerOptions multi{
      .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 7};
  REQUIRE(sched
              ->submit({.prompt = ps[0],
                        .sampler = multi,
                        .options = {.max_tokens = 16},
                        .n = 3,
                        .on_done = [&](const RequestResult& r) { results.back() = r; }})
              .ok());
  drain(*sched);
  for (std::size_t i = 0; i < ps.size(); ++i) {
    INFO("request " << i);
    const SamplerOptions so{.temperature = i % 2 == 0 ? 0.0f : 0.9f, .seed = 100 + i};
    const auto want = expected(model, ps[i], so, gen);
    REQUIRE(results[i].choices.size() == 1);
    CHECK_FALSE(results[i].error.has_value());
    CHECK(results[i].choices[0].tokens == want.tokens);
    CHECK(results[i].choices[0].text == want.text);
    CHECK(results[i].choices[0].stop == want.stop);
    CHECK(streamed[i] == want.text);
    CHECK(results[i].stats.prompt_tokens == ps[i].size());
    CHECK(results[i].stats.time_to_first_token > 0.0);
  }
  REQUIRE(results.back().choices.size() == 3);
  for (std::uint32_t c = 0; c < 3; ++c) {
    SamplerOptions so = multi;
    so.seed += c;
    CHECK(results.back().choices[c].tokens ==
          expected(model, ps[0], so, {.max_tokens = 16}).tokens);
  }
  CHECK(sched->stats().pool.used == 0);
  CHECK(sched->stats().requests_done == ps.size() + 1);
}

TEST_CASE("Scheduler: a long prompt is prefilled in chunks while other streams go on",
          "[scheduler]") {
  TempDir tmp;
  auto model = stories(tmp);
  auto sched = Scheduler::create(model, {.threads = 1}, {.step_tokens = 24, .max_running = 4});
  REQUIRE(sched.ok());
  int tokens = 0;
  REQUIRE(sched
              ->submit({.prompt = {1, 400},
                        .sampler = {.temperature = 0.0f},
                        .options = {.max_tokens = 60, .stop_at_end_of_generation = false},
                        .on_token = [&](std::uint32_t,
                                        const GeneratedToken&) { return ++tokens, true; }})
              .ok());
  sched->step();
  REQUIRE(tokens == 1);
  std::vector<std::uint32_t> progress;
  bool done = false;
  const auto long_prompt = pseudo_random_tokens(200);
  REQUIRE(sched
              ->submit({.prompt = long_prompt,
                        .sampler = {.temperature = 0.0f},
                        .options = {.max_tokens = 2},
                        .on_prompt_progress =
                            [&](std::uint32_t d, std::uint32_t total) {
                              CHECK(total == 200);
                              progress.push_back(d);
                              return true;
                            },
                        .on_done =
                            [&](const RequestResult& r) {
                              done = true;
                              CHECK(r.choices.size() == 1);
                            }})
              .ok());
  // Each step: the running stream's token, then 23 prompt tokens.
  for (int step = 1; step <= 8; ++step) {
    sched->step();
    CHECK(tokens == 1 + step);
  }
  CHECK(progress == std::vector<std::uint32_t>{23, 46, 69, 92, 115, 138, 161, 184});
  drain(*sched);
  CHECK(done);

  // A progress callback that says no cancels the request; its pages are released.
  RequestResult cancelled;
  const std::vector<std::int32_t> other(long_prompt.rbegin(), long_prompt.rend());  // not cached
  REQUIRE(sched
              ->submit({.prompt = other,
                        .on_prompt_progress = [](std::uint32_t d, std::uint32_t) { return d < 40; },
                        .on_done = [&](const RequestResult& r) { cancelled = r; }})
              .ok());
  drain(*sched);
  CHECK(cancelled.cancelled);
  CHECK(cancelled.choices.empty());
  CHECK(sched->stats().pool.used == 0);

  // Thirty-two choices outnumber a 24-token step; a prompt still gets 3 tokens a step.
  std::vector<RequestResult> many;
  for (std::int32_t first : {300, 301}) {
    REQUIRE(sched
                ->submit({.prompt = {1, first},
                          .options = {.max_tokens = 30, .stop_at_end_of_generation = false},
                          .n = 16,
                          .on_done = [&](const RequestResult& r) { many.push_back(r); }})
                .ok());
  }
  sched->step();  // both prompts, then 32 first tokens
  progress.clear();
  std::vector<std::int32_t> fresh;
  for (std::int32_t i = 0; i < 20; ++i) fresh.push_back(100 + i);
  REQUIRE(sched
              ->submit({.prompt = fresh,
                        .options = {.max_tokens = 1},
                        .on_prompt_progress =
                            [&](std::uint32_t d, std::uint32_t) {
                              progress.push_back(d);
                              return true;
                            }})
              .ok());
  for (int i = 0; i < 3; ++i) sched->step();
  CHECK(progress == std::vector<std::uint32_t>{3, 6, 9});
  drain(*sched);
  REQUIRE(many.size() == 2);
  REQUIRE(many[0].choices.size() == 16);
  for (const auto& r : many) {
    for (const auto& c : r.choices) CHECK(c.tokens.size() == 30);
  }
}

TEST_CASE("Scheduler: cancel from another thread ends a request within a step", "[scheduler]") {
  TempDir tmp;
  auto model = stories(tmp);
  auto sched = Scheduler::create(model, {.threads = 1}, {.step_tokens = 64, .max_running = 4});
  REQUIRE(sched.ok());
  RequestResult result;
  auto id = sched->submit({.prompt = {1},
                           .options = {.max_tokens = 1000, .stop_at_end_of_generation = false},
                           .on_done = [&](const RequestResult& r) { result = r; }});
  REQUIRE(id.ok());
  for (int i = 0; i < 5; ++i) sched->step();
  std::thread([&] { sched->cancel(*id); }).join();
  sched->step();
  CHECK(result.cancelled);
  REQUIRE(result.choices.size() == 1);
  CHECK(result.choices[0].stop == StopReason::Cancelled);
  CHECK(result.choices[0].tokens.size() == 5);
  CHECK(sched->stats().running == 0);
  CHECK(sched->stats().pool.used == 0);
  sched->cancel(*id);  // finished: ignored
  sched->cancel(12345);
  CHECK_FALSE(sched->step());
}

TEST_CASE("Scheduler: bad requests, a full queue and requests that could never fit fail at once",
          "[scheduler]") {
  TempDir tmp;
  auto model = stories(tmp);
  const std::size_t page = [&] {
    auto e = Engine::create(model, {.threads = 1});
    REQUIRE(e.ok());
    return e->pool_stats().page_bytes;
  }();
  auto sched = Scheduler::create(model, {.kv_bytes = 8 * page, .context = 200, .threads = 1},
                                 {.step_tokens = 64, .max_running = 2, .max_queue = 2});
  REQUIRE(sched.ok());
  auto code = [](const Result<RequestId>& r) { return r.ok() ? ErrorCode::Io : r.error().code; };
  CHECK(code(sched->submit({})) == ErrorCode::InvalidArgument);
  CHECK(code(sched->submit({.prompt = {1, -4}})) == ErrorCode::InvalidArgument);
  CHECK(code(sched->submit({.prompt = {1, 1 << 20}})) == ErrorCode::InvalidArgument);
  CHECK(code(sched->submit({.prompt = std::vector<std::int32_t>(201, 5)})) ==
        ErrorCode::ContextFull);
  CHECK(code(sched->submit({.prompt = {1}, .n = 0})) == ErrorCode::InvalidArgument);
  // 8 pages of 32 tokens: a 200-token context fits (7 pages), three choices of it do not.
  CHECK(code(sched->submit({.prompt = {1}, .options = {.max_tokens = 199}, .n = 3})) ==
        ErrorCode::PoolFull);
  CHECK(sched->submit({.prompt = {1}, .options = {.max_tokens = 4}}).ok());
  CHECK(sched->submit({.prompt = {1}, .options = {.max_tokens = 4}}).ok());
  auto full = sched->submit({.prompt = {1}, .options = {.max_tokens = 4}});
  CHECK(code(full) == ErrorCode::QueueFull);
  CHECK_THAT(full.error().message, Catch::Contains("2 requests are already waiting"));
  // Two requests that each could take 7 of the 8 pages run one after the other, each until
  // the context is full.
  drain(*sched);
  std::vector<RequestResult> rs;
  for (int i = 0; i < 2; ++i) {
    REQUIRE(sched
                ->submit({.prompt = {1},
                          .options = {.max_tokens = 250, .stop_at_end_of_generation = false},
                          .on_done = [&](const RequestResult& r) { rs.push_back(r); }})
                .ok());
  }
  sched->step();
  CHECK(sched->stats().running == 1);
  CHECK(sched->stats().waiting == 1);
  drain(*sched);
  REQUIRE(rs.size() == 2);
  for (const auto& r : rs) {
    CHECK(r.choices[0].stop == StopReason::ContextFull);
    CHECK(r.choices[0].tokens.size() == 200);
  }
  CHECK(code(Scheduler::create(model, {}, {.step_tokens = 4, .max_running = 4}).ok()
                 ? Result<RequestId>(1)
                 : Result<RequestId>(Error{ErrorCode::InvalidArgument, ""})) ==
        ErrorCode::InvalidArgument);
}

TEST_CASE("Scheduler: later requests start from pages cached by earlier ones", "[scheduler]") {
  TempDir tmp;
  auto model = stories(tmp);
  auto sched = Scheduler::create(model, {.threads = 2}, {.step_tokens = 256, .max_running = 4});
  REQUIRE(sched.ok());
  const auto ids = pseudo_random_tokens(150);
  const std::vector<std::int32_t> first(ids.begin(), ids.begin() + 100);
  std::vector<std::int32_t> second(ids.begin(), ids.begin() + 120);
  second[110] = 3;
  // A warm-up request (max_tokens 0) evaluates and caches the prompt only.
  RequestResult warm, cold, hot;
  REQUIRE(sched
              ->submit({.prompt = first,
                        .options = {.max_tokens = 0},
                        .on_done = [&](const RequestResult& r) { warm = r; }})
              .ok());
  drain(*sched);
  CHECK(warm.choices.empty());
  CHECK(warm.stats.cached_tokens == 0);
  const GenerateOptions gen{.max_tokens = 8};
  REQUIRE(sched
              ->submit({.prompt = second,
                        .sampler = {.temperature = 0.0f},
                        .options = gen,
                        .on_done = [&](const RequestResult& r) { hot = r; }})
              .ok());
  drain(*sched);
  CHECK(hot.stats.cached_tokens == 100);
  CHECK(sched->stats().cached_tokens == 100);
  REQUIRE(hot.choices.size() == 1);
  CHECK(hot.choices[0].tokens == expected(model, second, {.temperature = 0.0f}, gen).tokens);
  // Without the cache nothing is reused.
  auto plain = Scheduler::create(model, {.threads = 2}, {.prefix_cache = false});
  REQUIRE(plain.ok());
  REQUIRE(plain->submit({.prompt = first, .options = {.max_tokens = 0}}).ok());
  REQUIRE(plain
              ->submit({.prompt = second,
                        .options = gen,
                        .on_done = [&](const RequestResult& r) { cold = r; }})
              .ok());
  drain(*plain);
  CHECK(cold.stats.cached_tokens == 0);
}

TEST_CASE("Scheduler: requests from many threads, served by run() on its own",
          "[scheduler][tsan]") {
  TempDir tmp;
  auto model = stories(tmp);
  auto sched = Scheduler::create(model, {.threads = 2}, {.step_tokens = 32, .max_running = 4});
  REQUIRE(sched.ok());
  std::thread server([&] { sched->run(); });
  const auto ps = prompts(*model, 4);
  constexpr int kClients = 4, kEach = 3;
  std::vector<std::vector<std::vector<std::int32_t>>> got(kClients);
  std::vector<int> cancelled(kClients, 0);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int k = 0; k < kEach; ++k) {
        std::promise<RequestResult> done;
        auto id = sched->submit({.prompt = ps[static_cast<std::size_t>((c + k) % 4)],
                                 .sampler = {.temperature = 0.0f},
                                 .options = {.max_tokens = 12},
                                 .on_done = [&](const RequestResult& r) { done.set_value(r); }});
        if (!id.ok()) return;
        if (k == 2 && c % 2 == 0) sched->cancel(*id);  // some are cancelled at once
        const RequestResult r = done.get_future().get();
        if (r.cancelled) {
          ++cancelled[static_cast<std::size_t>(c)];
        } else if (r.choices.size() == 1) {
          got[static_cast<std::size_t>(c)].push_back(r.choices[0].tokens);
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  sched->stop();
  server.join();
  for (int c = 0; c < kClients; ++c) {
    INFO("client " << c);
    const auto& g = got[static_cast<std::size_t>(c)];
    CHECK(g.size() + static_cast<std::size_t>(cancelled[static_cast<std::size_t>(c)]) == kEach);
    for (std::size_t k = 0; k < g.size(); ++k) {
      const auto& p = ps[(static_cast<std::size_t>(c) + k) % 4];
      CHECK(g[k] == expected(model, p, {.temperature = 0.0f}, {.max_tokens = 12}).tokens);
    }
  }
  CHECK(sched->stats().pool.used == 0);
}

}  // namespace qlm::test
