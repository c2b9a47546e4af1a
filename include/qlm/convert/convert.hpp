// Converting a Hugging Face checkpoint directory (config.json, safetensors, tokenizer files) into a
// packed .qlm file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qlm/error.hpp"
#include "qlm/format/dtype.hpp"
#include "qlm/quant/quantize.hpp"
#include "qlm/thread_pool.hpp"

namespace qlm {

/// How weight matrices get their types.
enum class Recipe : std::uint8_t {
  Uniform,  ///< every 2-D matrix is ConvertOptions::type
  Mixed,    ///< `type` (4-bit), promoting the matrices whose error costs most per byte (budgeted)
};

/// What to convert and how.
struct ConvertOptions {
  std::filesystem::path input_dir;  ///< Hugging Face model directory
  std::filesystem::path output;     ///< .qlm file to write (atomically)
  /// Type of every 2-D weight matrix (Mixed: the 4-bit base, q4 or q4nl); 1-D tensors stay f32.
  DType type = DType::Q8;
  Recipe recipe = Recipe::Uniform;
  double max_bits_per_weight = 5.0;  ///< Mixed: average over all tensors, padding included
  /// Mixed: the types a matrix may be promoted to from `type` (any of q5, q8, in any order).
  std::vector<DType> mixed_promotions{DType::Q5, DType::Q8};
  /// Mixed: a matrix may be split into up to this many bands of rows, each at its own type (stored
  /// as tensors "name[row0:row1]"), so that rows that matter more (frequent tokens) get the bits;
  /// 1 = whole matrices.
  std::uint32_t mixed_bands = 16;
  quant::ScaleMethod scale_method = quant::ScaleMethod::Fit;  ///< how block scales are chosen
  /// Optional Importance file (qlm-perplexity --save-importance): weighs each weight's error by its
  /// input column's activations, for the scale search and the mixed recipe's sensitivities.
  std::filesystem::path importance{};
  /// With an importance file and a quantized target: fold activation-aware per-channel scales
  /// into the weights before quantizing (the float model is unchanged; see docs/quantization.md).
  bool channel_scaling = true;
  /// With an importance file that holds an input's second moment E[x x^T] (qlm-perplexity
  /// --importance-moments): quantize the matrices reading it with error feedback (GPTQ),
  /// compensating each column's rounding error on the columns not yet quantized.
  bool error_feedback = true;
  /// Mixed: a calibration text on which to measure each matrix's sensitivity (the mean KL
  /// divergence from the float model when only that matrix is at the 4-bit type, and at each
  /// promotion but q8, on its first 32 windows of 256 tokens) instead of estimating it from the
  /// matrix alone. Costs a conversion and an evaluation per matrix and type; refused above 50M
  /// parameters. Empty = estimate.
  std::filesystem::path calibration{};
  /// A Jinja file that replaces the checkpoint's default chat template (checked to parse).
  std::filesystem::path chat_template{};
  /// Where quantization runs; null = a spin pool on all hardware threads. The file is the same on
  /// any pool.
  std::shared_ptr<ThreadPool> pool{};
  /// Progress (tensors done, total, bytes written); return false to cancel. Optional.
  std::function<bool(std::size_t, std::size_t, std::uint64_t)> on_progress{};
};

/// What a conversion produced.
struct ConvertReport {
  std::size_t tensors = 0;           ///< tensors written
  std::uint64_t file_bytes = 0;      ///< size of the .qlm file
  std::uint64_t weights = 0;         ///< parameters in all tensors
  std::uint64_t weight_bytes = 0;    ///< bytes of tensor payloads
  std::vector<std::string> notes;    ///< decisions worth telling the user (tied head, padding…)
  std::vector<std::string> choices;  ///< Mixed: one line per matrix with its type and the reason
  /// Average storage bits per parameter over all tensors.
  double bits_per_weight() const { return weights ? 8.0 * weight_bytes / weights : 0.0; }
};

/// Converts options.input_dir into options.output; never leaves a partial output file.
Result<ConvertReport> convert_checkpoint(const ConvertOptions& options);

}  // namespace qlm
