// Internal: what the per-block activation quantizers (AVX2, NEON) share with the scalar
// reference: where a block's 32 values come from, and its scale and inverse.
#pragma once

#include <algorithm>
#include <cstring>

#include "kernel_table.hpp"

namespace qlm::kernels::detail {

/// Block b of an activation row of k values: the row's own 32 values, or, for a shorter last
/// block, `tail` holding its values and zeros after them.
inline const float* act_block(const float* row, std::size_t k, std::size_t b,
                              float (&tail)[kActBlock]) {
  const float* p = row + b * kActBlock;
  const std::size_t n = std::min(kActBlock, k - b * kActBlock);
  if (n == kActBlock) return p;
  std::fill(std::begin(tail), std::end(tail), 0.0f);
  std::memcpy(tail, p, n * sizeof(float));
  return tail;
}

/// A block's scale d and 1/d from its largest |x|: the reference's two IEEE divisions.
struct ActScale {
  float d, inv;
};
inline ActScale act_scale(float amax) {
  const float d = amax > kZeroBlockAmax ? amax / 127.0f : 0.0f;
  return {d, d != 0.0f ? 1.0f / d : 0.0f};
}

}  // namespace qlm::kernels::detail
