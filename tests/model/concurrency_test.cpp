// What is shared between threads, used from many at once: one Model by sessions on their own
// threads (each on a spin pool of two), its Tokenizer, one pool shared by several sessions, and
// one ChatTemplate and Tokenizer building prompts.
// Results must equal those of a single thread. The ThreadSanitizer pass runs these ([tsan]).
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "model/model_helpers.hpp"
#include "qlm/chat.hpp"
#include "qlm/engine.hpp"
#include "qlm/generate.hpp"
#include "qlm/infill.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

// Greedy tokens of `prompt` on a new session with `options`; empty on any error. No Catch2
// assertion here: it runs on worker threads, and Catch2's assertion handling is not thread-safe.
std::vector<std::int32_t> greedy(std::shared_ptr<const Model> model, SessionOptions options,
                                 const std::string& prompt, int n) {
  auto session = Session::create(std::move(model), std::move(options));
  if (!session.ok()) return {};
  const auto ids = session->model().tokenizer().encode(prompt);
  if (!ids.ok()) return {};
  Sampler sampler({.temperature = 0.0f});
  auto r = generate(*session, sampler, *ids, {.max_tokens = n});
  return r.ok() ? r->tokens : std::vector<std::int32_t>{};
}

}  // namespace

TEST_CASE("one Model serves sessions on many threads, each as if alone", "[tsan][model]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q4);
  const auto model = open_or_fail(tmp / "m.qlm");
  const std::vector<std::string> prompts{"Once upon a time", "The little dog", "Lily and Tom",
                                         "One day"};
  std::vector<std::vector<std::int32_t>> alone;
  for (const auto& p : prompts) alone.push_back(greedy(model, {.threads = 1}, p, 24));
  for (const auto& tokens : alone) REQUIRE(tokens.size() == 24);

  // Each thread its own session and spin pool of two threads.
  std::vector<std::vector<std::int32_t>> together(prompts.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] { together[i] = greedy(model, {.threads = 2}, prompts[i], 24); });
  }
  for (auto& t : threads) t.join();
  CHECK(together == alone);

  // Sessions on several threads sharing one pool (a second caller runs its tasks itself).
  const auto pool = make_spin_pool(2);
  std::vector<std::vector<std::int32_t>> shared(prompts.size());
  threads.clear();
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] { shared[i] = greedy(model, {.pool = pool}, prompts[i], 24); });
  }
  for (auto& t : threads) t.join();
  CHECK(shared == alone);
}

TEST_CASE("sessions are created and destroyed while others run", "[tsan][model]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  const auto model = open_or_fail(tmp / "m.qlm");
  const auto expected = greedy(model, {.threads = 1}, "Once upon a time", 8);
  REQUIRE(expected.size() == 8);
  std::vector<std::thread> threads;
  std::vector<int> ok(3, 0);
  for (std::size_t t = 0; t < ok.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 4; ++round) {
        ok[t] += greedy(model, {.threads = 2}, "Once upon a time", 8) == expected;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(ok == std::vector<int>(3, 4));
}

TEST_CASE("decode lanes on a spin pool, from engines on two threads", "[tsan][model]") {
  // A decode batch of 10 sequences on two threads runs as lanes (arch/laned_forward.cpp): each
  // thread takes its sequences through the whole model. Two engines share one pool, so one of
  // them sometimes runs both lanes itself. Each sequence's logits are its logits alone.
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  const auto model = open_or_fail(tmp / "m.qlm");
  const std::size_t vocab = model->config().vocab_size, n = 10, steps = 4;
  const auto random = pseudo_random_tokens(200);
  std::vector<std::vector<std::int32_t>> tokens;
  for (std::size_t i = 0; i < n; ++i) {
    tokens.emplace_back(random.begin() + static_cast<std::ptrdiff_t>(i * 9),
                        random.begin() + static_cast<std::ptrdiff_t>(i * 9 + 4 + 3 * i + steps));
  }
  std::vector<std::vector<float>> alone;
  for (const auto& t : tokens) alone.push_back(eval_all_logits(model, {.threads = 1}, t));
  const auto pool = make_spin_pool(2);
  std::vector<int> same(2, 0);  // per engine: logits that matched
  std::vector<std::thread> threads;
  for (std::size_t e = 0; e < same.size(); ++e) {
    threads.emplace_back([&, e] {  // no Catch2 assertions off the main thread
      auto engine = Engine::create(model, {.pool = pool});
      if (!engine.ok()) return;
      std::vector<SequenceId> ids;
      for (const auto& t : tokens) {
        ids.push_back(engine->add());
        const BatchItem item{ids.back(), std::span(t).first(t.size() - steps), LogitsWanted::None};
        if (!engine->eval({&item, 1}).ok()) return;
      }
      for (std::size_t step = 0; step < steps; ++step) {
        std::vector<BatchItem> items;
        for (std::size_t i = 0; i < n; ++i) {
          const std::size_t at = tokens[i].size() - steps + step;
          items.push_back({ids[i], std::span(tokens[i]).subspan(at, 1), LogitsWanted::Last});
        }
        auto r = engine->eval(items);
        if (!r.ok()) return;
        for (std::size_t i = 0; i < n; ++i) {
          const std::size_t at = tokens[i].size() - steps + step;
          const auto want = std::span<const float>(alone[i]).subspan(at * vocab, vocab);
          same[e] += r->item(i).size() == vocab &&
                     std::memcmp(r->item(i).data(), want.data(), want.size_bytes()) == 0;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(same == std::vector<int>(2, static_cast<int>(n * steps)));
}

}  // namespace qlm::test

namespace qlm::test {

// A server renders chats with one parsed ChatTemplate and builds infill prompts with one
// Tokenizer from many request threads at once; each result must equal the single-thread one.
TEST_CASE("one ChatTemplate and one Tokenizer serve prompt building on many threads",
          "[tsan][chat]") {
  const auto root = shared_data_dir();
  auto vocab = load_hf_tokenizer(root / "tokenizers/qwen2.5-0.5b");
  REQUIRE(vocab.ok());
  const Tokenizer tok = Tokenizer::create(std::move(*vocab)).value();
  const auto config =
      nlohmann::json::parse(read_text(root / "chat-templates/Qwen--Qwen2.5-0.5B-Instruct/"
                                             "tokenizer_config.json"));
  const ChatTemplate tmpl =
      ChatTemplate::parse(config["chat_template"].get<std::string>(), "qwen").value();
  const auto chat = [&](int i) -> std::vector<std::int32_t> {
    const std::string messages =
        fmt::format(R"([{{"role": "user", "content": "Question {} about code?"}}])", i);
    auto p = render_chat(tok, tmpl, messages, {.add_generation_prompt = true});
    return p.ok() ? p->tokens : std::vector<std::int32_t>{};
  };
  const auto infill = [&](int i) -> std::vector<std::int32_t> {
    auto builder = InfillPromptBuilder::create(tok);
    if (!builder.ok()) return {};
    InfillRequest rq;
    rq.prefix = fmt::format("int f{}() {{\n  return ", i);
    rq.suffix = ";\n}\n";
    rq.extra = {{"a.hpp", "int g();\n"}};
    std::vector<std::int32_t> ids;
    for (int k = 0; k < 3; ++k) {  // rebuilds, as per keystroke, hit the builder's caches
      rq.prefix += "x";
      auto p = builder->build(rq);
      if (!p.ok()) return {};
      ids = p->ids;
    }
    return ids;
  };
  constexpr int kThreads = 4;
  std::vector<std::vector<std::int32_t>> chat_alone, infill_alone;
  for (int i = 0; i < kThreads; ++i) {
    chat_alone.push_back(chat(i));
    infill_alone.push_back(infill(i));
    REQUIRE(!chat_alone.back().empty());
    REQUIRE(!infill_alone.back().empty());
  }
  std::vector<std::vector<std::int32_t>> chat_together(kThreads), infill_together(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      chat_together[i] = chat(i);
      infill_together[i] = infill(i);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(chat_together == chat_alone);
  CHECK(infill_together == infill_alone);
}

}  // namespace qlm::test
