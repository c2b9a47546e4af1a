// Scoring logits in double precision, and the window-by-window perplexity driver: tokens ->
// windows (BOS first when the vocabulary adds it) -> Session::eval(all_logits) -> NLL of the second
// half of each window, optionally saved to or compared with a logits file.
#include "qlm/eval/perplexity.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

#include "qlm/eval/logits_file.hpp"
#include "qlm/tokenizer/vocabulary.hpp"
#include "util/fail.hpp"

namespace qlm {

using detail::fail;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Largest logit, failing on an empty span or a non-finite value.
double checked_max(std::span<const float> logits, std::string_view what) {
  if (logits.empty()) fail(ErrorCode::InvalidArgument, "{}: no logits", what);
  double max = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (!std::isfinite(logits[i])) {
      fail(ErrorCode::InvalidArgument, "{}: logit {} is not finite ({})", what, i, logits[i]);
    }
    max = std::max(max, static_cast<double>(logits[i]));
  }
  return max;
}

// log sum_i exp(x_i), computed around the largest value so that nothing overflows.
double log_sum_exp(std::span<const float> logits, std::string_view what) {
  const double max = checked_max(logits, what);
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max);
  return max + std::log(sum);
}

double nll(std::span<const float> logits, std::int32_t target) {
  if (target < 0 || static_cast<std::size_t>(target) >= logits.size()) {
    fail(ErrorCode::InvalidArgument, "token_nll: target {} is outside [0, {})", target,
         logits.size());
  }
  return log_sum_exp(logits, "token_nll") -
         static_cast<double>(logits[static_cast<std::size_t>(target)]);
}

double kld(std::span<const float> reference, std::span<const float> logits) {
  if (reference.size() != logits.size()) {
    fail(ErrorCode::InvalidArgument, "kl_divergence: {} reference logits but {} logits",
         reference.size(), logits.size());
  }
  const double lse_ref = log_sum_exp(reference, "kl_divergence (reference)");
  const double lse = log_sum_exp(logits, "kl_divergence");
  const double shift = lse_ref - lse;
  double sum = 0.0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    const double r = reference[i];
    const double p = std::exp(r - lse_ref);
    // log p_i - log q_i; exactly 0 for identical inputs.
    sum += p * ((r - static_cast<double>(logits[i])) - shift);
  }
  return std::max(sum, 0.0);
}

using Clock = std::chrono::steady_clock;

// Printable ASCII as is, every other byte as \xNN, so no message carries raw bytes.
std::string escaped(std::string_view s) {
  std::string out;
  for (const unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}

// The checks of a reference logits file against this run, with messages naming the file.
void check_reference(const LogitsReader& ref, std::uint32_t window, std::uint32_t first,
                     std::uint32_t vocab, const ModelFingerprint& model) {
  const LogitsFileInfo& i = ref.info();
  const std::string& f = ref.path();
  if (i.window != window) {
    fail(ErrorCode::InvalidArgument,
         "{}: logits were saved with windows of {} tokens, this run uses {} (-c must match)", f,
         i.window, window);
  }
  if (i.first != first) {
    fail(ErrorCode::InvalidArgument,
         "{}: logits were saved from row {} of each window, this run scores from row {}", f,
         i.first, first);
  }
  if (i.model != model) {
    // The file's strings may be anything (a corrupt or foreign file): shown escaped.
    fail(ErrorCode::InvalidArgument,
         "{}: logits were saved from model '{}' ({}), this model is '{}' ({})", f,
         escaped(i.model.source_name), escaped(i.model.shape), escaped(model.source_name),
         escaped(model.shape));
  }
  if (i.vocab != vocab) {  // implied by the shape; checked anyway before indexing rows
    fail(ErrorCode::InvalidArgument, "{}: logits rows of {} values, this model has {}", f, i.vocab,
         vocab);
  }
}

void check_tokens(const LogitsReader& ref, std::size_t w, std::span<const std::int32_t> saved,
                  std::span<const std::int32_t> ours) {
  const auto diff = std::mismatch(saved.begin(), saved.end(), ours.begin(), ours.end());
  if (diff.first == saved.end()) return;
  const auto at = static_cast<std::size_t>(diff.first - saved.begin());
  fail(ErrorCode::InvalidArgument,
       "{}: the saved tokens differ from this text's at token {} (window {}, position {}: saved "
       "id {}, text id {}); a different text or tokenizer",
       ref.path(), w * saved.size() + at, w, at, *diff.first, *diff.second);
}

}  // namespace

Result<double> token_nll(std::span<const float> logits, std::int32_t target) {
  return detail::capture([&] { return nll(logits, target); });
}

Result<double> kl_divergence(std::span<const float> reference, std::span<const float> logits) {
  return detail::capture([&] { return kld(reference, logits); });
}

std::int32_t top_token(std::span<const float> logits) noexcept {
  std::int32_t best = -1;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) continue;
    if (best < 0 || logits[i] > logits[static_cast<std::size_t>(best)]) {
      best = static_cast<std::int32_t>(i);
    }
  }
  return logits.empty() ? -1 : best;
}

void ScoreStats::add(double value) {
  values_.push_back(value);
  const double delta = value - mean_;
  mean_ += delta / static_cast<double>(values_.size());
  m2_ += delta * (value - mean_);
}

double ScoreStats::mean() const noexcept {
  return values_.empty() ? kNaN : mean_;
}

double ScoreStats::standard_error() const noexcept {
  const std::size_t n = values_.size();
  if (n < 2) return kNaN;
  const double variance = std::max(m2_, 0.0) / static_cast<double>(n - 1);
  return std::sqrt(variance / static_cast<double>(n));
}

double ScoreStats::percentile(double p) const {
  if (values_.empty() || !(p >= 0.0 && p <= 100.0)) return kNaN;
  std::vector<double> sorted(values_);
  std::sort(sorted.begin(), sorted.end());
  const double h = static_cast<double>(sorted.size() - 1) * p / 100.0;
  const auto lo = static_cast<std::size_t>(std::floor(h));
  if (lo + 1 >= sorted.size()) return sorted.back();
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[lo + 1] - sorted[lo]);
}

double AgreementStats::fraction() const noexcept {
  return count_ == 0 ? kNaN : static_cast<double>(agreed_) / static_cast<double>(count_);
}

double AgreementStats::standard_error() const noexcept {
  if (count_ < 2) return kNaN;
  const double f = fraction();
  return std::sqrt(f * (1.0 - f) / static_cast<double>(count_ - 1));
}

double perplexity(const ScoreStats& nll) noexcept {
  return std::exp(nll.mean());
}

double perplexity_error(const ScoreStats& nll) noexcept {
  return std::exp(nll.mean()) * nll.standard_error();
}

Result<std::vector<std::int32_t>> perplexity_tokens(const Tokenizer& tokenizer,
                                                    std::string_view text) {
  return tokenizer.encode(text, {.add_special = true, .parse_special = false});
}

Result<PerplexityResult> evaluate_perplexity(std::shared_ptr<const Model> model,
                                             std::span<const std::int32_t> tokens,
                                             const PerplexityOptions& options,
                                             SessionOptions session_options) {
  return detail::capture([&] {
    if (!model) fail(ErrorCode::InvalidArgument, "evaluate_perplexity: model is null");
    const auto start = Clock::now();
    const std::uint32_t c = options.window;
    if (c < 3 || c > kMaxLogitsWindow) {
      fail(ErrorCode::InvalidArgument,
           "window of {} tokens is out of range [3, {}] (a window scores its tokens after the "
           "first half)",
           c, kMaxLogitsWindow);
    }
    PerplexityResult result;
    result.tokens = tokens.size();
    result.windows_available = tokens.size() / c;
    if (result.windows_available == 0) {
      fail(ErrorCode::InvalidArgument, "the text has {} tokens, fewer than one window of {}",
           tokens.size(), c);
    }
    std::size_t windows = result.windows_available;
    if (options.max_windows > 0) windows = std::min(windows, options.max_windows);

    const std::uint32_t first = c / 2;
    const std::uint32_t rows = c - 1 - first;
    const std::uint32_t vocab = model->config().vocab_size;
    const ModelFingerprint fingerprint = model_fingerprint(*model);

    std::optional<LogitsReader> reference;
    if (!options.reference_logits.empty()) {
      reference.emplace(detail::unwrap(LogitsReader::open(options.reference_logits)));
      check_reference(*reference, c, first, vocab, fingerprint);
      windows = std::min<std::size_t>(windows, reference->info().windows);
    }
    std::optional<LogitsWriter> writer;
    if (!options.save_logits.empty()) {
      writer.emplace(detail::unwrap(
          LogitsWriter::create(options.save_logits, {c, first, rows, vocab, 0, fingerprint})));
    }

    const Vocabulary& v = model->tokenizer().vocabulary();
    const std::int32_t bos = v.add_bos ? model->tokenizer().bos() : -1;
    session_options.context = c;
    Session session = detail::unwrap(Session::create(model, session_options));
    std::vector<std::int32_t> input(c);
    for (std::size_t w = 0; w < windows; ++w) {
      std::copy_n(tokens.begin() + static_cast<std::ptrdiff_t>(w * c), c, input.begin());
      if (bos >= 0) input[0] = bos;
      std::optional<LogitsReader::Window> saved;
      if (reference) {
        saved = detail::unwrap(reference->read_window(static_cast<std::uint32_t>(w)));
        check_tokens(*reference, w, saved->tokens, input);
      }
      detail::unwrap(session.truncate(0));
      const std::span<const float> logits =
          detail::unwrap(session.eval(input, {.all_logits = true}));
      for (std::uint32_t j = first; j + 1 < c; ++j) {
        const auto row = logits.subspan(std::size_t{j} * vocab, vocab);
        const std::int32_t target = input[j + 1];
        result.nll.add(nll(row, target));
        if (saved) {
          const auto ref_row = saved->logits.subspan(std::size_t{j - first} * vocab, vocab);
          result.reference_nll.add(nll(ref_row, target));
          result.kld.add(kld(ref_row, row));
          result.same_top.add(top_token(ref_row) == top_token(row));
        }
      }
      if (writer) {
        detail::unwrap(writer->write_window(
            input, logits.subspan(std::size_t{first} * vocab, std::size_t{rows} * vocab)));
      }
      result.windows = w + 1;
      result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
      if (options.on_window &&
          !detail::call_back("on_window", options.on_window,
                             PerplexityProgress{w + 1, windows, result.seconds, &result.nll})) {
        fail(ErrorCode::Cancelled, "perplexity evaluation cancelled after {} of {} windows", w + 1,
             windows);
      }
    }
    if (writer) detail::unwrap(writer->commit());
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return result;
  });
}

}  // namespace qlm
