// Loads the checkpoint's tokenizer and stores it in the .qlm metadata, checked against the model.
#include "convert/tokenizer_source.hpp"

#include "qlm/chat_template.hpp"
#include "qlm/detail/read_file.hpp"
#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"
#include "qlm/tokenizer/vocabulary.hpp"
#include "util/fail.hpp"

namespace qlm {

namespace {

// A template that does not parse is refused when the user gives it, and reported (but kept, as
// transformers keeps it) when it comes with the checkpoint.
void check_template(const std::string& source, const std::string& name, bool strict,
                    ConvertReport& report) {
  auto parsed = ChatTemplate::parse(source, name);
  if (parsed) return;
  if (strict) detail::fail(parsed.error().code, "{}", parsed.error().message);
  report.notes.push_back(
      fmt::format("chat template does not parse (kept as is): {}", parsed.error().message));
}

void check_templates(const Vocabulary& vocab, const std::filesystem::path& override_file,
                     ConvertReport& report) {
  const bool overridden = !override_file.empty();
  std::string names;
  if (!vocab.chat_template.empty()) {
    check_template(vocab.chat_template, overridden ? override_file.string() : "chat_template",
                   overridden, report);
    names = overridden ? fmt::format("default (from {})", override_file.string()) : "default";
  }
  for (const NamedChatTemplate& t : vocab.chat_templates) {
    check_template(t.source, t.name, false, report);
    names += fmt::format("{}{}", names.empty() ? "" : ", ", t.name);
  }
  report.notes.push_back("chat templates: " + (names.empty() ? std::string("none") : names));
}

}  // namespace

void add_tokenizer(const std::filesystem::path& dir, const std::filesystem::path& chat_template,
                   const ModelConfig& config, format::Metadata& meta, ConvertReport& report) {
  Vocabulary vocab = detail::unwrap(load_hf_tokenizer(dir));
  if (!chat_template.empty()) {
    vocab.chat_template = detail::unwrap(
        detail::read_regular_file(chat_template, std::uint64_t{16} << 20, "chat template"));
  }
  check_templates(vocab, chat_template, report);
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
