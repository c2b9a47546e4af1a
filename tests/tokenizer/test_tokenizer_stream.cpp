// Streaming decoder, decode edge cases, thread safety and encoding speed.
#include <atomic>
#include <optional>
#include <thread>

#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"
#include "tokenizer/reference_util.hpp"

namespace qlm::test {
namespace {

Tokenizer load(std::string_view sub) {
  auto v = load_hf_tokenizer(shared_dir() / sub);
  REQUIRE(v.ok());
  auto t = Tokenizer::create(std::move(v).value());
  REQUIRE(t.ok());
  return std::move(t).value();
}

}  // namespace

TEST_CASE("stream decoder holds back split UTF-8 characters", "[tokenizer]") {
  const Tokenizer tok = load("models/stories260K");
  // stories260K has no CJK or emoji pieces: these become <0xNN> byte-fallback tokens.
  const std::string text = "A \xE4\xB8\xAD\xF0\x9F\x98\x80 b";  // "A 中😀 b"
  const auto ids = tok.encode(text, {.add_special = false}).value();
  TokenStreamDecoder stream(tok);
  std::vector<std::string> chunks;
  for (const std::int32_t id : ids) chunks.push_back(stream.push(id));
  chunks.push_back(stream.flush());
  std::string all;
  for (const std::string& c : chunks) {
    all += c;
    // No chunk may end inside a character.
    if (!c.empty()) {
      const auto last = static_cast<unsigned char>(c.back());
      CHECK((last < 0x80 || (last & 0xC0) == 0x80));
    }
  }
  CHECK(all == text);
  CHECK(all == tok.decode(ids));
  // Byte tokens emit nothing until the character completes.
  const std::int32_t e4 = 3 + 0xE4, b8 = 3 + 0xB8, ad = 3 + 0xAD;
  TokenStreamDecoder s2(tok);
  CHECK(s2.push(e4).empty());
  CHECK(s2.push(b8).empty());
  CHECK(s2.push(ad) == "\xE4\xB8\xAD");
  // An incomplete character at the end comes out raw on flush().
  CHECK(s2.push(e4).empty());
  CHECK(s2.flush() == "\xE4");
  // An impossible sequence is not held back.
  TokenStreamDecoder s3(tok);
  CHECK(s3.push(3 + 0xFF) == "\xFF");
}

TEST_CASE("SentencePiece decode drops only the dummy-prefix space", "[tokenizer]") {
  const Tokenizer tok = load("models/stories260K");
  const auto ids = tok.encode("Hello world").value();
  REQUIRE(ids.front() == 1);
  CHECK(tok.decode(ids) == "<s> Hello world");  // control pieces print unless skipped (HF)
  CHECK(tok.decode(ids, true) == "Hello world");
  TokenStreamDecoder stream(tok, true);
  std::string s;
  for (const std::int32_t id : ids) s += stream.push(id);
  CHECK(s == "Hello world");
  // A continuation stream (after flush) starts over.
  CHECK(stream.flush().empty());
}

TEST_CASE("tokenizer is usable from many threads", "[tokenizer]") {
  const Tokenizer tok = load("tokenizers/smollm2-135m");
  const auto corpus = load_corpus();
  std::vector<std::vector<std::int32_t>> expected;
  for (const std::string& s : corpus) expected.push_back(tok.encode(s).value());
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t i = t; i < corpus.size(); i += 2) {
        if (tok.encode(corpus[i]).value() != expected[i]) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad == 0);
}

TEST_CASE("100 KB of mixed text encodes whole and round-trips", "[tokenizer]") {
  const auto corpus = load_corpus();
  std::string text;
  while (text.size() < 100'000) {
    for (const std::string& s : corpus) text += s + "\n";
  }
  text.resize(100'000);
  for (const char* sub :
       {"tokenizers/qwen2.5-0.5b", "tokenizers/smollm2-135m", "models/stories260K"}) {
    const Tokenizer tok = load(sub);
    // Speed is measured by benchmarks, not asserted here (this machine is noisy).
    const auto ids = tok.encode(text).value();
    INFO(sub << ": " << ids.size() << " tokens");
    CHECK(ids.size() > 10'000);
    if (std::string_view(sub) == "tokenizers/smollm2-135m") CHECK(tok.decode(ids) == text);
  }
}

}  // namespace qlm::test

namespace qlm::test {

// Generated text must be exactly the continuation of the prompt, whatever the split point:
// decode(prompt) + streamed(rest) == decode(prompt + rest). SentencePiece's "no space at the start
// of a text" belongs to the start of the text, never to the start of the generated part.
TEST_CASE("a stream after skip() continues the context's text exactly", "[tokenizer]") {
  const auto corpus = load_corpus();
  struct Kind {
    const char* sub;
    std::optional<DecodeStrip> strip;  // overrides the vocabulary's rule, to cover every mode
  };
  for (const Kind kind : {Kind{"models/stories260K", std::nullopt},
                          Kind{"models/stories260K", DecodeStrip::FirstToken},
                          Kind{"tokenizers/smollm2-135m", std::nullopt},
                          Kind{"tokenizers/qwen2.5-0.5b", std::nullopt}}) {
    auto vocab = load_hf_tokenizer(shared_dir() / kind.sub).value();
    if (kind.strip) vocab.decode_strip = *kind.strip;
    const Tokenizer tok = Tokenizer::create(std::move(vocab)).value();
    int bad = 0, checked = 0;
    for (std::size_t i = 0; i < corpus.size(); i += 3) {
      const auto ids = tok.encode(corpus[i]).value();
      for (const bool skip_special : {true, false}) {
        for (std::size_t k = 0; k <= ids.size(); ++k) {
          const std::span<const std::int32_t> all(ids);
          TokenStreamDecoder stream(tok, skip_special);
          stream.skip(all.first(k));
          std::string text = tok.decode(all.first(k), skip_special);
          for (const std::int32_t id : all.subspan(k)) text += stream.push(id);
          text += stream.flush();
          ++checked;
          if (text != tok.decode(all, skip_special) && ++bad <= 5) {
            UNSCOPED_INFO(kind.sub << " split at " << k << " of " << show(corpus[i]) << ": "
                                   << show(text));
          }
        }
      }
    }
    INFO(kind.sub << ": " << bad << " of " << checked << " splits differ");
    CHECK(bad == 0);
    CHECK(checked > 1000);
  }
}

}  // namespace qlm::test
