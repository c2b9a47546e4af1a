// GenerationStream and its stop-string filter.
#include "generate_stream.hpp"

#include <algorithm>
#include <cmath>

namespace qlm::detail {

float log_softmax_at(std::span<const float> logits, std::int32_t id) {
  float max = logits[0];
  for (float v : logits) max = std::max(max, v);
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v - max));
  return static_cast<float>(logits[static_cast<std::size_t>(id)] - max - std::log(sum));
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
