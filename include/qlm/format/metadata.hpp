// Typed key/value metadata of a .qlm file: hyper-parameters, tokenizer, recipe, provenance.
// Readers skip keys they do not know, so new keys never break old readers.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "qlm/error.hpp"

namespace qlm::format {

/// One metadata value. The variant index is the on-disk type tag (see docs/format.md).
using MetaValue =
    std::variant<bool, std::int32_t, std::uint32_t, std::int64_t, std::uint64_t, float, double,
                 std::string, std::vector<std::int32_t>, std::vector<std::uint32_t>,
                 std::vector<float>, std::vector<std::string>, std::vector<std::uint8_t>>;

/// An ordered map from keys (e.g. "llama.rope_theta") to typed values.
class Metadata {
 public:
  /// Sets (or replaces) a key.
  void set(std::string key, MetaValue value) { entries_[std::move(key)] = std::move(value); }

  /// The value of `key` if present with type T, else nullptr.
  template <class T>
  const T* find(std::string_view key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : std::get_if<T>(&it->second);
  }

  /// Moves every key that starts with `prefix` (and its value) out into a Metadata of its own.
  Metadata extract_prefix(std::string_view prefix) {
    Metadata out;
    for (auto it = entries_.lower_bound(prefix);
         it != entries_.end() && it->first.starts_with(prefix);) {
      out.entries_.insert(entries_.extract(it++));
    }
    return out;
  }

  bool contains(std::string_view key) const { return entries_.find(key) != entries_.end(); }
  const std::map<std::string, MetaValue, std::less<>>& entries() const { return entries_; }

 private:
  std::map<std::string, MetaValue, std::less<>> entries_;
};

/// Checks the format's limits: keys up to 65535 bytes, string-array items up to 4 GiB.
Result<void> check_encodable(const Metadata& meta);

/// Serializes metadata into the on-disk block (call check_encodable first).
std::vector<std::uint8_t> encode_metadata(const Metadata& meta);

/// Parses an on-disk metadata block; `file` names the source in error messages.
Result<Metadata> decode_metadata(std::span<const std::uint8_t> block, std::string_view file);

}  // namespace qlm::format
