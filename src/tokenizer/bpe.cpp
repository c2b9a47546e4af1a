// Priority-queue BPE over a linked list of symbols: O(n log n) per word.
#include "tokenizer/bpe.hpp"

#include <algorithm>
#include <bit>
#include <functional>

#include "tokenizer/text.hpp"
#include "util/fail.hpp"

namespace qlm::detail {
namespace {

bool heap_after(const BpeScratch::Candidate& a, const BpeScratch::Candidate& b) {
  // std::*_heap keeps the "largest" on top; we want the lowest priority, then leftmost.
  if (a.priority != b.priority) return a.priority > b.priority;
  return a.left > b.left;
}

std::size_t pair_hash(std::int32_t a, std::int32_t b) {
  const std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
                            static_cast<std::uint32_t>(b);
  return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ULL) >> 32);  // Fibonacci hashing
}

// Slot count for `n` entries: a power of two at most 3/4 full (a miss then probes ~8 slots).
std::size_t table_size(std::size_t n) {
  return std::bit_ceil(std::max<std::size_t>(n + (n + 2) / 3, 16));
}

// Linear probing from `hash`: the slot holding an id for which same(id) is true, else the empty
// slot where such an id would go.
template <class Same>
std::size_t probe(const std::vector<std::int32_t>& table, std::size_t hash, Same&& same) {
  const std::size_t mask = table.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    if (table[i] < 0 || same(table[i])) return i;
  }
}

}  // namespace

Bpe Bpe::create(const Vocabulary& vocab, std::string_view source) {
  Bpe b;
  b.vocab_ = &vocab;
  b.byte_level_ = vocab.model == TokenizerModel::ByteLevelBpe;
  b.by_score_ = !b.byte_level_ && vocab.merges.empty();
  b.byte_fallback_ = vocab.byte_fallback;
  b.ignore_merges_ = vocab.ignore_merges;
  b.unk_ = vocab.unk_id;
  const auto n = static_cast<std::int32_t>(vocab.tokens.size());
  b.pieces_.assign(table_size(vocab.tokens.size()), -1);
  for (std::int32_t id = 0; id < n; ++id) {
    const TokenType t = vocab.types[id];
    // Special tokens only come from added-token matching; SentencePiece also keeps unknown and
    // byte pieces out of the merge table.
    if (t == TokenType::Control) continue;
    if (b.by_score_ && (t == TokenType::Unknown || t == TokenType::Byte)) continue;
    b.has_unused_ = b.has_unused_ || t == TokenType::Unused;
    const std::string_view piece = vocab.tokens[id];
    const std::size_t slot =
        probe(b.pieces_, std::hash<std::string_view>{}(piece),
              [&](std::int32_t other) { return vocab.tokens[other] == piece; });
    if (b.pieces_[slot] < 0) b.pieces_[slot] = id;  // keeps the lowest id of duplicates
  }
  b.byte_ids_.fill(-1);
  for (int byte = 0; byte < 256; ++byte) {
    if (b.byte_level_) {
      b.byte_ids_[byte] = b.lookup(byte_level_map().to_text[byte]);
    } else {
      const std::string name = fmt::format("<0x{:02X}>", byte);
      for (std::int32_t id = 0; id < n && b.byte_fallback_; ++id) {
        if (vocab.types[id] == TokenType::Byte && vocab.tokens[id] == name) {
          b.byte_ids_[byte] = id;
          break;
        }
      }
    }
  }
  if (b.byte_fallback_ && !b.byte_level_) {
    // Some vocabularies do not type their <0xNN> pieces; fall back to a plain lookup.
    for (int byte = 0; byte < 256; ++byte) {
      if (b.byte_ids_[byte] < 0) b.byte_ids_[byte] = b.lookup(fmt::format("<0x{:02X}>", byte));
    }
  }
  b.merges_.assign(table_size(vocab.merges.size()), -1);
  b.merge_result_.resize(vocab.merges.size());
  std::string joined;
  for (std::size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const auto [l, r] = vocab.merges[rank];
    joined = vocab.tokens[l];
    joined += vocab.tokens[r];
    const std::int32_t result = b.lookup(joined);
    if (result < 0) {
      fail(ErrorCode::Format, "{}: merge {} ('{}' + '{}') makes '{}', which is not a token", source,
           rank, vocab.tokens[l], vocab.tokens[r], joined);
    }
    b.merge_result_[rank] = result;
    // The first (lowest-rank) occurrence of a duplicated merge wins, as in HF.
    const std::size_t slot = probe(b.merges_, pair_hash(l, r), [&](std::int32_t other) {
      return vocab.merges[other] == vocab.merges[rank];
    });
    if (b.merges_[slot] < 0) b.merges_[slot] = static_cast<std::int32_t>(rank);
  }
  return b;
}

std::int32_t Bpe::lookup(std::string_view piece) const {
  return pieces_[probe(pieces_, std::hash<std::string_view>{}(piece),
                       [&](std::int32_t id) { return vocab_->tokens[id] == piece; })];
}

std::int32_t Bpe::merge_rank(std::int32_t left, std::int32_t right) const {
  return merges_[probe(merges_, pair_hash(left, right), [&](std::int32_t rank) {
    return vocab_->merges[rank] == std::pair{left, right};
  })];
}

void Bpe::push_candidate(BpeScratch& s, std::string_view word, std::int32_t left) const {
  const std::int32_t right = s.symbols[left].next;
  if (right < 0) return;
  const auto& a = s.symbols[left];
  const auto& b = s.symbols[right];
  BpeScratch::Candidate c{0.0, left, right, a.len + b.len, -1};
  if (by_score_) {
    const std::string_view joined = word.substr(a.start, a.len + b.len);
    const std::int32_t id = lookup(joined);
    if (id < 0) return;
    c.priority = -static_cast<double>(vocab_->scores[id]);
    c.result = id;
    if (has_unused_ && vocab_->types[id] == TokenType::Unused) {
      s.rev_merge.emplace(joined,
                          std::pair{word.substr(a.start, a.len), word.substr(b.start, b.len)});
    }
  } else {
    if (a.id < 0 || b.id < 0) return;
    const std::int32_t rank = merge_rank(a.id, b.id);
    if (rank < 0) return;
    c.priority = rank;
    c.result = merge_result_[rank];
  }
  s.heap.push_back(c);
  std::push_heap(s.heap.begin(), s.heap.end(), heap_after);
}

bool Bpe::emit(std::string_view text, std::int32_t id, const BpeScratch& s,
               std::vector<std::int32_t>& out, bool prev_unk) const {
  if (id >= 0 && has_unused_ && by_score_ && vocab_->types[id] == TokenType::Unused) {
    const auto it = s.rev_merge.find(text);
    if (it != s.rev_merge.end()) {
      emit(it->second.first, lookup(it->second.first), s, out, false);
      emit(it->second.second, lookup(it->second.second), s, out, false);
      return false;
    }
  }
  if (id >= 0) {
    out.push_back(id);
    return false;
  }
  if (byte_fallback_) {
    const bool all = std::all_of(text.begin(), text.end(), [&](char c) {
      return byte_ids_[static_cast<unsigned char>(c)] >= 0;
    });
    if (all) {
      for (const char c : text) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      return false;
    }
  }
  if (unk_ < 0) return false;  // nothing can stand for it; HF would refuse, we drop it
  // Consecutive unknowns fuse into one <unk>, as SentencePiece and HF's fuse_unk do.
  if (!prev_unk) out.push_back(unk_);
  return true;
}

void Bpe::encode_word(std::string_view word, BpeScratch& s, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  auto& syms = s.symbols;
  syms.clear();
  s.heap.clear();
  s.rev_merge.clear();
  if (ignore_merges_) {
    std::string_view whole = word;
    if (byte_level_) {
      s.mapped.clear();
      for (const char c : word) s.mapped += byte_level_map().to_text[static_cast<unsigned char>(c)];
      whole = s.mapped;
    }
    if (const std::int32_t id = lookup(whole); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  const auto add = [&](std::int32_t id, std::size_t start, std::size_t len) {
    const auto i = static_cast<std::int32_t>(syms.size());
    syms.push_back(
        {id, i - 1, i + 1, static_cast<std::uint32_t>(start), static_cast<std::uint32_t>(len)});
  };
  if (byte_level_) {
    for (std::size_t i = 0; i < word.size(); ++i)
      add(byte_ids_[static_cast<unsigned char>(word[i])], i, 1);
  } else {
    for (std::size_t i = 0; i < word.size();) {
      std::size_t n = utf8_char_len(word, i);
      if (n == 0) n = 1;  // an ill-formed byte stands alone and will fall back to <0xNN>
      const std::int32_t id = lookup(word.substr(i, n));
      if (id < 0 && byte_fallback_ && !by_score_) {
        // HF BPE turns an unknown character into byte pieces before merging.
        bool all = true;
        for (std::size_t k = 0; k < n; ++k)
          all = all && byte_ids_[static_cast<unsigned char>(word[i + k])] >= 0;
        if (all) {
          for (std::size_t k = 0; k < n; ++k)
            add(byte_ids_[static_cast<unsigned char>(word[i + k])], i + k, 1);
          i += n;
          continue;
        }
      }
      add(id, i, n);
      i += n;
    }
  }
  syms.back().next = -1;
  for (std::int32_t i = 0; i + 1 < static_cast<std::int32_t>(syms.size()); ++i)
    push_candidate(s, word, i);
  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), heap_after);
    const BpeScratch::Candidate c = s.heap.back();
    s.heap.pop_back();
    auto& a = syms[c.left];
    if (a.len == 0 || a.next != c.right) continue;
    auto& b = syms[c.right];
    if (b.len == 0 || a.len + b.len != c.size) continue;
    a.id = c.result;
    a.len += b.len;
    b.len = 0;
    a.next = b.next;
    if (b.next >= 0) syms[b.next].prev = c.left;
    if (a.prev >= 0) push_candidate(s, word, a.prev);
    push_candidate(s, word, c.left);
  }
  bool prev_unk = false;
  for (std::int32_t i = 0; i >= 0; i = syms[i].next) {
    const auto& sym = syms[i];
    prev_unk = emit(word.substr(sym.start, sym.len), sym.id, s, out, prev_unk);
  }
}

}  // namespace qlm::detail
