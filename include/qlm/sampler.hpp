// Sampler: turns logits into the next token through a configurable chain of steps, with its own
// seeded RNG so that a seed reproduces a run exactly.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <utility>
#include <vector>

#include "qlm/error.hpp"

namespace qlm {

/// Steps of the sampling chain; they run in the order given by SamplerOptions::chain.
enum class SamplerStep : std::uint8_t {
  LogitBias,    ///< add SamplerOptions::logit_bias
  Penalties,    ///< repetition / presence / frequency penalties over the recent window
  TopK,         ///< keep the k most likely
  TopP,         ///< keep the smallest set whose probability reaches p (nucleus)
  MinP,         ///< drop tokens below min_p times the top probability
  Temperature,  ///< divide logits by the temperature
};

/// Sampling settings; each step is off at its neutral value.
struct SamplerOptions {
  float temperature = 0.8f;          ///< <= 0 means greedy (argmax after bias and penalties)
  std::int32_t top_k = 40;           ///< 0 = off
  float top_p = 0.95f;               ///< 1 = off
  float min_p = 0.05f;               ///< 0 = off
  float repeat_penalty = 1.0f;       ///< 1 = off; divides positive / multiplies negative logits
  float presence_penalty = 0.0f;     ///< subtracted once from every token seen in the window
  float frequency_penalty = 0.0f;    ///< subtracted per occurrence in the window
  std::int32_t penalty_window = 64;  ///< tokens the penalties look back over
  std::vector<std::pair<std::int32_t, float>> logit_bias{};  ///< (token, added logit)
  std::uint64_t seed = 0;  ///< RNG seed: same seed, same logits -> same tokens
  std::vector<SamplerStep> chain = {SamplerStep::LogitBias, SamplerStep::Penalties,
                                    SamplerStep::TopK,      SamplerStep::TopP,
                                    SamplerStep::MinP,      SamplerStep::Temperature};
};

/// A stateful sampler (RNG + penalty history). Not shared between threads.
class Sampler {
 public:
  explicit Sampler(SamplerOptions options = {});

  /// Picks the next token from `logits` (one per vocabulary entry): always a valid index. NaN
  /// logits are never picked; the truncating steps keep at least the most likely token. Errors:
  /// no logits, options out of range (NaN, repeat_penalty <= 0, ...), or no logit left that is
  /// neither NaN nor -infinity.
  Result<std::int32_t> sample(std::span<const float> logits);
  /// Records a token (prompt or generated) for the penalties' window.
  void accept(std::int32_t token);
  /// Clears the history and reseeds the RNG.
  void reset();
  const SamplerOptions& options() const { return options_; }

  /// A candidate token during sampling.
  struct Candidate {
    std::int32_t id;
    float logit;
  };

 private:
  double uniform();  // [0, 1), from the 53 high bits of the generator
  void apply(SamplerStep step, std::vector<Candidate>& c) const;

  SamplerOptions options_;
  std::uint64_t state_;  // splitmix64: specified here, so identical on every platform
  std::deque<std::int32_t> history_;
  std::vector<Candidate> candidates_;
};

}  // namespace qlm
