#include "chat/interpreter.hpp"

#include <utility>

#include "chat/builtins.hpp"
#include "chat/error.hpp"
#include "chat/python.hpp"

namespace qlm::chat {

std::string Interpreter::render(const Body& body) {
  frames_.clear();
  current_ = push_frame(-1);
  std::string out;
  out_ = &out;
  exec(body);
  return out;
}

void Interpreter::step() {
  if (++steps_ > env_.limits.max_steps) {
    throw LimitExceeded(fmt::format("template exceeded {} steps", env_.limits.max_steps));
  }
}

void Interpreter::check_size(std::size_t size) const {
  if (size > env_.limits.max_output) {
    throw LimitExceeded(fmt::format("template output exceeded {} bytes", env_.limits.max_output));
  }
}

std::tm Interpreter::now() const {
  if (env_.clock) return env_.clock();
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm;
}

void Interpreter::emit(std::string_view text) {
  check_size(out_->size() + text.size());
  out_->append(text);
}

// Renders a body into a string of its own (macro calls, set blocks, filter blocks).
std::string Interpreter::capture(const Body& body) {
  std::string buffer;
  std::string* saved = std::exchange(out_, &buffer);
  try {
    exec(body);
  } catch (...) {
    out_ = saved;
    throw;
  }
  out_ = saved;
  return buffer;
}

int Interpreter::push_frame(int parent) {
  frames_.push_back(Frame{{}, parent});
  return static_cast<int>(frames_.size()) - 1;
}

void Interpreter::pop_frame(int previous) {
  frames_.pop_back();
  current_ = previous;
}

Value Interpreter::lookup(const std::string& name) const {
  for (int f = current_; f >= 0; f = frames_[static_cast<std::size_t>(f)].parent) {
    for (const auto& [k, v] : frames_[static_cast<std::size_t>(f)].vars) {
      if (k == name) return v;
    }
  }
  if (const Value* v = env_.variables.find(std::string_view(name))) return *v;
  return lookup_global(name);
}

void Interpreter::assign(const std::string& name, Value value) {
  auto& vars = frames_[static_cast<std::size_t>(current_)].vars;
  for (auto& [k, v] : vars) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  vars.emplace_back(name, std::move(value));
}

void Interpreter::bind_targets(const std::vector<std::string>& targets, const Value& value) {
  if (targets.size() == 1) return assign(targets[0], value);
  std::vector<Value> items = iterate(value);
  if (items.size() < targets.size()) {
    raise("ValueError", "not enough values to unpack (expected {}, got {})", targets.size(),
          items.size());
  }
  if (items.size() > targets.size()) {
    raise("ValueError", "too many values to unpack (expected {})", targets.size());
  }
  for (std::size_t i = 0; i < targets.size(); ++i) assign(targets[i], items[i]);
}

Interpreter::Flow Interpreter::exec(const Body& body) {
  for (const StmtPtr& s : body) {
    Flow flow = exec_stmt(*s);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& s) {
  step();
  line_ = s.line;
  switch (s.kind) {
    case StmtKind::Text:
      emit(s.text);
      return Flow::Normal;
    case StmtKind::Output:
      emit(to_str(eval(*s.expr)));
      return Flow::Normal;
    case StmtKind::If:
      for (std::size_t i = 0; i < s.conds.size(); ++i) {
        if (truthy(eval(*s.conds[i]))) return exec(s.bodies[i]);
      }
      return exec(s.else_body);
    case StmtKind::For: {
      Flow flow = Flow::Normal;
      exec_for(s, flow);
      return flow;
    }
    case StmtKind::Set:
      exec_set(s);
      return Flow::Normal;
    case StmtKind::SetBlock: {
      Value v = Value::string(capture(s.body));
      assign(s.targets[0], s.expr ? eval_filter(*s.expr, &v) : v);
      return Flow::Normal;
    }
    case StmtKind::Macro:
      exec_macro(s);
      return Flow::Normal;
    case StmtKind::CallBlock:
      exec_call_block(s);
      return Flow::Normal;
    case StmtKind::FilterBlock: {
      Value v = Value::string(capture(s.body));
      emit(to_str(eval_filter(*s.expr, &v)));
      return Flow::Normal;
    }
    case StmtKind::Break:
      return Flow::Break;
    case StmtKind::Continue:
      return Flow::Continue;
  }
  return Flow::Normal;
}

Value Interpreter::make_loop(const std::vector<Value>& items, std::size_t i) {
  auto n = static_cast<std::int64_t>(items.size());
  auto idx = static_cast<std::int64_t>(i);
  DictData loop;
  loop.set(Value::string("index0"), Value::integer(idx));
  loop.set(Value::string("index"), Value::integer(idx + 1));
  loop.set(Value::string("revindex0"), Value::integer(n - idx - 1));
  loop.set(Value::string("revindex"), Value::integer(n - idx));
  loop.set(Value::string("first"), Value::boolean(i == 0));
  loop.set(Value::string("last"), Value::boolean(idx == n - 1));
  loop.set(Value::string("length"), Value::integer(n));
  loop.set(Value::string("depth"), Value::integer(1));
  loop.set(Value::string("depth0"), Value::integer(0));
  loop.set(Value::string("previtem"),
           i > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
  loop.set(Value::string("nextitem"),
           idx + 1 < n ? items[i + 1] : Value::undefined("there is no next item"));
  loop.set(Value::string("cycle"), Value::function("cycle", [idx](Interpreter&, CallArgs& a) {
             if (a.positional.empty()) raise("TypeError", "no items for cycling given");
             return a.positional[static_cast<std::size_t>(idx) % a.positional.size()];
           }));
  return Value::dict(std::move(loop));
}

void Interpreter::exec_for(const Stmt& s, Flow& flow) {
  std::vector<Value> items = iterate(eval(*s.expr));
  int outer = current_;
  if (s.cond) {
    // The inline `if` filters before counting, so loop.length and loop.last see only kept items.
    std::vector<Value> kept;
    for (Value& item : items) {
      step();
      current_ = push_frame(outer);
      bind_targets(s.targets, item);
      bool keep = truthy(eval(*s.cond));
      pop_frame(outer);
      if (keep) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    step();
    current_ = push_frame(outer);
    assign("loop", make_loop(items, i));
    bind_targets(s.targets, items[i]);
    Flow f = exec(s.body);
    pop_frame(outer);
    if (f == Flow::Break) break;
  }
  if (items.empty()) flow = exec(s.else_body);
}

void Interpreter::exec_set(const Stmt& s) {
  Value v = eval(*s.expr);
  if (s.attr.empty()) return bind_targets(s.targets, v);
  Value ns = lookup(s.name);
  // A namespace holding a namespace could hold itself: a cycle that printing would never leave.
  if (v.holds_namespace()) raise("TemplateRuntimeError", "a namespace cannot hold a namespace");
  ns.namespace_data().set(Value::string(s.attr), std::move(v));
}

void Interpreter::exec_macro(const Stmt& s) {
  const Stmt* macro = &s;
  assign(s.name, Value::function(s.name, [macro](Interpreter& in, CallArgs& args) {
           return in.call_macro(*macro, args);
         }));
}

// Saves the scope, depth and line around a macro or caller() call and restores them on exit,
// also when the call raises.
class Interpreter::CallScope {
 public:
  CallScope(Interpreter& in, int parent)
      : in_(in), current_(in.current_), frames_(in.frames_.size()), line_(in.line_) {
    if (++in.depth_ > in.env_.limits.max_depth) {
      --in.depth_;
      throw LimitExceeded(fmt::format("calls nested deeper than {}", in.env_.limits.max_depth));
    }
    in.current_ = in.push_frame(parent);
  }
  ~CallScope() {
    in_.frames_.resize(frames_);
    in_.current_ = current_;
    in_.line_ = line_;
    --in_.depth_;
  }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;

 private:
  Interpreter& in_;
  int current_;
  std::size_t frames_;
  int line_;
};

// A macro runs in a fresh scope whose parent is the template's top level (as in jinja2,
// it sees top-level variables as they are when it is called, not the caller's locals).
Value Interpreter::call_macro(const Stmt& m, CallArgs& args) {
  CallScope scope(*this, 0);
  std::vector<Value> varargs;
  for (std::size_t i = 0; i < args.positional.size(); ++i) {
    if (i < m.params.size())
      assign(m.params[i], args.positional[i]);
    else
      varargs.push_back(args.positional[i]);
  }
  DictData kwargs;
  auto is_param = [&](const std::string& k) {
    for (const auto& p : m.params) {
      if (p == k) return true;
    }
    return false;
  };
  for (auto& [k, v] : args.keyword) {
    if (is_param(k) || k == "caller")
      assign(k, v);
    else
      kwargs.set(Value::string(k), v);
  }
  for (std::size_t i = args.positional.size(); i < m.params.size(); ++i) {
    bool given = false;
    for (auto& kv : args.keyword) given = given || kv.first == m.params[i];
    if (given) continue;
    assign(m.params[i], m.defaults[i] ? eval(*m.defaults[i])
                                      : Value::undefined(fmt::format(
                                            "parameter '{}' was not provided", m.params[i])));
  }
  assign("varargs", Value::list(std::move(varargs), Kind::Tuple));
  assign("kwargs", Value::dict(std::move(kwargs)));
  return Value::string(capture(m.body));
}

// {% call m(args) %}body{% endcall %}: m gets `caller`, which renders body in the call site's
// scope.
void Interpreter::exec_call_block(const Stmt& s) {
  const Expr& call_expr = *s.expr;
  Value callee = eval(*call_expr.args[0]);
  CallArgs args = eval_args(call_expr, 1);
  const Stmt* block = &s;
  int site = current_;
  args.keyword.emplace_back(
      "caller", Value::function("caller", [block, site](Interpreter& in, CallArgs& a) {
        CallScope scope(in, site < static_cast<int>(in.frames_.size()) ? site : 0);
        for (std::size_t i = 0; i < block->params.size() && i < a.positional.size(); ++i) {
          in.assign(block->params[i], a.positional[i]);
        }
        return Value::string(in.capture(block->body));
      }));
  emit(to_str(call(callee, args)));
}

}  // namespace qlm::chat
