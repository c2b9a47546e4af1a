// SequenceKv: one sequence's tokens and the pages holding their keys and values: one page table
// into a KvPool per layer group (KvLayout). Shares pages copy-on-write: a page is written only
// while this sequence is its one holder; a shared one is copied first, and a published one it
// alone holds is withdrawn (a truncated sequence rewrites its own last page in place). Sliding
// groups let go of the pages that leave the window; their table keeps kNoPage there.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kv/kv_pool.hpp"
#include "ops/attention.hpp"

namespace qlm::detail {

class SequenceKv {
 public:
  explicit SequenceKv(KvPool& pool);
  SequenceKv(SequenceKv&& o) noexcept;
  SequenceKv& operator=(SequenceKv&& o) noexcept;
  SequenceKv(const SequenceKv&) = delete;
  SequenceKv& operator=(const SequenceKv&) = delete;
  /// Releases every page; a partial last page this sequence alone holds is published first, so
  /// a later prompt that shares part of it can copy that part.
  ~SequenceKv();

  /// A sequence with the same tokens sharing every page (copy-on-write).
  SequenceKv fork() const;

  std::span<const std::int32_t> tokens() const { return tokens_; }
  std::uint32_t size() const { return static_cast<std::uint32_t>(tokens_.size()); }
  /// Pages the pool must provide before `n` more tokens can be written (new pages, and a copy of
  /// a shared last page), summed over the layer groups.
  std::uint32_t pages_needed(std::uint32_t n) const;
  /// Makes positions [size, size + n) writable. Throws PoolFull (after releasing what it took)
  /// if the pool runs out.
  void reserve(std::uint32_t n);
  /// Records `tokens` as written at [size, size + tokens.size()), publishes the pages they
  /// filled and lets go of the sliding groups' pages that left the window.
  void append(std::span<const std::int32_t> tokens);
  /// Keeps at most the first n <= size tokens and returns how many it kept: n, unless a sliding
  /// group's pages that the window at n needs were let go and have left the pool since; then the
  /// longest prefix whose window is still whole.
  std::uint32_t truncate(std::uint32_t n);
  /// Releases pages past the last token (after a failed evaluation).
  void trim();
  /// On an empty sequence: takes the longest cached prefix of `prompt`, at most `max` tokens
  /// (whole published pages shared, then the matching part of one more page copied; sliding
  /// groups need only the pages of the window at the prefix's end). Returns the tokens taken.
  std::uint32_t adopt(std::span<const std::int32_t> prompt, std::uint32_t max);
  /// On an empty sequence, for restoring a saved one: pages for `n` tokens, of sliding groups only
  /// those the window at n needs; pages_needed_empty(n) of them.
  void reserve_restore(std::uint32_t n);
  std::uint32_t pages_needed_empty(std::uint32_t n) const;

  /// The sliding groups' pages of the window at the current size, held by one more reference so
  /// that an evaluation in several steps can roll back to here though its window moved on.
  struct Pin {
    std::uint32_t size = 0;
    std::vector<std::vector<PageId>> pages;  // per group: [first_needed_page(size), pages_for)
  };
  Pin pin() const;
  /// Drops the pin's references (after the evaluation succeeded).
  void unpin(Pin& pin);
  /// Back to the pinned size with the pinned pages (after the evaluation failed); drops the pin.
  void rollback(Pin& pin);

  void store(std::uint32_t layer, std::uint32_t kv_head, std::uint32_t pos,
             std::span<const float> key, std::span<const float> value) {
    const KvLayout& k = pool_->layout();
    pool_->store(tables_[k.group_of[layer]][pos / kKvPageTokens], pos % kKvPageTokens,
                 k.slot_of[layer], kv_head, key, value);
  }
  void load(std::uint32_t layer, std::uint32_t kv_head, std::uint32_t pos, std::span<float> key,
            std::span<float> value) const {
    const KvLayout& k = pool_->layout();
    pool_->load(tables_[k.group_of[layer]][pos / kKvPageTokens], pos % kKvPageTokens,
                k.slot_of[layer], kv_head, key, value);
  }
  /// The pages of (layer, kv_head) as attention reads them.
  ops::KvPages view(std::uint32_t layer, std::uint32_t kv_head) const;
  /// Group g's page table (kNoPage where a sliding group let a page go).
  std::span<const PageId> pages(std::uint32_t group) const { return tables_[group]; }
  KvPool& pool() const { return *pool_; }

 private:
  std::uint64_t hash_before(std::size_t page) const {
    return page == 0 ? pool_->seed() : chain_[page - 1];
  }
  const KvLayout& layout() const { return pool_->layout(); }
  void release_all() noexcept;
  void drop_past_window();
  bool window_whole(std::uint32_t n, std::uint32_t& missing) const;
  void reacquire(std::uint32_t n);

  KvPool* pool_;
  std::vector<std::vector<PageId>> tables_;  // per layer group
  std::vector<std::int32_t> tokens_;
  std::vector<std::uint64_t> chain_;  // chain_[i]: content hash through full page i
  std::uint32_t live_ = 0;            // sliding groups hold no page before this one
};

}  // namespace qlm::detail
