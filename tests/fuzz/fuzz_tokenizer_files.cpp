// The tokenizer files of a Hugging Face model directory. The first byte picks the layout, the
// rest is one file or two (split at kFileSeparator):
//   0: tokenizer.json [+ tokenizer_config.json]     1: vocab.json + merges.txt
//   2: tokenizer.model (SentencePiece protobuf) [+ tokenizer_config.json]
//   3: a small fixed tokenizer.json + tokenizer_config.json [+ added_tokens.json]
// Whatever loads is then built into a Tokenizer (regexes compiled) and used once.
#include <span>

#include "fuzz_util.hpp"
#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"
#include "qlm/tokenizer/vocabulary.hpp"

namespace {

constexpr std::string_view kSmallTokenizer = R"({"model": {"type": "BPE", "vocab": {"a": 0,
  "b": 1, "ab": 2, "<s>": 3, "</s>": 4}, "merges": ["a b"]}, "added_tokens": [{"id": 3,
  "content": "<s>", "special": true}, {"id": 4, "content": "</s>", "special": true}],
  "pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"}})";

std::span<const std::uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  namespace fs = std::filesystem;
  const fs::path dir = qlm::fuzz::work_dir() / "tok";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto [first, second] = qlm::fuzz::split({data + 1, size - 1}, qlm::fuzz::kFileSeparator);
  switch (data[0] % 4) {
    case 0:
      (void)qlm::fuzz::write_file("tok/tokenizer.json", first);
      if (!second.empty()) (void)qlm::fuzz::write_file("tok/tokenizer_config.json", second);
      break;
    case 1:
      (void)qlm::fuzz::write_file("tok/vocab.json", first);
      (void)qlm::fuzz::write_file("tok/merges.txt", second);
      break;
    case 2:
      (void)qlm::fuzz::write_file("tok/tokenizer.model", first);
      if (!second.empty()) (void)qlm::fuzz::write_file("tok/tokenizer_config.json", second);
      break;
    default:
      (void)qlm::fuzz::write_file("tok/tokenizer.json", bytes(kSmallTokenizer));
      (void)qlm::fuzz::write_file("tok/tokenizer_config.json", first);
      if (!second.empty()) (void)qlm::fuzz::write_file("tok/added_tokens.json", second);
      break;
  }
  auto vocab = qlm::load_hf_tokenizer(dir);
  if (!vocab.ok()) return 0;
  auto tok = qlm::Tokenizer::create(std::move(*vocab));
  if (!tok.ok()) return 0;
  if (auto ids = tok->encode("Hello, world! <s> 123"); ids.ok()) (void)tok->decode(*ids);
  return 0;
}
