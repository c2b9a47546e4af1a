// Python's arithmetic and concatenation operators, with CPython's TypeError messages.
#include <cmath>
#include <cstdint>
#include <limits>

#include "chat/builtins.hpp"
#include "chat/error.hpp"
#include "chat/filters.hpp"
#include "chat/interpreter.hpp"
#include "chat/python.hpp"

namespace qlm::chat {
namespace {

const char* symbol(Op op) {
  switch (op) {
    case Op::Add:
      return "+";
    case Op::Sub:
      return "-";
    case Op::Mul:
      return "*";
    case Op::Div:
      return "/";
    case Op::FloorDiv:
      return "//";
    case Op::Mod:
      return "%";
    case Op::Pow:
      return "** or pow()";
    default:
      return "?";
  }
}

[[noreturn]] void unsupported(Op op, const Value& a, const Value& b) {
  raise("TypeError", "unsupported operand type(s) for {}: '{}' and '{}'", symbol(op), type_name(a),
        type_name(b));
}

// Integer arithmetic that reports overflow instead of wrapping (Python ints are unbounded).
[[noreturn]] void overflow() {
  raise("OverflowError", "integer result too large");
}

template <class F>
std::int64_t checked(F op, std::int64_t x, std::int64_t y) {
  std::int64_t r = 0;
  if (op(x, y, &r)) overflow();
  return r;
}

bool add_ov(std::int64_t x, std::int64_t y, std::int64_t* r) {
  return __builtin_add_overflow(x, y, r);
}
bool sub_ov(std::int64_t x, std::int64_t y, std::int64_t* r) {
  return __builtin_sub_overflow(x, y, r);
}
bool mul_ov(std::int64_t x, std::int64_t y, std::int64_t* r) {
  return __builtin_mul_overflow(x, y, r);
}

Value repeat(Interpreter& in, const Value& seq, std::int64_t n) {
  if (n <= 0) return seq.is_string() ? Value::string("") : Value::list({}, seq.kind());
  std::size_t unit = seq.is_string() ? seq.as_string().size() : seq.items().size();
  auto count = static_cast<std::size_t>(n);
  // Saturate instead of overflowing: anything past SIZE_MAX is over the limit anyway.
  in.check_size(unit != 0 && count > SIZE_MAX / unit ? SIZE_MAX : unit * count);
  if (seq.is_string()) {
    std::string out;
    for (std::int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value::string(std::move(out));
  }
  std::vector<Value> out;
  for (std::int64_t i = 0; i < n; ++i)
    out.insert(out.end(), seq.items().begin(), seq.items().end());
  return Value::list(std::move(out), seq.kind());
}

Value add(Interpreter& in, const Value& a, const Value& b) {
  if ((a.is_markup() || b.is_markup()) && a.is_string() && b.is_string()) {
    // markupsafe: Markup + str escapes the plain operand, and the sum is Markup.
    std::string l = a.is_markup() ? a.as_string() : html_escape(a.as_string());
    std::string r = b.is_markup() ? b.as_string() : html_escape(b.as_string());
    in.check_size(l.size() + r.size());
    return Value::markup(l + r);
  }
  if (a.is_string() && b.is_string()) {
    in.check_size(a.as_string().size() + b.as_string().size());
    return Value::string(a.as_string() + b.as_string());
  }
  if ((a.is(Kind::List) && b.is(Kind::List)) || (a.is(Kind::Tuple) && b.is(Kind::Tuple))) {
    std::vector<Value> out = a.items();
    out.insert(out.end(), b.items().begin(), b.items().end());
    in.check_size(out.size());
    return Value::list(std::move(out), a.kind());
  }
  if (a.is_string())
    raise("TypeError", "can only concatenate str (not \"{}\") to str", type_name(b));
  if (a.is(Kind::List)) {
    raise("TypeError", "can only concatenate list (not \"{}\") to list", type_name(b));
  }
  unsupported(Op::Add, a, b);
}

Value arithmetic(Op op, const Value& a, const Value& b) {
  bool ints = !a.is(Kind::Float) && !b.is(Kind::Float);
  std::int64_t x = a.as_int(), y = b.as_int();
  double fx = a.as_float(), fy = b.as_float();
  switch (op) {
    case Op::Add:
      if (ints) return Value::integer(checked(add_ov, x, y));
      return Value::real(fx + fy);
    case Op::Sub:
      if (ints) return Value::integer(checked(sub_ov, x, y));
      return Value::real(fx - fy);
    case Op::Mul:
      if (ints) return Value::integer(checked(mul_ov, x, y));
      return Value::real(fx * fy);
    case Op::Div:
      if (fy == 0.0) raise("ZeroDivisionError", "division by zero");
      return Value::real(fx / fy);
    case Op::FloorDiv:
    case Op::Mod: {
      if (ints ? y == 0 : fy == 0.0) {
        raise("ZeroDivisionError", "{}",
              op == Op::Mod ? "integer modulo by zero" : "integer division or modulo by zero");
      }
      if (ints) {
        if (x == std::numeric_limits<std::int64_t>::min() && y == -1) overflow();
        std::int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        return Value::integer(op == Op::Mod ? m : q);
      }
      double m = std::fmod(fx, fy);
      if (m != 0.0 && ((m < 0) != (fy < 0))) m += fy;
      return op == Op::Mod ? Value::real(m) : Value::real(std::floor(fx / fy));
    }
    case Op::Pow:
      if (ints && y >= 0) {
        std::int64_t acc = 1;
        for (std::int64_t i = 0; i < y; ++i) {
          acc = checked(mul_ov, acc, x);
          if (acc == 0 || acc == 1) break;
        }
        return Value::integer(acc);
      }
      return Value::real(std::pow(fx, fy));
    default:
      unsupported(op, a, b);
  }
}

}  // namespace

Value binary_op(Interpreter& in, Op op, const Value& a, const Value& b) {
  if (op == Op::Concat) {
    std::string s = to_str(a) + to_str(b);
    in.check_size(s.size());
    return Value::string(std::move(s));
  }
  require_defined(a);
  require_defined(b);
  if (op == Op::Add && !(a.is_number() && b.is_number())) return add(in, a, b);
  if (op == Op::Mul && (a.is_string() || a.is(Kind::List) || a.is(Kind::Tuple)) &&
      b.is(Kind::Int)) {
    return repeat(in, a, b.as_int());
  }
  if (op == Op::Mul && (b.is_string() || b.is(Kind::List) || b.is(Kind::Tuple)) &&
      a.is(Kind::Int)) {
    return repeat(in, b, a.as_int());
  }
  if (op == Op::Mod && a.is_string()) {
    return Value::string(
        percent_format(a.as_string(), b.is(Kind::Tuple) ? b.items() : std::vector<Value>{b}));
  }
  if (!a.is_number() || !b.is_number()) {
    if (op == Op::Mul && (a.is_string() || b.is_string())) {
      raise("TypeError", "can't multiply sequence by non-int of type '{}'",
            type_name(a.is_string() ? b : a));
    }
    unsupported(op, a, b);
  }
  return arithmetic(op, a, b);
}

Value unary_op(Op op, const Value& v) {
  require_defined(v);
  if (!v.is_number()) {
    raise("TypeError", "bad operand type for unary {}: '{}'", op == Op::Neg ? "-" : "+",
          type_name(v));
  }
  if (op == Op::Pos) return v.is(Kind::Float) ? v : Value::integer(v.as_int());
  if (v.is(Kind::Float)) return Value::real(-v.as_float());
  if (v.as_int() == std::numeric_limits<std::int64_t>::min()) overflow();
  return Value::integer(-v.as_int());
}

}  // namespace qlm::chat
