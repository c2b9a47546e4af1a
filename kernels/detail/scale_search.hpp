// Internal: the block scale search of docs/quantization.md ("Choosing each block's scale"), as
// one definition shared by the scalar reference (ref/ref_scale_search.cpp), the vector kernels
// (scale_search_lanes.hpp) and the quantizer's round-to-nearest path. The translation units that
// evaluate it are built with -ffp-contract=off: every product is rounded before it is added, so
// every ISA computes the same bits (an FMA would round once, and AArch64 always has one).
#pragma once

#include <array>
#include <cmath>
#include <cstddef>

#include "qlm/detail/half.hpp"
#include "qlm/format/dtype.hpp"
#include "qlm/quant/layout.hpp"

namespace qlm::kernels::detail::scale_search {

inline constexpr std::size_t kBlock = 32;       ///< values per block
inline constexpr float kF16Max = 65504.0f;      ///< largest finite f16: larger scales are skipped
inline constexpr std::size_t kMaxTargets = 40;  ///< most first-round candidates (q4nl: 36)
inline constexpr std::size_t kRefinements = 6;  ///< second-round candidates around the best
inline constexpr float kRefine[kRefinements] = {-0.375f, -0.25f, -0.125f, 0.125f, 0.25f, 0.375f};
/// Below this largest magnitude (or with a non-finite value) a block may overflow target / max;
/// the kernels leave such blocks to the scalar reference, which defines their result.
inline constexpr float kTinyMax = 1e-30f;

inline float round_f16(float d) {
  return qlm::detail::f16_to_f32(qlm::detail::f32_to_f16(d));
}

/// The value of largest magnitude (the first of equals), with its sign.
inline float extreme(const float* x) {
  float max = 0.0f;
  for (std::size_t i = 0; i < kBlock; ++i) max = std::fabs(x[i]) > std::fabs(max) ? x[i] : max;
  return max;
}

/// Round-to-nearest scale: Q8 d = amax / 127; Q4 maps the largest-magnitude value to -8 (so its
/// sign decides the direction) as llama.cpp's Q4_0 does, Q5 to -16 (Q5_0); Q4NL maps it to the
/// code book's -127. Rounded to f16, as stored.
inline float rtn_scale(DType t, float max) {
  const float d = t == DType::Q8   ? std::fabs(max) / 127.0f
                  : t == DType::Q4 ? max / -8.0f
                  : t == DType::Q5 ? max / -16.0f
                                   : max / -127.0f;
  return round_f16(d);
}

/// The uniform grids' ends (Q8 -127..127, Q5 -16..15, Q4 -8..7).
inline constexpr float grid_lo(DType t) {
  return t == DType::Q8 ? -127.0f : t == DType::Q5 ? -16.0f : -8.0f;
}
inline constexpr float grid_hi(DType t) {
  return t == DType::Q8 ? 127.0f : t == DType::Q5 ? 15.0f : 7.0f;
}
/// Q4NL's decision points: the midpoints of adjacent code-book levels.
inline float q4nl_mid(std::size_t m) {
  return 0.5f * (static_cast<float>(quant::kQ4nlLevels[m]) +
                 static_cast<float>(quant::kQ4nlLevels[m + 1]));
}

/// Adding and subtracting 1.5 * 2^23 rounds a float of magnitude <= 2^22 to the nearest integer
/// (half to even) exactly, without a library call (std::nearbyint is one on baseline x86-64).
inline constexpr float kRoundMagic = 12582912.0f;

/// The level nearest v: the clamped, rounded (half to even) integer, or Q4NL's code-book level.
/// A NaN stays NaN on the uniform grids (std::clamp's rule) and is the lowest Q4NL level.
inline float level(DType t, float v) {
  if (t == DType::Q4NL) {
    std::size_t c = 0;
    for (std::size_t m = 0; m + 1 < quant::kQ4nlLevels.size(); ++m) c += v > q4nl_mid(m);
    return static_cast<float>(quant::kQ4nlLevels[c]);
  }
  const float lo = grid_lo(t), hi = grid_hi(t);
  const float clamped = v < lo ? lo : hi < v ? hi : v;
  return (clamped + kRoundMagic) - kRoundMagic;
}

/// The first round's candidates, in order: where the block's extreme lands, in level units, for
/// targets around the grid's negative end (allowing it to clip) and around its positive end.
struct Plan {
  std::array<float, kMaxTargets> targets{};
  std::size_t count = 0;
  float step = 0.0f;  ///< the spacing the second round refines
};
inline Plan plan_for(DType t) {
  struct Range {
    float lo, hi;
  };
  const Range q8[] = {{122.0f, 127.0f}}, q4nl[] = {{-180.0f, -95.0f}, {95.0f, 180.0f}},
              q5[] = {{-22.0f, -13.0f}, {13.0f, 18.0f}}, q4[] = {{-12.0f, -6.0f}, {6.0f, 10.0f}};
  Plan p;
  const Range* ranges = t == DType::Q8 ? q8 : t == DType::Q4NL ? q4nl : t == DType::Q5 ? q5 : q4;
  const std::size_t n = t == DType::Q8 ? 1 : 2;
  p.step = t == DType::Q8 ? 1.0f : t == DType::Q4NL ? 5.0f : 0.5f;
  for (std::size_t r = 0; r < n; ++r) {
    for (float target = ranges[r].lo; target <= ranges[r].hi; target += p.step) {
      p.targets[p.count++] = target;
    }
  }
  return p;
}

}  // namespace qlm::kernels::detail::scale_search
