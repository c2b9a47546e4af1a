#include "chat/python.hpp"

#include <unicode/uchar.h>

#include <charconv>
#include <cmath>
#include <cstdio>

#include "chat/error.hpp"
#include "chat/utf8.hpp"

namespace qlm::chat {

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return "Undefined";
    case Kind::None:
      return "NoneType";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::List:
      return "list";
    case Kind::Tuple:
      return "tuple";
    case Kind::Generator:
      return "generator";
    case Kind::Dict:
      return "dict";
    case Kind::Namespace:
      return "Namespace";
    case Kind::Function:
      return "function";
  }
  return "object";
}

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is(Kind::Namespace)) return "jinja2.utils.Namespace object";
  return type_name(v) + " object";
}

void fail_undefined(const Value& v) {
  throw TemplateException(v.undefined_error_type(), v.undefined_hint());
}

void require_defined(const Value& v) {
  if (v.is_undefined()) fail_undefined(v);
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
    case Kind::Int:
      return v.as_int() != 0;
    case Kind::Float:
      return v.as_float() != 0.0;
    case Kind::String:
      return !v.as_string().empty();
    case Kind::List:
    case Kind::Tuple:
      return !v.items().empty();
    case Kind::Dict:
      return !v.dict_data().items.empty();
    default:
      return true;
  }
}

namespace {

bool dicts_equal(const DictData& a, const DictData& b) {
  if (a.items.size() != b.items.size()) return false;
  for (const auto& [k, v] : a.items) {
    const Value* other = b.find(k);
    if (other == nullptr || !equals(v, *other)) return false;
  }
  return true;
}

bool lists_equal(const std::vector<Value>& a, const std::vector<Value>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!equals(a[i], b[i])) return false;
  }
  return true;
}

}  // namespace

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is(Kind::Float) || b.is(Kind::Float)) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::Undefined:
    case Kind::None:
      return true;
    case Kind::String:
      return a.as_string() == b.as_string();
    case Kind::List:
    case Kind::Tuple:
      return lists_equal(a.items(), b.items());
    case Kind::Dict:
      return dicts_equal(a.dict_data(), b.dict_data());
    default:
      return &a.dict_data() == &b.dict_data() && &a.items() == &b.items();
  }
}

int compare(const Value& a, const Value& b, std::string_view op) {
  require_defined(a);
  require_defined(b);
  if (a.is_number() && b.is_number()) {
    if (!a.is(Kind::Float) && !b.is(Kind::Float)) {
      return a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
    }
    return a.as_float() < b.as_float() ? -1 : (a.as_float() > b.as_float() ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    // UTF-8 byte order is code-point order, which is how Python orders str.
    int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if ((a.is(Kind::List) && b.is(Kind::List)) || (a.is(Kind::Tuple) && b.is(Kind::Tuple))) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return compare(x[i], y[i], op);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  raise("TypeError", "'{}' not supported between instances of '{}' and '{}'", op, type_name(a),
        type_name(b));
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form, then laid out as Python's repr does:
  // positional for exponents -4..15, scientific (two exponent digits at least) otherwise.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::size_t e = sci.find('e');
  int exp = std::stoi(sci.substr(e + 1));
  std::string mant = sci.substr(0, e);
  bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits += c;
  }
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += fmt::format("0.{}{}", std::string(static_cast<std::size_t>(-exp - 1), '0'), digits);
    } else if (static_cast<std::size_t>(exp) + 1 >= digits.size()) {
      out += digits + std::string(exp + 1 - digits.size(), '0') + ".0";
    } else {
      out += fmt::format("{}.{}", digits.substr(0, exp + 1), digits.substr(exp + 1));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += fmt::format(".{}", digits.substr(1));
  char eb[16];
  std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return out + eb;
}

namespace {

// Python's str.isprintable() per code point: not a control, format, surrogate, private-use,
// unassigned or separator character (the ASCII space excepted).
bool printable(std::uint32_t cp) {
  if (cp == ' ') return true;
  switch (u_charType(static_cast<UChar32>(cp))) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_SURROGATE:
    case U_PRIVATE_USE_CHAR:
    case U_UNASSIGNED:
    case U_SPACE_SEPARATOR:
    case U_LINE_SEPARATOR:
    case U_PARAGRAPH_SEPARATOR:
      return false;
    default:
      return true;
  }
}

}  // namespace

std::string string_repr(std::string_view s) {
  char quote = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos)
                   ? '"'
                   : '\'';
  std::string out(1, quote);
  for (std::size_t i = 0; i < s.size(); i += utf8_seq_len(static_cast<unsigned char>(s[i]))) {
    std::uint32_t cp = utf8_decode(s, i);
    if (cp == static_cast<std::uint32_t>(quote) || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (printable(cp)) {
      utf8_append(out, cp);
    } else if (cp < 0x100) {
      out += fmt::format("\\x{:02x}", cp);
    } else if (cp < 0x10000) {
      out += fmt::format("\\u{:04x}", cp);
    } else {
      out += fmt::format("\\U{:08x}", cp);
    }
  }
  return out + quote;
}

namespace {

std::string join_repr(const std::vector<Value>& items, std::string_view open,
                      std::string_view close, bool one_tuple) {
  std::string out(open);
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ", ";
    out += repr(items[i]);
  }
  if (one_tuple && items.size() == 1) out += ",";
  return out + std::string(close);
}

}  // namespace

std::string repr(const Value& v) {
  switch (v.kind()) {
    case Kind::String:
      return string_repr(v.as_string());
    case Kind::List:
      return join_repr(v.items(), "[", "]", false);
    case Kind::Tuple:
      return join_repr(v.items(), "(", ")", true);
    case Kind::Undefined:
      return "Undefined";
    case Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, val] : v.dict_data().items) {
        if (!first) out += ", ";
        first = false;
        out += fmt::format("{}: {}", repr(k), repr(val));
      }
      return out + "}";
    }
    default:
      return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return "";
    case Kind::None:
      return "None";
    case Kind::Bool:
      return v.as_bool() ? "True" : "False";
    case Kind::Int:
      return std::to_string(v.as_int());
    case Kind::Float:
      return float_repr(v.as_float());
    case Kind::String:
      return v.as_string();
    case Kind::Generator:
      return "<generator object>";
    case Kind::Namespace: {
      Value d = Value::dict(v.dict_data());
      return fmt::format("<Namespace {}>", repr(d));
    }
    case Kind::Function:
      return fmt::format("<function {}>", v.function_data().name);
    default:
      return repr(v);
  }
}

std::int64_t length(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return 0;
    case Kind::String:
      return static_cast<std::int64_t>(utf8_length(v.as_string()));
    case Kind::List:
    case Kind::Tuple:
      return static_cast<std::int64_t>(v.items().size());
    case Kind::Dict:
      return static_cast<std::int64_t>(v.dict_data().items.size());
    default:
      raise("TypeError", "object of type '{}' has no len()", type_name(v));
  }
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return {};
    case Kind::String: {
      std::vector<Value> out;
      const std::string& s = v.as_string();
      auto offs = utf8_offsets(s);
      for (std::size_t i = 0; i + 1 < offs.size(); ++i) {
        out.push_back(Value::string(s.substr(offs[i], offs[i + 1] - offs[i])));
      }
      return out;
    }
    case Kind::List:
    case Kind::Tuple:
    case Kind::Generator:
      return v.items();
    case Kind::Dict: {
      std::vector<Value> out;
      for (const auto& kv : v.dict_data().items) out.push_back(kv.first);
      return out;
    }
    default:
      raise("TypeError", "'{}' object is not iterable", type_name(v));
  }
}

bool contains(const Value& haystack, const Value& needle) {
  if (haystack.is_string()) {
    if (!needle.is_string()) {
      require_defined(needle);
      raise("TypeError", "'in <string>' requires string as left operand, not {}",
            type_name(needle));
    }
    return haystack.as_string().find(needle.as_string()) != std::string::npos;
  }
  if (haystack.is(Kind::Dict)) return haystack.dict_data().find(needle) != nullptr;
  if (haystack.is_sequence()) {
    for (const Value& item : haystack.items()) {
      if (equals(item, needle)) return true;
    }
    return false;
  }
  if (haystack.is_undefined()) return false;
  raise("TypeError", "argument of type '{}' is not iterable", type_name(haystack));
}

}  // namespace qlm::chat
