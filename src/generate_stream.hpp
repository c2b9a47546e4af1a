// GenerationStream: the text of a generation, token by token: a TokenStreamDecoder (complete
// UTF-8 only), the end-of-generation test and a stop-string filter that holds back any tail that
// could still become a stop string. Shared by generate() and the Scheduler.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qlm/generate.hpp"
#include "qlm/tokenizer.hpp"

namespace qlm::detail {

/// log p(id) under softmax(logits), in double precision.
float log_softmax_at(std::span<const float> logits, std::int32_t id);

/// log p(id), and the `k` most likely tokens with theirs in `top` (most likely first, ties by
/// lower id), with one pass for the normalizer.
float log_softmax_top(std::span<const float> logits, std::int32_t id, std::size_t k,
                      std::vector<TokenLogprob>& top);

/// Fails with InvalidArgument when options.top_logprobs is outside [0, kMaxTopLogprobs].
void check_top_logprobs(const GenerateOptions& options, const char* where);

/// Accumulates generated text and releases it once it can no longer turn into a stop string.
class StopFilter {
 public:
  explicit StopFilter(std::vector<std::string> stops);
  /// Appends `piece`; returns the newly releasable text. Sets `hit` (and cuts the text before the
  /// stop string) when one appears.
  std::string push(std::string_view piece, bool& hit);
  /// Releases whatever is still held back (generation ended without a stop string).
  std::string finish() { return release(text_.size()); }
  std::string& text() { return text_; }

 private:
  std::size_t held_back() const;
  std::string release(std::size_t upto);

  std::vector<std::string> stops_;
  std::size_t longest_ = 0;
  std::string text_;
  std::size_t released_ = 0;
};

/// One generation's text and stop conditions (max_tokens and the context are the caller's).
class GenerationStream {
 public:
  GenerationStream(const Tokenizer& tokenizer, const GenerateOptions& options);
  /// Takes `ids` as text already shown (the sequence so far), so pushes continue it exactly.
  void skip(std::span<const std::int32_t> ids) { decoder_.skip(ids); }

  struct Step {
    std::string text;          ///< text released by this token
    bool end = false;          ///< an end-of-generation or stop token
    bool stop_string = false;  ///< a stop string appeared (the text is cut before it)
    bool last = false;         ///< generation ends with this token
    /// Why generation ends here, when `last`; `full`: the context has no room for another token.
    StopReason reason(bool full) const {
      return end           ? StopReason::EndOfGeneration
             : stop_string ? StopReason::StopString
             : full        ? StopReason::ContextFull
                           : StopReason::MaxTokens;
    }
  };
  /// Takes the next sampled token; `no_more`: the caller will not sample another (max_tokens
  /// reached, context full), so everything held back is released.
  Step push(std::int32_t id, bool no_more);
  /// All text so far, stop string excluded.
  std::string& text() { return filter_.text(); }

 private:
  bool is_stop_token(std::int32_t id) const;

  const Tokenizer& tokenizer_;
  bool stop_at_eog_;
  std::vector<std::int32_t> stop_tokens_;
  TokenStreamDecoder decoder_;
  StopFilter filter_;
};

}  // namespace qlm::detail
