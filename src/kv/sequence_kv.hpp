// SequenceKv: one sequence's tokens and the pages holding their keys and values (a page table
// into a KvPool). Shares pages copy-on-write: a page is written only while this sequence is its
// one holder; a shared one is copied first, and a published one it alone holds is withdrawn
// (a truncated sequence rewrites its own last page in place).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kv/kv_pool.hpp"
#include "ops/attention.hpp"

namespace qlm::detail {

class SequenceKv {
 public:
  explicit SequenceKv(KvPool& pool) : pool_(&pool) {}
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
  /// a shared last page).
  std::uint32_t pages_needed(std::uint32_t n) const;
  /// Makes positions [size, size + n) writable. Throws PoolFull (after releasing what it took)
  /// if the pool runs out.
  void reserve(std::uint32_t n);
  /// Records `tokens` as written at [size, size + tokens.size()) and publishes the pages they
  /// filled.
  void append(std::span<const std::int32_t> tokens);
  /// Keeps the first n <= size tokens.
  void truncate(std::uint32_t n);
  /// Releases pages past the last token (after a failed evaluation).
  void trim();
  /// On an empty sequence: takes the longest cached prefix of `prompt`, at most `max` tokens
  /// (whole published pages shared, then the matching part of one more page copied). Returns the
  /// tokens taken.
  std::uint32_t adopt(std::span<const std::int32_t> prompt, std::uint32_t max);

  void store(std::uint32_t layer, std::uint32_t kv_head, std::uint32_t pos,
             std::span<const float> key, std::span<const float> value) {
    pool_->store(pages_[pos / kKvPageTokens], pos % kKvPageTokens, layer, kv_head, key, value);
  }
  void load(std::uint32_t layer, std::uint32_t kv_head, std::uint32_t pos, std::span<float> key,
            std::span<float> value) const {
    pool_->load(pages_[pos / kKvPageTokens], pos % kKvPageTokens, layer, kv_head, key, value);
  }
  /// The pages of (layer, kv_head) as attention reads them.
  ops::KvPages view(std::uint32_t layer, std::uint32_t kv_head) const;
  std::span<const PageId> pages() const { return pages_; }
  KvPool& pool() const { return *pool_; }

 private:
  std::uint64_t hash_before(std::size_t page) const {
    return page == 0 ? pool_->seed() : chain_[page - 1];
  }
  void release_all() noexcept;

  KvPool* pool_;
  std::vector<PageId> pages_;
  std::vector<std::int32_t> tokens_;
  std::vector<std::uint64_t> chain_;  // chain_[i]: content hash through full page i
};

}  // namespace qlm::detail
