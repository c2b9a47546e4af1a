#include "chat/methods.hpp"

#include <unicode/uchar.h>

#include <array>
#include <string_view>
#include <utility>

#include "chat/builtins.hpp"
#include "chat/error.hpp"
#include "chat/python.hpp"
#include "chat/text.hpp"
#include "chat/utf8.hpp"

namespace qlm::chat {
namespace {

using Method = Value (*)(const Value& self, const ArgReader& args);

Value str_list(std::vector<std::string> parts) {
  std::vector<Value> out;
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  return Value::list(std::move(out));
}

// The string argument `pos`, or nullptr when absent or None (Python's "chars=None").
const std::string* opt_str(const ArgReader& a, std::size_t pos, std::string_view name) {
  const Value* v = a.get(pos, name);
  if (v == nullptr || v->is_none()) return nullptr;
  if (!v->is_string()) raise("TypeError", "{} arg must be None or str", name);
  return &v->as_string();
}

std::int64_t int_arg(const ArgReader& a, std::size_t pos, std::string_view name, std::int64_t def) {
  Value v = a.get_or(pos, name, Value::integer(def));
  if (!v.is(Kind::Int) && !v.is(Kind::Bool)) raise("TypeError", "'{}' must be an integer", name);
  return v.as_int();
}

// startswith/endswith accept a str or a tuple of str.
bool affix(const Value& self, const Value& arg, bool prefix) {
  std::vector<Value> options = arg.is(Kind::Tuple) ? arg.items() : std::vector<Value>{arg};
  const std::string& s = self.as_string();
  for (const Value& o : options) {
    if (!o.is_string()) {
      raise("TypeError", "{} first arg must be str or a tuple of str, not {}",
            prefix ? "startswith" : "endswith", type_name(o));
    }
    const std::string& x = o.as_string();
    if (x.size() <= s.size() && (prefix ? s.compare(0, x.size(), x) == 0
                                        : s.compare(s.size() - x.size(), x.size(), x) == 0)) {
      return true;
    }
  }
  return false;
}

std::int64_t find_cp(const std::string& s, const std::string& sub, bool reverse) {
  std::size_t hit = reverse ? s.rfind(sub) : s.find(sub);
  if (hit == std::string::npos) return -1;
  return static_cast<std::int64_t>(utf8_length(std::string_view(s).substr(0, hit)));
}

template <class Pred>
Value all_cps(const Value& self, Pred pred) {
  const std::string& s = self.as_string();
  if (s.empty()) return Value::boolean(false);
  for (std::size_t i = 0; i < s.size(); i += utf8_seq_len(static_cast<unsigned char>(s[i]))) {
    if (!pred(utf8_decode(s, i))) return Value::boolean(false);
  }
  return Value::boolean(true);
}

const std::pair<std::string_view, Method> kStrMethods[] = {
    {"strip",
     [](const Value& s, const ArgReader& a) {
       return Value::string(py_strip(s.as_string(), opt_str(a, 0, "chars"), true, true));
     }},
    {"lstrip",
     [](const Value& s, const ArgReader& a) {
       return Value::string(py_strip(s.as_string(), opt_str(a, 0, "chars"), true, false));
     }},
    {"rstrip",
     [](const Value& s, const ArgReader& a) {
       return Value::string(py_strip(s.as_string(), opt_str(a, 0, "chars"), false, true));
     }},
    {"split",
     [](const Value& s, const ArgReader& a) {
       return str_list(
           py_split(s.as_string(), opt_str(a, 0, "sep"), int_arg(a, 1, "maxsplit", -1)));
     }},
    {"rsplit",
     [](const Value& s, const ArgReader& a) {
       return str_list(
           py_rsplit(s.as_string(), opt_str(a, 0, "sep"), int_arg(a, 1, "maxsplit", -1)));
     }},
    {"splitlines",
     [](const Value& s, const ArgReader& a) {
       return str_list(
           py_splitlines(s.as_string(), truthy(a.get_or(0, "keepends", Value::boolean(false)))));
     }},
    {"upper",
     [](const Value& s, const ArgReader&) { return Value::string(py_upper(s.as_string())); }},
    {"lower",
     [](const Value& s, const ArgReader&) { return Value::string(py_lower(s.as_string())); }},
    {"title",
     [](const Value& s, const ArgReader&) { return Value::string(py_title(s.as_string())); }},
    {"capitalize",
     [](const Value& s, const ArgReader&) { return Value::string(py_capitalize(s.as_string())); }},
    {"startswith",
     [](const Value& s, const ArgReader& a) {
       return Value::boolean(affix(s, a.need(0, "prefix"), true));
     }},
    {"endswith",
     [](const Value& s, const ArgReader& a) {
       return Value::boolean(affix(s, a.need(0, "suffix"), false));
     }},
    {"replace",
     [](const Value& s, const ArgReader& a) {
       const Value& from = a.need(0, "old");
       const Value& to = a.need(1, "new");
       if (!from.is_string() || !to.is_string())
         raise("TypeError", "replace() argument must be str");
       return Value::string(
           py_replace(s.as_string(), from.as_string(), to.as_string(), int_arg(a, 2, "count", -1)));
     }},
    {"find",
     [](const Value& s, const ArgReader& a) {
       return Value::integer(find_cp(s.as_string(), to_str(a.need(0, "sub")), false));
     }},
    {"rfind",
     [](const Value& s, const ArgReader& a) {
       return Value::integer(find_cp(s.as_string(), to_str(a.need(0, "sub")), true));
     }},
    {"count",
     [](const Value& s, const ArgReader& a) {
       std::string sub = to_str(a.need(0, "sub"));
       if (sub.empty())
         return Value::integer(static_cast<std::int64_t>(utf8_length(s.as_string())) + 1);
       std::int64_t n = 0;
       for (std::size_t p = s.as_string().find(sub); p != std::string::npos;
            p = s.as_string().find(sub, p + sub.size()))
         ++n;
       return Value::integer(n);
     }},
    {"join",
     [](const Value& s, const ArgReader& a) {
       std::string out;
       bool first = true;
       for (const Value& v : iterate(a.need(0, "iterable"))) {
         if (!v.is_string())
           raise("TypeError", "sequence item: expected str instance, {} found", type_name(v));
         if (!first) out += s.as_string();
         out += v.as_string();
         first = false;
       }
       return Value::string(std::move(out));
     }},
    {"isdigit",
     [](const Value& s, const ArgReader&) {
       return all_cps(s, [](std::uint32_t c) { return u_isdigit(static_cast<UChar32>(c)) != 0; });
     }},
    {"isalpha",
     [](const Value& s, const ArgReader&) {
       return all_cps(s, [](std::uint32_t c) { return u_isalpha(static_cast<UChar32>(c)) != 0; });
     }},
    {"isalnum",
     [](const Value& s, const ArgReader&) {
       return all_cps(s, [](std::uint32_t c) { return u_isalnum(static_cast<UChar32>(c)) != 0; });
     }},
    {"isspace", [](const Value& s, const ArgReader&) { return all_cps(s, is_space_cp); }},
    {"islower",
     [](const Value& s, const ArgReader&) {
       return Value::boolean(py_lower(s.as_string()) == s.as_string() &&
                             py_upper(s.as_string()) != s.as_string());
     }},
    {"isupper",
     [](const Value& s, const ArgReader&) {
       return Value::boolean(py_upper(s.as_string()) == s.as_string() &&
                             py_lower(s.as_string()) != s.as_string());
     }},
};

std::vector<Value> dict_pairs(const Value& d) {
  std::vector<Value> out;
  for (const auto& [k, v] : d.dict_data().items) out.push_back(Value::list({k, v}, Kind::Tuple));
  return out;
}

const std::pair<std::string_view, Method> kDictMethods[] = {
    {"get",
     [](const Value& d, const ArgReader& a) {
       const Value* v = d.dict_data().find(a.need(0, "key"));
       return v ? *v : a.get_or(1, "default", Value::none());
     }},
    {"items", [](const Value& d, const ArgReader&) { return Value::list(dict_pairs(d)); }},
    {"keys", [](const Value& d, const ArgReader&) { return Value::list(iterate(d)); }},
    {"values",
     [](const Value& d, const ArgReader&) {
       std::vector<Value> out;
       for (const auto& kv : d.dict_data().items) out.push_back(kv.second);
       return Value::list(std::move(out));
     }},
    {"copy", [](const Value& d, const ArgReader&) { return Value::dict(d.dict_data()); }},
};

const std::pair<std::string_view, Method> kListMethods[] = {
    {"index",
     [](const Value& l, const ArgReader& a) {
       const Value& x = a.need(0, "value");
       for (std::size_t i = 0; i < l.items().size(); ++i) {
         if (equals(l.items()[i], x)) return Value::integer(static_cast<std::int64_t>(i));
       }
       raise("ValueError", "{} is not in list", repr(x));
     }},
    {"count",
     [](const Value& l, const ArgReader& a) {
       std::int64_t n = 0;
       for (const Value& v : l.items()) n += equals(v, a.need(0, "value"));
       return Value::integer(n);
     }},
    {"copy", [](const Value& l, const ArgReader&) { return Value::list(l.items()); }},
};

// What ImmutableSandboxedEnvironment refuses: methods that modify a list or dict.
constexpr std::array<std::string_view, 7> kListMutators = {"append", "clear",  "extend", "insert",
                                                           "pop",    "remove", "reverse"};
constexpr std::array<std::string_view, 5> kDictMutators = {"clear", "pop", "popitem", "setdefault",
                                                           "update"};

template <std::size_t N>
std::optional<Value> bind(const Value& obj, const std::string& name,
                          const std::pair<std::string_view, Method> (&table)[N]) {
  for (const auto& [n, m] : table) {
    if (n != name) continue;
    Method method = m;
    std::string fn_name(n);
    return Value::function(fn_name, [obj, method, fn_name](Interpreter&, CallArgs& args) {
      return method(obj, ArgReader(args, fn_name));
    });
  }
  return std::nullopt;
}

template <std::size_t N>
bool listed(const std::array<std::string_view, N>& names, const std::string& name) {
  for (std::string_view n : names) {
    if (n == name) return true;
  }
  return false;
}

}  // namespace

std::optional<Value> find_method(const Value& obj, const std::string& name) {
  if (obj.is_string()) return bind(obj, name, kStrMethods);
  bool list = obj.is(Kind::List);
  bool dict = obj.is(Kind::Dict);
  if ((list && (listed(kListMutators, name) || name == "sort")) ||
      (dict && listed(kDictMutators, name))) {
    return Value::undefined(
        fmt::format("access to attribute '{}' of '{}' object is unsafe.", name, type_name(obj)),
        "SecurityError");
  }
  if (dict) return bind(obj, name, kDictMethods);
  if (list || obj.is(Kind::Tuple)) return bind(obj, name, kListMethods);
  return std::nullopt;
}

}  // namespace qlm::chat
