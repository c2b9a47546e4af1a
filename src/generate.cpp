// The generation loop. Text is streamed through a TokenStreamDecoder (complete UTF-8 only) and a
// stop-string filter that holds back any tail that could still become a stop string.
#include "qlm/generate.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "util/fail.hpp"

namespace qlm {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

float log_softmax_at(std::span<const float> logits, std::int32_t id) {
  float max = logits[0];
  for (float v : logits) max = std::max(max, v);
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v - max));
  return static_cast<float>(logits[static_cast<std::size_t>(id)] - max - std::log(sum));
}

// Accumulates generated text and releases it once it can no longer turn into a stop string.
class StopFilter {
 public:
  explicit StopFilter(const std::vector<std::string>& stops) : stops_(stops) {
    for (const auto& s : stops_) longest_ = std::max(longest_, s.size());
  }

  /// Appends `piece`; returns the newly releasable text. Sets `hit` (and cuts the text before the
  /// stop string) when one appears.
  std::string push(std::string_view piece, bool& hit) {
    const std::size_t search_from = text_.size() > longest_ ? text_.size() - longest_ : 0;
    text_.append(piece);
    std::size_t cut = std::string::npos;
    for (const auto& s : stops_) {
      const std::size_t p = s.empty() ? std::string::npos : text_.find(s, search_from);
      cut = std::min(cut, p);
    }
    if (cut != std::string::npos) {
      hit = true;
      text_.resize(cut);
      return release(text_.size());
    }
    return release(text_.size() - held_back());
  }

  /// Releases whatever is still held back (generation ended without a stop string).
  std::string finish() { return release(text_.size()); }
  std::string& text() { return text_; }

 private:
  // Length of the longest suffix of the text that is a proper prefix of some stop string.
  std::size_t held_back() const {
    std::size_t best = 0;
    for (const auto& s : stops_) {
      const std::size_t max = s.empty() ? 0 : std::min(s.size() - 1, text_.size());
      for (std::size_t n = max; n > best; --n) {
        if (text_.compare(text_.size() - n, n, s, 0, n) == 0) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
  std::string release(std::size_t upto) {
    std::string out = upto > released_ ? text_.substr(released_, upto - released_) : "";
    released_ = std::max(released_, upto);
    return out;
  }

  const std::vector<std::string>& stops_;
  std::size_t longest_ = 0;
  std::string text_;
  std::size_t released_ = 0;
};

}  // namespace

Result<GenerateResult> generate(Session& session, Sampler& sampler,
                                std::span<const std::int32_t> prompt,
                                const GenerateOptions& options) {
  return detail::capture([&] {
    if (prompt.empty() && session.pending().empty()) {
      detail::fail(ErrorCode::InvalidArgument, "generate: empty prompt (start from [BOS])");
    }
    const Tokenizer& tok = session.model().tokenizer();
    GenerateResult res;
    res.stats.prompt_tokens = session.pending().size() + prompt.size();
    // The text continues what the session holds, so the decoder starts from there.
    TokenStreamDecoder decoder(tok, /*skip_special=*/true);
    decoder.skip(session.tokens());
    decoder.skip(session.pending());
    decoder.skip(prompt);
    for (std::int32_t t : prompt) sampler.accept(t);

    const auto t0 = Clock::now();
    std::span<const float> logits = detail::unwrap(session.eval(prompt));
    res.stats.prompt_seconds = seconds_since(t0);

    const auto vocab = std::min<std::size_t>(logits.size(), static_cast<std::size_t>(tok.size()));
    const auto is_stop_token = [&](std::int32_t id) {
      return (options.stop_at_end_of_generation && tok.is_end_of_generation(id)) ||
             std::find(options.stop_tokens.begin(), options.stop_tokens.end(), id) !=
                 options.stop_tokens.end();
    };
    StopFilter filter(options.stop);
    Clock::time_point gen_start = Clock::now();
    for (std::int32_t n = 0; n < options.max_tokens; ++n) {
      // Models may have more logits than tokens (Qwen2.5: 151936 vs 151665); ids past the
      // vocabulary stand for nothing, so only real tokens are candidates.
      const std::int32_t id = detail::unwrap(sampler.sample(logits.first(vocab)));
      const float logprob = log_softmax_at(logits, id);
      sampler.accept(id);
      if (n == 0) {
        res.stats.time_to_first_token = seconds_since(t0);
        gen_start = Clock::now();
      }
      res.tokens.push_back(id);
      res.logprobs.push_back(logprob);
      const bool end = is_stop_token(id);
      const bool full = session.position() >= session.context_size();  // no room to eval `id`
      const bool last = end || full || n + 1 == options.max_tokens;
      std::string piece = end ? std::string() : decoder.push(id);
      if (last) piece += decoder.flush();
      bool hit = false;
      std::string released = filter.push(piece, hit);
      if (last && !hit) released += filter.finish();
      if (options.on_token &&
          !detail::call_back("on_token", options.on_token, GeneratedToken{id, released, logprob})) {
        res.stop = StopReason::Cancelled;
        break;
      }
      if (last || hit) {
        res.stop = end    ? StopReason::EndOfGeneration
                   : hit  ? StopReason::StopString
                   : full ? StopReason::ContextFull
                          : StopReason::MaxTokens;
        break;
      }
      logits = detail::unwrap(session.eval({&id, 1}));
    }
    // The last sampled token is part of the sequence; the next call evaluates it (unless full).
    if (!res.tokens.empty() && session.position() < session.context_size()) {
      detail::unwrap(session.defer(res.tokens.back()));
    }
    res.text = std::move(filter.text());
    res.stats.generated_tokens = res.tokens.size();
    res.stats.generation_seconds = seconds_since(gen_start);
    return res;
  });
}

Result<GenerateResult> generate_continuing(Session& session, Sampler& sampler,
                                           std::span<const std::int32_t> sequence,
                                           const GenerateOptions& options) {
  if (sequence.empty()) {
    return Error{ErrorCode::InvalidArgument, "generate_continuing: empty sequence"};
  }
  const auto held = session.tokens();
  const auto pending = session.pending();
  std::size_t common = 0;
  while (common < sequence.size() && common < held.size() + pending.size() &&
         sequence[common] ==
             (common < held.size() ? held[common] : pending[common - held.size()])) {
    ++common;
  }
  // Logits come from evaluating something: a sequence held whole and evaluated gives up its last.
  if (common == sequence.size() && common <= held.size()) --common;
  if (auto ok = session.truncate(static_cast<std::uint32_t>(common)); !ok) return ok.error();
  auto result = generate(session, sampler, sequence.subspan(common), options);
  if (result) result->stats.reused_tokens = std::min(common, held.size());
  return result;
}

}  // namespace qlm
