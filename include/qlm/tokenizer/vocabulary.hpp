// Vocabulary: the self-contained tokenizer description that a .qlm file stores (docs/tokenizer.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qlm/error.hpp"
#include "qlm/format/metadata.hpp"

namespace qlm {

/// Which BPE flavour the vocabulary uses; it also fixes how pieces decode to bytes.
enum class TokenizerModel : std::uint8_t {
  SentencePieceBpe = 0,  ///< pieces are text with ' ' as "▁"; <0xNN> byte-fallback pieces
  ByteLevelBpe = 1,      ///< GPT-2 style: every byte is mapped to a printable code point
};

/// Token kinds, numbered as in SentencePiece's ModelProto so that values can be copied verbatim.
enum class TokenType : std::uint8_t {
  Normal = 1,
  Unknown = 2,
  Control = 3,      ///< special tokens such as <s>, <|im_end|>; never produced from plain text
  UserDefined = 4,  ///< added tokens that are not special; decode to their text verbatim
  Unused = 5,
  Byte = 6,  ///< <0xNN> byte-fallback piece
};

/// One text normalisation step, applied in order to each segment between added tokens.
enum class NormalizerKind : std::uint8_t {
  Nfc = 0,             ///< Unicode NFC composition (Qwen2)
  Prepend = 1,         ///< prepend `arg` to a non-empty segment (SentencePiece dummy prefix)
  Replace = 2,         ///< replace every occurrence of the literal `arg` with `replacement`
  CollapseSpaces = 3,  ///< SentencePiece remove_extra_whitespaces: trim, squeeze ' ' runs
};

/// A normaliser step; `arg`/`replacement` are used by Prepend and Replace only.
struct NormalizerStep {
  NormalizerKind kind = NormalizerKind::Nfc;
  std::string arg;
  std::string replacement;
  friend bool operator==(const NormalizerStep&, const NormalizerStep&) = default;
};

/// Pre-tokeniser step kinds, mirroring Hugging Face tokenizers' pre_tokenizers.
enum class PreTokenizerKind : std::uint8_t {
  Split = 0,      ///< split on a PCRE2 regex (`pattern`) with `behavior` / `invert`
  Digits = 1,     ///< isolate runs of \p{N} (single digits when individual_digits)
  ByteLevel = 2,  ///< optional prefix space, optional GPT-2 regex split (bytes mapped later)
  Metaspace = 3,  ///< ' ' -> `pattern` (the replacement, "▁"), prepend per `prepend_scheme`
};

/// What happens to the matched delimiter of a Split step (Hugging Face's SplitDelimiterBehavior).
enum class SplitBehavior : std::uint8_t {
  Isolated = 0,
  Removed = 1,
  MergedWithPrevious = 2,
  MergedWithNext = 3,
  Contiguous = 4,
};

/// How decoding drops the space that stands for encoding's dummy prefix ("▁" at the start).
enum class DecodeStrip : std::uint8_t {
  None = 0,
  WhileEmpty = 1,  ///< SentencePiece: drop a piece's leading space while the output is empty
  FirstToken = 2,  ///< HF Strip / Metaspace decoders: drop the first token's leading space
};

/// When a Metaspace step prepends its replacement character.
enum class PrependScheme : std::uint8_t { Always = 0, Never = 1, First = 2 };

/// One pre-tokeniser step; fields that do not apply to `kind` keep their defaults.
struct PreTokenizerStep {
  PreTokenizerKind kind = PreTokenizerKind::Split;
  std::string pattern;  ///< Split: PCRE2 pattern (UTF + UCP); Metaspace: replacement string
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool individual_digits = false;  ///< Digits
  bool add_prefix_space = false;   ///< ByteLevel
  bool use_regex = false;          ///< ByteLevel: also split with the GPT-2 regex
  PrependScheme prepend_scheme = PrependScheme::Always;  ///< Metaspace
  bool split = false;                                    ///< Metaspace: split at the replacement
  friend bool operator==(const PreTokenizerStep&, const PreTokenizerStep&) = default;
};

/// A token matched as a whole in the input before normal tokenisation (HF AddedToken).
struct AddedToken {
  std::int32_t id = 0;
  std::string content;       ///< equals Vocabulary::tokens[id]
  bool special = false;      ///< skipped by decode(skip_special); not matched if !parse_special
  bool lstrip = false;       ///< the match also swallows whitespace on its left
  bool rstrip = false;       ///< the match also swallows whitespace on its right
  bool normalized = false;   ///< matched in the normalised text rather than the raw input
  bool single_word = false;  ///< stored for fidelity; matching ignores it (docs/tokenizer.md)
  friend bool operator==(const AddedToken&, const AddedToken&) = default;
};

/// The fill-in-the-middle (FIM) tokens of a vocabulary by role; -1 = the vocabulary has none.
/// Found by their spelling (detect_fim_tokens; the spellings are listed in docs/chat.md).
struct FimTokens {
  std::int32_t prefix = -1;  ///< <|fim_prefix|>, <fim_prefix>, <｜fim▁begin｜>, <PRE>, <|fim_pre|>
  std::int32_t suffix = -1;  ///< <|fim_suffix|>, <fim_suffix>, <｜fim▁hole｜>, <SUF>, <|fim_suf|>
  std::int32_t middle = -1;  ///< <|fim_middle|>, <fim_middle>, <｜fim▁end｜>, <MID>, <|fim_mid|>
  std::int32_t pad = -1;     ///< <|fim_pad|>, <fim_pad>
  std::int32_t repo_name = -1;  ///< <|repo_name|>, <repo_name>, <reponame>
  std::int32_t file_sep = -1;   ///< <|file_sep|>, <file_sep>
  /// True when the vocabulary can express an infill prompt (prefix, suffix and middle exist).
  bool has_infill() const { return prefix >= 0 && suffix >= 0 && middle >= 0; }
  friend bool operator==(const FimTokens&, const FimTokens&) = default;
};

/// Everything a Tokenizer needs, as stored in a .qlm file. Plain data; validated by
/// Tokenizer::create() and load_vocabulary().
/// A chat template stored under a name besides the default one (e.g. "tool_use", "rag").
struct NamedChatTemplate {
  std::string name;
  std::string source;  ///< Jinja
  friend bool operator==(const NamedChatTemplate&, const NamedChatTemplate&) = default;
};

struct Vocabulary {
  TokenizerModel model = TokenizerModel::SentencePieceBpe;
  std::vector<std::string> tokens;  ///< id -> piece exactly as in the source vocabulary
  std::vector<float> scores;        ///< id -> score (merge priority when `merges` is empty)
  std::vector<TokenType> types;     ///< id -> type
  /// Merges by rank as (left id, right id); the result is the token spelled left+right.
  /// Empty for SentencePiece models, which merge by score.
  std::vector<std::pair<std::int32_t, std::int32_t>> merges;
  bool byte_fallback = false;  ///< unknown characters become <0xNN> pieces
  bool ignore_merges = false;  ///< a whole pre-token found in the vocabulary is used as is
  std::vector<NormalizerStep> normalizer;
  std::vector<PreTokenizerStep> pre_tokenizer;
  DecodeStrip decode_strip = DecodeStrip::None;
  std::vector<AddedToken> added_tokens;
  std::int32_t bos_id = -1;  ///< -1: none
  std::int32_t eos_id = -1;
  std::int32_t unk_id = -1;
  std::int32_t pad_id = -1;
  bool add_bos = false;
  bool add_eos = false;
  std::vector<std::int32_t> eos_ids;  ///< ids that end generation (eos plus e.g. <|im_end|>)
  std::string chat_template;          ///< the default Jinja chat template, or empty
  /// Named templates besides the default, in the order the model lists them.
  std::vector<NamedChatTemplate> chat_templates;
  friend bool operator==(const Vocabulary&, const Vocabulary&) = default;
  FimTokens fim;  ///< fill-in-the-middle roles ("tokenizer.fim.*"; detected on load if absent)
};

/// Finds the FIM tokens of `vocab` by their exact spelling. Per role, the first spelling in the
/// list of docs/chat.md that the vocabulary has wins (its lowest id if it occurs twice).
FimTokens detect_fim_tokens(const Vocabulary& vocab);

/// Writes `vocab` under the "tokenizer." keys of `meta` (replacing any that exist).
void store_vocabulary(const Vocabulary& vocab, format::Metadata& meta);

/// Reads and validates a Vocabulary from .qlm metadata; errors name `file` and the key.
Result<Vocabulary> load_vocabulary(const format::Metadata& meta, std::string_view file);

/// Checks a Vocabulary's internal consistency (lengths, ids in range, regexes aside);
/// `source` names where it came from in the error message.
Result<void> validate_vocabulary(const Vocabulary& vocab, std::string_view source);

}  // namespace qlm
