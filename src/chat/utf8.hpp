// Code-point helpers: Python indexes, slices and measures str by code points, not bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/text.hpp"

namespace qlm::chat {

/// Byte length of the UTF-8 sequence that starts with `lead` (1 for stray bytes).
inline std::size_t utf8_seq_len(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

/// Byte offsets of each code point's start, plus s.size() at the end.
inline std::vector<std::size_t> utf8_offsets(std::string_view s) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < s.size(); i += utf8_seq_len(static_cast<unsigned char>(s[i]))) {
    out.push_back(i);
  }
  out.push_back(s.size());
  return out;
}

/// Number of code points.
inline std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

/// Decodes the code point at byte offset i (malformed bytes decode as themselves).
inline std::uint32_t utf8_decode(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  std::size_t n = utf8_seq_len(b(i));
  if (n == 1 || i + n > s.size()) return b(i);
  std::uint32_t cp = b(i) & (0xFF >> (n + 1));
  for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (b(i + k) & 0x3F);
  return cp;
}

/// Appends the UTF-8 encoding of a code point (the tokenizer's, one implementation for both).
using qlm::detail::utf8_append;

}  // namespace qlm::chat
