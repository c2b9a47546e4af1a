// Text and conversion filters, and the filter dispatcher. Filters treat an Undefined subject as
// '' where jinja2's do use soft_str.
#include <fmt/printf.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "chat/error.hpp"
#include "chat/filters.hpp"
#include "chat/interpreter.hpp"
#include "chat/json.hpp"
#include "chat/python.hpp"
#include "chat/text.hpp"
#include "chat/utf8.hpp"

namespace qlm::chat {

std::string soft_str(const Value& v) {
  return to_str(v);
}

namespace {

Value trim(Interpreter&, const Value& v, const ArgReader& a) {
  Value chars = a.get_or(0, "chars", Value::none());
  const std::string* c = chars.is_string() ? &chars.as_string() : nullptr;
  return Value::string(py_strip(soft_str(v), c, true, true));
}

// jinja2's title filter: capitalise after a run of '-', whitespace, '(', '{', '[' or '<'
// (unlike str.title, an apostrophe does not start a word).
Value title(Interpreter&, const Value& v, const ArgReader&) {
  std::string s = soft_str(v), out;
  bool word_start = true;
  for (std::size_t i = 0; i < s.size(); i += utf8_seq_len(static_cast<unsigned char>(s[i]))) {
    std::uint32_t cp = utf8_decode(s, i);
    bool delim = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || is_space_cp(cp);
    std::string one;
    utf8_append(one, cp);
    out += delim ? one : (word_start ? py_upper(one) : py_lower(one));
    word_start = delim;
  }
  return Value::string(std::move(out));
}

Value replace(Interpreter& in, const Value& v, const ArgReader& a) {
  Value count = a.get_or(2, "count", Value::none());
  std::string out = py_replace(soft_str(v), soft_str(a.need(0, "old")), soft_str(a.need(1, "new")),
                               count.is_none() ? -1 : count.as_int());
  in.check_size(out.size());
  return Value::string(std::move(out));
}

Value default_(Interpreter&, const Value& v, const ArgReader& a) {
  bool boolean = truthy(a.get_or(1, "boolean", Value::boolean(false)));
  if (v.is_undefined() || (boolean && !truthy(v))) {
    return a.get_or(0, "default_value", Value::string(""));
  }
  return v;
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
// sort_keys=False).
Value tojson(Interpreter& in, const Value& v, const ArgReader& a) {
  JsonStyle st;
  st.ensure_ascii = truthy(a.get_or(0, "ensure_ascii", Value::boolean(false)));
  Value indent = a.get_or(1, "indent", Value::none());
  if (!indent.is_none()) {
    st.pretty = true;
    st.item_sep.resize(1);  // ", " -> "," (json.dumps with indent); resize avoids a GCC 12
                            // -Wrestrict false positive on assigning a literal
    st.indent =
        indent.is_string()
            ? indent.as_string()
            : std::string(static_cast<std::size_t>(std::max<std::int64_t>(0, indent.as_int())),
                          ' ');
  }
  Value seps = a.get_or(2, "separators", Value::none());
  if (seps.is_sequence() && seps.items().size() == 2) {
    st.item_sep = to_str(seps.items()[0]);
    st.key_sep = to_str(seps.items()[1]);
  }
  st.sort_keys = truthy(a.get_or(3, "sort_keys", Value::boolean(false)));
  std::string out = to_json(v, st);
  in.check_size(out.size());
  return Value::string(std::move(out));
}

Value int_(Interpreter&, const Value& v, const ArgReader& a) {
  Value fallback = a.get_or(0, "default", Value::integer(0));
  std::int64_t base = a.get_or(1, "base", Value::integer(10)).as_int();
  if (v.is_number()) {
    if (!v.is(Kind::Float)) return Value::integer(v.as_int());
    double d = v.as_float();
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return fallback;
    return Value::integer(static_cast<std::int64_t>(d));
  }
  if (!v.is_string()) return fallback;
  std::string s = py_strip(v.as_string(), nullptr, true, true);
  std::string digits;
  for (char c : s) {
    if (c != '_') digits += c;
  }
  char* end = nullptr;
  errno = 0;
  long long r = std::strtoll(digits.c_str(), &end, static_cast<int>(base));
  if (!digits.empty() && end == digits.c_str() + digits.size() && errno == 0)
    return Value::integer(r);
  double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(d)) {
    return Value::integer(static_cast<std::int64_t>(d));
  }
  return fallback;
}

Value float_(Interpreter&, const Value& v, const ArgReader& a) {
  Value fallback = a.get_or(0, "default", Value::real(0.0));
  if (v.is_number()) return Value::real(v.as_float());
  if (!v.is_string()) return fallback;
  std::string s = py_strip(v.as_string(), nullptr, true, true);
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) return fallback;
  return Value::real(d);
}

// indent(width=4, first=False, blank=False), following jinja2's line handling exactly.
Value indent(Interpreter& in, const Value& v, const ArgReader& a) {
  Value w = a.get_or(0, "width", Value::integer(4));
  std::string pad =
      w.is_string()
          ? w.as_string()
          : std::string(static_cast<std::size_t>(std::max<std::int64_t>(0, w.as_int())), ' ');
  bool first = truthy(a.get_or(1, "first", Value::boolean(false)));
  bool blank = truthy(a.get_or(2, "blank", Value::boolean(false)));
  std::vector<std::string> lines = py_splitlines(soft_str(v) + "\n", false);
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += "\n";
    if (i > 0 && (blank || !lines[i].empty())) out += pad;
    out += lines[i];
    in.check_size(out.size());
  }
  if (first) out = pad + out;
  return Value::string(std::move(out));
}

Value escape(Interpreter&, const Value& v, const ArgReader&) {
  if (v.is_markup()) return v;
  return Value::markup(html_escape(soft_str(v)));
}

}  // namespace

std::string percent_format(const std::string& fmt, const std::vector<Value>& args) {
  std::string out;
  std::size_t next = 0;
  for (std::size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    std::size_t j = i + 1;
    while (j < fmt.size() && std::string_view("-+ 0#").find(fmt[j]) != std::string_view::npos) ++j;
    while (j < fmt.size() && (std::isdigit(static_cast<unsigned char>(fmt[j])) || fmt[j] == '.'))
      ++j;
    if (j >= fmt.size()) raise("ValueError", "incomplete format");
    char conv = fmt[j];
    std::string spec = fmt.substr(i + 1, j - i - 1);
    i = j;
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= args.size()) raise("TypeError", "not enough arguments for format string");
    const Value& a = args[next++];
    switch (conv) {
      case 's':
        out += fmt::sprintf(fmt::format("%{}s", spec), to_str(a));
        break;
      case 'r':
        out += fmt::sprintf(fmt::format("%{}s", spec), repr(a));
        break;
      case 'd':
      case 'i':
      case 'x':
        if (!a.is_number())
          raise("TypeError", "%{} format: a real number is required, not {}", conv, type_name(a));
        out += fmt::sprintf(
            fmt::format("%{}{}", spec, conv == 'x' ? "llx" : "lld"),
            static_cast<long long>(a.is(Kind::Float) ? static_cast<std::int64_t>(a.as_float())
                                                     : a.as_int()));
        break;
      case 'f':
        if (!a.is_number()) raise("TypeError", "must be real number, not {}", type_name(a));
        out += fmt::sprintf(fmt::format("%{}f", spec), a.as_float());
        break;
      default:
        raise("ValueError", "unsupported format character '{}'", conv);
    }
  }
  if (next < args.size())
    raise("TypeError", "not all arguments converted during string formatting");
  return out;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

Value round_(Interpreter&, const Value& v, const ArgReader& a) {
  require_defined(v);
  double scale =
      std::pow(10.0, static_cast<double>(a.get_or(0, "precision", Value::integer(0)).as_int()));
  std::string method = to_str(a.get_or(1, "method", Value::string("common")));
  double x = v.as_float() * scale;
  double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::round(x);
  return Value::real(r / scale);
}

Value abs_(Interpreter&, const Value& v, const ArgReader&) {
  require_defined(v);
  if (v.is(Kind::Float)) return Value::real(std::fabs(v.as_float()));
  if (v.is_number()) return Value::integer(std::llabs(v.as_int()));
  raise("TypeError", "bad operand type for abs(): '{}'", type_name(v));
}

struct Named {
  std::string_view name;
  FilterFn fn;
};

const Named kTextFilters[] = {
    {"trim", trim},
    {"upper", [](Interpreter&, const Value& v,
                 const ArgReader&) { return Value::string(py_upper(soft_str(v))); }},
    {"lower", [](Interpreter&, const Value& v,
                 const ArgReader&) { return Value::string(py_lower(soft_str(v))); }},
    {"capitalize", [](Interpreter&, const Value& v,
                      const ArgReader&) { return Value::string(py_capitalize(soft_str(v))); }},
    {"title", title},
    {"replace", replace},
    {"default", default_},
    {"d", default_},
    {"tojson", tojson},
    {"string", [](Interpreter&, const Value& v,
                  const ArgReader&) { return v.is_markup() ? v : Value::string(soft_str(v)); }},
    {"safe",
     [](Interpreter&, const Value& v, const ArgReader&) { return Value::markup(soft_str(v)); }},
    {"int", int_},
    {"float", float_},
    {"indent", indent},
    {"escape", escape},
    {"e", escape},
    {"round", round_},
    {"abs", abs_},
    {"format",
     [](Interpreter&, const Value& v, const ArgReader& a) {
       return Value::string(percent_format(soft_str(v), a.rest(0)));
     }},
    {"attr", [](Interpreter&, const Value& v,
                const ArgReader& a) { return get_attr(v, soft_str(a.need(0, "name"))); }},
};

}  // namespace

Value apply_filter(Interpreter& in, std::string_view name, const Value& subject,
                   const CallArgs& args) {
  ArgReader reader(args, name);
  for (const Named& f : kTextFilters) {
    if (f.name == name) return f.fn(in, subject, reader);
  }
  if (FilterFn f = find_seq_filter(name)) return f(in, subject, reader);
  raise("TemplateRuntimeError", "No filter named '{}' found.", name);
}

}  // namespace qlm::chat
