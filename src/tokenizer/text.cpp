// UTF-8 scanning, the GPT-2 byte map, NFC via ICU and the PCRE2 wrapper used by the tokenizer.
#include "tokenizer/text.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>

#include "util/fail.hpp"

namespace qlm::detail {

std::size_t utf8_char_len(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const std::size_t left = s.size() - i;
  const unsigned c = b(0);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte (rules out overlongs etc.)
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (left < n) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
  }
  return n;
}

char32_t utf8_decode(std::string_view s, std::size_t i, std::size_t len) {
  const auto c0 = static_cast<unsigned char>(s[i]);
  if (len == 1) return c0;
  char32_t cp = c0 & (0x7F >> len);
  for (std::size_t k = 1; k < len; ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_unicode_whitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

const ByteLevelMap& byte_level_map() {
  static const ByteLevelMap map = [] {
    ByteLevelMap m;
    m.to_byte.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t cp =
          printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      utf8_append(m.to_text[b], cp);
      m.to_byte[cp] = static_cast<std::int16_t>(b);
    }
    return m;
  }();
  return map;
}

std::string nfc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* norm = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status))
    fail(ErrorCode::Unsupported, "ICU NFC data unavailable: {}", u_errorName(status));
  icu::StringByteSink<std::string> sink(&out);
  std::size_t i = 0;
  while (i < s.size()) {
    // ICU would replace ill-formed bytes; normalise each well-formed run and copy the rest.
    std::size_t j = i;
    bool ascii = true;
    while (j < s.size()) {
      const std::size_t n = utf8_char_len(s, j);
      if (n == 0) break;
      ascii = ascii && n == 1;
      j += n;
    }
    if (j > i) {
      const std::string_view run = s.substr(i, j - i);
      if (ascii) {
        out.append(run);  // ASCII is always NFC
      } else {
        norm->normalizeUTF8(0, icu::StringPiece(run.data(), static_cast<int32_t>(run.size())), sink,
                            nullptr, status);
        if (U_FAILURE(status)) fail(ErrorCode::Format, "NFC failed: {}", u_errorName(status));
      }
    }
    if (j < s.size()) out += s[j++];
    i = j;
  }
  return out;
}

Regex Regex::compile(std::string_view pattern, std::string_view source) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail(ErrorCode::Format, "{}: pre-tokenizer regex '{}' does not compile at offset {}: {}",
         source, pattern, offset, reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // failure is fine: the interpreter still works
  Regex r;
  r.code_ =
      std::shared_ptr<void>(code, [](void* p) { pcre2_code_free(static_cast<pcre2_code*>(p)); });
  return r;
}

void Regex::for_each_match(std::string_view text,
                           const std::function<void(std::size_t, std::size_t)>& fn) const {
  auto* code = static_cast<pcre2_code*>(code_.get());
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
  if (!md) throw std::bad_alloc();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t start = 0;
  while (start <= text.size()) {
    int rc = pcre2_match(code, subject, text.size(), start, 0, md.get(), nullptr);
    // The JIT has a small fixed stack; the interpreter keeps its backtracking on the heap.
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_JIT, md.get(), nullptr);
    }
    // Still failing (match or heap limit): leave the rest unsplit rather than fail encode().
    if (rc < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    const std::size_t b = ov[0], e = ov[1];
    if (e > b) {
      fn(b, e);
      start = e;
    } else {
      // Empty match: step over one character (or one ill-formed byte) and search again.
      if (b >= text.size()) break;
      const std::size_t n = utf8_char_len(text, b);
      start = b + (n == 0 ? 1 : n);
    }
  }
}

std::string regex_escape(std::string_view s) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    const bool plain = (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
                       u >= 0x80 || u == ' ' || u == '_';
    if (!plain) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace qlm::detail
