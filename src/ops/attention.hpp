// Causal GQA attention over the KV cache with an online (flash-style) softmax: keys are visited
// in blocks of 32, once for all query heads that share them, and no score buffer of context size
// is needed.
#pragma once

#include <cstdint>

#include "kernel_table.hpp"

namespace qlm::ops {

/// Geometry of one attention call.
struct AttentionShape {
  std::uint32_t head_dim = 0;
  std::uint32_t group = 0;  ///< query heads per KV head
  std::uint32_t first = 0;  ///< first visible key position (sliding window), inclusive
  std::uint32_t last = 0;   ///< last visible key position (the query's own), inclusive
};

/// out[j][hd] = softmax(q_j · K[first..last] / sqrt(hd)) · V[first..last] for the `group` query
/// heads q[j][hd] that share keys/values `k`, `v` ([position][hd]).
void attend(const kernels::KernelTable& kt, const AttentionShape& s, const float* q, const float* k,
            const float* v, float* out);

}  // namespace qlm::ops
