// Importance: how much each input column of each weight matrix matters, measured as the mean
// square of the activations it multiplies over a calibration text. The quantizer weighs each
// weight's squared error by it, which minimizes the expected error of the product's output.
// Optionally it also keeps the whole second moment E[x x^T] of inputs up to a width: error-feedback
// quantization (GPTQ) needs how columns correlate, which the per-column means cannot tell.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qlm/config.hpp"
#include "qlm/error.hpp"
#include "qlm/eval/activation_observer.hpp"

namespace qlm {

/// Per-column activation statistics of every weight matrix, keyed by tensor name.
class Importance final : public ActivationObserver {
 public:
  Importance() = default;
  /// An empty collector for models of `config` (pass it as SessionOptions::observer) that also
  /// accumulates E[x x^T] of every input at most `moment_columns` wide (k^2 floats each).
  explicit Importance(const ModelConfig& config, std::size_t moment_columns = 0);

  void observe(MatrixInput input, std::uint32_t layer, std::span<const float> x,
               std::size_t rows) override;

  /// Mean square of each input column of `tensor`; empty if it was never observed.
  std::span<const float> find(std::string_view tensor) const;
  /// E[x x^T] ([k][k], row-major) of the input that `tensor` reads, kept under the first matrix
  /// reading each input (matrices_reading order); empty if not collected.
  std::span<const float> second_moment(std::string_view tensor) const;
  /// Token rows observed (per matrix: every matrix sees every token of the calibration text).
  std::uint64_t tokens() const { return tokens_; }
  /// Tensor names with statistics.
  std::vector<std::string> tensors() const;

  /// Counts the calibration tokens the model read (ids outside the vocabulary are ignored): how
  /// much each row of the embedding and LM head matters to the mixed recipe.
  void count_tokens(std::span<const std::int32_t> ids);
  /// Occurrences of each token id, [vocab_size]; empty if never counted.
  std::span<const float> token_counts() const { return token_counts_; }

  /// Saves as a .qlm container of f32 vectors (one per tensor) written atomically.
  Result<void> save(const std::filesystem::path& path) const;
  /// Loads a file written by save(); any other file is an error naming it.
  static Result<Importance> load(const std::filesystem::path& path);

 private:
  struct Stat {
    std::vector<double> sum_sq;  // per column
    std::vector<float> mean;     // sum_sq / rows, kept current for find()
    std::uint64_t rows = 0;
  };
  void accumulate_moment(const std::string& name, std::span<const float> x, std::size_t rows);
  ModelConfig config_{};
  std::map<std::string, Stat, std::less<>> stats_;
  std::map<std::string, Stat, std::less<>> moments_;  // as Stat, over k x k products
  std::size_t moment_columns_ = 0;
  std::uint64_t tokens_ = 0;
  std::vector<float> token_counts_;  // exact as floats up to 2^24 occurrences of one token
};

}  // namespace qlm
