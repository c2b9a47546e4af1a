// Python str operations on UTF-8 text: the parts of str's methods that filters and methods share.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qlm::chat {

/// Python str.isspace() for one code point.
bool is_space_cp(std::uint32_t cp);
/// str.strip/lstrip/rstrip: `chars` null strips whitespace, else any of its code points.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);
/// str.split(sep, maxsplit): sep null splits on whitespace runs and drops empty parts.
std::vector<std::string> py_split(std::string_view s, const std::string* sep,
                                  std::int64_t maxsplit);
/// str.rsplit(sep, maxsplit).
std::vector<std::string> py_rsplit(std::string_view s, const std::string* sep,
                                   std::int64_t maxsplit);
/// str.splitlines(keepends).
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);
/// str.upper() / str.lower() (simple per-code-point case mapping).
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
/// str.title(): upper-case after every uncased character, lower-case elsewhere.
std::string py_title(std::string_view s);
/// str.capitalize(): first character upper-case, the rest lower-case.
std::string py_capitalize(std::string_view s);
/// str.replace(old, new, count); count < 0 replaces all.
std::string py_replace(std::string_view s, std::string_view from, std::string_view to,
                       std::int64_t count);

}  // namespace qlm::chat
