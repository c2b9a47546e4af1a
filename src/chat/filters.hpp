// Internal split of the filter library: text filters live in filters.cpp, sequence filters in
// seq_filters.cpp; apply_filter (builtins.hpp) looks in both.
#pragma once

#include <string_view>

#include <string>
#include <vector>

#include "chat/builtins.hpp"

namespace qlm::chat {

/// A filter: the interpreter (for limits and nested calls), the subject and its arguments.
using FilterFn = Value (*)(Interpreter& in, const Value& subject, const ArgReader& args);

/// The sequence filter `name` (map, select, join, sort...), or nullptr.
FilterFn find_seq_filter(std::string_view name);

/// Python's str() of a filter subject, with Undefined as '' (jinja2's soft_str).
std::string soft_str(const Value& v);

/// Python's printf-style `fmt % args` for %s %r %d %i %f %x and %% (flags, width, precision).
std::string percent_format(const std::string& fmt, const std::vector<Value>& args);

/// HTML escaping as markupsafe.escape does it (& < > " ').
std::string html_escape(std::string_view s);

}  // namespace qlm::chat
