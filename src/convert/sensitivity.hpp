// Measured sensitivity for the mixed recipe: how far the next-token distributions move from the
// float model's on a calibration text when only one matrix is quantized. The per-matrix error
// proxy cannot see how an error propagates (a key projection's error is amplified by the query and
// the softmax); the measurement can. It costs a model write and an evaluation per matrix, so it is
// for small models.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "convert/mixed_recipe.hpp"

namespace qlm::detail {

/// Writes the model being converted to a file, in f32 except the named matrix (none if empty),
/// which gets the given type exactly as the conversion would quantize it.
using ProbeWriter = std::function<void(const std::string&, DType, const std::filesystem::path&)>;

inline constexpr std::size_t kSensitivityWindows = 32;  ///< windows of 256 calibration tokens
/// Larger models are refused: measuring writes the whole model once per matrix.
inline constexpr std::uint64_t kSensitivityMaxWeights = 50'000'000;

/// What a calibration text says about the model being converted.
struct Sensitivity {
  MeasuredSensitivity kl;
  /// How often each token id occurs in the whole text (how much an embedding or LM head row
  /// matters).
  std::vector<double> token_counts;
};

/// Mean KL divergence per matrix of `names` and type of `types` (only that matrix quantized, to
/// that type) from the f32 model, on the first kSensitivityWindows windows of `calibration`, and
/// the text's token counts. Temporary files next to `output` are removed.
Sensitivity measure_sensitivity(const std::filesystem::path& calibration,
                                const std::filesystem::path& output,
                                std::span<const std::string> names, std::span<const DType> types,
                                const ProbeWriter& write);

}  // namespace qlm::detail
