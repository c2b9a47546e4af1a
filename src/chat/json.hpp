// JSON in and out: caller-supplied JSON text becomes Values (key order kept), and `tojson`
// writes Python's json.dumps(ensure_ascii=False) layout, as transformers' tojson filter does.
#pragma once

#include <string>
#include <string_view>

#include "chat/value.hpp"

namespace qlm::chat {

/// Parses JSON text into a Value; throws detail::Failure (InvalidArgument) naming `what` when
/// the text is not JSON or nests deeper than `max_depth`.
Value parse_json(std::string_view text, std::string_view what, int max_depth);

/// json.dumps layout options.
struct JsonStyle {
  std::string indent;   ///< per-level indentation; used when `pretty`
  bool pretty = false;  ///< indent was given: newlines, item separator ","
  bool sort_keys = false;
  bool ensure_ascii = false;  ///< escape non-ASCII as \uXXXX
  std::string item_sep = ", ";
  std::string key_sep = ": ";
};

/// json.dumps(v, ensure_ascii=False, ...); raises TypeError for values JSON cannot hold.
std::string to_json(const Value& v, const JsonStyle& style);

}  // namespace qlm::chat
