// A few KB of simple English in the style of TinyStories, generated deterministically, for
// perplexity tests on stories260K; and an independent perplexity computed from Session logits.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "qlm/model.hpp"
#include "qlm/session.hpp"

namespace qlm::test {

/// `sentences` sentences such as "The little cat saw a red ball in the park." (deterministic).
inline std::string story_text(int sentences) {
  static const char* who[] = {"The little cat", "A happy girl", "Tom", "The big dog",
                              "Lily",           "A small bird", "Mom", "The old man"};
  static const char* did[] = {"saw", "found", "wanted", "liked", "played with", "looked at"};
  static const char* what[] = {"a red ball",  "a big tree", "a shiny toy", "the sun",
                               "a funny hat", "some cake",  "a blue box"};
  static const char* where[] = {"in the park",   "at home",   "near the river",
                                "in the garden", "at school", "under the bed"};
  std::string text;
  std::uint32_t x = 12345;
  const auto next = [&x](std::uint32_t n) {
    x = x * 1664525u + 1013904223u;
    return (x >> 16) % n;
  };
  for (int i = 0; i < sentences; ++i) {
    text += who[next(8)];
    text += ' ';
    text += did[next(6)];
    text += ' ';
    text += what[next(7)];
    text += ' ';
    text += where[next(6)];
    text += next(4) == 0 ? ". She was very happy.\n" : ". ";
  }
  return text;
}

/// exp(mean NLL) the way docs/perplexity.md defines it, from logits of the given Session
/// (not through qlm/perplexity.hpp): windows of `window` tokens with BOS first, targets
/// window/2 + 1 … window - 1, NLL by a float64 log-softmax written here.
inline double independent_perplexity(Session& session, const std::vector<std::int32_t>& tokens,
                                     std::uint32_t window, std::size_t max_windows) {
  const Model& model = session.model();
  const std::size_t vocab = model.config().vocab_size;
  const std::size_t windows = std::min(tokens.size() / window, max_windows);
  double sum = 0.0;
  std::size_t count = 0;
  for (std::size_t w = 0; w < windows; ++w) {
    std::vector<std::int32_t> input(tokens.begin() + static_cast<std::ptrdiff_t>(w * window),
                                    tokens.begin() + static_cast<std::ptrdiff_t>((w + 1) * window));
    input[0] = model.tokenizer().bos();
    if (!session.truncate(0).ok()) return NAN;
    auto logits = session.eval(input, {.all_logits = true});
    if (!logits.ok()) return NAN;
    for (std::size_t j = window / 2; j + 1 < window; ++j) {
      const float* row = logits->data() + j * vocab;
      double max = row[0];
      for (std::size_t i = 0; i < vocab; ++i) max = std::max(max, static_cast<double>(row[i]));
      double z = 0.0;
      for (std::size_t i = 0; i < vocab; ++i) z += std::exp(static_cast<double>(row[i]) - max);
      sum += max + std::log(z) - row[input[j + 1]];
      ++count;
    }
  }
  return std::exp(sum / static_cast<double>(count));
}

}  // namespace qlm::test
