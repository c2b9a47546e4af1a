// generate(): the prompt -> tokens loop with streaming callbacks, stop conditions and timings.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qlm/error.hpp"
#include "qlm/sampler.hpp"
#include "qlm/session.hpp"

namespace qlm {

/// Why generation ended.
enum class StopReason : std::uint8_t {
  MaxTokens,        ///< produced GenerateOptions::max_tokens tokens
  EndOfGeneration,  ///< sampled an end-of-generation token (EOS, <|im_end|>, …)
  StopString,       ///< the text reached one of GenerateOptions::stop
  Cancelled,        ///< on_token returned false
  ContextFull,      ///< the session's context is full
};

/// A token and its log-probability under the model's (unmodified) distribution.
struct TokenLogprob {
  std::int32_t id = 0;
  float logprob = 0.0f;
};

/// One generated token, as handed to the callback.
struct GeneratedToken {
  std::int32_t id = 0;
  std::string_view text;  ///< text released by this token (may be empty: partial UTF-8, or held
                          ///< back because it could be the start of a stop string)
  float logprob = 0.0f;   ///< log-probability of `id` under the model's (unmodified) distribution
  /// The GenerateOptions::top_logprobs most likely tokens at this step, most likely first (ties:
  /// lower id first); valid during the callback only.
  std::span<const TokenLogprob> top{};
  /// Generation ends with this token (unless the callback stops it first), for `stop`.
  bool last = false;
  StopReason stop = StopReason::MaxTokens;  ///< why it ends, when `last`
};

/// The most alternatives GenerateOptions::top_logprobs may ask for (OpenAI's limit).
inline constexpr std::int32_t kMaxTopLogprobs = 20;

/// Generation settings.
struct GenerateOptions {
  std::int32_t max_tokens = 128;    ///< upper bound on generated tokens
  std::vector<std::string> stop{};  ///< stop strings; never part of the returned text
  bool stop_at_end_of_generation = true;
  /// More ids that end generation like EOS (e.g. an infill prompt's FIM end tokens), honoured
  /// even when stop_at_end_of_generation is false.
  std::vector<std::int32_t> stop_tokens{};
  /// Alternatives reported with each token (GeneratedToken::top), 0 to kMaxTopLogprobs.
  std::int32_t top_logprobs = 0;
  /// Called after each token; return false to stop (StopReason::Cancelled). Optional.
  std::function<bool(const GeneratedToken&)> on_token{};
};

/// Timings and counts of one generate() call.
struct GenerateStats {
  std::size_t prompt_tokens = 0;  ///< evaluated before the first sample (pending included)
  std::size_t reused_tokens = 0;  ///< generate_continuing: evaluated tokens kept from the session
  double prompt_seconds = 0.0;    ///< evaluating the prompt
  std::size_t generated_tokens = 0;
  double generation_seconds = 0.0;  ///< after the first token
  double time_to_first_token = 0.0;
};

/// What generate() produced.
struct GenerateResult {
  std::string text;                  ///< the generated text (stop string excluded)
  std::vector<std::int32_t> tokens;  ///< generated ids
  std::vector<float> logprobs;       ///< per generated token
  StopReason stop = StopReason::MaxTokens;
  GenerateStats stats;
};

/// Evaluates the session's pending token and `prompt` (pass [BOS] to start from nothing; empty
/// only to go on from a pending token), then samples until a stop condition. The text is exactly
/// the continuation of everything in the session: decode(before) + text == decode(before +
/// tokens). The last sampled token is left pending (Session::defer), so chained calls (the next
/// chat turn) see every token without a single call paying a forward pass for its last one.
Result<GenerateResult> generate(Session& session, Sampler& sampler,
                                std::span<const std::int32_t> prompt,
                                const GenerateOptions& options = {});

/// Generates a continuation of `sequence`, the whole token sequence so far (e.g. a conversation
/// rendered again for its next turn): the session keeps the longest prefix of it that it already
/// holds, evaluated or pending, and evaluates only the rest (at least one token).
Result<GenerateResult> generate_continuing(Session& session, Sampler& sampler,
                                           std::span<const std::int32_t> sequence,
                                           const GenerateOptions& options = {});

}  // namespace qlm
