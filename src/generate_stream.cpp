// GenerationStream and its stop-string filter.
#include "generate_stream.hpp"

#include <algorithm>
#include <cmath>

#include "util/fail.hpp"

namespace qlm::detail {

namespace {

// log(sum(exp(logits))), in double precision.
double log_normalizer(std::span<const float> logits) {
  float max = logits[0];
  for (float v : logits) max = std::max(max, v);
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v - max));
  return static_cast<double>(max) + std::log(sum);
}

}  // namespace

float log_softmax_at(std::span<const float> logits, std::int32_t id) {
  return static_cast<float>(logits[static_cast<std::size_t>(id)] - log_normalizer(logits));
}

float log_softmax_top(std::span<const float> logits, std::int32_t id, std::size_t k,
                      std::vector<TokenLogprob>& top) {
  top.clear();
  if (k == 0) return log_softmax_at(logits, id);
  const double norm = log_normalizer(logits);
  // Ranks by logit (NaN never ranks); a bounded heap keeps this one pass over the vocabulary.
  auto better = [](const TokenLogprob& a, const TokenLogprob& b) {
    return a.logprob > b.logprob || (a.logprob == b.logprob && a.id < b.id);
  };
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const float v = logits[i];
    if (std::isnan(v)) continue;
    const TokenLogprob c{static_cast<std::int32_t>(i), v};
    if (top.size() < k) {
      top.push_back(c);
      std::push_heap(top.begin(), top.end(), better);
    } else if (better(c, top.front())) {
      std::pop_heap(top.begin(), top.end(), better);
      top.back() = c;
      std::push_heap(top.begin(), top.end(), better);
    }
  }
  std::sort_heap(top.begin(), top.end(), better);
  for (auto& t : top) t.logprob = static_cast<float>(t.logprob - norm);
  return static_cast<float>(logits[static_cast<std::size_t>(id)] - norm);
}

void check_top_logprobs(const GenerateOptions& options, const char* where) {
  if (options.top_logprobs < 0 || options.top_logprobs > kMaxTopLogprobs) {
    fail(ErrorCode::InvalidArgument, "{}: top_logprobs = {} (0 to {})", where, options.top_logprobs,
         kMaxTopLogprobs);
  }
}

StopFilter::StopFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const auto& s : stops_) longest_ = std::max(longest_, s.size());
}

std::string StopFilter::push(std::string_view piece, bool& hit) {
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

// Length of the longest suffix of the text that is a proper prefix of some stop string.
std::size_t StopFilter::held_back() const {
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

std::string StopFilter::release(std::size_t upto) {
  std::string out = upto > released_ ? text_.substr(released_, upto - released_) : "";
  released_ = std::max(released_, upto);
  return out;
}

GenerationStream::GenerationStream(const Tokenizer& tokenizer, const GenerateOptions& options)
    : tokenizer_(tokenizer),
      stop_at_eog_(options.stop_at_end_of_generation),
      stop_tokens_(options.stop_tokens),
      decoder_(tokenizer, /*skip_special=*/true),
      filter_(options.stop) {}

bool GenerationStream::is_stop_token(std::int32_t id) const {
  return (stop_at_eog_ && tokenizer_.is_end_of_generation(id)) ||
         std::find(stop_tokens_.begin(), stop_tokens_.end(), id) != stop_tokens_.end();
}

GenerationStream::Step GenerationStream::push(std::int32_t id, bool no_more) {
  Step s;
  s.end = is_stop_token(id);
  s.last = s.end || no_more;
  std::string piece = s.end ? std::string() : decoder_.push(id);
  if (s.last) piece += decoder_.flush();
  s.text = filter_.push(piece, s.stop_string);
  if (s.last && !s.stop_string) s.text += filter_.finish();
  s.last = s.last || s.stop_string;
  return s;
}

}  // namespace qlm::detail
