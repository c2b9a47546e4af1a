// Online-softmax attention: per block of 32 keys one kernel call (kt.attn_block) computes the
// group x block scores, updates each head's running max and denominator (rescaling its
// accumulator when the max grows) and accumulates the values, so each key and value is read from
// memory once for the whole group. f16 keys and values are converted as the kernel loads them.
#include "ops/attention.hpp"

#include <algorithm>
#include <cmath>

namespace qlm::ops {

namespace {
constexpr std::uint32_t kMaxGroup = 64;  // query heads per KV head; real models use <= 16
}  // namespace

static_assert(kernels::kAttnBlock == kKvPageTokens, "a key block is one KV page");

void attend(const kernels::KernelTable& kt, const AttentionShape& s, const float* q,
            const KvPages& kv, float* out) {
  const std::size_t hd = s.head_dim;
  const float scale = s.scale > 0.0f ? s.scale : 1.0f / std::sqrt(static_cast<float>(hd));
  const auto block = static_cast<std::uint32_t>(kernels::kAttnBlock);
  float run_max[kMaxGroup], run_sum[kMaxGroup];
  std::fill_n(run_max, s.group, -INFINITY);
  std::fill_n(run_sum, s.group, 0.0f);
  std::fill_n(out, s.group * hd, 0.0f);
  const std::size_t row = hd * kv_type_size(kv.type);
  for (std::uint32_t t0 = s.first; t0 <= s.last;) {
    const std::uint32_t slot = t0 % block, n = std::min(block - slot, s.last + 1 - t0);
    const std::size_t at = kv.pages[t0 / block] * kv.page_stride + slot * row;
    kt.attn_block(q, s.group, hd, kv.key + at, kv.value + at, kv.type, n, scale, run_max, run_sum,
                  out);
    t0 += n;
  }
  for (std::uint32_t j = 0; j < s.group; ++j) {
    const float inv = 1.0f / run_sum[j];
    for (std::size_t i = 0; i < hd; ++i) out[j * hd + i] *= inv;
  }
}

}  // namespace qlm::ops
