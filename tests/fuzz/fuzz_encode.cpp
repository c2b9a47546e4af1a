// Arbitrary bytes through real tokenizers (SmolLM2's byte-level BPE, stories260K's SentencePiece,
// Qwen2.5's with NFC normalization): encode, decode, stream-decode. Properties: every id is in
// range, and the stream decoder's pieces add up to decode().
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"

namespace {

// Loaded once, before the first input: building three real tokenizers under ASan takes seconds,
// which must not count against the per-input timeout.
std::vector<qlm::Tokenizer> load_all() {
  std::vector<qlm::Tokenizer> out;
  const char* shared = std::getenv("QLM_SHARED_DIR");
  const std::filesystem::path root = shared ? shared : QLM_SHARED_DIR;
  for (const char* dir :
       {"tokenizers/smollm2-135m", "models/stories260K", "tokenizers/qwen2.5-0.5b"}) {
    auto vocab = qlm::load_hf_tokenizer(root / dir);
    if (!vocab.ok()) std::abort();  // the shared data is missing: nothing to fuzz
    auto tok = qlm::Tokenizer::create(std::move(*vocab));
    if (!tok.ok()) std::abort();
    out.push_back(std::move(*tok));
  }
  return out;
}

const std::vector<qlm::Tokenizer>* g_tokenizers = nullptr;  // set once by the initializer

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  static const std::vector<qlm::Tokenizer> tokenizers = load_all();
  g_tokenizers = &tokenizers;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<qlm::Tokenizer>& tokenizers = *g_tokenizers;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const qlm::Tokenizer& tok : tokenizers) {
    for (const bool special : {false, true}) {
      auto ids = tok.encode(text, {.add_special = special, .parse_special = special});
      if (!ids.ok()) continue;
      for (std::int32_t id : *ids) {
        if (id < 0 || id >= tok.size()) std::abort();
      }
      const std::string whole = tok.decode(*ids);
      qlm::TokenStreamDecoder stream(tok);
      std::string pieces;
      for (std::int32_t id : *ids) pieces += stream.push(id);
      pieces += stream.flush();
      if (pieces != whole) std::abort();
    }
  }
  return 0;
}
