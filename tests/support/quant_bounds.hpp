// Error bounds of the Q8/Q4 reference quantizers, derived from their definition (per block of 32
// along K: Q8 scale d = f16(amax / 127), Q4 scale |d| = f16(amax / 8) with the extreme mapped to
// -8).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>

#include "qlm/format/dtype.hpp"
#include "qlm/quant/layout.hpp"

namespace qlm::test {

/// Accumulated result of checking dequantized rows against their originals.
struct BoundCheck {
  std::size_t values = 0;
  std::size_t violations = 0;                                       ///< values outside their bound
  std::size_t first_bad = std::numeric_limits<std::size_t>::max();  ///< index within its row
  double worst = 0.0;  ///< largest |x - x̂| / bound seen (<= 1 when all pass)
  double err2 = 0.0;   ///< sum of squared errors
  double ref2 = 0.0;   ///< sum of squared originals

  double relative_rms() const { return ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2); }
};

/// The f16-rounded magnitude of a block's scale: amax / 127 (Q8) or amax / 8 (Q4).
float block_scale_magnitude(DType t, std::span<const float> block);

/// Checks one dequantized row `xhat` of `x` (same length) block by block:
///  - Q8: |x - x̂| <= d/2; all-zero blocks come back exactly zero.
///  - Q4: |x - x̂| <= d/2 where |x| <= 7.5 d, else <= d (the clamp at +7 on the side opposite
///    the extreme; f16 rounding of d adds up to 2^-8 d); one element of largest magnitude per
///    block is within d/2 (the extreme maps onto level -8 exactly).
void check_quantized_row(DType t, std::span<const float> x, std::span<const float> xhat,
                         BoundCheck& out);

/// The level v takes on type t's grid, written plainly from docs/quantization.md: the nearest
/// integer (half to even) clamped to the grid, or the nearest Q4NL code-book level.
inline float grid_level(DType t, float v) {
  if (t == DType::Q4NL) {
    const auto& lv = quant::kQ4nlLevels;
    std::size_t c = 0;
    for (std::size_t m = 0; m + 1 < lv.size(); ++m) {
      c += v > 0.5f * (static_cast<float>(lv[m]) + static_cast<float>(lv[m + 1]));
    }
    return static_cast<float>(lv[c]);
  }
  const float hi = t == DType::Q8 ? 127.0f : t == DType::Q5 ? 15.0f : 7.0f;
  const float lo = t == DType::Q8 ? -127.0f : -hi - 1.0f;
  return std::nearbyint(std::clamp(v, lo, hi));
}

}  // namespace qlm::test
