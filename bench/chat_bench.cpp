// Prompt preparation for chat: rendering a 20-turn code-assistant conversation with the
// Qwen2.5-0.5B-Instruct chat template of shared/chat-templates, and tokenizing the rendered text
// with Qwen2.5's tokenizer as transformers does (tokenize_chat: no added BOS, specials
// parsed).
// --prompt_out=FILE writes the rendered text to FILE and its ids (a JSON array) to FILE.ids.json,
// so that bench/hf_tokenize_bench.mjs can time tokenizers.js on the same text (bench/RESULTS.md).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "qlm/chat.hpp"
#include "qlm/chat_template.hpp"
#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"

namespace {

namespace fs = std::filesystem;

fs::path shared_dir() {
  const char* env = std::getenv("QLM_SHARED_DIR");
  return env != nullptr ? fs::path(env) : fs::path(QLM_SHARED_DIR);
}

[[noreturn]] void die(std::string_view what) {
  std::fprintf(stderr, "qlm_bench_chat: %.*s\n", static_cast<int>(what.size()), what.data());
  std::exit(1);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) die(fmt::format("cannot read {}", p.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Deterministic code-assistant turns: questions and answers with code, varied by turn number.
std::string user_turn(int i) {
  static const char* const kTopics[] = {"parse a CSV file", "debounce a callback",
                                        "merge two sorted lists", "retry an HTTP request",
                                        "cache function results"};
  static const char* const kLangs[] = {"Python", "TypeScript", "C++", "Go", "Rust"};
  const char* topic = kTopics[i % 5];
  const char* lang = kLangs[(i / 2) % 5];
  return fmt::format(
      "Turn {}: how do I {} in {}? Here is what I have so far, and it fails on the second call "
      "with an off-by-one error:\n\n```\nfor (int k = 0; k <= items.size(); ++k) {{\n"
      "  total += items[k] * {};\n}}\n```\nWhat is wrong? Show a fix with a test.",
      i + 1, topic, lang, 3 * i + 7);
}

std::string assistant_turn(int i) {
  return fmt::format(
      "The loop runs one step too far: `k <= items.size()` reads past the end. Iterate over the "
      "elements instead:\n\n"
      "```python\ndef weighted_total_{0}(items, factor={1}):\n"
      "    return sum(item * factor for item in items)\n\n\n"
      "def test_weighted_total_{0}():\n"
      "    assert weighted_total_{0}([1, 2, 3]) == {2}\n```\n\n"
      "Without indexing it cannot go out of bounds; for {3}+ floats, use `math.fsum`.",
      i + 1, 3 * i + 7, 6 * (3 * i + 7), 1000 * (i + 1));
}

struct Prompt {
  qlm::ChatTemplate tmpl;
  std::vector<qlm::ChatMessage> messages;
  qlm::ChatTemplateOptions options;
  qlm::Tokenizer tokenizer;
  std::string rendered;
  std::vector<std::int32_t> ids;
};

// System prompt + 20 turns (a user message and the assistant's reply each) + a final question,
// with the generation prompt, as an application would send it.
const Prompt& prompt() {
  static const Prompt p = [] {
    const fs::path dir = shared_dir() / "chat-templates/Qwen--Qwen2.5-0.5B-Instruct";
    const auto config = nlohmann::json::parse(read_file(dir / "tokenizer_config.json"));
    auto tmpl = qlm::ChatTemplate::parse(config.at("chat_template").get<std::string>(),
                                         "Qwen2.5-0.5B-Instruct");
    if (!tmpl.ok()) die(tmpl.error().message);
    auto vocab = qlm::load_hf_tokenizer(shared_dir() / "tokenizers/qwen2.5-0.5b");
    if (!vocab.ok()) die(vocab.error().message);
    auto tok = qlm::Tokenizer::create(std::move(vocab).value());
    if (!tok.ok()) die(tok.error().message);
    std::vector<qlm::ChatMessage> messages;
    messages.push_back(
        {"system", "You are a careful coding assistant. Answer with working code.", "", ""});
    for (int i = 0; i < 20; ++i) {
      messages.push_back({"user", user_turn(i), "", ""});
      messages.push_back({"assistant", assistant_turn(i), "", ""});
    }
    messages.push_back(
        {"user", "Thanks! Now combine the last three answers into one module.", "", ""});
    qlm::ChatTemplateOptions options;
    options.add_generation_prompt = true;
    options.special_tokens = {{"eos_token", "<|im_end|>"}, {"pad_token", "<|endoftext|>"}};
    auto rendered = tmpl->render(messages, options);
    if (!rendered.ok()) die(rendered.error().message);
    auto ids = qlm::tokenize_chat(*tok, *rendered);
    if (!ids.ok()) die(ids.error().message);
    return Prompt{std::move(tmpl).value(), std::move(messages),         std::move(options),
                  std::move(tok).value(),  std::move(rendered).value(), std::move(ids).value()};
  }();
  return p;
}

void set_counters(benchmark::State& state) {
  const Prompt& p = prompt();
  const auto tokens = static_cast<std::int64_t>(p.ids.size());
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["bytes"] = static_cast<double>(p.rendered.size());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * tokens);
}

void BM_Render(benchmark::State& state) {
  const Prompt& p = prompt();
  for (auto _ : state) {
    auto r = p.tmpl.render(p.messages, p.options);
    benchmark::DoNotOptimize(r);
  }
  set_counters(state);
}

void BM_Tokenize(benchmark::State& state) {
  const Prompt& p = prompt();
  for (auto _ : state) {
    auto ids = qlm::tokenize_chat(p.tokenizer, p.rendered);
    benchmark::DoNotOptimize(ids);
  }
  set_counters(state);
}

void BM_RenderAndTokenize(benchmark::State& state) {
  const Prompt& p = prompt();
  for (auto _ : state) {
    auto r = p.tmpl.render(p.messages, p.options);
    auto ids = qlm::tokenize_chat(p.tokenizer, r.value());
    benchmark::DoNotOptimize(ids);
  }
  set_counters(state);
}

BENCHMARK(BM_Render)->Name("chat/render")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Tokenize)->Name("chat/tokenize")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RenderAndTokenize)->Name("chat/render+tokenize")->Unit(benchmark::kMicrosecond);

void write_prompt(const std::string& path) {
  const Prompt& p = prompt();
  std::ofstream(path, std::ios::binary) << p.rendered;
  std::ofstream(path + ".ids.json", std::ios::binary) << nlohmann::json(p.ids).dump();
  std::fprintf(stderr, "qlm_bench_chat: wrote %s (%zu bytes, %zu tokens) and %s.ids.json\n",
               path.c_str(), p.rendered.size(), p.ids.size(), path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // Our own flag first; Google Benchmark rejects flags it does not know.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--prompt_out=")) {
      write_prompt(std::string(arg.substr(13)));
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
