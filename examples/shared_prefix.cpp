// Reusing a long shared prefix: one document is evaluated once, then several questions about it
// start from its cached KV pages, so each evaluates only its own few tokens.
// Usage: shared_prefix model.qlm document.txt "question one" "question two" ...
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <qlm/qlm.hpp>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s model.qlm document.txt question...\n", argv[0]);
    return 2;
  }
  auto model = qlm::Model::open(argv[1]);
  if (!model) {
    std::fprintf(stderr, "%s\n", model.error().message.c_str());
    return 1;
  }
  std::ifstream in(argv[2], std::ios::binary);
  const std::string document{std::istreambuf_iterator<char>(in), {}};
  const qlm::Tokenizer& tok = (*model)->tokenizer();
  auto engine = qlm::Engine::create(*model, {.threads = 2});
  if (!engine) {
    std::fprintf(stderr, "%s\n", engine.error().message.c_str());
    return 1;
  }
  for (int i = 3; i < argc; ++i) {
    auto prompt = tok.encode(document + "\n" + argv[i]);
    if (!prompt) return 1;
    prompt->insert(prompt->begin(), tok.bos());
    prompt->resize(std::min<std::size_t>(prompt->size(), engine->context_size() - 32));
    const auto t0 = std::chrono::steady_clock::now();
    const qlm::SequenceId seq = engine->add();
    // Takes whatever an earlier sequence left cached: all of the document after the first.
    const std::uint32_t cached = engine->reuse_prefix(seq, *prompt).value();
    const qlm::BatchItem item{seq, std::span(*prompt).subspan(cached)};
    auto logits = engine->eval({&item, 1});
    if (!logits) {
      std::fprintf(stderr, "%s\n", logits.error().message.c_str());
      return 1;
    }
    // Greedy: a few tokens, one eval each.
    qlm::Sampler greedy({.temperature = 0.0f});
    qlm::TokenStreamDecoder text(tok, /*skip_special=*/true);
    text.skip(*prompt);
    std::string answer;
    std::int32_t next = greedy.sample(logits->item(0)).value();
    const double ttft =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (int n = 0; n < 24 && !tok.is_end_of_generation(next); ++n) {
      answer += text.push(next);
      const qlm::BatchItem step{seq, std::span(&next, 1)};
      auto l = engine->eval({&step, 1});
      if (!l) break;
      next = greedy.sample(l->item(0)).value();
    }
    answer += text.flush();
    std::printf(
        "question %d: %zu prompt tokens, %u from the cache, first token after %.1f ms\n%s\n\n",
        i - 2, prompt->size(), cached, 1e3 * ttft, answer.c_str());
    (void)engine->remove(seq);  // its pages stay cached for the next question
  }
  return 0;
}
