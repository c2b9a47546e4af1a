// Sliding-window layers keep only their window's keys: a Gemma 3-style checkpoint (six layers, a
// global one after every two sliding ones, a window of 40 tokens) runs 300 tokens through pools
// too small for a full cache and still matches PyTorch; the pool's accounting is exact; prefix
// reuse, fork, truncate, save/restore and the scheduler work with the window's pages alone.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>

#include "model/model_helpers.hpp"
#include "qlm/engine.hpp"
#include "qlm/scheduler.hpp"
#include "qlm/session.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

constexpr std::uint32_t kWindow = 40, kSlack = 64, kTokens = 300;

// Layers 2 and 5 are global, the other four slide: pages of two layers, one global group and two
// sliding ones.
constexpr const char* kConfig = R"({"model_type": "gemma3_text", "hidden_size": 64,
    "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32,
    "num_hidden_layers": 6, "vocab_size": 512, "query_pre_attn_scalar": 24, "sliding_window": 40,
    "sliding_window_pattern": 3, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0})";

std::uint32_t pages_for(std::uint32_t tokens) {
  return (tokens + kKvPageTokens - 1) / kKvPageTokens;
}

// Pages a sequence of `size` tokens holds: every page of the global group, and of each sliding
// group those from the one holding position size - window + 1 - slack on (the documented rule).
std::uint32_t expected_pages(std::uint32_t size) {
  const std::uint32_t kept =
      size + 1 < kWindow + kSlack ? 0 : (size + 1 - kWindow - kSlack) / kKvPageTokens;
  return pages_for(size) + 2 * (pages_for(size) - kept);
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

struct Fixture {
  TempDir tmp;
  std::filesystem::path dir = tmp / "ckpt";
  std::shared_ptr<const Model> model;
  std::vector<std::int32_t> ids = pseudo_random_tokens(kTokens + 8);
  Fixture() {
    torch_synth(dir, kConfig, 21);
    convert_or_fail(dir, tmp / "m.qlm", DType::F32);
    model = open_or_fail(tmp / "m.qlm");
  }
  // All logits of `tokens` evaluated at once by a fresh engine with room for everything.
  std::vector<float> cold(std::span<const std::int32_t> tokens) const {
    auto e = Engine::create(model, {.context = 512, .threads = 2});
    REQUIRE(e.ok());
    const BatchItem item{e->add(), tokens, LogitsWanted::All};
    auto r = e->eval({&item, 1});
    REQUIRE(r.ok());
    return {r->item(0).begin(), r->item(0).end()};
  }
};

// Evaluates ids[from, to) one token at a time; returns their logits.
std::vector<float> step(Engine& e, SequenceId s, std::span<const std::int32_t> ids) {
  std::vector<float> out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const BatchItem item{s, ids.subspan(i, 1)};
    auto r = e.eval({&item, 1});
    REQUIRE(r.ok());
    out.insert(out.end(), r->item(0).begin(), r->item(0).end());
  }
  return out;
}

}  // namespace

TEST_CASE("sliding-window layers keep only their window's pages and still match PyTorch",
          "[kv][sliding]") {
  Fixture f;
  const ModelConfig& c = f.model->config();
  REQUIRE(c.sliding(0));
  REQUIRE_FALSE(c.sliding(2));
  const std::vector<std::int32_t> first(f.ids.begin(), f.ids.begin() + kTokens);
  const auto ids = std::span(first);
  const auto torch = torch_logits(f.dir, first, f.tmp.path());

  SECTION("an Engine: exact page accounting, token by token") {
    auto e = Engine::create(f.model, {.context = 512, .threads = 2});
    REQUIRE(e.ok());
    const SequenceId s = e->add();
    std::vector<float> got;
    for (std::uint32_t i = 0; i < kTokens; ++i) {
      const auto one = step(*e, s, ids.subspan(i, 1));
      got.insert(got.end(), one.begin(), one.end());
      INFO("after " << i + 1 << " tokens");
      REQUIRE(e->pool_stats().used == expected_pages(i + 1));
    }
    CHECK(e->pool_stats().used == 18);  // a cache of every layer would hold 30
    CHECK(max_abs_diff(got, torch) <= 1e-4f);
  }
  SECTION("a Session, on the fast and the reference path: freed pages are reused") {
    for (const char* isa : {"", "reference"}) {
      INFO("isa '" << isa << "'");
      auto session = Session::create(f.model, {.context = 512, .threads = 2, .isa = isa});
      REQUIRE(session.ok());
      std::vector<float> got;
      for (std::uint32_t i = 0; i < kTokens; ++i) {
        auto r = session->eval(ids.subspan(i, 1));
        REQUIRE(r.ok());
        got.insert(got.end(), r->begin(), r->end());
      }
      CHECK(max_abs_diff(got, torch) <= 1e-4f);
    }
  }
}

TEST_CASE("sliding-window pages: reuse, fork and truncate in a pool smaller than a full cache",
          "[kv][sliding][engine]") {
  Fixture f;
  const std::size_t vocab = f.model->config().vocab_size;
  const std::uint32_t chunk = 64;
  // Room for one sequence of 300 tokens in chunks of 64: 10 global pages and 7 per sliding group.
  const std::size_t budget = kv_sequence_bytes(f.model->config(), KvType::F32, kTokens, chunk);
  auto e = Engine::create(f.model, {.kv_bytes = budget, .context = 512, .threads = 2});
  REQUIRE(e.ok());
  REQUIRE(e->pool_stats().pages == 24);
  const SequenceId a = e->add();
  for (std::uint32_t done = 0; done < kTokens; done += chunk) {
    const BatchItem item{a, std::span(f.ids).subspan(done, std::min(chunk, kTokens - done))};
    REQUIRE(e->eval({&item, 1}).ok());
  }
  REQUIRE(e->remove(a).ok());

  // 300 shared tokens and 5 new ones: everything shared is taken though the early pages of the
  // sliding layers are long gone; the new tokens' logits are a cold evaluation's.
  const auto prompt = std::span(f.ids).first(kTokens + 5);
  const auto cold = f.cold(prompt);
  const SequenceId b = e->add();
  auto taken = e->reuse_prefix(b, prompt);
  REQUIRE(taken.ok());
  CHECK(*taken == kTokens);
  const BatchItem rest{b, prompt.subspan(kTokens), LogitsWanted::All};
  auto r = e->eval({&rest, 1});
  REQUIRE(r.ok());
  CHECK(same_bits(r->item(0), std::span(cold).subspan(kTokens * vocab)));

  // A fork continues as its parent would.
  auto child = e->fork(b);
  REQUIRE(child.ok());
  const auto more = std::span(f.ids).subspan(kTokens + 5, 3);
  const auto cold_more = f.cold(std::span(f.ids).first(kTokens + 8));
  CHECK(same_bits(step(*e, *child, more), std::span(cold_more).subspan((kTokens + 5) * vocab)));
  REQUIRE(e->remove(*child).ok());

  // Rolling back within the slack always keeps every token; further back keeps what the pool
  // still has of the window, and evaluating the rest again gives the cold logits.
  for (std::uint32_t n : {kTokens + 5 - kSlack, 150u, 45u}) {
    INFO("truncate to " << n);
    auto kept = e->truncate(b, n);
    REQUIRE(kept.ok());
    CHECK(*kept <= n);
    if (n == kTokens + 5 - kSlack) CHECK(*kept == n);
    auto tokens = e->tokens(b);
    REQUIRE(tokens.ok());
    CHECK(tokens->size() == *kept);
    const auto redo = step(*e, b, std::span(f.ids).subspan(*kept, n + 1 - *kept));
    CHECK(same_bits(std::span(redo).last(vocab), std::span(cold).subspan(n * vocab, vocab)));
  }
}

TEST_CASE("sliding-window pages: an Engine takes cached pages back when it rolls back",
          "[kv][sliding][engine]") {
  Fixture f;
  auto e = Engine::create(f.model, {.context = 512, .threads = 2});  // room for 4 full contexts
  REQUIRE(e.ok());
  const SequenceId s = e->add();
  step(*e, s, std::span(f.ids).first(kTokens));
  auto kept = e->truncate(s, 100);
  REQUIRE(kept.ok());
  CHECK(*kept == 100);
  const auto cold = f.cold(std::span(f.ids).first(101));
  const auto next = step(*e, s, std::span(f.ids).subspan(100, 1));
  CHECK(same_bits(next, std::span(cold).last(f.model->config().vocab_size)));

  // A Session frees the pages that leave the window: within the slack it keeps everything,
  // beyond it what it can, and the logits after evaluating the rest again are the same.
  auto session = Session::create(f.model, {.context = 512, .threads = 2});
  REQUIRE(session.ok());
  REQUIRE(session->eval(std::span(f.ids).first(kTokens)).ok());
  auto near = session->truncate(kTokens - kSlack);
  REQUIRE(near.ok());
  CHECK(*near == kTokens - kSlack);
  auto far = session->truncate(100);
  REQUIRE(far.ok());
  CHECK(*far < 100);
  CHECK(session->position() == *far);
  auto r = session->eval(std::span(f.ids).subspan(*far, 101 - *far));
  REQUIRE(r.ok());
  CHECK(same_bits(*r, std::span(cold).last(f.model->config().vocab_size)));
}

TEST_CASE("sliding-window pages: save and restore keep only the window", "[kv][sliding][engine]") {
  Fixture f;
  const std::size_t vocab = f.model->config().vocab_size;
  auto e = Engine::create(f.model, {.context = 512, .threads = 2});
  REQUIRE(e.ok());
  const SequenceId s = e->add();
  const BatchItem item{s, std::span(f.ids).first(kTokens)};
  REQUIRE(e->eval({&item, 1}).ok());
  const auto path = f.tmp / "seq.bin";
  REQUIRE(e->save(s, path).ok());
  // Two global layers for 300 tokens, four sliding ones from page 8 (token 256) on.
  const std::size_t row = 32 * 4 * 2;  // head_dim f32 keys and values
  CHECK(std::filesystem::file_size(path) < (2 * 300 + 4 * 44) * row + 4 * 300 + 128);
  auto restored = e->restore(path);
  REQUIRE(restored.ok());
  const auto cold = f.cold(std::span(f.ids).first(kTokens + 2));
  CHECK(same_bits(step(*e, *restored, std::span(f.ids).subspan(kTokens, 2)),
                  std::span(cold).subspan(kTokens * vocab)));
}

TEST_CASE("sliding-window pages: the scheduler admits what only the windows make fit",
          "[kv][sliding][scheduler]") {
  Fixture f;
  const std::uint32_t step_tokens = 64;
  const std::size_t budget =
      kv_sequence_bytes(f.model->config(), KvType::F32, kTokens + 20, step_tokens);
  CHECK(budget < kv_sequence_bytes(f.model->config(), KvType::F32, kTokens + 20, 512));
  auto sched = Scheduler::create(f.model, {.kv_bytes = budget, .context = 512, .threads = 2},
                                 {.step_tokens = step_tokens, .max_running = 2});
  REQUIRE(sched.ok());
  RequestResult result;
  auto id =
      sched->submit({.prompt = std::vector<std::int32_t>(f.ids.begin(), f.ids.begin() + kTokens),
                     .sampler = {.temperature = 0.0f},
                     .options = {.max_tokens = 20, .stop_at_end_of_generation = false},
                     .on_done = [&](const RequestResult& r) { result = r; }});
  REQUIRE(id.ok());
  for (int i = 0; i < 1000 && sched->step(); ++i) {
  }
  REQUIRE_FALSE(result.error.has_value());
  REQUIRE(result.choices.size() == 1);
  CHECK(result.choices[0].tokens.size() == 20);
}

}  // namespace qlm::test

namespace qlm::test {

TEST_CASE("sliding-window pages: a Session evaluates a long prompt in steps and rolls back whole",
          "[kv][sliding][session]") {
  Fixture f;
  const std::vector<std::int32_t> first(f.ids.begin(), f.ids.begin() + kTokens);
  const auto torch = torch_logits(f.dir, first, f.tmp.path());
  auto session = Session::create(f.model, {.context = 2048, .threads = 2});
  REQUIRE(session.ok());
  // Three groups of 64 pages would hold the context; the window needs fewer than half of them.
  const std::size_t page = 2 * 2 * 32 * kKvPageTokens * 4;
  CHECK(session->kv_bytes() <= 96 * page);
  auto all = session->eval(first, {.all_logits = true});
  REQUIRE(all.ok());
  CHECK(max_abs_diff({all->begin(), all->end()}, torch) <= 1e-4f);

  // Cancelled after its first step, a long evaluation leaves the session as it was.
  REQUIRE(session->truncate(0).ok());
  REQUIRE(session->eval(std::span(f.ids).first(100)).ok());
  const auto longer = pseudo_random_tokens(500);
  auto cancelled = session->eval(std::span(longer).subspan(100, 400),
                                 {.on_progress = [&](std::uint32_t done, std::uint32_t) {
                                   return done <= 256;  // past the first step of 256 tokens
                                 }});
  REQUIRE_FALSE(cancelled.ok());
  CHECK(cancelled.error().code == ErrorCode::Cancelled);
  CHECK(session->position() == 100);
  auto next = session->eval(std::span(f.ids).subspan(100, 1));
  REQUIRE(next.ok());
  const auto cold = f.cold(std::span(f.ids).first(101));
  CHECK(same_bits(*next, std::span(cold).last(f.model->config().vocab_size)));
}

}  // namespace qlm::test
