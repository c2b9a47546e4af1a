// Walks the syntax tree: scopes, statements, expressions, macros, and the resource limits
// (steps, call depth, output size) that keep a hostile template from hanging or exhausting memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/ast.hpp"
#include "chat/value.hpp"

namespace qlm::chat {

/// Resource limits of one render.
struct Limits {
  std::uint64_t max_steps = 10'000'000;  ///< statements, expressions and loop iterations
  int max_depth = 64;                    ///< nested macro and caller() calls
  std::size_t max_output = 16u << 20;    ///< bytes of output and of any one string or list
};

/// What a render sees: its variables (messages, tools...), the clock and the limits.
struct Environment {
  DictData variables;
  std::function<std::tm()> clock;
  Limits limits;
};

/// Renders one parsed template. Raises TemplateException (Python-level errors) and
/// LimitExceeded; `line()` tells where the last one happened.
class Interpreter {
 public:
  explicit Interpreter(const Environment& env) : env_(env) {}

  /// Renders the top-level statements and returns the output.
  std::string render(const Body& body);

  /// Evaluates an expression.
  Value eval(const Expr& e);
  /// Calls a function value (builtin, method or macro); raises TypeError for non-callables.
  Value call(const Value& callee, CallArgs& args);
  /// Counts one step of work; raises LimitExceeded past the limit.
  void step();
  /// Raises LimitExceeded if a string or list of `size` would exceed the output limit.
  void check_size(std::size_t size) const;
  /// The environment's clock (local time now when none is set).
  std::tm now() const;
  /// Line of the statement or expression evaluated last (for error messages).
  int line() const { return line_; }

 private:
  /// How a statement list ended: normally or by {% break %} / {% continue %}.
  enum class Flow : std::uint8_t { Normal, Break, Continue };
  /// One scope: a for-loop iteration, a macro call or the template's top level.
  class CallScope;
  struct Frame {
    std::vector<std::pair<std::string, Value>> vars;
    int parent = -1;
  };

  const Environment& env_;
  std::vector<Frame> frames_;
  int current_ = -1;
  std::string* out_ = nullptr;
  std::uint64_t steps_ = 0;
  int depth_ = 0;
  int line_ = 1;

  Flow exec(const Body& body);
  Flow exec_stmt(const Stmt& s);
  void exec_for(const Stmt& s, Flow& flow);
  void exec_set(const Stmt& s);
  void exec_macro(const Stmt& s);
  void exec_call_block(const Stmt& s);
  void emit(std::string_view text);
  std::string capture(const Body& body);

  Value lookup(const std::string& name) const;
  void assign(const std::string& name, Value value);
  void bind_targets(const std::vector<std::string>& targets, const Value& value);
  int push_frame(int parent);
  void pop_frame(int previous);
  Value call_macro(const Stmt& macro, CallArgs& args);
  Value make_loop(const std::vector<Value>& items, std::size_t i);

  Value eval_call(const Expr& e);
  Value eval_filter(const Expr& e, const Value* subject);
  Value eval_test(const Expr& e);
  Value eval_compare(const Expr& e);
  Value eval_binary(const Expr& e);
  Value eval_slice(const Expr& e);
  CallArgs eval_args(const Expr& e, std::size_t first);
};

}  // namespace qlm::chat
