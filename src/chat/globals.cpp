// Global functions: jinja2's range, dict, namespace, joiner and cycler, plus transformers'
// raise_exception and strftime_now.
#include <ctime>
#include <memory>
#include <string_view>

#include "chat/builtins.hpp"
#include "chat/error.hpp"
#include "chat/interpreter.hpp"
#include "chat/python.hpp"

namespace qlm::chat {
namespace {

std::int64_t int_arg(const Value& v) {
  if (!v.is(Kind::Int) && !v.is(Kind::Bool)) {
    raise("TypeError", "'{}' object cannot be interpreted as an integer", type_name(v));
  }
  return v.as_int();
}

Value range(Interpreter& in, CallArgs& a) {
  std::int64_t start = 0, stop = 0, step = 1;
  const auto& p = a.positional;
  if (p.size() == 1) {
    stop = int_arg(p[0]);
  } else if (p.size() == 2 || p.size() == 3) {
    start = int_arg(p[0]);
    stop = int_arg(p[1]);
    if (p.size() == 3) step = int_arg(p[2]);
  } else {
    raise("TypeError", "range expected at most 3 arguments, got {}", p.size());
  }
  if (step == 0) raise("ValueError", "range() arg 3 must not be zero");
  std::vector<Value> out;
  for (std::int64_t i = start; step > 0 ? i < stop : i > stop;) {
    in.step();
    out.push_back(Value::integer(i));
    if (__builtin_add_overflow(i, step, &i)) break;  // past the int64 range means past `stop`
  }
  return Value::list(std::move(out));
}

// dict(**kwargs) and namespace(mapping?, **kwargs).
DictData mapping_args(CallArgs& a) {
  DictData d;
  if (!a.positional.empty() && a.positional[0].is(Kind::Dict)) d = a.positional[0].dict_data();
  for (auto& [k, v] : a.keyword) d.set(Value::string(k), v);
  return d;
}

Value strftime_now(Interpreter& in, CallArgs& a) {
  std::string fmt = to_str(ArgReader(a, "strftime_now").need(0, "format"));
  std::tm tm = in.now();
  if (fmt.empty()) return Value::string("");
  std::string buf(fmt.size() * 8 + 64, '\0');
  std::size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
  buf.resize(n);
  return Value::string(std::move(buf));
}

Value joiner(Interpreter&, CallArgs& a) {
  std::string sep = to_str(ArgReader(a, "joiner").get_or(0, "sep", Value::string(", ")));
  auto used = std::make_shared<bool>(false);
  return Value::function("joiner", [sep, used](Interpreter&, CallArgs&) {
    bool was = *used;
    *used = true;
    return Value::string(was ? sep : "");
  });
}

struct Global {
  std::string_view name;
  Value (*fn)(Interpreter&, CallArgs&);
};

const Global kGlobals[] = {
    {"range", range},
    {"dict", [](Interpreter&, CallArgs& a) { return Value::dict(mapping_args(a)); }},
    {"namespace", [](Interpreter&, CallArgs& a) { return Value::namespace_(mapping_args(a)); }},
    {"raise_exception",
     [](Interpreter&, CallArgs& a) -> Value {
       throw TemplateException("TemplateError",
                               to_str(ArgReader(a, "raise_exception").need(0, "message")));
     }},
    {"strftime_now", strftime_now},
    {"joiner", joiner},
};

}  // namespace

Value lookup_global(const std::string& name) {
  for (const Global& g : kGlobals) {
    if (g.name == name) return Value::function(name, g.fn);
  }
  return Value::undefined(fmt::format("'{}' is undefined", name));
}

}  // namespace qlm::chat
