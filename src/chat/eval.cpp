// Expression evaluation (the statement half of the interpreter is in interpreter.cpp).
#include <utility>

#include "chat/builtins.hpp"
#include "chat/error.hpp"
#include "chat/interpreter.hpp"
#include "chat/python.hpp"

namespace qlm::chat {

Value Interpreter::eval(const Expr& e) {
  step();
  line_ = e.line;
  switch (e.kind) {
    case ExprKind::Literal:
      return e.value;
    case ExprKind::Name:
      return lookup(e.name);
    case ExprKind::List:
    case ExprKind::Tuple: {
      std::vector<Value> items;
      for (const ExprPtr& a : e.args) items.push_back(eval(*a));
      return Value::list(std::move(items), e.kind == ExprKind::List ? Kind::List : Kind::Tuple);
    }
    case ExprKind::Dict: {
      DictData d;
      for (std::size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value k = eval(*e.args[i]);
        d.set(std::move(k), eval(*e.args[i + 1]));
      }
      return Value::dict(std::move(d));
    }
    case ExprKind::Attr:
      return get_attr(eval(*e.args[0]), e.name);
    case ExprKind::Item: {
      Value obj = eval(*e.args[0]);
      return get_item(obj, eval(*e.args[1]));
    }
    case ExprKind::Slice:
      return eval_slice(e);
    case ExprKind::Call:
      return eval_call(e);
    case ExprKind::Filter:
      return eval_filter(e, nullptr);
    case ExprKind::Test:
      return eval_test(e);
    case ExprKind::Unary:
      if (e.op == Op::Not) return Value::boolean(!truthy(eval(*e.args[0])));
      return unary_op(e.op, eval(*e.args[0]));
    case ExprKind::Binary:
      return eval_binary(e);
    case ExprKind::Compare:
      return eval_compare(e);
    case ExprKind::Cond:
      if (truthy(eval(*e.args[0]))) return eval(*e.args[1]);
      if (e.args[2]) return eval(*e.args[2]);
      return Value::undefined(fmt::format(
          "the inline if-expression on line {} evaluated to false and no else section was "
          "defined.",
          e.line));
  }
  return Value();
}

CallArgs Interpreter::eval_args(const Expr& e, std::size_t first) {
  CallArgs args;
  for (std::size_t i = first; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i]));
  if (e.dyn_args) {
    for (Value& v : iterate(eval(*e.dyn_args))) args.positional.push_back(std::move(v));
  }
  for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v));
  if (e.dyn_kwargs) {
    Value d = eval(*e.dyn_kwargs);
    if (!d.is(Kind::Dict))
      raise("TypeError", "argument after ** must be a mapping, not {}", type_name(d));
    for (const auto& [k, v] : d.dict_data().items) args.keyword.emplace_back(to_str(k), v);
  }
  return args;
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is(Kind::Function)) return callee.function_data().fn(*this, args);
  if (callee.is_undefined()) fail_undefined(callee);
  raise("TypeError", "'{}' object is not callable", type_name(callee));
}

Value Interpreter::eval_call(const Expr& e) {
  Value callee = eval(*e.args[0]);
  CallArgs args = eval_args(e, 1);
  int line = line_;
  Value result = call(callee, args);
  line_ = line;
  return result;
}

// A filter node's subject is its first argument, or `subject` in a set/filter block, where the
// innermost filter of the chain has none.
Value Interpreter::eval_filter(const Expr& e, const Value* subject) {
  Value v;
  if (e.args[0])
    v = e.args[0]->kind == ExprKind::Filter && subject ? eval_filter(*e.args[0], subject)
                                                       : eval(*e.args[0]);
  else if (subject)
    v = *subject;
  CallArgs args = eval_args(e, 1);
  line_ = e.line;
  return apply_filter(*this, e.name, v, args);
}

Value Interpreter::eval_test(const Expr& e) {
  Value v = eval(*e.args[0]);
  CallArgs args = eval_args(e, 1);
  line_ = e.line;
  bool r = apply_test(*this, e.name, v, args);
  return Value::boolean(e.negated ? !r : r);
}

Value Interpreter::eval_compare(const Expr& e) {
  Value left = eval(*e.args[0]);
  for (std::size_t i = 0; i < e.ops.size(); ++i) {
    Value right = eval(*e.args[i + 1]);
    bool r = false;
    switch (e.ops[i]) {
      case Op::Eq:
        r = equals(left, right);
        break;
      case Op::Ne:
        r = !equals(left, right);
        break;
      case Op::Lt:
        r = compare(left, right, "<") < 0;
        break;
      case Op::Le:
        r = compare(left, right, "<=") <= 0;
        break;
      case Op::Gt:
        r = compare(left, right, ">") > 0;
        break;
      case Op::Ge:
        r = compare(left, right, ">=") >= 0;
        break;
      case Op::In:
        r = contains(right, left);
        break;
      case Op::NotIn:
        r = !contains(right, left);
        break;
      default:
        break;
    }
    if (!r) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Value Interpreter::eval_binary(const Expr& e) {
  Value left = eval(*e.args[0]);
  // `and` / `or` short-circuit and return an operand, as in Python.
  if (e.op == Op::And) return truthy(left) ? eval(*e.args[1]) : left;
  if (e.op == Op::Or) return truthy(left) ? left : eval(*e.args[1]);
  Value right = eval(*e.args[1]);
  line_ = e.line;
  return binary_op(*this, e.op, left, right);
}

Value Interpreter::eval_slice(const Expr& e) {
  Value obj = eval(*e.args[0]);
  Value parts[3];
  const Value* ptr[3] = {nullptr, nullptr, nullptr};
  for (int i = 0; i < 3; ++i) {
    if (e.args[static_cast<std::size_t>(i) + 1]) {
      parts[i] = eval(*e.args[static_cast<std::size_t>(i) + 1]);
      ptr[i] = &parts[i];
    }
  }
  return slice(obj, ptr[0], ptr[1], ptr[2]);
}

}  // namespace qlm::chat
