// The generation loop over one Session; the text of each token comes from a GenerationStream.
#include "qlm/generate.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "generate_stream.hpp"
#include "util/fail.hpp"

namespace qlm {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

Result<GenerateResult> generate(Session& session, Sampler& sampler,
                                std::span<const std::int32_t> prompt,
                                const GenerateOptions& options) {
  return detail::capture([&] {
    if (prompt.empty() && session.pending().empty()) {
      detail::fail(ErrorCode::InvalidArgument, "generate: empty prompt (start from [BOS])");
    }
    detail::check_top_logprobs(options, "generate");
    const Tokenizer& tok = session.model().tokenizer();
    GenerateResult res;
    std::vector<TokenLogprob> top;
    res.stats.prompt_tokens = session.pending().size() + prompt.size();
    // The text continues what the session holds, so the decoder starts from there.
    detail::GenerationStream stream(tok, options);
    stream.skip(session.tokens());
    stream.skip(session.pending());
    stream.skip(prompt);
    for (std::int32_t t : prompt) sampler.accept(t);

    const auto t0 = Clock::now();
    std::span<const float> logits = detail::unwrap(session.eval(prompt));
    res.stats.prompt_seconds = seconds_since(t0);

    const auto vocab = std::min<std::size_t>(logits.size(), static_cast<std::size_t>(tok.size()));
    Clock::time_point gen_start = Clock::now();
    for (std::int32_t n = 0; n < options.max_tokens; ++n) {
      // Models may have more logits than tokens (Qwen2.5: 151936 vs 151665); ids past the
      // vocabulary stand for nothing, so only real tokens are candidates.
      const std::int32_t id = detail::unwrap(sampler.sample(logits.first(vocab)));
      const float logprob = detail::log_softmax_top(
          logits.first(vocab), id, static_cast<std::size_t>(options.top_logprobs), top);
      sampler.accept(id);
      if (n == 0) {
        res.stats.time_to_first_token = seconds_since(t0);
        gen_start = Clock::now();
      }
      res.tokens.push_back(id);
      res.logprobs.push_back(logprob);
      const bool full = session.position() >= session.context_size();  // no room to eval `id`
      const auto step = stream.push(id, full || n + 1 == options.max_tokens);
      const StopReason reason = step.reason(full);
      if (options.on_token &&
          !detail::call_back("on_token", options.on_token,
                             GeneratedToken{id, step.text, logprob, top, step.last, reason})) {
        res.stop = StopReason::Cancelled;
        break;
      }
      if (step.last) {
        res.stop = reason;
        break;
      }
      logits = detail::unwrap(session.eval({&id, 1}));
    }
    // The last sampled token is part of the sequence; the next call evaluates it (unless full).
    if (!res.tokens.empty() && session.position() < session.context_size()) {
      detail::unwrap(session.defer(res.tokens.back()));
    }
    res.text = std::move(stream.text());
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
  auto kept = session.truncate(static_cast<std::uint32_t>(common));
  if (!kept) return kept.error();
  common = *kept;  // fewer when a sliding window's keys were let go
  auto result = generate(session, sampler, sequence.subspan(common), options);
  if (result) result->stats.reused_tokens = std::min(common, held.size());
  return result;
}

}  // namespace qlm
