// Fill-in-the-middle (FIM) prompts for code models: the text around the cursor, and context from
// other files, in the model's FIM format and within a token budget (docs/chat.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qlm/error.hpp"
#include "qlm/tokenizer.hpp"

namespace qlm {

/// Another file given as context, e.g. an open editor tab.
struct InfillChunk {
  std::string filename{};
  std::string text{};  ///< used as is: end it with '\n' as files do
};

/// The order of the prefix and suffix parts.
enum class InfillOrder : std::uint8_t {
  PrefixSuffixMiddle,  ///< PSM: <PRE>prefix<SUF>suffix<MID>typed (Qwen2.5-Coder, StarCoder, ...)
  SuffixPrefixMiddle,  ///< SPM: <SUF>suffix<PRE>prefix<MID>typed (llama.cpp's --spm-infill)
};

/// What to fill in. Every string is plain text: special and FIM tokens spelled in it are encoded
/// as text, never as those tokens, so file contents cannot inject control tokens.
struct InfillRequest {
  std::string prefix{};    ///< the text before the cursor (cut at its beginning when too long)
  std::string suffix{};    ///< the text after the cursor (cut at its end when too long)
  std::string typed{};     ///< middle text already typed: placed after the middle token, never cut
  std::string filename{};  ///< the current file; used only if the vocabulary has a file separator
  /// The repository; used only if the vocabulary has a repo-name token ("" = no repo line).
  std::string repo_name{};
  std::vector<InfillChunk> extra{};  ///< context from other files, oldest first (dropped first)
};

/// Layout and budget of an infill prompt.
struct InfillOptions {
  /// The most tokens the prompt may have, BOS and FIM tokens included (leave room for the answer).
  std::int32_t max_tokens = 4096;
  /// The most tokens prefix and suffix may take together, so that some of the budget is left for
  /// extra chunks; 0 = no such cap.
  std::int32_t max_local_tokens = 0;
  InfillOrder order = InfillOrder::PrefixSuffixMiddle;
};

/// A built infill prompt.
struct InfillPrompt {
  /// The prompt as text, FIM tokens spelled out (for display, e.g. --dump-prompt): the given
  /// strings, except that a cut prefix or suffix is the decoding of the tokens kept.
  std::string text;
  std::vector<std::int32_t> ids;  ///< what to feed the model; never more than max_tokens
  /// Ids that end an infill answer: the vocabulary's end-of-generation ids, then its FIM pad,
  /// repo-name and file-separator tokens (as llama.cpp does).
  std::vector<std::int32_t> end_ids;
  std::size_t prefix_tokens_cut = 0;  ///< tokens dropped from the beginning of the prefix
  std::size_t suffix_tokens_cut = 0;  ///< tokens dropped from the end of the suffix
  std::size_t chunks_dropped = 0;     ///< extra chunks left out (the oldest ones)
};

/// Builds an infill prompt. Fails with ErrorCode::Unsupported if the vocabulary lacks a FIM
/// prefix, suffix or middle token, and with ErrorCode::InvalidArgument if max_tokens is below 1
/// or too small for what is never cut (BOS, FIM tokens, typed text, repo and file-name lines).
Result<InfillPrompt> build_infill_prompt(const Tokenizer& tokenizer, const InfillRequest& request,
                                         const InfillOptions& options = {});

/// How much tokenized text an InfillPromptBuilder keeps (least recently used goes first).
struct InfillCacheLimits {
  std::size_t max_entries = 256;                  ///< texts (chunks, suffixes, names) kept
  std::size_t max_bytes = std::size_t{64} << 20;  ///< their text and ids together
  /// Pre-tokenized words whose BPE result is remembered (emptied when full); this is what makes
  /// re-tokenizing the changed prefix cheap.
  std::size_t max_words = std::size_t{1} << 16;
};

/// Builds infill prompts again and again as the user types, keeping the tokenization of texts
/// that rarely change (extra chunks, suffix, names) keyed by their text, so a rebuild after one
/// keystroke costs about one tokenization of the prefix. Gives exactly what build_infill_prompt
/// gives. Not thread-safe: use one builder per thread (they may share the Tokenizer).
class InfillPromptBuilder {
 public:
  /// Fails like build_infill_prompt when the vocabulary has no FIM tokens.
  static Result<InfillPromptBuilder> create(const Tokenizer& tokenizer, InfillOptions options = {},
                                            InfillCacheLimits limits = {});

  Result<InfillPrompt> build(const InfillRequest& request);

  const InfillOptions& options() const;
  /// Fails (keeping the old options) when `options` is invalid.
  Result<void> set_options(const InfillOptions& options);
  std::size_t cached_entries() const;  ///< texts whose tokens are kept
  std::size_t cached_bytes() const;
  void clear_cache();

  InfillPromptBuilder(InfillPromptBuilder&&) noexcept;
  InfillPromptBuilder& operator=(InfillPromptBuilder&&) noexcept;
  ~InfillPromptBuilder();

  struct State;  ///< src/chat/infill.cpp

 private:
  explicit InfillPromptBuilder(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace qlm
