// KV pool: the fixed-size pages that hold the keys and values of every sequence of an Engine (or
// of one Session), and what the pool reports about them. A page holds kKvPageTokens positions of
// one layer group: all layers, unless the model mixes sliding-window and global layers, which then
// keep separate pages (docs/architecture.md, "Sliding-window layers").
#pragma once

#include <cstddef>
#include <cstdint>

#include "qlm/config.hpp"
#include "qlm/kv_type.hpp"

namespace qlm {

/// Tokens per KV page. One page is one key block of the attention kernel, so a block never spans
/// two pages; small pages make prefix reuse and the last page's waste fine-grained
/// (docs/architecture.md, "Paged KV cache").
inline constexpr std::uint32_t kKvPageTokens = 32;

/// KV bytes one sequence of `tokens` tokens holds at most when evaluated at most `chunk` tokens at
/// a time: every layer's keys and values, except that sliding-window layers keep only their window
/// and one chunk. Multiply by the sequences to run at once to size EngineOptions::kv_bytes.
std::size_t kv_sequence_bytes(const ModelConfig& config, KvType type, std::uint32_t tokens,
                              std::uint32_t chunk);

/// A snapshot of a pool's pages. used + cached + free == pages.
struct KvPoolStats {
  std::uint32_t pages = 0;     ///< pages the byte budget holds
  std::uint32_t used = 0;      ///< referenced by at least one sequence
  std::uint32_t cached = 0;    ///< referenced by none, kept for prefix reuse (evicted LRU first)
  std::uint32_t free = 0;      ///< holding nothing
  std::size_t page_bytes = 0;  ///< keys and values of kKvPageTokens tokens, one layer group
  KvType type = KvType::F32;   ///< element type
};

}  // namespace qlm
