// Attribute access, subscripts and slices, resolved as jinja2's ImmutableSandboxedEnvironment
// does: `obj.name` tries Python attributes (methods) before items, `obj[key]` the reverse.
#include <algorithm>
#include <optional>

#include "chat/builtins.hpp"
#include "chat/error.hpp"
#include "chat/methods.hpp"
#include "chat/python.hpp"
#include "chat/utf8.hpp"

namespace qlm::chat {
namespace {

Value missing_attribute(const Value& obj, const std::string& name) {
  return Value::undefined(fmt::format("'{}' has no attribute '{}'", object_type_repr(obj), name));
}

// Python's index normalisation: negative counts from the end; nullopt when out of range.
bool normalize_index(std::int64_t& i, std::int64_t n) {
  if (i < 0) i += n;
  return i >= 0 && i < n;
}

}  // namespace

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (!name.empty() && name[0] == '_') {
    return Value::undefined(
        fmt::format("access to attribute '{}' of '{}' object is unsafe.", name, type_name(obj)),
        "SecurityError");
  }
  if (std::optional<Value> m = find_method(obj, name)) return *m;
  if (obj.is(Kind::Dict) || obj.is(Kind::Namespace)) {
    if (const Value* v = obj.dict_data().find(std::string_view(name))) return *v;
  }
  return missing_attribute(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is(Kind::Dict)) {
    if (const Value* v = obj.dict_data().find(key)) return *v;
  } else if ((obj.is(Kind::List) || obj.is(Kind::Tuple)) &&
             (key.is(Kind::Int) || key.is(Kind::Bool))) {
    std::int64_t i = key.as_int();
    if (normalize_index(i, static_cast<std::int64_t>(obj.items().size()))) {
      return obj.items()[static_cast<std::size_t>(i)];
    }
  } else if (obj.is_string() && (key.is(Kind::Int) || key.is(Kind::Bool))) {
    auto offs = utf8_offsets(obj.as_string());
    std::int64_t i = key.as_int();
    if (normalize_index(i, static_cast<std::int64_t>(offs.size()) - 1)) {
      auto u = static_cast<std::size_t>(i);
      return Value::string(obj.as_string().substr(offs[u], offs[u + 1] - offs[u]));
    }
  }
  if (key.is_string()) return get_attr(obj, key.as_string());
  return Value::undefined(fmt::format("{} has no element {}", object_type_repr(obj), repr(key)));
}

namespace {

// A slice bound as Python computes it: default, wrap negatives, clamp to the valid range.
std::int64_t slice_bound(const Value* v, std::int64_t n, std::int64_t fallback, std::int64_t step) {
  if (v == nullptr || v->is_none()) return fallback;
  if (!v->is(Kind::Int) && !v->is(Kind::Bool)) {
    raise("TypeError", "slice indices must be integers or None or have an __index__ method");
  }
  std::int64_t i = v->as_int();
  if (i < 0) i += n;
  std::int64_t lo = step < 0 ? -1 : 0;
  std::int64_t hi = step < 0 ? n - 1 : n;
  return std::clamp(i, lo, hi);
}

}  // namespace

Value slice(const Value& obj, const Value* start, const Value* stop, const Value* step_v) {
  if (obj.is_undefined()) fail_undefined(obj);
  std::int64_t step = 1;
  if (step_v != nullptr && !step_v->is_none()) {
    if (!step_v->is(Kind::Int)) raise("TypeError", "slice indices must be integers");
    step = step_v->as_int();
    if (step == 0) raise("ValueError", "slice step cannot be zero");
  }
  bool is_str = obj.is_string();
  if (!is_str && !obj.is(Kind::List) && !obj.is(Kind::Tuple)) {
    raise("TypeError", "'{}' object is not subscriptable", type_name(obj));
  }
  std::vector<std::size_t> offs;
  std::int64_t n = 0;
  if (is_str) {
    offs = utf8_offsets(obj.as_string());
    n = static_cast<std::int64_t>(offs.size()) - 1;
  } else {
    n = static_cast<std::int64_t>(obj.items().size());
  }
  std::int64_t lo = slice_bound(start, n, step < 0 ? n - 1 : 0, step);
  std::int64_t hi = slice_bound(stop, n, step < 0 ? -1 : n, step);
  std::string s;
  std::vector<Value> items;
  for (std::int64_t i = lo; step > 0 ? i < hi : i > hi;) {
    auto u = static_cast<std::size_t>(i);
    if (is_str) {
      s += obj.as_string().substr(offs[u], offs[u + 1] - offs[u]);
    } else {
      items.push_back(obj.items()[u]);
    }
    if (__builtin_add_overflow(i, step, &i)) break;  // a huge step leaves the range at once
  }
  return is_str ? Value::string(std::move(s)) : Value::list(std::move(items), obj.kind());
}

}  // namespace qlm::chat
