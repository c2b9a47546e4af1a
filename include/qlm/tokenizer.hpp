// Tokenizer: text <-> token ids for SentencePiece-style and byte-level BPE vocabularies.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qlm/error.hpp"

namespace qlm {

struct Vocabulary;  // qlm/tokenizer/vocabulary.hpp: what a .qlm file stores
namespace detail {
struct TokenizerAccess;  // src/tokenizer/access.hpp: the library's own encoding variants
}

/// Options of Tokenizer::encode().
struct EncodeOptions {
  bool add_special = true;    ///< add BOS/EOS as the vocabulary's add_bos/add_eos say
  bool parse_special = true;  ///< match special added tokens written in the text as tokens
};

/// An immutable tokenizer. Copies share state; all const members are safe to call concurrently.
class Tokenizer {
 public:
  /// Validates `vocab` and builds the lookup tables (compiles regexes, indexes merges).
  static Result<Tokenizer> create(Vocabulary vocab);

  /// Token ids of `text`. Any byte string is accepted; invalid UTF-8 is tokenised byte-wise. Fails
  /// only when memory runs out or the pre-tokenizer's regex engine gives up (e.g. its match limit).
  Result<std::vector<std::int32_t>> encode(std::string_view text, EncodeOptions opts = {}) const;

  /// The bytes that `ids` stand for. Out-of-range ids decode to nothing. The result is not
  /// necessarily valid UTF-8 (byte pieces are emitted raw, so decode(encode(s)) can equal s).
  std::string decode(std::span<const std::int32_t> ids, bool skip_special = false) const;

  /// The piece of `id` exactly as in the vocabulary ("" when out of range).
  std::string_view piece(std::int32_t id) const;

  /// Number of tokens (valid ids are 0 .. size()-1).
  std::int32_t size() const;
  std::int32_t bos() const;  ///< BOS id or -1
  std::int32_t eos() const;  ///< EOS id or -1
  /// True when `id` ends generation (EOS, <|im_end|>, … as listed in the vocabulary).
  bool is_end_of_generation(std::int32_t id) const;
  /// True for control/special tokens that decode(skip_special = true) drops.
  bool is_special(std::int32_t id) const;
  /// The vocabulary this tokenizer was built from.
  const Vocabulary& vocabulary() const;

  /// Shared immutable state (src/tokenizer/tokenizer.cpp).
  struct Impl;

 private:
  friend class TokenStreamDecoder;
  friend struct detail::TokenizerAccess;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

/// Incremental decoding for streaming generation: feed ids one at a time and get the text that
/// is complete so far. Concatenating every push() and the final flush() equals decode(all ids).
class TokenStreamDecoder {
 public:
  /// Keeps a reference-counted handle to the tokenizer's state.
  explicit TokenStreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);

  /// Takes `ids` as context already shown (e.g. the prompt) without returning their text, so that
  /// pushes continue it exactly: decode(context) + pushed text == decode(context + pushed ids)
  /// (a continuation keeps the leading space a text's first token would lose).
  void skip(std::span<const std::int32_t> ids);
  /// Text completed by `id`; holds back a trailing incomplete UTF-8 character.
  std::string push(std::int32_t id);
  /// Whatever is still held back (an incomplete character at the end), raw; resets the state.
  std::string flush();

 private:
  std::shared_ptr<const Tokenizer::Impl> impl_;
  bool skip_special_;
  bool any_token_ = false;  ///< for the dummy-prefix rule (Vocabulary::decode_strip)
  bool any_text_ = false;
  std::string pending_;  ///< bytes of an incomplete UTF-8 character
};

}  // namespace qlm
