#include "chat/value.hpp"

#include <algorithm>

#include "chat/error.hpp"

namespace qlm::chat {

const Value* DictData::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.as_string()));
  for (const auto& [k, v] : items) {
    if (k.kind() == key.kind() && k.is_number() && k.as_float() == key.as_float()) return &v;
  }
  return nullptr;
}

const Value* DictData::find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k.is_string() && k.as_string() == key) return &v;
  }
  return nullptr;
}

void DictData::set(Value key, Value value) {
  for (auto& [k, v] : items) {
    if (k.kind() == key.kind() && ((k.is_string() && k.as_string() == key.as_string()) ||
                                   (k.is_number() && k.as_float() == key.as_float()))) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

Value Value::undefined(std::string hint, std::string error_type) {
  Value v;
  v.s_ = std::move(hint);
  if (error_type != "UndefinedError") {
    v.error_type_ = std::make_shared<const std::string>(std::move(error_type));
  }
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::None;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.b_ = b;
  v.i_ = b ? 1 : 0;
  return v;
}

Value Value::integer(std::int64_t i) {
  Value v;
  v.kind_ = Kind::Int;
  v.i_ = i;
  return v;
}

Value Value::real(double d) {
  Value v;
  v.kind_ = Kind::Float;
  v.d_ = d;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::String;
  v.s_ = std::move(s);
  return v;
}

Value Value::markup(std::string s) {
  Value v = string(std::move(s));
  v.markup_ = true;
  return v;
}

namespace {

// Depth and namespace flag of a container from its children.
template <class F>
void measure(Value::Shape& shape, F each_child) {
  each_child([&](const Value& c) {
    shape.depth = std::max(shape.depth, c.depth() + 1);
    shape.holds_namespace = shape.holds_namespace || c.holds_namespace();
  });
  if (shape.depth > kMaxValueDepth) {
    throw LimitExceeded(fmt::format("values nested deeper than {}", kMaxValueDepth));
  }
}

}  // namespace

Value Value::list(std::vector<Value> items, Kind kind) {
  Value v;
  v.kind_ = kind;
  Shape shape;
  measure(shape, [&](auto visit) {
    for (const Value& c : items) visit(c);
  });
  v.set_shape(shape);
  v.list_ = std::make_shared<const std::vector<Value>>(std::move(items));
  return v;
}

Value Value::dict(DictData d) {
  Value v;
  v.kind_ = Kind::Dict;
  Shape shape;
  measure(shape, [&](auto visit) {
    for (const auto& [k, val] : d.items) {
      visit(k);
      visit(val);
    }
  });
  v.set_shape(shape);
  v.dict_ = std::make_shared<DictData>(std::move(d));
  return v;
}

Value Value::namespace_(DictData d) {
  Value v = dict(std::move(d));
  if (v.holds_namespace_) raise("TemplateRuntimeError", "a namespace cannot hold a namespace");
  v.kind_ = Kind::Namespace;
  v.holds_namespace_ = true;
  return v;
}

Value Value::function(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn) {
  Value v;
  v.kind_ = Kind::Function;
  v.fn_ = std::make_shared<const Function>(Function{std::move(name), std::move(fn)});
  return v;
}

bool Value::is_number() const {
  return kind_ == Kind::Bool || kind_ == Kind::Int || kind_ == Kind::Float;
}

bool Value::is_sequence() const {
  return kind_ == Kind::List || kind_ == Kind::Tuple || kind_ == Kind::Generator;
}

double Value::as_float() const {
  return kind_ == Kind::Float ? d_ : static_cast<double>(i_);
}

const std::vector<Value>& Value::items() const {
  static const std::vector<Value> kEmpty;
  return list_ ? *list_ : kEmpty;
}

const DictData& Value::dict_data() const {
  static const DictData kEmpty;
  return dict_ ? *dict_ : kEmpty;
}

DictData& Value::namespace_data() const {
  if (kind_ != Kind::Namespace || !dict_) {
    raise("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
  }
  return *dict_;
}

const Function& Value::function_data() const {
  return *fn_;
}

const std::string& Value::undefined_error_type() const {
  static const std::string kUndefined = "UndefinedError";
  return error_type_ ? *error_type_ : kUndefined;
}

}  // namespace qlm::chat
