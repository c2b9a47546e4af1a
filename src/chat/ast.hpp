// The syntax tree the parser builds and the interpreter walks. One node struct per level
// (expressions, statements) with a kind tag keeps the tree small and easy to print.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/value.hpp"

namespace qlm::chat {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

/// Expression kinds; the comment says how `args` is laid out.
enum class ExprKind : std::uint8_t {
  Literal,  ///< `value`
  Name,     ///< `name`
  List,     ///< args: elements
  Tuple,    ///< args: elements
  Dict,     ///< args: key, value, key, value...
  Attr,     ///< args[0].name
  Item,     ///< args[0][args[1]]
  Slice,    ///< args[0][args[1]:args[2]:args[3]], missing parts are null
  Call,     ///< args[0](args[1..], kwargs)
  Filter,   ///< args[0] | name(args[1..], kwargs); args[0] is null in a filter block
  Test,     ///< args[0] is [not] name(args[1..])
  Unary,    ///< op args[0]: Not, Neg or Pos
  Binary,   ///< args[0] op args[1]: arithmetic, ~, and, or
  Compare,  ///< args[0] ops[0] args[1] ops[1] args[2]...
  Cond,     ///< args[1] if args[0] else args[2] (args[2] may be null)
};

/// Operators of Unary, Binary and Compare nodes.
enum class Op : std::uint8_t {
  Add,
  Sub,
  Mul,
  Div,
  FloorDiv,
  Mod,
  Pow,
  Concat,
  And,
  Or,
  Not,
  Neg,
  Pos,
  Eq,
  Ne,
  Lt,
  Le,
  Gt,
  Ge,
  In,
  NotIn,
};

/// An expression node.
struct Expr {
  ExprKind kind = ExprKind::Literal;
  int line = 1;
  Value value;
  std::string name;
  Op op = Op::Add;
  bool negated = false;
  std::vector<Op> ops;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args;    ///< f(*dyn_args): a sequence spread into positional arguments
  ExprPtr dyn_kwargs;  ///< f(**dyn_kwargs): a dict spread into keyword arguments
};

/// Statement kinds.
enum class StmtKind : std::uint8_t {
  Text,         ///< `text`
  Output,       ///< {{ expr }}
  If,           ///< conds[i] -> bodies[i]; else_body
  For,          ///< for targets in expr [if cond] body [else else_body]
  Set,          ///< set targets = expr, or set ns.attr = expr (`attr` non-empty)
  SetBlock,     ///< set targets[0] [| filter] %} body {% endset
  Macro,        ///< macro name(params = defaults) body
  CallBlock,    ///< call(params) expr %} body {% endcall
  FilterBlock,  ///< filter expr %} body {% endfilter
  Break,
  Continue,
};

/// A statement node.
struct Stmt {
  StmtKind kind = StmtKind::Text;
  int line = 1;
  std::string text;
  std::string name;
  std::string attr;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<std::string> targets;
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  Body body;
  Body else_body;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  ///< aligned with params; null where there is no default
};

}  // namespace qlm::chat
