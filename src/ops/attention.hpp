// Causal GQA attention over the KV cache with an online (flash-style) softmax: keys are visited
// in blocks of 32 (one KV page each), each block read once for all query heads that share it (f16
// converted as it is loaded), and no score buffer of context size is needed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "kernel_table.hpp"
#include "qlm/kv_pool.hpp"
#include "qlm/thread_pool.hpp"

namespace qlm::ops {

/// Geometry of one attention call.
struct AttentionShape {
  std::uint32_t head_dim = 0;
  std::uint32_t group = 0;  ///< query heads per KV head
  std::uint32_t first = 0;  ///< first visible key position (sliding window), inclusive
  std::uint32_t last = 0;   ///< last visible key position (the query's own), inclusive
  float scale = 0.0f;       ///< score scale; 0 = 1/sqrt(head_dim)
};

/// One KV head's cached keys and values, paged: position t is row t % kKvPageTokens of page
/// pages[t / kKvPageTokens], whose rows of this head start at key + page * page_stride (values:
/// value + page * page_stride); head_dim elements of `type` per row.
struct KvPages {
  const std::byte* key = nullptr;
  const std::byte* value = nullptr;
  std::size_t page_stride = 0;
  const std::uint32_t* pages = nullptr;
  KvType type = KvType::F32;
};

/// out[j][hd] = softmax(q_j · K[first..last] · scale) · V[first..last] for the `group` query
/// heads q[j][hd] that share keys/values `kv`. Reads positions [first, last] only, in key blocks
/// aligned to pages. The result for a query depends only on its inputs and positions (never on
/// batching, threads or which pages hold the keys); nothing is allocated.
void attend(const kernels::KernelTable& kt, const AttentionShape& s, const float* q,
            const KvPages& kv, float* out);

/// One attend() call of a batch: a row's query heads of one KV head.
struct AttentionItem {
  AttentionShape shape;
  const float* q = nullptr;
  KvPages kv;
  float* out = nullptr;
};

/// Most items per task of attend_batch: each task asks for its next item's first block before it
/// attends the current one, so only a task's first item starts with a full memory latency.
inline constexpr std::size_t kAttendItemsPerTask = 4;

/// attend() for items [0, n) on `pool`, up to kAttendItemsPerTask consecutive items per task (as
/// many as leave two tasks per thread); item(i) describes item i (called once per item, on the
/// task's thread, before item i is attended). done(i), if given, runs on the same thread once
/// item i's output is written, while it is in cache. Each item's result is attend()'s, however
/// the items are split.
void attend_batch(const kernels::KernelTable& kt, ThreadPool& pool, std::size_t n,
                  const std::function<AttentionItem(std::size_t)>& item,
                  const std::function<void(std::size_t)>& done = {});

}  // namespace qlm::ops
