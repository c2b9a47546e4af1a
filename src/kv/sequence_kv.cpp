// SequenceKv: page-table bookkeeping (copy-on-write, publishing full pages, adopting a cached
// prefix). The keys themselves are written by the forward pass through store().
#include "kv/sequence_kv.hpp"

#include <algorithm>
#include <utility>

namespace qlm::detail {
namespace {

std::size_t pages_for(std::size_t tokens) {
  return (tokens + kKvPageTokens - 1) / kKvPageTokens;
}

}  // namespace

SequenceKv::SequenceKv(SequenceKv&& o) noexcept
    : pool_(o.pool_),
      pages_(std::exchange(o.pages_, {})),
      tokens_(std::exchange(o.tokens_, {})),
      chain_(std::exchange(o.chain_, {})) {}

SequenceKv& SequenceKv::operator=(SequenceKv&& o) noexcept {
  if (this != &o) {
    release_all();
    pool_ = o.pool_;
    pages_ = std::exchange(o.pages_, {});
    tokens_ = std::exchange(o.tokens_, {});
    chain_ = std::exchange(o.chain_, {});
  }
  return *this;
}

SequenceKv::~SequenceKv() {
  release_all();
}

void SequenceKv::release_all() noexcept {
  const std::size_t partial = tokens_.size() % kKvPageTokens;
  if (partial != 0 && pages_.size() > tokens_.size() / kKvPageTokens) {
    const std::size_t i = tokens_.size() / kKvPageTokens;
    if (pool_->writable(pages_[i])) {
      pool_->publish(pages_[i], hash_before(i), std::span(tokens_).subspan(i * kKvPageTokens));
    }
  }
  for (PageId p : pages_) pool_->release(p);
  pages_.clear();
  tokens_.clear();
  chain_.clear();
}

SequenceKv SequenceKv::fork() const {
  SequenceKv s(*pool_);
  for (PageId p : pages_) pool_->retain(p);
  s.pages_ = pages_;
  s.tokens_ = tokens_;
  s.chain_ = chain_;
  s.trim();
  return s;
}

std::uint32_t SequenceKv::pages_needed(std::uint32_t n) const {
  const std::size_t first = tokens_.size() / kKvPageTokens, end = pages_for(tokens_.size() + n);
  std::uint32_t need = 0;
  for (std::size_t i = first; i < end; ++i) {
    if (i >= pages_.size() || pool_->refs(pages_[i]) > 1) ++need;
  }
  return need;
}

void SequenceKv::reserve(std::uint32_t n) {
  const std::size_t first = tokens_.size() / kKvPageTokens, end = pages_for(tokens_.size() + n);
  try {
    for (std::size_t i = first; i < end; ++i) {
      if (i >= pages_.size()) {
        pages_.push_back(pool_->allocate());
      } else if (pool_->refs(pages_[i]) == 1) {
        if (pool_->published(pages_[i])) pool_->unpublish(pages_[i]);
      } else {
        const PageId copy = pool_->allocate();  // the old page is held, so it is not evicted
        pool_->copy(copy, pages_[i], static_cast<std::uint32_t>(tokens_.size() % kKvPageTokens));
        pool_->release(pages_[i]);
        pages_[i] = copy;
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
    pool_->publish(pages_[i], hash_before(i), page);
    chain_.push_back(KvPool::chain(hash_before(i), page));
  }
}

void SequenceKv::truncate(std::uint32_t n) {
  tokens_.resize(std::min<std::size_t>(n, tokens_.size()));
  chain_.resize(tokens_.size() / kKvPageTokens);
  trim();
}

void SequenceKv::trim() {
  const std::size_t keep = pages_for(tokens_.size());
  while (pages_.size() > keep) {
    pool_->release(pages_.back());
    pages_.pop_back();
  }
}

std::uint32_t SequenceKv::adopt(std::span<const std::int32_t> prompt, std::uint32_t max) {
  if (!tokens_.empty()) return 0;
  max = static_cast<std::uint32_t>(std::min<std::size_t>(max, prompt.size()));
  std::size_t taken = 0;
  while (taken + kKvPageTokens <= max) {
    const auto page = prompt.subspan(taken, kKvPageTokens);
    const PageId p = pool_->find_full(hash_before(pages_.size()), page);
    if (p == kNoPage) break;
    pool_->retain(p);
    chain_.push_back(KvPool::chain(hash_before(pages_.size()), page));
    pages_.push_back(p);
    taken += kKvPageTokens;
  }
  const auto rest = prompt.subspan(taken, std::min<std::size_t>(kKvPageTokens, max - taken));
  const KvPool::Match m = pool_->longest(hash_before(pages_.size()), rest);
  if (m.tokens != 0) {
    pool_->retain(m.page);  // held, so finding a page for the copy cannot evict it
    if (pool_->available() != 0) {
      const PageId copy = pool_->allocate();
      pool_->copy(copy, m.page, m.tokens);
      pages_.push_back(copy);
      taken += m.tokens;
    }
    pool_->release(m.page);
  }
  tokens_.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(taken));
  return static_cast<std::uint32_t>(taken);
}

ops::KvPages SequenceKv::view(std::uint32_t layer, std::uint32_t kv_head) const {
  return {.key = pool_->rows(0, layer, kv_head, false),
          .value = pool_->rows(0, layer, kv_head, true),
          .page_stride = pool_->block_bytes(),
          .pages = pages_.data(),
          .type = pool_->type()};
}

}  // namespace qlm::detail
