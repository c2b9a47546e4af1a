// Online-softmax attention (running max and denominator per head, rescaling the accumulator when
// the max grows), blocked by 32 keys so each key block is read from L1 for every head in the group.
#include "ops/attention.hpp"

#include <algorithm>
#include <cmath>

namespace qlm::ops {

namespace {
constexpr std::uint32_t kKeyBlock = 32;
constexpr std::uint32_t kMaxGroup = 64;  // query heads per KV head; real models use <= 16
}  // namespace

void attend(const kernels::KernelTable& kt, const AttentionShape& s, const float* q, const float* k,
            const float* v, float* out) {
  const std::uint32_t hd = s.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  float run_max[kMaxGroup], run_sum[kMaxGroup];
  float scores[kKeyBlock];
  for (std::uint32_t j = 0; j < s.group; ++j) {
    run_max[j] = -INFINITY;
    run_sum[j] = 0.0f;
    std::fill(out + j * hd, out + (j + 1) * hd, 0.0f);
  }
  for (std::uint32_t t0 = s.first; t0 <= s.last; t0 += kKeyBlock) {
    const std::uint32_t n = std::min(kKeyBlock, s.last + 1 - t0);
    for (std::uint32_t j = 0; j < s.group; ++j) {
      const float* qj = q + j * hd;
      float block_max = -INFINITY;
      for (std::uint32_t t = 0; t < n; ++t) {
        scores[t] = kt.dot(qj, k + static_cast<std::size_t>(t0 + t) * hd, hd) * scale;
        block_max = std::max(block_max, scores[t]);
      }
      float* acc = out + j * hd;
      if (block_max > run_max[j]) {
        const float correction = std::exp(run_max[j] - block_max);  // exp(-inf) = 0 at the start
        run_sum[j] *= correction;
        for (std::uint32_t i = 0; i < hd; ++i) acc[i] *= correction;
        run_max[j] = block_max;
      }
      for (std::uint32_t t = 0; t < n; ++t) {
        const float e = std::exp(scores[t] - run_max[j]);
        run_sum[j] += e;
        kt.axpy(acc, e, v + static_cast<std::size_t>(t0 + t) * hd, hd);
      }
    }
  }
  for (std::uint32_t j = 0; j < s.group; ++j) {
    const float inv = 1.0f / run_sum[j];
    for (std::uint32_t i = 0; i < hd; ++i) out[j * hd + i] *= inv;
  }
}

}  // namespace qlm::ops
