// Engine: batch invariance (a sequence's logits are bit-identical alone in a Session and in any
// batch, chunking and thread count, on every ISA, weight type and KV type), prefix reuse (whole
// pages shared, part of a page copied), fork and truncate on shared pages, the pool's accounting
// and eviction, and clear errors that change nothing.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "kernel_table.hpp"
#include "model/model_helpers.hpp"
#include "qlm/engine.hpp"
#include "qlm/session.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

std::vector<std::string> isa_names() {
  std::vector<std::string> names;
  for (auto isa : kernels::supported_isas()) names.emplace_back(kernels::to_string(isa));
  return names;
}

// Three prompts of different lengths and contents (ids < 512 fit stories260K's vocabulary).
std::vector<std::vector<std::int32_t>> prompts(const Model& model) {
  const auto random = pseudo_random_tokens(200);
  std::vector<std::int32_t> b(random.begin(), random.begin() + 77);
  std::vector<std::int32_t> c{1};
  c.insert(c.end(), random.begin() + 120, random.begin() + 163);
  return {story_tokens(model), b, c};
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

std::shared_ptr<const Model> stories(const TempDir& tmp, DType type) {
  convert_or_fail(stories_dir(), tmp / "m.qlm", type);
  return open_or_fail(tmp / "m.qlm");
}

// Evaluates `ids` into a new sequence of `engine` in one call; returns all logits.
std::vector<float> engine_logits(Engine& engine, std::span<const std::int32_t> ids,
                                 SequenceId* out = nullptr) {
  const SequenceId s = engine.add();
  const BatchItem item{s, ids, LogitsWanted::All};
  auto r = engine.eval({&item, 1});
  REQUIRE(r.ok());
  if (out) *out = s;
  return {r->item(0).begin(), r->item(0).end()};
}

}  // namespace

TEST_CASE("Engine: a sequence's logits do not depend on its batch, chunking or threads",
          "[engine][heavy]") {
  TempDir tmp;
  const DType type =
      GENERATE(DType::Q8, DType::Q4, DType::Q5, DType::Q4NL, DType::F16, DType::BF16, DType::F32);
  const KvType kv = type == DType::Q4 || type == DType::F16 ? KvType::F16 : KvType::F32;
  auto model = stories(tmp, type);
  const auto ps = prompts(*model);
  const std::size_t vocab = model->config().vocab_size;
  for (const std::string& isa : isa_names()) {
    INFO("type " << to_string(type) << ", isa " << isa << ", kv " << to_string(kv));
    std::vector<std::vector<float>> alone;
    for (const auto& p : ps) {
      alone.push_back(eval_all_logits(model, {.threads = 1, .kv_type = kv, .isa = isa}, p));
    }
    for (int threads : {1, 3}) {
      INFO("threads " << threads);
      auto engine =
          Engine::create(model, {.kv_type = kv, .threads = threads, .isa = isa, .batch = 7});
      REQUIRE(engine.ok());
      std::vector<SequenceId> ids;
      for (std::size_t i = 0; i < ps.size(); ++i) ids.push_back(engine->add());
      std::vector<std::size_t> done(ps.size(), 0);
      std::mt19937 rng(static_cast<unsigned>(threads * 7 + static_cast<int>(type)));
      while (done != std::vector<std::size_t>{ps[0].size(), ps[1].size(), ps[2].size()}) {
        std::vector<BatchItem> items;
        std::vector<std::size_t> which;
        for (std::size_t i = 0; i < ps.size(); ++i) {
          const std::size_t n = std::min<std::size_t>(rng() % 10, ps[i].size() - done[i]);
          if (n == 0) continue;
          const auto logits = rng() % 3 == 0 ? LogitsWanted::Last : LogitsWanted::All;
          items.push_back({ids[i], std::span(ps[i]).subspan(done[i], n), logits});
          which.push_back(i);
        }
        if (items.empty()) continue;
        auto r = engine->eval(items);
        REQUIRE(r.ok());
        for (std::size_t j = 0; j < items.size(); ++j) {
          const std::size_t i = which[j], n = items[j].tokens.size();
          const std::size_t first =
              items[j].logits == LogitsWanted::All ? done[i] : done[i] + n - 1;
          const auto expected =
              std::span<const float>(alone[i]).subspan(first * vocab, r->item(j).size());
          CHECK(same_bits(r->item(j), expected));
          done[i] += n;
        }
      }
    }
  }
}

TEST_CASE("Engine: decode batches split into lanes give every sequence its bits alone",
          "[engine]") {
  // Two threads and 12 decoding sequences: each thread takes a share of the sequences through the
  // whole model (arch/laned_forward.cpp). The sequences' depths differ (one far deeper), which
  // moves the shares' boundaries; some steps want no logits from some sequences.
  TempDir tmp;
  const DType type = GENERATE(DType::Q8, DType::Q4, DType::F32);
  const KvType kv = type == DType::Q4 ? KvType::F16 : KvType::F32;
  auto model = stories(tmp, type);
  const std::size_t vocab = model->config().vocab_size;
  const auto random = pseudo_random_tokens(400);
  std::vector<std::vector<std::int32_t>> tokens;  // prompt, then 6 decoded tokens
  for (std::size_t i = 0; i < 12; ++i) {
    const std::size_t prompt = i == 5 ? 150 : 3 + 7 * i;
    tokens.emplace_back(random.begin() + static_cast<std::ptrdiff_t>(i * 13),
                        random.begin() + static_cast<std::ptrdiff_t>(i * 13 + prompt + 6));
  }
  for (const std::string& isa : isa_names()) {
    // batch 5: the lanes' buffers hold 3 rows each, so a lane runs its rows in chunks.
    const std::uint32_t batch = isa == isa_names().back() ? 5 : 0;
    INFO("type " << to_string(type) << ", isa " << isa << ", batch " << batch);
    auto engine = Engine::create(model, {.kv_type = kv, .threads = 2, .isa = isa, .batch = batch});
    REQUIRE(engine.ok());
    std::vector<SequenceId> ids;
    for (const auto& t : tokens) {  // the prompts one by one: never lanes
      ids.push_back(engine->add());
      const BatchItem item{ids.back(), std::span(t).first(t.size() - 6), LogitsWanted::None};
      REQUIRE(engine->eval({&item, 1}).ok());
    }
    std::vector<std::vector<float>> alone;
    for (const auto& t : tokens) {
      alone.push_back(eval_all_logits(model, {.threads = 1, .kv_type = kv, .isa = isa}, t));
    }
    for (std::size_t step = 0; step < 6; ++step) {
      std::vector<BatchItem> items;
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        const std::size_t at = tokens[i].size() - 6 + step;
        const bool wanted = (i + step) % 4 != 0;
        items.push_back({ids[i], std::span(tokens[i]).subspan(at, 1),
                         wanted ? LogitsWanted::Last : LogitsWanted::None});
      }
      auto r = engine->eval(items);
      REQUIRE(r.ok());
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        INFO("step " << step << ", sequence " << i);
        if (items[i].logits == LogitsWanted::None) {
          CHECK(r->item(i).empty());
          continue;
        }
        const std::size_t at = tokens[i].size() - 6 + step;
        CHECK(same_bits(r->item(i), std::span<const float>(alone[i]).subspan(at * vocab, vocab)));
      }
    }
  }
}

TEST_CASE("Engine: a new sequence takes cached pages and computes only the rest", "[engine]") {
  TempDir tmp;
  auto model = stories(tmp, DType::Q8);
  const KvType kv = GENERATE(KvType::F32, KvType::F16);
  INFO("kv " << to_string(kv));
  auto engine = Engine::create(model, {.kv_type = kv, .threads = 2});
  REQUIRE(engine.ok());
  const auto base = pseudo_random_tokens(150);
  const std::size_t vocab = model->config().vocab_size;
  // The reference: every prompt evaluated cold in a sequence of its own.
  auto cold_engine = Engine::create(model, {.kv_type = kv, .threads = 2});
  REQUIRE(cold_engine.ok());
  auto cold = [&](std::span<const std::int32_t> ids) { return engine_logits(*cold_engine, ids); };

  SequenceId first = 0;
  engine_logits(*engine, std::span(base).first(100), &first);
  REQUIRE(engine->remove(first).ok());
  const KvPoolStats after = engine->pool_stats();
  CHECK(after.used == 0);
  CHECK(after.cached == 4);  // three full pages and the partial fourth

  struct Case {
    const char* what;
    std::vector<std::int32_t> prompt;
    std::uint32_t reused;
  };
  std::vector<std::int32_t> longer(base.begin(), base.begin() + 130);
  std::vector<std::int32_t> edit(base.begin(), base.begin() + 100);
  for (std::size_t i = 97; i < 100; ++i) edit[i] = 5 + static_cast<std::int32_t>(i);
  std::vector<std::int32_t> middle(base.begin(), base.begin() + 80);
  middle[50] = 7;
  std::vector<std::int32_t> same(base.begin(), base.begin() + 100);
  const Case cases[] = {{"a longer prompt", longer, 100},
                        {"the last three tokens edited", edit, 97},
                        {"an edit inside a page", middle, 50},
                        {"the same prompt (its last token is evaluated again)", same, 99}};
  for (const Case& c : cases) {
    INFO(c.what);
    const SequenceId s = engine->add();
    auto taken = engine->reuse_prefix(s, c.prompt);
    REQUIRE(taken.ok());
    CHECK(*taken == c.reused);
    auto tokens = engine->tokens(s);
    REQUIRE(tokens.ok());
    CHECK(std::equal(tokens->begin(), tokens->end(), c.prompt.begin()));
    const auto rest = std::span(c.prompt).subspan(*taken);
    const BatchItem item{s, rest, LogitsWanted::All};
    auto r = engine->eval({&item, 1});
    REQUIRE(r.ok());
    const auto expected = cold(c.prompt);
    CHECK(same_bits(r->item(0), std::span(expected).subspan(*taken * vocab)));
    REQUIRE(engine->remove(s).ok());
  }
  // Another KV type (or model) never matches: its pool's hashes start elsewhere.
  const SequenceId fresh = cold_engine->add();
  REQUIRE(cold_engine->reuse_prefix(fresh, std::span(base).first(20)).ok());
}

TEST_CASE("Engine: fork shares pages copy-on-write; truncate leaves shared pages intact",
          "[engine]") {
  TempDir tmp;
  auto model = stories(tmp, DType::Q4);
  auto engine = Engine::create(model, {.threads = 2});
  REQUIRE(engine.ok());
  const auto ids = pseudo_random_tokens(120);
  const auto prompt = std::span(ids).first(45);  // one full page and a shared partial one
  SequenceId parent = 0;
  engine_logits(*engine, prompt, &parent);
  const std::uint32_t used_before = engine->pool_stats().used;
  auto child = engine->fork(parent);
  REQUIRE(child.ok());
  CHECK(engine->pool_stats().used == used_before);  // nothing copied yet

  // Both continue differently in one batch; each must equal a cold evaluation of its tokens.
  const std::vector<std::int32_t> a = {11, 12, 13}, b = {21, 22};
  const BatchItem items[] = {{parent, a, LogitsWanted::All}, {*child, b, LogitsWanted::All}};
  auto r = engine->eval(items);
  REQUIRE(r.ok());
  CHECK(engine->pool_stats().used == used_before + 1);  // the partial page was copied once
  auto cold_engine = Engine::create(model, {.threads = 2});
  REQUIRE(cold_engine.ok());
  const std::size_t vocab = model->config().vocab_size;
  auto with = [&](std::span<const std::int32_t> tail) {
    std::vector<std::int32_t> all(prompt.begin(), prompt.end());
    all.insert(all.end(), tail.begin(), tail.end());
    return engine_logits(*cold_engine, all);
  };
  const auto cold_a = with(a), cold_b = with(b);
  CHECK(same_bits(r->item(0), std::span(cold_a).subspan(45 * vocab)));
  CHECK(same_bits(r->item(1), std::span(cold_b).subspan(45 * vocab)));

  // Truncating the parent into the shared full page and writing there leaves the child's intact.
  REQUIRE(engine->truncate(parent, 20).ok());
  const std::vector<std::int32_t> c = {31, 32, 33, 34};
  const BatchItem more[] = {{parent, c, LogitsWanted::Last}, {*child, a, LogitsWanted::Last}};
  auto r2 = engine->eval(more);
  REQUIRE(r2.ok());
  std::vector<std::int32_t> parent_all(prompt.begin(), prompt.begin() + 20);
  parent_all.insert(parent_all.end(), c.begin(), c.end());
  const auto p_cold = engine_logits(*cold_engine, parent_all);
  CHECK(same_bits(r2->item(0), std::span(p_cold).last(vocab)));
  std::vector<std::int32_t> child_all(prompt.begin(), prompt.end());
  child_all.insert(child_all.end(), b.begin(), b.end());
  child_all.insert(child_all.end(), a.begin(), a.end());
  const auto c_cold = engine_logits(*cold_engine, child_all);
  CHECK(same_bits(r2->item(1), std::span(c_cold).last(vocab)));
}

TEST_CASE("Engine: the pool stays within its budget and evicts cached pages oldest first",
          "[engine]") {
  TempDir tmp;
  auto model = stories(tmp, DType::Q8);
  const std::size_t page = [&] {
    auto e = Engine::create(model, {.threads = 1});
    REQUIRE(e.ok());
    return e->pool_stats().page_bytes;
  }();
  // Six pages and a bit: the budget is never exceeded, so the bit is not a page.
  auto engine = Engine::create(model, {.kv_bytes = 6 * page + page / 2, .threads = 1});
  REQUIRE(engine.ok());
  CHECK(engine->pool_stats().pages == 6);
  const auto ids = pseudo_random_tokens(400);
  SequenceId a = 0, b = 0;
  engine_logits(*engine, std::span(ids).first(64), &a);         // 2 pages
  engine_logits(*engine, std::span(ids).subspan(100, 64), &b);  // 2 other pages
  REQUIRE(engine->remove(a).ok());
  REQUIRE(engine->remove(b).ok());
  CHECK(engine->pool_stats().cached == 4);
  // A third prompt of 4 pages takes the 2 free ones and evicts a's (the older) pages.
  SequenceId c = 0;
  engine_logits(*engine, std::span(ids).subspan(200, 128), &c);
  CHECK(engine->pool_stats().cached == 2);
  CHECK(engine->pool_stats().used == 4);
  const SequenceId probe_a = engine->add(), probe_b = engine->add();
  auto ta = engine->reuse_prefix(probe_a, std::span(ids).first(65));
  auto tb = engine->reuse_prefix(probe_b, std::span(ids).subspan(100, 65));
  REQUIRE(ta.ok());
  REQUIRE(tb.ok());
  CHECK(*ta == 0);   // evicted
  CHECK(*tb == 64);  // still cached
  const KvPoolStats s = engine->pool_stats();
  CHECK(s.used + s.cached + s.free == s.pages);
}

TEST_CASE("Engine: bad requests are clear errors that change nothing", "[engine]") {
  TempDir tmp;
  auto model = stories(tmp, DType::Q8);
  const std::size_t page = Engine::create(model, {.threads = 1})->pool_stats().page_bytes;
  auto engine = Engine::create(model, {.kv_bytes = 3 * page, .context = 80, .threads = 1});
  REQUIRE(engine.ok());
  const auto ids = pseudo_random_tokens(200);
  SequenceId s = 0;
  const auto before = engine_logits(*engine, std::span(ids).first(40), &s);
  const KvPoolStats stats = engine->pool_stats();
  auto expect = [&](Result<BatchLogits> r, ErrorCode code, const char* text) {
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == code);
    CHECK_THAT(r.error().message, Catch::Contains(text));
    CHECK(engine->tokens(s)->size() == 40);
    CHECK(engine->pool_stats().used == stats.used);
  };
  const std::vector<std::int32_t> one = {5}, bad = {5, 100000}, negative = {-1};
  BatchItem unknown{999, one};
  expect(engine->eval({&unknown, 1}), ErrorCode::InvalidArgument, "no sequence 999");
  const BatchItem twice[] = {{s, one}, {s, one}};
  expect(engine->eval(twice), ErrorCode::InvalidArgument, "twice");
  BatchItem out_of_range{s, bad};
  expect(engine->eval({&out_of_range, 1}), ErrorCode::InvalidArgument, "outside the vocabulary");
  BatchItem neg{s, negative};
  expect(engine->eval({&neg, 1}), ErrorCode::InvalidArgument, "outside the vocabulary");
  BatchItem too_long{s, std::span(ids).first(41)};
  expect(engine->eval({&too_long, 1}), ErrorCode::ContextFull, "context of 80");
  expect(engine->eval({}), ErrorCode::InvalidArgument, "empty");
  // A second sequence of 70 tokens needs 3 pages; 1 is left.
  const SequenceId t = engine->add();
  BatchItem big{t, std::span(ids).subspan(100, 70)};
  expect(engine->eval({&big, 1}), ErrorCode::PoolFull, "needs 3 KV pages");
  CHECK(engine->tokens(t)->empty());
  CHECK_FALSE(engine->truncate(s, 41).ok());
  CHECK_FALSE(engine->remove(999).ok());
  CHECK_FALSE(engine->fork(999).ok());
  CHECK_FALSE(engine->reuse_prefix(s, one).ok());  // s is not empty
  auto tiny = Engine::create(model, {.kv_bytes = page - 1});
  REQUIRE_FALSE(tiny.ok());
  CHECK_THAT(tiny.error().message, Catch::Contains("holds no KV page"));
  // A budget of more pages than anyone could use is refused before the page table is built.
  auto huge = Engine::create(model, {.kv_bytes = page * ((std::size_t{1} << 26) + 1)});
  REQUIRE_FALSE(huge.ok());
  CHECK_THAT(huge.error().message, Catch::Contains("absurd"));
  // The engine still works, and the sequence continues where it was.
  BatchItem next{s, std::span(ids).subspan(40, 10), LogitsWanted::All};
  auto r = engine->eval({&next, 1});
  REQUIRE(r.ok());
  const auto whole = eval_all_logits(model, {.threads = 1}, std::span(ids).first(50));
  const std::size_t vocab = model->config().vocab_size;
  CHECK(same_bits(std::span(before), std::span(whole).first(40 * vocab)));
  CHECK(same_bits(r->item(0), std::span(whole).subspan(40 * vocab)));
}

}  // namespace qlm::test

namespace qlm::test {

TEST_CASE("Engine: a saved sequence restores to the same tokens and logits", "[engine]") {
  TempDir tmp;
  auto model = stories(tmp, DType::Q8);
  const KvType kv = GENERATE(KvType::F32, KvType::F16);
  INFO("kv " << to_string(kv));
  auto engine = Engine::create(model, {.kv_type = kv, .threads = 1});
  REQUIRE(engine.ok());
  const auto ids = pseudo_random_tokens(120);
  SequenceId s = 0;
  engine_logits(*engine, std::span(ids).first(70), &s);
  REQUIRE(engine->save(s, tmp / "seq.bin").ok());
  const std::vector<std::int32_t> next = {9, 8, 7};
  const BatchItem cont{s, next, LogitsWanted::All};
  auto want_r = engine->eval({&cont, 1});
  REQUIRE(want_r.ok());
  const std::vector<float> want(want_r->item(0).begin(), want_r->item(0).end());

  // Into a fresh engine of the same model and KV type: same tokens, same continuation.
  auto other = Engine::create(model, {.kv_type = kv, .threads = 2});
  REQUIRE(other.ok());
  auto restored = other->restore(tmp / "seq.bin");
  REQUIRE(restored.ok());
  CHECK(other->tokens(*restored)->size() == 70);
  CHECK(std::equal(ids.begin(), ids.begin() + 70, other->tokens(*restored)->begin()));
  const BatchItem cont2{*restored, next, LogitsWanted::All};
  auto got = other->eval({&cont2, 1});
  REQUIRE(got.ok());
  CHECK(same_bits(got->item(0), want));
  // Its full pages are published: a new prompt sharing them reuses them.
  const SequenceId probe = other->add();
  CHECK(*other->reuse_prefix(probe, std::span(ids).first(100)) == 64);  // its 2 full pages

  const KvPoolStats before = other->pool_stats();
  auto refused = [&](Engine& e, const std::filesystem::path& p, ErrorCode code, const char* text) {
    auto r = e.restore(p);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == code);
    CHECK_THAT(r.error().message, Catch::Contains(text));
    CHECK_THAT(r.error().message, Catch::Contains(p.filename().string()));
  };
  // Another KV type, another model file, a damaged, truncated or foreign file: refused.
  auto other_kv = Engine::create(
      model, {.kv_type = kv == KvType::F32 ? KvType::F16 : KvType::F32, .threads = 1});
  REQUIRE(other_kv.ok());
  refused(*other_kv, tmp / "seq.bin", ErrorCode::InvalidArgument, "KV type");
  convert_or_fail(stories_dir(), tmp / "q4.qlm", DType::Q4);
  auto q4 = Engine::create(open_or_fail(tmp / "q4.qlm"), {.kv_type = kv, .threads = 1});
  REQUIRE(q4.ok());
  refused(*q4, tmp / "seq.bin", ErrorCode::InvalidArgument, "another model file");
  std::string bytes = read_text(tmp / "seq.bin");
  std::string flipped = bytes;
  flipped[bytes.size() / 2] = static_cast<char>(flipped[bytes.size() / 2] ^ 1);
  write_text(tmp / "flipped.bin", flipped);
  refused(*other, tmp / "flipped.bin", ErrorCode::Checksum, "checksum");
  write_text(tmp / "short.bin", bytes.substr(0, bytes.size() - 9));
  refused(*other, tmp / "short.bin", ErrorCode::Format, "truncated");
  write_text(tmp / "text.bin", "hello, world");
  refused(*other, tmp / "text.bin", ErrorCode::Format, "not a qlm sequence file");
  refused(*other, tmp / "missing.bin", ErrorCode::Io, "missing.bin");
  CHECK(other->pool_stats().used == before.used);
  CHECK(other->sequences() == 2);
  // Saving an unknown sequence, or to a directory that does not exist, writes nothing.
  CHECK_FALSE(engine->save(999, tmp / "x.bin").ok());
  CHECK_FALSE(engine->save(s, tmp / "no" / "such" / "x.bin").ok());
  CHECK_FALSE(std::filesystem::exists(tmp / "x.bin"));
}

}  // namespace qlm::test
