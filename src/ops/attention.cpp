// Online-softmax attention: per block of keys one kernel call (kt.attn_block) computes the
// group x block scores, updates each head's running max and denominator (rescaling its
// accumulator when the max grows) and accumulates the values, so each key and value is read from
// memory once for the whole group. An f16 cache is converted block by block (kt.f16_to_f32) into
// stack buffers that stay in L1.
#include "ops/attention.hpp"

#include <algorithm>
#include <cmath>

namespace qlm::ops {

namespace {
constexpr std::uint32_t kMaxGroup = 64;      // query heads per KV head; real models use <= 16
constexpr std::size_t kBufferFloats = 4096;  // one converted block of K (or V): 16 KiB
}  // namespace

std::uint32_t attention_block(std::uint32_t head_dim) {
  const auto fit = static_cast<std::uint32_t>(kBufferFloats / std::max(head_dim, 1u));
  return std::clamp<std::uint32_t>(fit, 1, kernels::kAttnBlock);
}

void attend(const kernels::KernelTable& kt, const AttentionShape& s, const float* q,
            const KvHead& kv, float* out) {
  const std::size_t hd = s.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const std::uint32_t block = attention_block(s.head_dim);
  float run_max[kMaxGroup], run_sum[kMaxGroup];
  std::fill_n(run_max, s.group, -INFINITY);
  std::fill_n(run_sum, s.group, 0.0f);
  std::fill_n(out, s.group * hd, 0.0f);
  const bool f16 = kv.type == KvType::F16;
  alignas(64) float kbuf[kBufferFloats], vbuf[kBufferFloats];  // f16 only; not initialized
  for (std::uint32_t t0 = s.first; t0 <= s.last; t0 += block) {
    const std::size_t n = std::min(block, s.last + 1 - t0), at = t0 * hd;
    const float *k, *v;
    if (f16) {
      kt.f16_to_f32(static_cast<const std::uint16_t*>(kv.k) + at, kbuf, n * hd);
      kt.f16_to_f32(static_cast<const std::uint16_t*>(kv.v) + at, vbuf, n * hd);
      k = kbuf;
      v = vbuf;
    } else {
      k = static_cast<const float*>(kv.k) + at;
      v = static_cast<const float*>(kv.v) + at;
    }
    kt.attn_block(q, s.group, hd, k, v, n, scale, run_max, run_sum, out);
  }
  for (std::uint32_t j = 0; j < s.group; ++j) {
    const float inv = 1.0f / run_sum[j];
    for (std::size_t i = 0; i < hd; ++i) out[j * hd + i] *= inv;
  }
}

}  // namespace qlm::ops
