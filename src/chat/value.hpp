// The interpreter's value type: the Python objects that chat templates see (None, bool, int,
// float, str, list, tuple, dict, Jinja's Undefined, namespaces, generators and callables).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qlm::chat {

class Value;
class Interpreter;

/// Which Python type a Value stands for.
enum class Kind : std::uint8_t {
  Undefined,  ///< Jinja's default Undefined: renders '', falsy, raises when used in arithmetic
  None,
  Bool,
  Int,
  Float,
  String,
  List,
  Tuple,      ///< a list that prints with parentheses and compares unequal to lists
  Generator,  ///< what select/map/reverse return: iterable but no len(), always truthy
  Dict,
  Namespace,  ///< jinja2's namespace(): the one mutable object a template can change
  Function,   ///< builtin function, bound method or macro
};

/// Arguments of a call: positional, then keyword in source order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

/// A callable: builtin, bound method or macro. `fn` gets the interpreter for output and limits.
struct Function {
  std::string name;
  std::function<Value(Interpreter&, CallArgs&)> fn;
};

/// Ordered key/value pairs (Python dicts keep insertion order); lookups are linear, dicts in
/// chat templates are small.
struct DictData {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  /// Inserts or replaces, keeping the first insertion's position.
  void set(Value key, Value value);
};

/// Lists and dicts may nest this deep. Printing, comparing and freeing values recurse, so the
/// bound keeps them off the stack's end.
inline constexpr int kMaxValueDepth = 256;

/// A Python value. Lists and dicts are shared and immutable (the sandbox forbids mutation);
/// a Namespace is shared and mutable, as in jinja2.
class Value {
 public:
  Value() = default;  // Undefined with no hint
  static Value undefined(std::string hint, std::string error_type = "UndefinedError");
  static Value none();
  static Value boolean(bool b);
  static Value integer(std::int64_t i);
  static Value real(double d);
  static Value string(std::string s);
  /// A markupsafe.Markup string (from |safe or |escape): `+` escapes the other operand.
  static Value markup(std::string s);
  /// Containers raise LimitExceeded when they would nest deeper than kMaxValueDepth.
  static Value list(std::vector<Value> items, Kind kind = Kind::List);
  static Value dict(DictData d);
  static Value namespace_(DictData d);
  static Value function(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn);

  Kind kind() const { return kind_; }
  bool is(Kind k) const { return kind_ == k; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_markup() const { return kind_ == Kind::String && markup_; }
  /// bool, int or float: what Python arithmetic accepts.
  bool is_number() const;
  /// list, tuple or generator: the ordered containers.
  bool is_sequence() const;

  bool as_bool() const { return b_; }
  std::int64_t as_int() const { return i_; }
  double as_float() const;  // int, bool or float as a double
  const std::string& as_string() const { return s_; }
  const std::vector<Value>& items() const;
  const DictData& dict_data() const;
  DictData& namespace_data() const;  // the mutable map of a Namespace
  const Function& function_data() const;
  /// Nesting depth of lists and dicts (0 for scalars).
  int depth() const { return depth_; }
  /// True if this is or contains a Namespace (which a namespace may not hold: no cycles).
  bool holds_namespace() const { return holds_namespace_; }
  /// Undefined: the message jinja2 would raise ("'x' is undefined") and its exception class.
  const std::string& undefined_hint() const { return s_; }
  const std::string& undefined_error_type() const;

  /// A container's nesting depth and whether it holds a namespace, measured from its children.
  struct Shape {
    int depth = 1;
    bool holds_namespace = false;
  };

 private:
  void set_shape(const Shape& s) {
    depth_ = static_cast<std::uint16_t>(s.depth);
    holds_namespace_ = s.holds_namespace;
  }

  Kind kind_ = Kind::Undefined;
  bool b_ = false;
  bool markup_ = false;
  bool holds_namespace_ = false;
  std::uint16_t depth_ = 0;
  std::int64_t i_ = 0;
  double d_ = 0.0;
  std::string s_;  // string, or an Undefined's hint
  std::shared_ptr<const std::vector<Value>> list_;
  std::shared_ptr<DictData> dict_;
  std::shared_ptr<const Function> fn_;
  std::shared_ptr<const std::string> error_type_;
};

}  // namespace qlm::chat
