// Rebuilding a fill-in-the-middle prompt after one keystroke (docs/chat.md, "Fill-in-the-middle"):
// Qwen2.5's tokenizer, about 4,000 tokens of context (this repository's own source files, read at
// run time: the file being edited around the cursor plus two other files as extra chunks), one
// character typed before each build. Compared with building from scratch and with one plain
// Tokenizer::encode of all the context text.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "qlm/infill.hpp"
#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"

namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", p.string().c_str());
    std::exit(1);
  }
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const qlm::Tokenizer& qwen() {
  static const qlm::Tokenizer t = [] {
    auto v = qlm::load_hf_tokenizer(fs::path(QLM_SHARED_DIR) / "tokenizers/qwen2.5-0.5b");
    if (!v) {
      std::fprintf(stderr, "%s\n", v.error().message.c_str());
      std::exit(1);
    }
    auto made = qlm::Tokenizer::create(std::move(v).value());
    if (!made) {
      std::fprintf(stderr, "%s\n", made.error().message.c_str());
      std::exit(1);
    }
    return std::move(made).value();
  }();
  return t;
}

// The editor's state: ~2,800 tokens before the cursor, ~700 after, ~500 in two other files.
struct Editor {
  std::string before, after, typing;
  qlm::InfillRequest request;
  std::size_t typed = 0;
  Editor() {
    const fs::path src = fs::path(QLM_SOURCE_DIR) / "src";
    const std::string file = read_text(src / "tokenizer/vocabulary.cpp");
    before = file.substr(0, 10000);
    after = file.substr(10000, 2600);
    typing = read_text(src / "tokenizer/bpe.cpp").substr(2000, 600);  // what gets typed
    request.repo_name = "qlm";
    request.filename = "src/tokenizer/vocabulary.cpp";
    request.extra = {
        {"src/tokenizer/text.hpp", read_text(src / "tokenizer/text.hpp").substr(0, 900)},
        {"src/util/fail.hpp", read_text(src / "util/fail.hpp").substr(0, 900)}};
    request.suffix = after;
    request.prefix = before;
  }
  // One keystroke: the next character of `typing` at the cursor (starting over when done).
  void keystroke() {
    if (typed == typing.size()) {
      typed = 0;
      request.prefix = before;
    }
    request.prefix += typing[typed++];
  }
};

constexpr qlm::InfillOptions kOptions{.max_tokens = 8192};

void report(benchmark::State& state, const qlm::InfillPrompt& p) {
  state.counters["prompt_tokens"] = static_cast<double>(p.ids.size());
}

void BM_keystroke_builder(benchmark::State& state) {
  auto made = qlm::InfillPromptBuilder::create(qwen(), kOptions);
  if (!made) {
    state.SkipWithError(made.error().message.c_str());
    return;
  }
  qlm::InfillPromptBuilder builder = std::move(made).value();
  Editor ed;
  (void)builder.build(ed.request);  // the editor opened the file: the cache is warm
  qlm::InfillPrompt last;
  for (auto _ : state) {
    ed.keystroke();
    auto p = builder.build(ed.request);
    if (!p) {
      state.SkipWithError(p.error().message.c_str());
      return;
    }
    last = std::move(p).value();
    benchmark::DoNotOptimize(last.ids.data());
  }
  report(state, last);
}

void BM_keystroke_uncached(benchmark::State& state) {
  Editor ed;
  qlm::InfillPrompt last;
  for (auto _ : state) {
    ed.keystroke();
    auto p = qlm::build_infill_prompt(qwen(), ed.request, kOptions);
    if (!p) {
      state.SkipWithError(p.error().message.c_str());
      return;
    }
    last = std::move(p).value();
    benchmark::DoNotOptimize(last.ids.data());
  }
  report(state, last);
}

// The floor without any cache: one encode of all the context text.
void BM_encode_all_context(benchmark::State& state) {
  Editor ed;
  std::string all = ed.request.prefix;
  all += ed.request.suffix;
  for (const auto& c : ed.request.extra) all += c.text;
  std::size_t n = 0;
  for (auto _ : state) {
    auto ids = qwen().encode(all, {.add_special = false, .parse_special = false});
    n = ids->size();
    benchmark::DoNotOptimize(ids->data());
  }
  state.counters["tokens"] = static_cast<double>(n);
}

BENCHMARK(BM_keystroke_builder)->Name("infill/keystroke/builder")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_keystroke_uncached)->Name("infill/keystroke/uncached")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_encode_all_context)->Name("infill/encode_all_context")->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
