// KvPool: the page store behind every sequence's keys and values, with reference counts, a
// content index for prefix reuse and least-recently-used eviction of pages no sequence holds.
// Internal; one per Engine or Session, used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "kernel_table.hpp"
#include "kv/kv_layout.hpp"
#include "qlm/config.hpp"
#include "qlm/kv_pool.hpp"

namespace qlm::detail {

using PageId = std::uint32_t;
inline constexpr PageId kNoPage = ~PageId{0};

/// A page is kKvPageTokens rows of head_dim keys and as many values for every (layer, KV head) of
/// one layer group (KvLayout: all layers unless the model has sliding-window layers). The storage
/// is one region per (K or V, layer slot, KV head) holding that block of every page side by side:
/// [K|V][slot][kv_head][page][kKvPageTokens][head_dim]. So a sequence whose pages are
/// consecutive (the allocator hands out low pages first) reads each head's history as one
/// contiguous run, as an unpaged cache would; a layout of whole pages would instead put a
/// head's blocks a page apart, a power-of-two-aligned stride that crowds them into a few cache
/// sets (pp512 at depth 2048 was ~20% slower that way). A page's content is identified
/// (published) by its layer group, the hash of the pages before it and its token ids; published
/// pages are never written again, so any sequence may share or copy them.
class KvPool {
 public:
  /// How a pool keeps its pages.
  struct Options {
    /// Whether pages that leave a sequence's sliding window stay cached for prefix reuse (an
    /// Engine's) or are freed at once (a Session's, whose memory should stay at the window).
    bool cache_past_window = true;
    /// Asks the OS for transparent huge pages (EngineOptions::huge_pages).
    bool huge_pages = false;
  };
  /// `pages` pages of `type` for `config`; `seed` starts every content hash (it names what else
  /// the keys depend on: the model file and KV type). Memory is committed only as pages are
  /// written (with huge pages, 2 MiB of a region at a time). Throws std::bad_alloc when the
  /// address space is exhausted.
  KvPool(const ModelConfig& config, std::uint32_t pages, KvType type, std::uint64_t seed,
         const kernels::KernelTable& kernels, Options options);
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  /// Bytes of one page (one layer group) of `type` for `config`.
  static std::size_t page_bytes(const ModelConfig& config, KvType type);
  /// The hash every sequence's chain starts from: the model file's identity (its index
  /// checksum), the KV type and the page size, everything besides the tokens that the keys
  /// depend on.
  static std::uint64_t seed_for(std::uint64_t model_id, KvType type);
  /// Hash of a page holding `tokens`, after the pages hashed into `prev`.
  static std::uint64_t chain(std::uint64_t prev, std::span<const std::int32_t> tokens);

  KvPoolStats stats() const;
  std::uint32_t capacity() const { return static_cast<std::uint32_t>(meta_.size()); }
  /// Pages allocate() can hand out: free ones plus cached ones it may evict.
  std::uint32_t available() const { return free_count() + cached_; }
  std::uint64_t seed() const { return seed_; }
  KvType type() const { return type_; }
  const KvLayout& layout() const { return layout_; }
  bool cache_past_window() const { return cache_past_window_; }

  /// A page with one reference, evicting the least recently used cached page if none is free.
  /// Fails (ErrorCode::PoolFull) when every page is referenced.
  PageId allocate();
  void retain(PageId p);
  /// Drops a reference; at zero a published page stays cached, any other is free.
  void release(PageId p);
  std::uint32_t refs(PageId p) const { return meta_[p].refs; }
  /// True if the page may be written: one holder and no published content.
  bool writable(PageId p) const { return meta_[p].refs == 1 && !meta_[p].published; }
  /// Withdraws a page's published content (its one holder is about to overwrite it).
  void unpublish(PageId p);

  /// Publishes the first tokens.size() (1..kKvPageTokens) positions of a written page of layer
  /// group `group`.
  void publish(PageId p, std::uint32_t group, std::uint64_t prev,
               std::span<const std::int32_t> tokens);
  bool published(PageId p) const { return meta_[p].published; }
  /// A published full page of `group` that follows `prev` and holds exactly `tokens`
  /// (kKvPageTokens), or kNoPage.
  PageId find_full(std::uint32_t group, std::uint64_t prev,
                   std::span<const std::int32_t> tokens) const;
  /// The published page of `group` following `prev` whose tokens share the longest prefix with
  /// `tokens`.
  struct Match {
    PageId page = kNoPage;
    std::uint32_t tokens = 0;
  };
  Match longest(std::uint32_t group, std::uint64_t prev,
                std::span<const std::int32_t> tokens) const;
  /// Copies positions [0, n) of every (layer, head) from `src` to `dst`.
  void copy(PageId dst, PageId src, std::uint32_t n);

  /// Writes one position's key and value (converted to type()); the page must be writable.
  /// `layer` is the layer's slot within its group (KvLayout::slot_of).
  void store(PageId p, std::uint32_t slot, std::uint32_t layer, std::uint32_t kv_head,
             std::span<const float> key, std::span<const float> value);
  /// Reads one position back as floats (exact for either type).
  void load(PageId p, std::uint32_t slot, std::uint32_t layer, std::uint32_t kv_head,
            std::span<float> key, std::span<float> value) const;
  /// The keys (value = false) or values of (layer, kv_head) in page p; write only a writable
  /// page's. block_bytes() long; the next page's follow. Values are kKvPageTokens rows of
  /// head_dim; keys are dims-major: head_dim rows of kKvPageTokens, element i of slot t at
  /// i * kKvPageTokens + t, so attention scores a vector of keys per dimension without reductions.
  std::byte* rows(PageId p, std::uint32_t layer, std::uint32_t kv_head, bool value) const {
    return data_.get() + region(layer, kv_head, value) + p * block_bytes_;
  }
  /// Byte offset of element `dim` of slot `slot`'s key within a page's keys (rows(..., false)),
  /// for elements of `es` bytes: the dims-major layout's one definition.
  static std::size_t key_offset(std::size_t dim, std::size_t slot, std::size_t es) {
    return (dim * kKvPageTokens + slot) * es;
  }
  /// Bytes of one page's rows of one (layer, head), keys or values.
  std::size_t block_bytes() const { return block_bytes_; }
  /// Bytes of a whole page (keys and values of every layer and head of its group).
  std::size_t page_size() const { return page_bytes_; }
  std::uint32_t head_dim() const { return head_dim_; }
  /// Layers in one page (KvLayout::group_layers).
  std::uint32_t layers() const { return n_layers_; }
  std::uint32_t kv_heads() const { return n_kv_heads_; }

 private:
  struct Meta {
    std::uint32_t refs = 0;
    bool published = false;
    std::uint8_t n = 0;  // published tokens
    std::uint32_t group = 0;
    std::uint64_t prev = 0;
    std::int32_t tokens[kKvPageTokens] = {};
    PageId older = kNoPage, newer = kNoPage;  // LRU list links while cached
  };
  struct Unmap {
    std::size_t bytes;
    void operator()(std::byte* p) const noexcept;
  };
  std::uint32_t free_count() const { return static_cast<std::uint32_t>(free_.size()); }
  // The index key of pages of `group` following `prev` (lookups compare both again).
  static std::uint64_t key(std::uint32_t group, std::uint64_t prev) {
    return prev ^ (0x9E3779B97F4A7C15ull * (group + 1ull));
  }
  void lru_push(PageId p);
  void lru_remove(PageId p);
  std::size_t region(std::uint32_t layer, std::uint32_t kv_head, bool value) const {
    return ((std::size_t{value} * n_layers_ + layer) * n_kv_heads_ + kv_head) * capacity() *
           block_bytes_;
  }

  KvLayout layout_;
  std::uint32_t n_layers_, n_kv_heads_, head_dim_;
  KvType type_;
  bool cache_past_window_;
  std::uint64_t seed_;
  void (*to_f16_)(const float*, std::uint16_t*, std::size_t);
  std::size_t page_bytes_, block_bytes_;
  std::unique_ptr<std::byte[], Unmap> data_;
  std::vector<Meta> meta_;
  std::vector<PageId> free_;  // a stack: low pages first, so memory is committed front to back
  std::unordered_multimap<std::uint64_t, PageId> index_;  // key(group, prev) -> published pages
  PageId oldest_ = kNoPage, newest_ = kNoPage;
  std::uint32_t cached_ = 0;
};

}  // namespace qlm::detail
