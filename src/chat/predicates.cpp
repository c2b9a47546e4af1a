// Jinja tests (`x is defined`, `x is string`...), named as in jinja2.tests.
#include <string_view>

#include "chat/builtins.hpp"
#include "chat/error.hpp"
#include "chat/python.hpp"
#include "chat/text.hpp"

namespace qlm::chat {
namespace {

using TestFn = bool (*)(const Value& v, const ArgReader& a);

bool iterable(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
    case Kind::String:
    case Kind::List:
    case Kind::Tuple:
    case Kind::Generator:
    case Kind::Dict:
      return true;
    default:
      return false;
  }
}

// Python's `is`: identity. Values are copied here, so singletons and scalars compare by value
// and containers never match unless they share storage.
bool same(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  if (a.is_none() || a.is(Kind::Bool) || a.is(Kind::Int)) return equals(a, b);
  if (a.is(Kind::List) || a.is(Kind::Tuple)) return &a.items() == &b.items();
  if (a.is(Kind::Dict) || a.is(Kind::Namespace)) return &a.dict_data() == &b.dict_data();
  return false;
}

struct Named {
  std::string_view name;
  TestFn fn;
};

const Named kTests[] = {
    {"defined", [](const Value& v, const ArgReader&) { return !v.is_undefined(); }},
    {"undefined", [](const Value& v, const ArgReader&) { return v.is_undefined(); }},
    {"none", [](const Value& v, const ArgReader&) { return v.is_none(); }},
    {"boolean", [](const Value& v, const ArgReader&) { return v.is(Kind::Bool); }},
    {"true", [](const Value& v, const ArgReader&) { return v.is(Kind::Bool) && v.as_bool(); }},
    {"false", [](const Value& v, const ArgReader&) { return v.is(Kind::Bool) && !v.as_bool(); }},
    {"integer", [](const Value& v, const ArgReader&) { return v.is(Kind::Int); }},
    {"float", [](const Value& v, const ArgReader&) { return v.is(Kind::Float); }},
    {"number", [](const Value& v, const ArgReader&) { return v.is_number(); }},
    {"string", [](const Value& v, const ArgReader&) { return v.is_string(); }},
    {"mapping", [](const Value& v, const ArgReader&) { return v.is(Kind::Dict); }},
    {"iterable", [](const Value& v, const ArgReader&) { return iterable(v); }},
    {"sequence",
     [](const Value& v, const ArgReader&) { return iterable(v) && !v.is(Kind::Generator); }},
    {"callable", [](const Value& v, const ArgReader&) { return v.is(Kind::Function); }},
    {"sameas", [](const Value& v, const ArgReader& a) { return same(v, a.need(0, "other")); }},
    {"escaped", [](const Value&, const ArgReader&) { return false; }},
    {"in", [](const Value& v, const ArgReader& a) { return contains(a.need(0, "seq"), v); }},
    {"eq", [](const Value& v, const ArgReader& a) { return equals(v, a.need(0, "other")); }},
    {"equalto", [](const Value& v, const ArgReader& a) { return equals(v, a.need(0, "other")); }},
    {"==", [](const Value& v, const ArgReader& a) { return equals(v, a.need(0, "other")); }},
    {"ne", [](const Value& v, const ArgReader& a) { return !equals(v, a.need(0, "other")); }},
    {"!=", [](const Value& v, const ArgReader& a) { return !equals(v, a.need(0, "other")); }},
    {"lt",
     [](const Value& v, const ArgReader& a) { return compare(v, a.need(0, "other"), "<") < 0; }},
    {"lessthan",
     [](const Value& v, const ArgReader& a) { return compare(v, a.need(0, "other"), "<") < 0; }},
    {"le",
     [](const Value& v, const ArgReader& a) { return compare(v, a.need(0, "other"), "<=") <= 0; }},
    {"gt",
     [](const Value& v, const ArgReader& a) { return compare(v, a.need(0, "other"), ">") > 0; }},
    {"greaterthan",
     [](const Value& v, const ArgReader& a) { return compare(v, a.need(0, "other"), ">") > 0; }},
    {"ge",
     [](const Value& v, const ArgReader& a) { return compare(v, a.need(0, "other"), ">=") >= 0; }},
    {"odd",
     [](const Value& v, const ArgReader&) {
       require_defined(v);
       return v.as_int() % 2 != 0;
     }},
    {"even",
     [](const Value& v, const ArgReader&) {
       require_defined(v);
       return v.as_int() % 2 == 0;
     }},
    {"divisibleby",
     [](const Value& v, const ArgReader& a) {
       std::int64_t d = a.need(0, "num").as_int();
       if (d == 0) raise("ZeroDivisionError", "integer division or modulo by zero");
       return v.as_int() % d == 0;
     }},
    {"lower",
     [](const Value& v, const ArgReader&) {
       std::string s = to_str(v);
       return py_lower(s) == s;
     }},
    {"upper",
     [](const Value& v, const ArgReader&) {
       std::string s = to_str(v);
       return py_upper(s) == s;
     }},
};

}  // namespace

bool apply_test(Interpreter&, std::string_view name, const Value& v, const CallArgs& args) {
  ArgReader reader(args, name);
  for (const Named& t : kTests) {
    if (t.name == name) return t.fn(v, reader);
  }
  raise("TemplateRuntimeError", "No test named '{}' found.", name);
}

}  // namespace qlm::chat
