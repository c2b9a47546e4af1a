// Sampling steps. Probabilities are always recomputed from the current candidate logits, so the
// steps compose in any order.
#include "qlm/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_map>

namespace qlm {

namespace {

using Candidate = Sampler::Candidate;

void sort_desc(std::vector<Candidate>& c) {
  std::sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  });
}

std::vector<double> probabilities(const std::vector<Candidate>& c) {
  double max = -INFINITY;
  for (const auto& x : c) max = std::max(max, static_cast<double>(x.logit));
  std::vector<double> p(c.size());
  double sum = 0.0;
  for (std::size_t i = 0; i < c.size(); ++i) sum += p[i] = std::exp(c[i].logit - max);
  for (double& v : p) v /= sum;
  return p;
}

// Why `o` cannot be sampled with, or "" if it can.
std::string invalid_options(const SamplerOptions& o) {
  const auto finite = [](float v) { return std::isfinite(v); };
  if (!finite(o.temperature)) return "temperature must be a finite number";
  if (o.top_k < 0) return "top_k must be >= 0";
  if (!finite(o.top_p) || o.top_p < 0.0f) return "top_p must be a finite number >= 0";
  if (!finite(o.min_p) || o.min_p < 0.0f) return "min_p must be a finite number >= 0";
  if (!finite(o.repeat_penalty) || o.repeat_penalty <= 0.0f) {
    return "repeat_penalty must be a finite number > 0";
  }
  if (!finite(o.presence_penalty) || !finite(o.frequency_penalty)) {
    return "presence and frequency penalties must be finite numbers";
  }
  for (const auto& [id, bias] : o.logit_bias) {
    if (std::isnan(bias)) return "logit_bias of token " + std::to_string(id) + " is NaN";
  }
  return "";
}

// Drops candidates no distribution can pick (NaN, -inf); if any logit is +inf, those tokens share
// all the probability (as the limit of a huge logit would give them).
void keep_pickable(std::vector<Candidate>& c) {
  std::erase_if(c, [](const Candidate& x) { return std::isnan(x.logit) || x.logit == -INFINITY; });
  if (std::any_of(c.begin(), c.end(), [](const Candidate& x) { return x.logit == INFINITY; })) {
    std::erase_if(c, [](const Candidate& x) { return x.logit != INFINITY; });
    for (Candidate& x : c) x.logit = 0.0f;
  }
}

}  // namespace

Sampler::Sampler(SamplerOptions options) : options_(std::move(options)), state_(options_.seed) {}

void Sampler::reset() {
  history_.clear();
  state_ = options_.seed;
}

void Sampler::accept(std::int32_t token) {
  if (options_.penalty_window <= 0) return;
  history_.push_back(token);
  while (history_.size() > static_cast<std::size_t>(options_.penalty_window)) history_.pop_front();
}

double Sampler::uniform() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

void Sampler::apply(SamplerStep step, std::vector<Candidate>& c) const {
  const SamplerOptions& o = options_;
  switch (step) {
    case SamplerStep::LogitBias: {
      if (o.logit_bias.empty()) break;
      std::unordered_map<std::int32_t, float> bias(o.logit_bias.begin(), o.logit_bias.end());
      for (auto& x : c) {
        if (auto it = bias.find(x.id); it != bias.end()) x.logit += it->second;
      }
      break;
    }
    case SamplerStep::Penalties: {
      if (history_.empty()) break;
      std::unordered_map<std::int32_t, int> counts;
      for (auto t : history_) ++counts[t];
      for (auto& x : c) {
        auto it = counts.find(x.id);
        if (it == counts.end()) continue;
        if (o.repeat_penalty != 1.0f) {
          x.logit = x.logit > 0 ? x.logit / o.repeat_penalty : x.logit * o.repeat_penalty;
        }
        x.logit -= o.frequency_penalty * static_cast<float>(it->second) + o.presence_penalty;
      }
      break;
    }
    case SamplerStep::TopK:
      if (o.top_k > 0 && static_cast<std::size_t>(o.top_k) < c.size()) {
        std::partial_sort(c.begin(), c.begin() + o.top_k, c.end(),
                          [](const Candidate& a, const Candidate& b) {
                            return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
                          });
        c.resize(static_cast<std::size_t>(o.top_k));
      }
      break;
    case SamplerStep::TopP: {
      if (o.top_p >= 1.0f) break;
      sort_desc(c);
      const auto p = probabilities(c);
      double cum = 0.0;
      std::size_t keep = 0;
      while (keep < c.size() && (keep == 0 || cum < o.top_p)) cum += p[keep++];
      c.resize(keep);
      break;
    }
    case SamplerStep::MinP: {
      if (o.min_p <= 0.0f) break;
      const auto p = probabilities(c);
      const double pmax = *std::max_element(p.begin(), p.end());
      std::size_t j = 0;
      for (std::size_t i = 0; i < c.size(); ++i) {
        // The top token always stays (min_p > 1 would otherwise drop everything).
        if (p[i] >= o.min_p * pmax || p[i] == pmax) c[j++] = c[i];
      }
      c.resize(j);
      break;
    }
    case SamplerStep::Temperature:
      if (o.temperature > 0.0f) {
        for (auto& x : c) x.logit /= o.temperature;
      }
      break;
  }
}

Result<std::int32_t> Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) return Error{ErrorCode::InvalidArgument, "sample: no logits"};
  if (logits.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    return Error{ErrorCode::InvalidArgument, "sample: more logits than token ids"};
  }
  if (const std::string why = invalid_options(options_); !why.empty()) {
    return Error{ErrorCode::InvalidArgument, "sample: " + why};
  }
  candidates_.resize(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) {
    candidates_[i] = {static_cast<std::int32_t>(i), logits[i]};
  }
  keep_pickable(candidates_);
  const bool greedy = options_.temperature <= 0.0f;
  for (SamplerStep step : options_.chain) {
    if (candidates_.empty()) break;
    // Greedy decoding honours bias and penalties but no truncation (it would not change argmax).
    if (greedy && step != SamplerStep::LogitBias && step != SamplerStep::Penalties) continue;
    apply(step, candidates_);
  }
  keep_pickable(candidates_);
  if (candidates_.empty()) {
    return Error{ErrorCode::InvalidArgument,
                 "sample: no token can be picked: every logit is NaN or -infinity"};
  }
  if (greedy) {
    const auto best = std::min_element(
        candidates_.begin(), candidates_.end(), [](const Candidate& a, const Candidate& b) {
          return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
        });
    return best->id;
  }
  sort_desc(candidates_);  // a fixed order makes the draw independent of earlier steps' order
  const auto p = probabilities(candidates_);
  const double r = uniform();
  double cum = 0.0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    cum += p[i];
    if (r < cum) return candidates_[i].id;
  }
  return candidates_.back().id;
}

}  // namespace qlm
