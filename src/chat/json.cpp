#include "chat/json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "chat/error.hpp"
#include "chat/python.hpp"
#include "chat/utf8.hpp"
#include "util/fail.hpp"

namespace qlm::chat {
namespace {

using Json = nlohmann::ordered_json;

Value from_json(const Json& j, int depth, int max_depth, std::string_view what) {
  if (depth > max_depth) {
    detail::fail(ErrorCode::InvalidArgument, "{}: JSON nested deeper than {}", what, max_depth);
  }
  switch (j.type()) {
    case Json::value_t::null:
      return Value::none();
    case Json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case Json::value_t::number_integer:
      return Value::integer(j.get<std::int64_t>());
    case Json::value_t::number_unsigned: {
      auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT64_MAX)) return Value::real(static_cast<double>(u));
      return Value::integer(static_cast<std::int64_t>(u));
    }
    case Json::value_t::number_float:
      return Value::real(j.get<double>());
    case Json::value_t::string:
      return Value::string(j.get<std::string>());
    case Json::value_t::array: {
      std::vector<Value> items;
      for (const Json& e : j) items.push_back(from_json(e, depth + 1, max_depth, what));
      return Value::list(std::move(items));
    }
    case Json::value_t::object: {
      DictData d;
      for (const auto& [k, v] : j.items()) {
        d.items.emplace_back(Value::string(k), from_json(v, depth + 1, max_depth, what));
      }
      return Value::dict(std::move(d));
    }
    default:
      return Value::none();
  }
}

void write_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  for (std::size_t i = 0; i < s.size(); ++i) {
    char ch = s[i];
    auto c = static_cast<unsigned char>(ch);
    if (ensure_ascii && c >= 0x80) {
      std::uint32_t cp = utf8_decode(s, i);
      i += utf8_seq_len(c) - 1;
      if (cp >= 0x10000) {
        cp -= 0x10000;
        out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
      } else {
        out += fmt::format("\\u{:04x}", cp);
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out += ch;
    }
  }
  out += '"';
}

// json.dumps turns non-string keys into strings: True -> "true", None -> "null", 1.5 -> "1.5".
std::string key_string(const Value& k) {
  switch (k.kind()) {
    case Kind::String:
      return k.as_string();
    case Kind::None:
      return "null";
    case Kind::Bool:
      return k.as_bool() ? "true" : "false";
    case Kind::Int:
    case Kind::Float:
      return to_str(k);
    default:
      raise("TypeError", "keys must be str, int, float, bool or None, not {}", type_name(k));
  }
}

void write(std::string& out, const Value& v, const JsonStyle& st, int level);

void newline(std::string& out, const JsonStyle& st, int level) {
  out += '\n';
  for (int i = 0; i < level; ++i) out += st.indent;
}

template <class Items, class WriteItem>
void write_container(std::string& out, const Items& items, char open, char close,
                     const JsonStyle& st, int level, WriteItem write_item) {
  out += open;
  if (items.empty()) {
    out += close;
    return;
  }
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += st.item_sep;
    first = false;
    if (st.pretty) newline(out, st, level + 1);
    write_item(item);
  }
  if (st.pretty) newline(out, st, level);
  out += close;
}

void write(std::string& out, const Value& v, const JsonStyle& st, int level) {
  switch (v.kind()) {
    case Kind::None:
      out += "null";
      return;
    case Kind::Bool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Kind::Int:
      out += std::to_string(v.as_int());
      return;
    case Kind::Float: {
      double d = v.as_float();
      if (std::isnan(d))
        out += "NaN";
      else if (std::isinf(d))
        out += d > 0 ? "Infinity" : "-Infinity";
      else
        out += float_repr(d);
      return;
    }
    case Kind::String:
      write_string(out, v.as_string(), st.ensure_ascii);
      return;
    case Kind::List:
    case Kind::Tuple:
      write_container(out, v.items(), '[', ']', st, level,
                      [&](const Value& item) { write(out, item, st, level + 1); });
      return;
    case Kind::Dict: {
      std::vector<std::pair<std::string, const Value*>> entries;
      for (const auto& [k, val] : v.dict_data().items) entries.emplace_back(key_string(k), &val);
      if (st.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      }
      write_container(out, entries, '{', '}', st, level, [&](const auto& e) {
        write_string(out, e.first, st.ensure_ascii);
        out += st.key_sep;
        write(out, *e.second, st, level + 1);
      });
      return;
    }
    default:
      raise("TypeError", "Object of type {} is not JSON serializable", type_name(v));
  }
}

}  // namespace

Value parse_json(std::string_view text, std::string_view what, int max_depth) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) detail::fail(ErrorCode::InvalidArgument, "{} is not valid JSON", what);
  return from_json(j, 0, max_depth, what);
}

std::string to_json(const Value& v, const JsonStyle& style) {
  std::string out;
  write(out, v, style, 0);
  return out;
}

}  // namespace qlm::chat
