// Prefix reuse (docs/architecture.md, "Paged KV cache"): time to first token of a 2,048-token
// prompt evaluated cold, of the same length when its first 1,920 tokens are cached, and of a
// prompt that differs from a cached one only in its last 3 tokens; against one decode step at
// that depth. The model is $QLM_BENCH_MODEL (bench/RESULTS.md used the Qwen2.5-Coder-1.5B shape
// in q4); threads $QLM_BENCH_THREADS (default 2).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "qlm/engine.hpp"

namespace {

constexpr std::uint32_t kPrompt = 2048, kCached = 1920;

struct Fixture {
  std::shared_ptr<const qlm::Model> model;
  std::unique_ptr<qlm::Engine> engine;
  std::vector<std::int32_t> prompt;
};

Fixture& fixture() {
  static Fixture f = [] {
    const char* path = std::getenv("QLM_BENCH_MODEL");
    if (!path) {
      std::fprintf(stderr, "set QLM_BENCH_MODEL to a .qlm file\n");
      std::exit(2);
    }
    Fixture x;
    x.model = qlm::Model::open(path, {.populate = true}).value();
    const char* t = std::getenv("QLM_BENCH_THREADS");
    x.engine = std::make_unique<qlm::Engine>(
        qlm::Engine::create(
            x.model,
            {.kv_bytes = std::size_t{3} << 30, .context = 4096, .threads = t ? std::atoi(t) : 2})
            .value());
    const auto vocab = static_cast<std::int32_t>(x.model->config().vocab_size);
    for (std::uint32_t i = 0; i < kPrompt; ++i) {
      x.prompt.push_back(
          static_cast<std::int32_t>((i * 7919u + 13u) % static_cast<unsigned>(vocab)));
    }
    return x;
  }();
  return f;
}

// A fresh sequence for `prompt`: takes what is cached (when asked), evaluates the rest, removes
// the sequence. Returns the tokens taken from the cache.
std::uint32_t first_token(std::span<const std::int32_t> prompt, bool reuse) {
  qlm::Engine& e = *fixture().engine;
  const qlm::SequenceId s = e.add();
  const std::uint32_t taken = reuse ? e.reuse_prefix(s, prompt).value() : 0;
  const qlm::BatchItem item{s, prompt.subspan(taken)};
  benchmark::DoNotOptimize(e.eval({&item, 1}).value().item(0).data());
  (void)e.remove(s);
  return taken;
}

// The prompt with its tokens from `from` on replaced by ones that depend on `salt`, so no two
// iterations share them (nothing past `from` is ever cached).
std::vector<std::int32_t> varied(std::uint32_t from, std::uint64_t salt) {
  std::vector<std::int32_t> p = fixture().prompt;
  const auto vocab = static_cast<std::uint64_t>(fixture().model->config().vocab_size);
  for (std::uint32_t i = from; i < p.size(); ++i) {
    p[i] = static_cast<std::int32_t>((salt * 104729u + i * 31u + 7u) % vocab);
  }
  return p;
}

void BM_ColdPrompt(benchmark::State& state) {
  std::uint64_t salt = 1;
  for (auto _ : state) first_token(varied(0, salt++), false);
  state.counters["tokens"] = kPrompt;
}

void BM_CachedPrefix(benchmark::State& state) {
  first_token(std::span(fixture().prompt).first(kCached), false);  // caches the 1,920 tokens
  std::uint64_t salt = 1000;
  std::uint32_t taken = 0;
  for (auto _ : state) taken = first_token(varied(kCached, salt++), true);
  state.counters["cached"] = taken;
}

void BM_EditLast3(benchmark::State& state) {
  first_token(fixture().prompt, false);  // caches the whole prompt (all but a partial page)
  std::uint64_t salt = 5000;
  std::uint32_t taken = 0;
  for (auto _ : state) taken = first_token(varied(kPrompt - 3, salt++), true);
  state.counters["cached"] = taken;
}

void BM_DecodeStep(benchmark::State& state) {
  qlm::Engine& e = *fixture().engine;
  const qlm::SequenceId s = e.add();
  const qlm::BatchItem prompt{s, fixture().prompt};
  (void)e.eval({&prompt, 1}).value();
  std::int32_t token = 5;
  for (auto _ : state) {
    const qlm::BatchItem item{s, {&token, 1}};
    benchmark::DoNotOptimize(e.eval({&item, 1}).value().item(0).data());
    if (e.tokens(s).value().size() >= 4000) (void)e.truncate(s, kPrompt);
  }
  (void)e.remove(s);
}

BENCHMARK(BM_ColdPrompt)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_CachedPrefix)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);
BENCHMARK(BM_EditLast3)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);
BENCHMARK(BM_DecodeStep)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(20);

}  // namespace

BENCHMARK_MAIN();
