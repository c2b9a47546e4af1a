#include "chat/text.hpp"

#include <unicode/uchar.h>

#include "chat/utf8.hpp"

namespace qlm::chat {
namespace {

// Code points of s with their byte offsets.
struct Cp {
  std::uint32_t cp;
  std::size_t begin, end;
};

std::vector<Cp> code_points(std::string_view s) {
  std::vector<Cp> out;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = utf8_seq_len(static_cast<unsigned char>(s[i]));
    if (i + n > s.size()) n = s.size() - i;
    out.push_back({utf8_decode(s, i), i, i + n});
    i += n;
  }
  return out;
}

template <class F>
std::string map_cps(std::string_view s, F f) {
  std::string out;
  for (const Cp& c : code_points(s)) utf8_append(out, f(c.cp));
  return out;
}

std::uint32_t upper(std::uint32_t cp) {
  return static_cast<std::uint32_t>(u_toupper(static_cast<UChar32>(cp)));
}
std::uint32_t lower(std::uint32_t cp) {
  return static_cast<std::uint32_t>(u_tolower(static_cast<UChar32>(cp)));
}
bool cased(std::uint32_t cp) {
  return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_CASED) != 0;
}

}  // namespace

bool is_space_cp(std::uint32_t cp) {
  return (cp >= 0x1C && cp <= 0x1F) || u_isUWhiteSpace(static_cast<UChar32>(cp));
}

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::vector<Cp> cps = code_points(s);
  std::vector<std::uint32_t> set;
  if (chars) {
    for (const Cp& c : code_points(*chars)) set.push_back(c.cp);
  }
  auto strip = [&](std::uint32_t cp) {
    if (!chars) return is_space_cp(cp);
    for (std::uint32_t x : set) {
      if (x == cp) return true;
    }
    return false;
  };
  std::size_t b = 0, e = cps.size();
  while (left && b < e && strip(cps[b].cp)) ++b;
  while (right && e > b && strip(cps[e - 1].cp)) --e;
  if (b == e) return "";
  return std::string(s.substr(cps[b].begin, cps[e - 1].end - cps[b].begin));
}

std::vector<std::string> py_split(std::string_view s, const std::string* sep,
                                  std::int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    std::size_t pos = 0;
    for (std::size_t hit; (maxsplit < 0 || static_cast<std::int64_t>(out.size()) < maxsplit) &&
                          (hit = s.find(*sep, pos)) != std::string_view::npos;) {
      out.emplace_back(s.substr(pos, hit - pos));
      pos = hit + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  std::vector<Cp> cps = code_points(s);
  std::size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && is_space_cp(cps[i].cp)) ++i;
    if (i == cps.size()) break;
    if (maxsplit >= 0 && static_cast<std::int64_t>(out.size()) == maxsplit) {
      std::size_t e = cps.size();
      while (e > i && is_space_cp(cps[e - 1].cp)) --e;
      out.emplace_back(s.substr(cps[i].begin, cps[e - 1].end - cps[i].begin));
      break;
    }
    std::size_t j = i;
    while (j < cps.size() && !is_space_cp(cps[j].cp)) ++j;
    out.emplace_back(s.substr(cps[i].begin, cps[j - 1].end - cps[i].begin));
    i = j;
  }
  return out;
}

std::vector<std::string> py_rsplit(std::string_view s, const std::string* sep,
                                   std::int64_t maxsplit) {
  if (!sep || maxsplit < 0) return py_split(s, sep, maxsplit);
  std::vector<std::string> out;
  std::size_t end = s.size();
  while (static_cast<std::int64_t>(out.size()) < maxsplit && end >= sep->size()) {
    std::size_t hit = s.rfind(*sep, end - sep->size());
    if (hit == std::string_view::npos) break;
    out.insert(out.begin(), std::string(s.substr(hit + sep->size(), end - hit - sep->size())));
    end = hit;
  }
  out.insert(out.begin(), std::string(s.substr(0, end)));
  return out;
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  std::vector<std::string> out;
  std::vector<Cp> cps = code_points(s);
  std::size_t start = 0;
  for (std::size_t i = 0; i < cps.size(); ++i) {
    std::uint32_t c = cps[i].cp;
    bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) ||
               c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    std::size_t line_end = cps[i].begin;
    std::size_t next = cps[i].end;
    if (c == '\r' && i + 1 < cps.size() && cps[i + 1].cp == '\n') next = cps[++i].end;
    out.emplace_back(s.substr(start, (keepends ? next : line_end) - start));
    start = next;
  }
  if (start < s.size()) out.emplace_back(s.substr(start));
  return out;
}

std::string py_upper(std::string_view s) {
  return map_cps(s, upper);
}
std::string py_lower(std::string_view s) {
  return map_cps(s, lower);
}

std::string py_title(std::string_view s) {
  std::string out;
  bool prev_cased = false;
  for (const Cp& c : code_points(s)) {
    utf8_append(out, prev_cased ? lower(c.cp) : upper(c.cp));
    prev_cased = cased(c.cp);
  }
  return out;
}

std::string py_capitalize(std::string_view s) {
  std::string out;
  bool first = true;
  for (const Cp& c : code_points(s)) {
    utf8_append(out, first ? upper(c.cp) : lower(c.cp));
    first = false;
  }
  return out;
}

std::string py_replace(std::string_view s, std::string_view from, std::string_view to,
                       std::int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` before every code point and at the end.
    std::int64_t n = 0;
    for (const Cp& c : code_points(s)) {
      if (count < 0 || n++ < count) out += to;
      out += s.substr(c.begin, c.end - c.begin);
    }
    if (count < 0 || n < count) out += to;
    return out;
  }
  std::size_t pos = 0;
  for (std::int64_t n = 0; count < 0 || n < count; ++n) {
    std::size_t hit = s.find(from, pos);
    if (hit == std::string_view::npos) break;
    out += s.substr(pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out += s.substr(pos);
  return out;
}

}  // namespace qlm::chat
