// The library's own ways into a Tokenizer: encoding that never matches chosen added tokens, with
// a memo of BPE results, and the raw bytes of a token (used by infill prompts,
// src/chat/infill.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "qlm/tokenizer.hpp"

namespace qlm::detail {

/// Remembers the ids BPE gives each pre-tokenised word (a pure function of the word's bytes), so
/// that encoding similar texts again skips the merges. Holds at most `max_words` words and is
/// emptied when full. Not thread-safe.
class BpeWordCache {
 public:
  explicit BpeWordCache(std::size_t max_words = std::size_t{1} << 16) : max_words_(max_words) {}
  /// The ids of `word`, or nullptr when not cached.
  const std::vector<std::int32_t>* find(const std::string& word) const {
    const auto it = map_.find(word);
    return it == map_.end() ? nullptr : &it->second;
  }
  void insert(const std::string& word, std::vector<std::int32_t> ids) {
    if (max_words_ == 0) return;
    if (map_.size() >= max_words_) map_.clear();
    map_.emplace(word, std::move(ids));
  }
  std::size_t size() const { return map_.size(); }
  void clear() { map_.clear(); }

 private:
  std::size_t max_words_;
  std::unordered_map<std::string, std::vector<std::int32_t>> map_;
};

struct TokenizerAccess {
  /// Tokenizer::encode(text, {.add_special = false, .parse_special = false}), except that the
  /// added tokens `blocked` are never matched either: their spelling in `text` is encoded as
  /// plain text. `cache` (optional) memoises BPE per word; the result does not depend on it.
  /// Throws detail::Failure like encode's errors.
  static std::vector<std::int32_t> encode_text(const Tokenizer& tokenizer, std::string_view text,
                                               std::span<const std::int32_t> blocked,
                                               BpeWordCache* cache);
  /// The bytes `id` decodes to on its own, without the dummy-prefix rule ("" when out of range).
  static std::string_view token_bytes(const Tokenizer& tokenizer, std::int32_t id);
};

}  // namespace qlm::detail
