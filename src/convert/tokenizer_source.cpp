// Loads the checkpoint's tokenizer and stores it in the .qlm metadata, checked against the model.
#include "convert/tokenizer_source.hpp"

#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"
#include "qlm/tokenizer/vocabulary.hpp"
#include "util/fail.hpp"

namespace qlm {

void add_tokenizer(const std::filesystem::path& dir, const ModelConfig& config,
                   format::Metadata& meta, ConvertReport& report) {
  Vocabulary vocab = detail::unwrap(load_hf_tokenizer(dir));
  if (vocab.tokens.size() > config.vocab_size) {
    detail::fail(ErrorCode::Format,
                 "{}: the tokenizer has {} tokens but config.json's vocab_size is only {}",
                 dir.string(), vocab.tokens.size(), config.vocab_size);
  }
  report.notes.push_back(fmt::format(
      "tokenizer: {} tokens, {} merges, {} added tokens, {}", vocab.tokens.size(),
      vocab.merges.size(), vocab.added_tokens.size(),
      vocab.model == TokenizerModel::ByteLevelBpe ? "byte-level BPE" : "SentencePiece BPE"));
  store_vocabulary(vocab, meta);
  // Everything Model::open checks about a tokenizer (e.g. that its pre-tokenizer regexes
  // compile), checked before a byte is written, so no file is made that the loader refuses.
  (void)detail::unwrap(Tokenizer::create(std::move(vocab)));
}

}  // namespace qlm
