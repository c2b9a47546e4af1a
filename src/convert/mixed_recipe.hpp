// The mixed recipe: which weight matrices get 5 or 8 bits when the rest go to 4, chosen by measured
// sensitivity under a bits-per-weight budget.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "qlm/dtype.hpp"
#include "qlm/quant/quantize.hpp"

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
};

/// The decision: each candidate's type, and a line per matrix saying why.
struct MixedPlan {
  std::map<std::string, DType> types;
  std::vector<std::string> reasons;
};

/// Sensitivity of each matrix at each type: the mean KL divergence from the float model with only
/// that matrix at that type (matrix -> type -> KL). A type not measured is estimated.
using MeasuredSensitivity = std::map<std::string, std::map<DType, double>>;

/// Starts every candidate at `low` (a 4-bit type) and promotes, one step at a time, the matrix
/// and type (of `promotions`: q5, q8) whose error falls most per extra byte, while the total stays
/// within `max_bits` per weight. The error is the matrix's relative output error at each type, or,
/// where `measured` has it, the KL divergence (q8's, if not measured, is taken as 0: two orders
/// of magnitude below 4-bit's). `fixed_bytes` and `fixed_weights` account for the tensors the
/// recipe does not touch (norms).
MixedPlan plan_mixed(std::span<const MixedCandidate> candidates, std::uint64_t fixed_bytes,
                     std::uint64_t fixed_weights, double max_bits, DType low,
                     std::span<const DType> promotions, quant::ScaleMethod method,
                     const MeasuredSensitivity& measured = {});

}  // namespace qlm::detail
