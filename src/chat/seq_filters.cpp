// Sequence filters: selection, mapping, ordering and joining. jinja2's select/map/unique and
// reverse return generators, which print oddly, have no len() and are always truthy; a
// Generator value keeps those differences.
#include <algorithm>
#include <utility>

#include "chat/error.hpp"
#include "chat/filters.hpp"
#include "chat/interpreter.hpp"
#include "chat/python.hpp"
#include "chat/text.hpp"

namespace qlm::chat {
namespace {

// jinja2's make_attrgetter: "a.b.0" walks items, digit parts as integer indexes.
Value attr_path(const Value& item, const Value& attribute) {
  if (!attribute.is_string()) return get_item(item, attribute);
  Value cur = item;
  const std::string& path = attribute.as_string();
  std::size_t start = 0;
  for (;;) {
    std::size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(),
                                               [](char c) { return c >= '0' && c <= '9'; });
    cur = digits ? get_item(cur, Value::integer(std::stoll(part)))
                 : get_item(cur, Value::string(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value generator(std::vector<Value> items) {
  return Value::list(std::move(items), Kind::Generator);
}

// select/reject/selectattr/rejectattr: arguments after the attribute name are a test name and
// the test's own arguments; without a test the value's truthiness decides.
Value select(Interpreter& in, const Value& seq, const ArgReader& a, bool by_attr, bool keep) {
  std::size_t test_pos = by_attr ? 1 : 0;
  Value attribute = by_attr ? a.need(0, "attribute") : Value();
  const Value* test = a.at(test_pos);
  CallArgs test_args;
  test_args.positional = a.rest(test_pos + 1);
  std::vector<Value> out;
  if (!truthy(seq)) return generator({});  // jinja2 yields nothing for a falsy sequence
  for (const Value& item : iterate(seq)) {
    in.step();
    Value subject = by_attr ? attr_path(item, attribute) : item;
    bool r = test ? apply_test(in, to_str(*test), subject, test_args) : truthy(subject);
    if (r == keep) out.push_back(item);
  }
  return generator(std::move(out));
}

Value map(Interpreter& in, const Value& seq, const ArgReader& a) {
  const Value* attribute = a.keyword("attribute");
  std::vector<Value> out;
  if (!truthy(seq)) return generator({});  // jinja2 yields nothing for a falsy sequence
  if (attribute) {
    const Value* fallback = a.keyword("default");
    for (const Value& item : iterate(seq)) {
      Value v = attr_path(item, *attribute);
      out.push_back(v.is_undefined() && fallback ? *fallback : v);
    }
    return generator(std::move(out));
  }
  std::string filter = to_str(a.need(0, "filter"));
  CallArgs rest;
  rest.positional = a.rest(1);
  rest.keyword = {};
  for (const Value& item : iterate(seq)) {
    in.step();
    out.push_back(apply_filter(in, filter, item, rest));
  }
  return generator(std::move(out));
}

// Sort key for sort/dictsort/unique/min/max: strings fold case unless case_sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(py_lower(v.as_string()));
  return v;
}

Value sort(Interpreter&, const Value& seq, const ArgReader& a) {
  bool reverse = truthy(a.get_or(0, "reverse", Value::boolean(false)));
  bool cs = truthy(a.get_or(1, "case_sensitive", Value::boolean(false)));
  const Value* attribute = a.get(2, "attribute");
  std::vector<Value> items = iterate(seq);
  std::vector<std::pair<Value, Value>> keyed;
  for (Value& item : items) {
    Value key = attribute ? attr_path(item, *attribute) : item;
    keyed.emplace_back(sort_key(key, cs), std::move(item));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? compare(y.first, x.first, "<") < 0 : compare(x.first, y.first, "<") < 0;
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::list(std::move(out));
}

Value dictsort(Interpreter&, const Value& d, const ArgReader& a) {
  if (!d.is(Kind::Dict))
    raise("FilterArgumentError", "You can only sort by either \"key\" or \"value\"");
  bool cs = truthy(a.get_or(0, "case_sensitive", Value::boolean(false)));
  bool by_value = to_str(a.get_or(1, "by", Value::string("key"))) == "value";
  bool reverse = truthy(a.get_or(2, "reverse", Value::boolean(false)));
  std::vector<std::pair<Value, Value>> items = d.dict_data().items;
  std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
    Value kx = sort_key(by_value ? x.second : x.first, cs);
    Value ky = sort_key(by_value ? y.second : y.first, cs);
    return reverse ? compare(ky, kx, "<") < 0 : compare(kx, ky, "<") < 0;
  });
  std::vector<Value> out;
  for (auto& [k, v] : items) out.push_back(Value::list({k, v}, Kind::Tuple));
  return Value::list(std::move(out));
}

Value unique(Interpreter&, const Value& seq, const ArgReader& a) {
  bool cs = truthy(a.get_or(0, "case_sensitive", Value::boolean(false)));
  const Value* attribute = a.get(1, "attribute");
  std::vector<Value> seen, out;
  for (const Value& item : iterate(seq)) {
    Value key = sort_key(attribute ? attr_path(item, *attribute) : item, cs);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return generator(std::move(out));
}

Value join(Interpreter& in, const Value& seq, const ArgReader& a) {
  std::string sep = soft_str(a.get_or(0, "d", Value::string("")));
  const Value* attribute = a.get(1, "attribute");
  std::string out;
  bool first = true;
  for (const Value& item : iterate(seq)) {
    if (!first) out += sep;
    first = false;
    out += to_str(attribute ? attr_path(item, *attribute) : item);
    in.check_size(out.size());
  }
  return Value::string(std::move(out));
}

Value first(Interpreter&, const Value& seq, const ArgReader&) {
  std::vector<Value> items = iterate(seq);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value last(Interpreter&, const Value& seq, const ArgReader&) {
  if (seq.is(Kind::Generator)) raise("TypeError", "'generator' object is not reversible");
  std::vector<Value> items = iterate(seq);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value reverse(Interpreter&, const Value& v, const ArgReader&) {
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  if (!v.is_string()) return generator(std::move(items));
  std::string out;
  for (const Value& c : items) out += c.as_string();
  return Value::string(std::move(out));
}

Value items(Interpreter&, const Value& d, const ArgReader&) {
  if (d.is_undefined()) return generator({});
  if (!d.is(Kind::Dict)) raise("TypeError", "Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, v] : d.dict_data().items) out.push_back(Value::list({k, v}, Kind::Tuple));
  return generator(std::move(out));
}

Value sum(Interpreter& in, const Value& seq, const ArgReader& a) {
  const Value* attribute = a.get(0, "attribute");
  Value total = a.get_or(1, "start", Value::integer(0));
  for (const Value& item : iterate(seq)) {
    total = binary_op(in, Op::Add, total, attribute ? attr_path(item, *attribute) : item);
  }
  return total;
}

Value extreme(const Value& seq, const ArgReader& a, bool want_max) {
  bool cs = truthy(a.get_or(0, "case_sensitive", Value::boolean(false)));
  const Value* attribute = a.get(1, "attribute");
  std::vector<Value> items = iterate(seq);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const Value* best = &items[0];
  for (const Value& item : items) {
    Value k = sort_key(attribute ? attr_path(item, *attribute) : item, cs);
    Value b = sort_key(attribute ? attr_path(*best, *attribute) : *best, cs);
    int c = compare(k, b, "<");
    if (want_max ? c > 0 : c < 0) best = &item;
  }
  return *best;
}

struct Named {
  std::string_view name;
  FilterFn fn;
};

const Named kSeqFilters[] = {
    {"length",
     [](Interpreter&, const Value& v, const ArgReader&) { return Value::integer(length(v)); }},
    {"count",
     [](Interpreter&, const Value& v, const ArgReader&) { return Value::integer(length(v)); }},
    {"first", first},
    {"last", last},
    {"join", join},
    {"list",
     [](Interpreter&, const Value& v, const ArgReader&) { return Value::list(iterate(v)); }},
    {"items", items},
    {"dictsort", dictsort},
    {"select", [](Interpreter& in, const Value& v,
                  const ArgReader& a) { return select(in, v, a, false, true); }},
    {"reject", [](Interpreter& in, const Value& v,
                  const ArgReader& a) { return select(in, v, a, false, false); }},
    {"selectattr", [](Interpreter& in, const Value& v,
                      const ArgReader& a) { return select(in, v, a, true, true); }},
    {"rejectattr", [](Interpreter& in, const Value& v,
                      const ArgReader& a) { return select(in, v, a, true, false); }},
    {"map", map},
    {"unique", unique},
    {"reverse", reverse},
    {"sort", sort},
    {"sum", sum},
    {"min", [](Interpreter&, const Value& v, const ArgReader& a) { return extreme(v, a, false); }},
    {"max", [](Interpreter&, const Value& v, const ArgReader& a) { return extreme(v, a, true); }},
};

}  // namespace

FilterFn find_seq_filter(std::string_view name) {
  for (const Named& f : kSeqFilters) {
    if (f.name == name) return f.fn;
  }
  return nullptr;
}

}  // namespace qlm::chat
