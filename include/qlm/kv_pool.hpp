// KV pool: the fixed-size pages that hold the keys and values of every sequence of an Engine (or
// of one Session), and what the pool reports about them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "qlm/kv_type.hpp"

namespace qlm {

/// Tokens per KV page. One page is one key block of the attention kernel, so a block never spans
/// two pages; small pages make prefix reuse and the last page's waste fine-grained
/// (docs/architecture.md, "Paged KV cache").
inline constexpr std::uint32_t kKvPageTokens = 32;

/// A snapshot of a pool's pages. used + cached + free == pages.
struct KvPoolStats {
  std::uint32_t pages = 0;     ///< pages the byte budget holds
  std::uint32_t used = 0;      ///< referenced by at least one sequence
  std::uint32_t cached = 0;    ///< referenced by none, kept for prefix reuse (evicted LRU first)
  std::uint32_t free = 0;      ///< holding nothing
  std::size_t page_bytes = 0;  ///< keys and values of kKvPageTokens tokens, all layers
  KvType type = KvType::F32;   ///< element type
};

}  // namespace qlm
