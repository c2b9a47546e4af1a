// The BPE model: merges a word's symbols by merge rank (HF) or by piece score (SentencePiece).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "qlm/tokenizer/vocabulary.hpp"

namespace qlm::detail {

/// Per-call scratch buffers so that encoding a long text does not allocate per word.
struct BpeScratch {
  struct Symbol {
    std::int32_t id;           // token id, or -1 for a character missing from the vocabulary
    std::int32_t prev, next;   // linked list over live symbols (-1 at the ends)
    std::uint32_t start, len;  // bytes of the word this symbol covers; len 0 = merged away
  };
  struct Candidate {
    double priority;  // lower merges first: the rank, or minus the score
    std::int32_t left, right;
    std::uint32_t size;  // combined length when queued; a mismatch marks a stale entry
    std::int32_t result;
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::string mapped;
  // SentencePiece re-splits unused pieces into the two pieces they were merged from.
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;
};

/// BPE over one pre-tokenised word. Holds pointers into the Vocabulary it was built from, which
/// must outlive it and stay in place.
class Bpe {
 public:
  /// Indexes pieces and merges; fails with ErrorCode::Format naming `source` on bad merges.
  static Bpe create(const Vocabulary& vocab, std::string_view source);

  /// Appends the ids of `word` (normalised text for SentencePiece, raw bytes for byte-level).
  void encode_word(std::string_view word, BpeScratch& scratch,
                   std::vector<std::int32_t>& out) const;

 private:
  void push_candidate(BpeScratch& s, std::string_view word, std::int32_t left) const;
  // Appends the ids for one final symbol; returns whether it was an <unk> (to fuse runs).
  bool emit(std::string_view text, std::int32_t id, const BpeScratch& s,
            std::vector<std::int32_t>& out, bool prev_unk) const;
  std::int32_t lookup(std::string_view piece) const;
  // The merge of (left, right): its rank, or -1.
  std::int32_t merge_rank(std::int32_t left, std::int32_t right) const;

  const Vocabulary* vocab_ = nullptr;
  bool byte_level_ = false;
  bool by_score_ = false;  // SentencePiece: no merge list, merge the best-scoring piece
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  bool has_unused_ = false;
  std::int32_t unk_ = -1;
  // Open-addressing hash tables of ids (-1 = empty slot; sizes are powers of two), keyed by
  // what the id points at in the vocabulary. A node-based map would cost ~50 bytes per entry,
  // 5 MB for a 49k-token, 49k-merge vocabulary; these cost 8 bytes per slot.
  std::vector<std::int32_t> pieces_;          // piece -> token id, for pieces BPE may produce
  std::vector<std::int32_t> merges_;          // (left id, right id) -> merge rank
  std::vector<std::int32_t> merge_result_;    // rank -> the token the merge makes
  std::array<std::int32_t, 256> byte_ids_{};  // byte-level stand-in pieces, or <0xNN> pieces
};

}  // namespace qlm::detail
