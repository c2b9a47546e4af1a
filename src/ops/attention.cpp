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

static_assert(kernels::kAttnBlock == kKvPageTokens, "a key block is one KV page");

// Asks for `bytes` bytes from p on: the cache lines of a block the kernel is about to read. Into
// L2 (locality 1: prefetcht2), as the kernels' own prefetches: a burst of requests for L1 queues on
// its few miss buffers, and a head's history is a chain of 4-8 KiB blocks scattered over the pool,
// too short for the hardware prefetcher to ramp up (bench/RESULTS.md, session 20).
void prefetch(const std::byte* p, std::size_t bytes) {
  for (std::size_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 1);
}

// Byte offset of block b's rows in kv's key (or value) region.
std::size_t block_at(const KvPages& kv, std::uint32_t b) {
  return kv.pages[b] * kv.page_stride;
}

// Asks for the first value block attend(s, kv) reads and, with `keys`, the first key block.
void prefetch_first_block(const AttentionShape& s, const KvPages& kv, bool keys) {
  const std::uint32_t first = s.first / static_cast<std::uint32_t>(kernels::kAttnBlock);
  if (keys) prefetch(kv.key + block_at(kv, first), kv.page_stride);
  prefetch(kv.value + block_at(kv, first), kv.page_stride);
}

}  // namespace

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
  // Each kernel call prefetches the next block; attend_batch asks for the first one.
  for (std::uint32_t t0 = s.first; t0 <= s.last;) {
    const std::uint32_t slot = t0 % block, n = std::min(block - slot, s.last + 1 - t0);
    const std::uint32_t b = t0 / block;
    const std::size_t page = block_at(kv, b);
    const bool ahead = b < s.last / block;
    kt.attn_block(q, s.group, hd, kv.key + page, slot, kv.value + page + slot * row, kv.type, n,
                  scale, run_max, run_sum, out, ahead ? kv.key + block_at(kv, b + 1) : nullptr,
                  ahead ? kv.value + block_at(kv, b + 1) : nullptr);
    t0 += n;
  }
  for (std::uint32_t j = 0; j < s.group; ++j) {
    const float inv = 1.0f / run_sum[j];
    for (std::size_t i = 0; i < hd; ++i) out[j * hd + i] *= inv;
  }
}

void attend_batch(const kernels::KernelTable& kt, ThreadPool& pool, std::size_t n,
                  const std::function<AttentionItem(std::size_t)>& item,
                  const std::function<void(std::size_t)>& done) {
  // Fewer items per task when there are few (a single sequence's heads): every thread gets work.
  const auto spread = static_cast<std::size_t>(2 * std::max(pool.threads(), 1));
  const std::size_t per = std::clamp<std::size_t>(n / spread, 1, kAttendItemsPerTask);
  const std::size_t tasks = (n + per - 1) / per;
  pool.parallel_for(tasks, [&](std::size_t t) {
    const std::size_t end = std::min(n, (t + 1) * per);
    AttentionItem it = item(t * per);
    // The first item's keys are needed at once; its values can arrive while the keys are scored.
    prefetch_first_block(it.shape, it.kv, false);
    for (std::size_t i = t * per; i < end; ++i) {
      AttentionItem next;
      if (i + 1 < end) {
        next = item(i + 1);
        prefetch_first_block(next.shape, next.kv, true);
      }
      attend(kt, it.shape, it.q, it.kv, it.out);
      if (done) done(i);
      it = next;
    }
  });
}

}  // namespace qlm::ops
