// SequenceKv: page-table bookkeeping (copy-on-write, publishing full pages, adopting a cached
// prefix, letting sliding-window pages go). The keys themselves are written by the forward pass
// through store().
#include "kv/sequence_kv.hpp"

#include <algorithm>
#include <utility>

namespace qlm::detail {
namespace {

std::uint32_t pages_for(std::size_t tokens) {
  return static_cast<std::uint32_t>((tokens + kKvPageTokens - 1) / kKvPageTokens);
}

}  // namespace

SequenceKv::SequenceKv(KvPool& pool) : pool_(&pool), tables_(pool.layout().groups()) {}

SequenceKv::SequenceKv(SequenceKv&& o) noexcept
    : pool_(o.pool_),
      tables_(std::exchange(o.tables_, std::vector<std::vector<PageId>>(o.tables_.size()))),
      tokens_(std::exchange(o.tokens_, {})),
      chain_(std::exchange(o.chain_, {})),
      live_(std::exchange(o.live_, 0)) {}

SequenceKv& SequenceKv::operator=(SequenceKv&& o) noexcept {
  if (this != &o) {
    release_all();
    pool_ = o.pool_;
    tables_ = std::exchange(o.tables_, std::vector<std::vector<PageId>>(o.tables_.size()));
    tokens_ = std::exchange(o.tokens_, {});
    chain_ = std::exchange(o.chain_, {});
    live_ = std::exchange(o.live_, 0);
  }
  return *this;
}

SequenceKv::~SequenceKv() {
  release_all();
}

void SequenceKv::release_all() noexcept {
  const std::size_t i = tokens_.size() / kKvPageTokens;
  for (std::uint32_t g = 0; g < tables_.size(); ++g) {
    std::vector<PageId>& t = tables_[g];
    if (tokens_.size() % kKvPageTokens != 0 && t.size() > i && pool_->writable(t[i])) {
      pool_->publish(t[i], g, hash_before(i), std::span(tokens_).subspan(i * kKvPageTokens));
    }
    for (PageId p : t) {
      if (p != kNoPage) pool_->release(p);
    }
    t.clear();
  }
  tokens_.clear();
  chain_.clear();
  live_ = 0;
}

SequenceKv SequenceKv::fork() const {
  SequenceKv s(*pool_);
  for (const auto& t : tables_) {
    for (PageId p : t) {
      if (p != kNoPage) pool_->retain(p);
    }
  }
  s.tables_ = tables_;
  s.tokens_ = tokens_;
  s.chain_ = chain_;
  s.live_ = live_;
  s.trim();
  return s;
}

std::uint32_t SequenceKv::pages_needed(std::uint32_t n) const {
  const std::size_t first = tokens_.size() / kKvPageTokens, end = pages_for(tokens_.size() + n);
  std::uint32_t need = 0;
  for (const auto& t : tables_) {
    for (std::size_t i = first; i < end; ++i) {
      if (i >= t.size() || pool_->refs(t[i]) > 1) ++need;
    }
  }
  return need;
}

void SequenceKv::reserve(std::uint32_t n) {
  const std::size_t first = tokens_.size() / kKvPageTokens, end = pages_for(tokens_.size() + n);
  try {
    for (auto& t : tables_) {
      for (std::size_t i = first; i < end; ++i) {
        if (i >= t.size()) {
          t.push_back(pool_->allocate());
        } else if (pool_->refs(t[i]) == 1) {
          if (pool_->published(t[i])) pool_->unpublish(t[i]);
        } else {
          const PageId copy = pool_->allocate();  // the old page is held, so it is not evicted
          pool_->copy(copy, t[i], static_cast<std::uint32_t>(tokens_.size() % kKvPageTokens));
          pool_->release(t[i]);
          t[i] = copy;
        }
      }
    }
  } catch (...) {
    trim();
    throw;
  }
}

void SequenceKv::append(std::span<const std::int32_t> tokens) {
  const std::size_t before = tokens_.size();
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  for (std::size_t i = before / kKvPageTokens; i < tokens_.size() / kKvPageTokens; ++i) {
    const auto page = std::span(tokens_).subspan(i * kKvPageTokens, kKvPageTokens);
    for (std::uint32_t g = 0; g < tables_.size(); ++g) {
      if (tables_[g][i] != kNoPage) pool_->publish(tables_[g][i], g, hash_before(i), page);
    }
    chain_.push_back(KvPool::chain(hash_before(i), page));
  }
  drop_past_window();
}

void SequenceKv::drop_past_window() {
  const std::uint32_t live = layout().first_kept_page(size());
  for (std::uint32_t g = 0; g < tables_.size(); ++g) {
    if (!layout().sliding(g)) continue;
    std::vector<PageId>& t = tables_[g];
    for (std::uint32_t i = live_; i < live && i < t.size(); ++i) {
      if (t[i] == kNoPage) continue;
      // A Session's pool frees them, so its memory stays at the window.
      if (!pool_->cache_past_window() && pool_->refs(t[i]) == 1 && pool_->published(t[i])) {
        pool_->unpublish(t[i]);
      }
      pool_->release(t[i]);
      t[i] = kNoPage;
    }
  }
  live_ = std::max(live_, live);
}

std::uint32_t SequenceKv::truncate(std::uint32_t n) {
  n = std::min(n, size());
  if (layout().window != 0 && n < size()) {
    std::uint32_t missing = 0;
    for (reacquire(n); !window_whole(n, missing); reacquire(n)) n = missing * kKvPageTokens;
  }
  tokens_.resize(n);
  chain_.resize(tokens_.size() / kKvPageTokens);
  trim();
  live_ = 0;  // drop_past_window() looks at every page again
  drop_past_window();
  return n;
}

// Takes back, while their tokens are still known, the pages of the window at n that this sequence
// let go and the pool still caches.
void SequenceKv::reacquire(std::uint32_t n) {
  for (std::uint32_t g = 0; g < tables_.size(); ++g) {
    if (!layout().sliding(g)) continue;
    std::vector<PageId>& t = tables_[g];
    for (std::uint32_t i = layout().first_needed_page(n); i < pages_for(n); ++i) {
      if (t[i] != kNoPage) continue;  // a page let go was full, so chain_ and tokens_ cover it
      const auto page = std::span(tokens_).subspan(std::size_t{i} * kKvPageTokens, kKvPageTokens);
      const PageId p = pool_->find_full(g, hash_before(i), page);
      if (p != kNoPage) {
        pool_->retain(p);
        t[i] = p;
      }
    }
  }
}

// Whether every sliding group holds the pages of the window at n; if not, `missing` is the lowest
// page it lacks (no prefix longer than missing pages can be kept).
bool SequenceKv::window_whole(std::uint32_t n, std::uint32_t& missing) const {
  for (std::uint32_t i = layout().first_needed_page(n); i < pages_for(n); ++i) {
    for (std::uint32_t g = 0; g < tables_.size(); ++g) {
      if (layout().sliding(g) && tables_[g][i] == kNoPage) {
        missing = i;
        return false;
      }
    }
  }
  return true;
}

void SequenceKv::trim() {
  const std::size_t keep = pages_for(tokens_.size());
  for (auto& t : tables_) {
    while (t.size() > keep) {
      if (t.back() != kNoPage) pool_->release(t.back());
      t.pop_back();
    }
  }
}

std::uint32_t SequenceKv::adopt(std::span<const std::int32_t> prompt, std::uint32_t max) {
  if (!tokens_.empty()) return 0;
  const KvLayout& k = layout();
  const std::uint32_t groups = k.groups();
  max = static_cast<std::uint32_t>(std::min<std::size_t>(max, prompt.size()));
  // Whole pages: every global group's must be cached from the start, a sliding group's only in
  // the window at the end of what is taken.
  std::vector<std::vector<PageId>> found(groups);
  std::uint32_t full = 0;
  for (; (full + 1) * kKvPageTokens <= max; ++full) {
    const auto page = prompt.subspan(std::size_t{full} * kKvPageTokens, kKvPageTokens);
    bool global_ok = true;
    for (std::uint32_t g = 0; g < groups; ++g) {
      found[g].push_back(pool_->find_full(g, hash_before(full), page));
      global_ok = global_ok && (k.sliding(g) || found[g].back() != kNoPage);
    }
    if (!global_ok) break;
    chain_.push_back(KvPool::chain(hash_before(full), page));
  }
  auto window_cached = [&](std::uint32_t pages) {
    for (std::uint32_t i = k.first_needed_page(pages * kKvPageTokens); i < pages; ++i) {
      for (std::uint32_t g = 0; g < groups; ++g) {
        if (found[g][i] == kNoPage) return false;
      }
    }
    return true;
  };
  while (full > 0 && !window_cached(full)) --full;
  chain_.resize(full);
  const std::uint32_t live = k.first_needed_page(full * kKvPageTokens);
  for (std::uint32_t g = 0; g < groups; ++g) {
    for (std::uint32_t i = 0; i < full; ++i) {
      const bool held = !k.sliding(g) || i >= live;
      if (held) pool_->retain(found[g][i]);
      tables_[g].push_back(held ? found[g][i] : kNoPage);
    }
  }
  live_ = live;
  std::uint32_t taken = full * kKvPageTokens;
  // Then the part of one more page that every group has cached, copied.
  const auto rest = prompt.subspan(taken, std::min<std::size_t>(kKvPageTokens, max - taken));
  std::vector<KvPool::Match> match(groups);
  std::uint32_t same = rest.empty() ? 0 : kKvPageTokens;
  for (std::uint32_t g = 0; g < groups && same != 0; ++g) {
    match[g] = pool_->longest(g, hash_before(full), rest);
    same = std::min(same, match[g].tokens);
  }
  if (same != 0) {
    for (const auto& m : match) pool_->retain(m.page);  // held: allocating cannot evict them
    if (pool_->available() >= groups) {
      for (std::uint32_t g = 0; g < groups; ++g) {
        const PageId copy = pool_->allocate();
        pool_->copy(copy, match[g].page, same);
        tables_[g].push_back(copy);
      }
      taken += same;
    }
    for (const auto& m : match) pool_->release(m.page);
  }
  tokens_.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(taken));
  return taken;
}

std::uint32_t SequenceKv::pages_needed_empty(std::uint32_t n) const {
  std::uint32_t need = 0;
  for (std::uint32_t g = 0; g < tables_.size(); ++g) {
    need += pages_for(n) - (layout().sliding(g) ? layout().first_needed_page(n) : 0);
  }
  return need;
}

void SequenceKv::reserve_restore(std::uint32_t n) {
  const std::uint32_t live = layout().first_needed_page(n);
  try {
    for (std::uint32_t g = 0; g < tables_.size(); ++g) {
      const std::uint32_t start = layout().sliding(g) ? live : 0;
      tables_[g].assign(start, kNoPage);
      for (std::uint32_t i = start; i < pages_for(n); ++i) tables_[g].push_back(pool_->allocate());
    }
  } catch (...) {
    trim();
    throw;
  }
  live_ = live;
}

SequenceKv::Pin SequenceKv::pin() const {
  Pin pin{size(), std::vector<std::vector<PageId>>(tables_.size())};
  for (std::uint32_t g = 0; g < tables_.size(); ++g) {
    if (!layout().sliding(g)) continue;
    for (std::uint32_t i = layout().first_needed_page(size()); i < pages_for(size()); ++i) {
      pool_->retain(tables_[g][i]);
      pin.pages[g].push_back(tables_[g][i]);
    }
  }
  return pin;
}

void SequenceKv::unpin(Pin& pin) {
  for (auto& pages : pin.pages) {
    for (PageId p : pages) {
      // A page only the pin still held left the window: as drop_past_window would.
      if (!pool_->cache_past_window() && pool_->refs(p) == 1 && pool_->published(p)) {
        pool_->unpublish(p);
      }
      pool_->release(p);
    }
    pages.clear();
  }
}

void SequenceKv::rollback(Pin& pin) {
  tokens_.resize(pin.size);
  chain_.resize(pin.size / kKvPageTokens);
  trim();
  const std::uint32_t first = layout().first_needed_page(pin.size);
  for (std::uint32_t g = 0; g < tables_.size(); ++g) {
    for (std::size_t j = 0; j < pin.pages[g].size(); ++j) {
      PageId& slot = tables_[g][first + j];
      if (slot != kNoPage) pool_->release(slot);  // the pinned page itself keeps the pin's ref
      slot = pin.pages[g][j];
    }
    pin.pages[g].clear();
  }
  live_ = 0;
  drop_past_window();
}

ops::KvPages SequenceKv::view(std::uint32_t layer, std::uint32_t kv_head) const {
  const std::uint32_t slot = layout().slot_of[layer];
  return {.key = pool_->rows(0, slot, kv_head, false),
          .value = pool_->rows(0, slot, kv_head, true),
          .page_stride = pool_->block_bytes(),
          .pages = tables_[layout().group_of[layer]].data(),
          .type = pool_->type()};
}

}  // namespace qlm::detail
