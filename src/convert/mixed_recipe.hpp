// The mixed recipe: which weight matrices (or bands of their rows) get 5 or 8 bits when the rest go
// to 4, chosen by measured sensitivity under a bits-per-weight budget.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "qlm/format/dtype.hpp"
#include "qlm/quant/quantize.hpp"
#include "qlm/thread_pool.hpp"

namespace qlm::detail {

/// One weight matrix as the recipe sees it.
struct MixedCandidate {
  std::string name;
  std::uint64_t rows = 0, k = 0;
  /// Loads the matrix as f32 ([rows, k]) and the importance of its columns (may be empty).
  std::function<std::vector<float>()> load;
  std::span<const float> importance;
  /// E[x x^T] of its input (k x k) for error-feedback quantization; empty = none.
  std::function<std::vector<float>()> hessian = [] { return std::vector<float>{}; };
  /// How much each row's error counts (rows = tokens of an embedding or LM head: how often the
  /// token occurs); empty = every row alike.
  std::vector<double> row_weights{};
};

/// Rows [row0, row1) of a matrix at one type.
struct TypedBand {
  std::uint64_t row0 = 0, row1 = 0;
  DType type = DType::F32;
};

/// A tensor's bands in row order; a single band is the whole tensor at one type.
using MatrixLayout = std::vector<TypedBand>;

/// The decision: each candidate's bands, and a line per matrix saying why.
struct MixedPlan {
  std::map<std::string, MatrixLayout> layouts;
  std::vector<std::string> reasons;
};

/// Bands a matrix is cut into for the recipe by default: enough to keep rows that matter (frequent
/// tokens) apart from rows that do not, few enough that each band is a long run of tiles.
inline constexpr std::uint32_t kMixedBands = 16;

/// Sensitivity of each matrix at each type: the mean KL divergence from the float model with only
/// that matrix at that type (matrix -> type -> KL). A type not measured is estimated.
using MeasuredSensitivity = std::map<std::string, std::map<DType, double>>;

/// Starts every candidate at `low` (a 4-bit type) and promotes, one step at a time, the band of
/// rows and type (of `promotions`: q5, q8) whose error falls most per extra byte, while the total
/// stays within `max_bits` per weight. Each matrix is cut into at most `max_bands` bands of whole
/// 16-row groups (1 = whole matrices). A matrix's error is its relative output error at each type,
/// or, where `measured` has it, the KL divergence (q8's, if not measured, is taken as 0: two orders
/// of magnitude below 4-bit's); a band's share of it is its share of the matrix's output error,
/// each row's weighted by MixedCandidate::row_weights. `fixed_bytes` and `fixed_weights` account
/// for the tensors the recipe does not touch (norms).
MixedPlan plan_mixed(std::span<const MixedCandidate> candidates, std::uint64_t fixed_bytes,
                     std::uint64_t fixed_weights, double max_bits, DType low,
                     std::span<const DType> promotions, quant::ScaleMethod method,
                     const MeasuredSensitivity& measured = {},
                     std::uint32_t max_bands = kMixedBands, ThreadPool* pool = nullptr);

}  // namespace qlm::detail
