// KvLayout: how a model's layers share KV pages. Layers that attend through a sliding window keep
// only the window's keys, so their pages are released as the window moves on while full-attention
// layers keep every page; the two kinds therefore live in separate page tables. To draw both from
// one pool of equal pages, layers form groups of one size (the greatest common divisor of the
// global and sliding layer counts), each group a page table of its own.
#pragma once

#include <cstdint>
#include <vector>

#include "qlm/config.hpp"
#include "qlm/kv_pool.hpp"

namespace qlm::detail {

struct KvLayout {
  std::uint32_t group_layers = 0;           ///< layers in one page (every group has as many)
  std::uint32_t window = 0;                 ///< the sliding groups' window; 0 = there are none
  std::vector<std::uint32_t> group_of;      ///< per model layer: its group
  std::vector<std::uint32_t> slot_of;       ///< per model layer: its place within the group
  std::vector<std::uint8_t> group_sliding;  ///< per group: 1 if its layers use the window

  /// Global layers first, in order, then sliding ones, in groups of group_layers.
  static KvLayout of(const ModelConfig& c);
  std::uint32_t groups() const { return static_cast<std::uint32_t>(group_sliding.size()); }
  bool sliding(std::uint32_t group) const { return group_sliding[group] != 0; }

  /// Tokens behind the window whose pages a sliding group keeps anyway, so that rolling a
  /// sequence back by up to this many tokens (a chat turn re-rendered, a retried completion)
  /// never loses its window.
  static constexpr std::uint32_t kTruncateSlack = 2 * kKvPageTokens;

  /// The first page of a sliding group that the next query needs once a sequence holds `size`
  /// tokens: it (at position size) sees keys in (size - window, size].
  std::uint32_t first_needed_page(std::uint32_t size) const {
    return window == 0 || size < window ? 0 : (size - window + 1) / kKvPageTokens;
  }
  /// The first page a sliding group keeps: the needed ones and kTruncateSlack tokens more.
  std::uint32_t first_kept_page(std::uint32_t size) const {
    return window == 0 || size < window + kTruncateSlack
               ? 0
               : (size - window + 1 - kTruncateSlack) / kKvPageTokens;
  }
  /// The most pages (all groups) a sequence of `tokens` tokens holds when it is evaluated at most
  /// `chunk` tokens at a time: sliding groups hold the window, the slack and one chunk.
  std::uint64_t max_pages(std::uint64_t tokens, std::uint32_t chunk) const;
};

}  // namespace qlm::detail
