// Text helpers for the tokenizer: UTF-8 scanning, GPT-2 byte<->code point map, NFC, PCRE2 regex.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace qlm::detail {

/// Length of the well-formed UTF-8 character starting at s[i], or 0 if the bytes there are not
/// a well-formed character (invalid lead, bad continuation, overlong, surrogate, > U+10FFFF).
std::size_t utf8_char_len(std::string_view s, std::size_t i);

/// Decodes the well-formed character of `len` bytes at s[i] (len from utf8_char_len).
char32_t utf8_decode(std::string_view s, std::size_t i, std::size_t len);

/// Appends the UTF-8 encoding of `cp`.
void utf8_append(std::string& out, char32_t cp);

/// Unicode White_Space (what Rust's char::is_whitespace tests; HF lstrip/rstrip use it).
bool is_unicode_whitespace(char32_t cp);

/// The GPT-2 bytes_to_unicode() map: byte -> UTF-8 of its printable stand-in, and back.
struct ByteLevelMap {
  std::array<std::string, 256> to_text;
  /// Code point -> byte, or -1 (stand-ins are all below U+0144).
  std::array<std::int16_t, 324> to_byte{};
};
const ByteLevelMap& byte_level_map();

/// Unicode NFC of every well-formed stretch of `s`; ill-formed bytes pass through unchanged.
std::string nfc(std::string_view s);

/// A compiled PCRE2 pattern (UTF + UCP, invalid UTF-8 tolerated). Shared and thread-safe.
class Regex {
 public:
  /// Compiles `pattern`; fails with ErrorCode::Format naming `source` and the pattern.
  static Regex compile(std::string_view pattern, std::string_view source);

  /// Calls fn(begin, end) for each non-empty, non-overlapping match in `text`, left to right.
  /// Never fails: should PCRE2 hit a resource limit, the rest of `text` is left unmatched.
  void for_each_match(std::string_view text,
                      const std::function<void(std::size_t, std::size_t)>& fn) const;

 private:
  std::shared_ptr<void> code_;  // pcre2_code_8, type-erased to keep pcre2.h out of headers
};

/// PCRE2 pattern equivalent to the literal string `s`.
std::string regex_escape(std::string_view s);

/// GPT-2's pre-tokenizer regex, used by ByteLevel(use_regex = true).
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

/// Qwen2's pre-tokenizer regex (its tokenizer.json Split pattern).
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

}  // namespace qlm::detail
