// Converting a Hugging Face checkpoint directory (config.json, safetensors, tokenizer files) into a
// packed .qlm file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "qlm/dtype.hpp"
#include "qlm/error.hpp"

namespace qlm {

/// What to convert and how.
struct ConvertOptions {
  std::filesystem::path input_dir;  ///< Hugging Face model directory
  std::filesystem::path output;     ///< .qlm file to write (atomically)
  DType type = DType::Q8;           ///< type of every 2-D weight matrix; 1-D tensors stay f32
  /// Progress (tensors done, total, bytes written); return false to cancel. Optional.
  std::function<bool(std::size_t, std::size_t, std::uint64_t)> on_progress{};
};

/// What a conversion produced.
struct ConvertReport {
  std::size_t tensors = 0;         ///< tensors written
  std::uint64_t file_bytes = 0;    ///< size of the .qlm file
  std::uint64_t weights = 0;       ///< parameters in all tensors
  std::uint64_t weight_bytes = 0;  ///< bytes of tensor payloads
  std::vector<std::string> notes;  ///< decisions worth telling the user (tied head, padding…)
  /// Average storage bits per parameter over all tensors.
  double bits_per_weight() const { return weights ? 8.0 * weight_bytes / weights : 0.0; }
};

/// Converts options.input_dir into options.output; never leaves a partial output file.
Result<ConvertReport> convert_checkpoint(const ConvertOptions& options);

}  // namespace qlm
