// Batch: what one Engine::eval call evaluates (tokens of several sequences) and the logits it
// returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace qlm {

/// Names a sequence of an Engine; ids are never reused.
using SequenceId = std::uint32_t;

/// Which of an item's tokens get logits.
enum class LogitsWanted : std::uint8_t {
  None,  ///< none (a prompt chunk that is not the last)
  Last,  ///< the last token's, to sample the next one
  All,   ///< every token's (scoring, perplexity)
};

/// Tokens appended to one sequence by a batch, evaluated at the positions after its tokens.
struct BatchItem {
  SequenceId sequence = 0;
  std::span<const std::int32_t> tokens{};
  LogitsWanted logits = LogitsWanted::Last;
};

/// The logits of an evaluated batch, item by item ([rows][vocab] each). A view into the
/// Engine's buffer, valid until its next eval.
class BatchLogits {
 public:
  BatchLogits(std::span<const float> data, std::vector<std::size_t> first_row, std::size_t vocab)
      : data_(data), first_row_(std::move(first_row)), vocab_(vocab) {}
  /// Rows of item i: none, one (Last) or one per token (All), vocab floats each.
  std::span<const float> item(std::size_t i) const {
    return data_.subspan(first_row_[i] * vocab_, (first_row_[i + 1] - first_row_[i]) * vocab_);
  }
  std::size_t items() const { return first_row_.size() - 1; }
  std::size_t vocab_size() const { return vocab_; }

 private:
  std::span<const float> data_;
  std::vector<std::size_t> first_row_;  // items + 1 entries
  std::size_t vocab_;
};

}  // namespace qlm
