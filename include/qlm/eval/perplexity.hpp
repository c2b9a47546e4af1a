// Scoring logits: the negative log-likelihood of a target token, the KL divergence between two
// next-token distributions and top-1 agreement (all in double precision), the accumulators that
// summarise them (mean, standard error, percentiles), and evaluate_perplexity(), which scores a
// text window by window. See docs/perplexity.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "qlm/error.hpp"
#include "qlm/model.hpp"
#include "qlm/session.hpp"
#include "qlm/tokenizer.hpp"

namespace qlm {

/// -log softmax(logits)[target] in nats, computed in double precision around the largest logit
/// (so logits of any magnitude stay finite). InvalidArgument on empty logits, a target outside
/// [0, size) or a non-finite logit.
Result<double> token_nll(std::span<const float> logits, std::int32_t target);

/// KL(P || Q) in nats, P = softmax(reference), Q = softmax(logits), in double precision:
/// sum_i p_i ((r_i - l_i) - (lse(r) - lse(l))). Identical inputs give exactly 0; a tiny negative
/// sum from rounding is clamped to 0. InvalidArgument on empty or differently sized spans and on
/// non-finite logits.
Result<double> kl_divergence(std::span<const float> reference, std::span<const float> logits);

/// Index of the largest logit (the first one on ties; NaNs never win); -1 for an empty span.
std::int32_t top_token(std::span<const float> logits) noexcept;

/// Mean, standard error and percentiles of a sample of scores. Keeps every value (for the
/// percentiles); the mean and variance are updated with Welford's method.
class ScoreStats {
 public:
  void add(double value);
  std::size_t count() const noexcept { return values_.size(); }
  /// The arithmetic mean; NaN when empty.
  double mean() const noexcept;
  /// Standard error of the mean, s / sqrt(n) with the sample standard deviation s; NaN when
  /// fewer than 2 values.
  double standard_error() const noexcept;
  /// The p-th percentile (0 <= p <= 100), interpolating linearly between the closest ranks (the
  /// default of numpy.percentile): of 1, 2, …, 100 the 99th is 99.01. NaN when empty.
  double percentile(double p) const;
  std::span<const double> values() const noexcept { return values_; }

 private:
  std::vector<double> values_;
  double mean_ = 0.0;
  double m2_ = 0.0;
};

/// A proportion of agreements (e.g. positions where two models pick the same top token).
class AgreementStats {
 public:
  void add(bool agree) noexcept {
    ++count_;
    agreed_ += agree ? 1 : 0;
  }
  std::size_t count() const noexcept { return count_; }
  std::size_t agreed() const noexcept { return agreed_; }
  /// agreed / count; NaN when empty.
  double fraction() const noexcept;
  /// Binomial standard error sqrt(f (1 - f) / (n - 1)); NaN when fewer than 2 values.
  double standard_error() const noexcept;

 private:
  std::size_t count_ = 0;
  std::size_t agreed_ = 0;
};

/// exp(mean NLL).
double perplexity(const ScoreStats& nll) noexcept;
/// Standard error of perplexity() by the delta method: exp(mean) * standard_error(NLL).
double perplexity_error(const ScoreStats& nll) noexcept;

/// The token stream a text is scored as: Tokenizer::encode with the vocabulary's BOS/EOS rules
/// (add_special) and special-token names read as plain text (parse_special off), as llama.cpp's
/// perplexity tool does.
Result<std::vector<std::int32_t>> perplexity_tokens(const Tokenizer& tokenizer,
                                                    std::string_view text);

/// Reported after every window.
struct PerplexityProgress {
  std::size_t window = 0;           ///< windows finished
  std::size_t windows = 0;          ///< windows being evaluated
  double seconds = 0.0;             ///< since evaluation started
  const ScoreStats* nll = nullptr;  ///< the scores so far (valid during the call)
};

/// How evaluate_perplexity() windows and compares.
struct PerplexityOptions {
  /// Tokens per window (c >= 3). Window w is tokens [w c, (w + 1) c); the targets scored are its
  /// tokens c/2 + 1 … c - 1 (predicted from logits rows c/2 … c - 2).
  std::uint32_t window = 256;
  std::size_t max_windows = 0;  ///< evaluate at most this many windows; 0 = every whole window
  /// Write the scored logits (fp32) and tokens here, atomically; empty = don't.
  std::filesystem::path save_logits{};
  /// Compare with logits saved by an earlier run (KL divergence, same top token); empty = don't.
  /// The file must record the same window size, model source and shape, and the same tokens;
  /// only as many windows as it holds are evaluated.
  std::filesystem::path reference_logits{};
  /// Called after each window; returning false stops with a Cancelled error. Optional.
  std::function<bool(const PerplexityProgress&)> on_window{};
};

/// What evaluate_perplexity() measured.
struct PerplexityResult {
  std::size_t tokens = 0;             ///< tokens of the text
  std::size_t windows_available = 0;  ///< whole windows in the text
  std::size_t windows = 0;            ///< windows evaluated
  ScoreStats nll;                     ///< per scored token, nats
  ScoreStats reference_nll;           ///< the reference logits' NLL of the same tokens
  ScoreStats kld;                     ///< KL(P_ref || P_model) per scored position, nats
  AgreementStats same_top;            ///< top-1 agreement with the reference
  double seconds = 0.0;               ///< wall time of the evaluation
};

/// Scores `tokens` (normally perplexity_tokens() of a text) window by window in a fresh session
/// of `model` with a context of options.window tokens (`session_options.context` is ignored).
/// When the vocabulary adds BOS to sequences, every window's first token is replaced by BOS.
Result<PerplexityResult> evaluate_perplexity(std::shared_ptr<const Model> model,
                                             std::span<const std::int32_t> tokens,
                                             const PerplexityOptions& options = {},
                                             SessionOptions session_options = {});

}  // namespace qlm
