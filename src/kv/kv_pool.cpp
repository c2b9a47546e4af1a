// KvPool storage and bookkeeping. The pages are one anonymous mapping, committed by the OS only
// as they are first written; the allocator hands out low pages first so a lightly used pool stays
// small in memory.
#include "kv/kv_pool.hpp"

#include <sys/mman.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "qlm/detail/half.hpp"
#include "util/fail.hpp"

namespace qlm::detail {

void KvPool::Unmap::operator()(std::byte* p) const noexcept {
  munmap(p, bytes);
}

std::size_t KvPool::page_bytes(const ModelConfig& c, KvType type) {
  return 2 * static_cast<std::size_t>(KvLayout::of(c).group_layers) * c.n_kv_heads * kKvPageTokens *
         c.head_dim * kv_type_size(type);
}

std::uint64_t KvPool::seed_for(std::uint64_t model_id, KvType type) {
  const std::uint64_t parts[] = {model_id, static_cast<std::uint64_t>(type), kKvPageTokens};
  return XXH3_64bits(parts, sizeof parts);
}

std::uint64_t KvPool::chain(std::uint64_t prev, std::span<const std::int32_t> tokens) {
  return XXH3_64bits_withSeed(tokens.data(), tokens.size_bytes(), prev);
}

KvPool::KvPool(const ModelConfig& c, std::uint32_t pages, KvType type, std::uint64_t seed,
               const kernels::KernelTable& kernels, Options options)
    : layout_(KvLayout::of(c)),
      n_layers_(layout_.group_layers),
      n_kv_heads_(c.n_kv_heads),
      head_dim_(c.head_dim),
      type_(type),
      cache_past_window_(options.cache_past_window),
      seed_(seed),
      to_f16_(kernels.f32_to_f16),
      page_bytes_(page_bytes(c, type)),
      block_bytes_(std::size_t{kKvPageTokens} * c.head_dim * kv_type_size(type)),
      meta_(pages) {
  const std::size_t bytes = std::max<std::size_t>(page_bytes_ * pages, 1);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  // Advice only (the system may not have or allow them); failure changes nothing.
  if (options.huge_pages) madvise(p, bytes, MADV_HUGEPAGE);
#endif
  data_ = std::unique_ptr<std::byte[], Unmap>(static_cast<std::byte*>(p), Unmap{bytes});
  free_.resize(pages);
  for (std::uint32_t i = 0; i < pages; ++i) free_[i] = pages - 1 - i;
}

KvPoolStats KvPool::stats() const {
  const std::uint32_t free = free_count();
  return {.pages = capacity(),
          .used = capacity() - free - cached_,
          .cached = cached_,
          .free = free,
          .page_bytes = page_bytes_,
          .type = type_};
}

PageId KvPool::allocate() {
  PageId p = kNoPage;
  if (!free_.empty()) {
    p = free_.back();
    free_.pop_back();
  } else if (oldest_ != kNoPage) {
    p = oldest_;
    lru_remove(p);
    unpublish(p);
  } else {
    fail(ErrorCode::PoolFull, "KV pool full: all {} pages ({} tokens) are held by sequences",
         capacity(), std::size_t{capacity()} * kKvPageTokens);
  }
  meta_[p].refs = 1;
  return p;
}

void KvPool::retain(PageId p) {
  Meta& m = meta_[p];
  if (m.refs == 0) lru_remove(p);  // only published pages are adopted with no holder
  ++m.refs;
}

void KvPool::release(PageId p) {
  Meta& m = meta_[p];
  if (--m.refs != 0) return;
  if (m.published) {
    lru_push(p);
  } else {
    free_.push_back(p);
  }
}

void KvPool::publish(PageId p, std::uint32_t group, std::uint64_t prev,
                     std::span<const std::int32_t> tokens) {
  Meta& m = meta_[p];
  if (m.published) unpublish(p);
  m.published = true;
  m.group = group;
  m.prev = prev;
  m.n = static_cast<std::uint8_t>(tokens.size());
  std::copy(tokens.begin(), tokens.end(), m.tokens);
  index_.emplace(key(group, prev), p);
}

void KvPool::unpublish(PageId p) {
  Meta& m = meta_[p];
  auto [lo, hi] = index_.equal_range(key(m.group, m.prev));
  for (auto it = lo; it != hi; ++it) {
    if (it->second == p) {
      index_.erase(it);
      break;
    }
  }
  m.published = false;
  m.n = 0;
}

PageId KvPool::find_full(std::uint32_t group, std::uint64_t prev,
                         std::span<const std::int32_t> tokens) const {
  auto [lo, hi] = index_.equal_range(key(group, prev));
  for (auto it = lo; it != hi; ++it) {
    const Meta& m = meta_[it->second];
    if (m.group != group || m.prev != prev) continue;
    if (m.n == kKvPageTokens && std::equal(tokens.begin(), tokens.end(), m.tokens)) {
      return it->second;
    }
  }
  return kNoPage;
}

KvPool::Match KvPool::longest(std::uint32_t group, std::uint64_t prev,
                              std::span<const std::int32_t> tokens) const {
  Match best;
  auto [lo, hi] = index_.equal_range(key(group, prev));
  for (auto it = lo; it != hi; ++it) {
    const Meta& m = meta_[it->second];
    if (m.group != group || m.prev != prev) continue;
    const std::size_t n = std::min<std::size_t>(m.n, tokens.size());
    const auto same = static_cast<std::uint32_t>(
        std::mismatch(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(n), m.tokens)
            .first -
        tokens.begin());
    if (same > best.tokens) best = {it->second, same};
  }
  return best;
}

void KvPool::copy(PageId dst, PageId src, std::uint32_t n) {
  const std::size_t es = kv_type_size(type_), run = std::size_t{n} * head_dim_ * es;
  for (std::uint32_t l = 0; l < n_layers_; ++l) {
    for (std::uint32_t h = 0; h < n_kv_heads_; ++h) {
      const std::byte* ks = rows(src, l, h, false);
      std::byte* kd = rows(dst, l, h, false);
      for (std::size_t i = 0; i < head_dim_; ++i) {  // slots [0, n) of each dimension's row
        std::memcpy(kd + key_offset(i, 0, es), ks + key_offset(i, 0, es), n * es);
      }
      std::memcpy(rows(dst, l, h, true), rows(src, l, h, true), run);
    }
  }
}

void KvPool::store(PageId p, std::uint32_t slot, std::uint32_t layer, std::uint32_t kv_head,
                   std::span<const float> key, std::span<const float> value) {
  const std::size_t hd = head_dim_, es = kv_type_size(type_);
  std::byte* k = rows(p, layer, kv_head, false);
  std::byte* v = rows(p, layer, kv_head, true) + slot * hd * es;
  if (type_ == KvType::F32) {
    for (std::size_t i = 0; i < hd; ++i) std::memcpy(k + key_offset(i, slot, 4), &key[i], 4);
    std::memcpy(v, value.data(), hd * 4);
    return;
  }
  to_f16_(value.data(), reinterpret_cast<std::uint16_t*>(v), hd);
  std::uint16_t half[64];  // the key converted 64 elements at a time, then spread over its rows
  for (std::size_t i0 = 0; i0 < hd; i0 += 64) {
    const std::size_t c = std::min<std::size_t>(64, hd - i0);
    to_f16_(key.data() + i0, half, c);
    for (std::size_t i = 0; i < c; ++i) std::memcpy(k + key_offset(i0 + i, slot, 2), &half[i], 2);
  }
}

void KvPool::load(PageId p, std::uint32_t slot, std::uint32_t layer, std::uint32_t kv_head,
                  std::span<float> key, std::span<float> value) const {
  const std::size_t hd = head_dim_, es = kv_type_size(type_);
  const std::byte* k = rows(p, layer, kv_head, false);
  const std::byte* v = rows(p, layer, kv_head, true) + slot * hd * es;
  if (type_ == KvType::F32) {
    for (std::size_t i = 0; i < hd; ++i) std::memcpy(&key[i], k + key_offset(i, slot, 4), 4);
    std::memcpy(value.data(), v, hd * 4);
    return;
  }
  std::uint16_t kb = 0, vb = 0;
  for (std::size_t i = 0; i < hd; ++i) {
    std::memcpy(&kb, k + key_offset(i, slot, 2), 2);
    std::memcpy(&vb, v + 2 * i, 2);
    key[i] = f16_to_f32(kb);
    value[i] = f16_to_f32(vb);
  }
}

void KvPool::lru_push(PageId p) {
  Meta& m = meta_[p];
  m.older = newest_;
  m.newer = kNoPage;
  if (newest_ != kNoPage) meta_[newest_].newer = p;
  newest_ = p;
  if (oldest_ == kNoPage) oldest_ = p;
  ++cached_;
}

void KvPool::lru_remove(PageId p) {
  Meta& m = meta_[p];
  if (m.older != kNoPage) meta_[m.older].newer = m.newer;
  if (m.newer != kNoPage) meta_[m.newer].older = m.older;
  if (oldest_ == p) oldest_ = m.newer;
  if (newest_ == p) newest_ = m.older;
  m.older = m.newer = kNoPage;
  --cached_;
}

}  // namespace qlm::detail
