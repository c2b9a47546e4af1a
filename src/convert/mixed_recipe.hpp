// The mixed recipe: which weight matrices stay at 8 bits when the rest go to 4, chosen by measured
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

/// Starts every candidate at `low` (a 4-bit type) and promotes to q8 those whose relative output
/// error drops most per extra byte, while the total stays within `max_bits` per weight.
/// `fixed_bytes` and `fixed_weights` account for the tensors the recipe does not touch (norms).
/// `measured` (matrix -> KL divergence with only it at `low`), where given, replaces the
/// estimated drop as the gain of promoting a matrix.
MixedPlan plan_mixed(std::span<const MixedCandidate> candidates, std::uint64_t fixed_bytes,
                     std::uint64_t fixed_weights, double max_bits, DType low,
                     quant::ScaleMethod method, const std::map<std::string, double>& measured = {});

}  // namespace qlm::detail
