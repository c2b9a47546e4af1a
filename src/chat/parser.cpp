#include "chat/parser.hpp"

#include <charconv>
#include <initializer_list>
#include <string_view>

#include "chat/error.hpp"

namespace qlm::chat {
namespace {

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, int max_depth) : toks_(tokens), max_depth_(max_depth) {}

  Body parse_template() {
    Body body = parse_body({});
    if (cur().kind != TokenKind::End) fail(fmt::format("unexpected '{}'", cur().value));
    return body;
  }

 private:
  const std::vector<Token>& toks_;
  std::size_t pos_ = 0;
  int depth_ = 0;
  int max_depth_;

  // Counts nesting on entry to recursive rules; the limit keeps recursion off the stack's end.
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > p.max_depth_) p.fail("template nesting too deep");
    }
    ~DepthGuard() { --p.depth_; }
  };

  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(std::size_t k = 1) const {
    return toks_[pos_ + k < toks_.size() ? pos_ + k : toks_.size() - 1];
  }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  [[noreturn]] void fail(const std::string& msg) const { throw SyntaxError(cur().line, msg); }

  bool is_op(std::string_view op) const { return cur().kind == TokenKind::Op && cur().value == op; }
  bool is_name(std::string_view n) const {
    return cur().kind == TokenKind::Name && cur().value == n;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case TokenKind::End:
        return "end of template";
      case TokenKind::BlockEnd:
        return "'%}'";
      case TokenKind::VarEnd:
        return "'}}'";
      case TokenKind::Text:
        return "template text";
      default:
        return fmt::format("'{}'", t.value);
    }
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail(fmt::format("expected '{}', got {}", op, describe(cur())));
  }
  std::string expect_name() {
    if (cur().kind != TokenKind::Name)
      fail(fmt::format("expected a name, got {}", describe(cur())));
    return next().value;
  }
  void expect_block_end() {
    if (cur().kind != TokenKind::BlockEnd)
      fail(fmt::format("expected '%}}', got {}", describe(cur())));
    next();
  }

  ExprPtr node(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }
  StmtPtr stmt(StmtKind kind, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = line;
    return s;
  }

  // ---- statements -------------------------------------------------------------------------

  // Parses until a `{% name %}` whose name is in `ends`; leaves the stream on that name.
  Body parse_body(std::initializer_list<std::string_view> ends) {
    DepthGuard guard(*this);
    Body body;
    for (;;) {
      const Token& t = cur();
      if (t.kind == TokenKind::End) {
        if (ends.size() != 0)
          fail(fmt::format("unexpected end of template, expected '{}'", *ends.begin()));
        return body;
      }
      if (t.kind == TokenKind::Text) {
        auto s = stmt(StmtKind::Text, t.line);
        s->text = next().value;
        body.push_back(std::move(s));
      } else if (t.kind == TokenKind::VarBegin) {
        next();
        auto s = stmt(StmtKind::Output, t.line);
        s->expr = parse_tuple(true);
        if (cur().kind != TokenKind::VarEnd)
          fail(fmt::format("expected '}}}}', got {}", describe(cur())));
        next();
        body.push_back(std::move(s));
      } else if (t.kind == TokenKind::BlockBegin) {
        next();
        for (std::string_view e : ends) {
          if (is_name(e)) return body;
        }
        parse_statement(body);
      } else {
        fail(fmt::format("unexpected {}", describe(t)));
      }
    }
  }

  void parse_statement(Body& body) {
    int line = cur().line;
    std::string tag = expect_name();
    if (tag == "if") return body.push_back(parse_if(line));
    if (tag == "for") return body.push_back(parse_for(line));
    if (tag == "set") return body.push_back(parse_set(line));
    if (tag == "macro") return body.push_back(parse_macro(line));
    if (tag == "call") return body.push_back(parse_call_block(line));
    if (tag == "filter") return body.push_back(parse_filter_block(line));
    if (tag == "break" || tag == "continue") {
      expect_block_end();
      return body.push_back(stmt(tag == "break" ? StmtKind::Break : StmtKind::Continue, line));
    }
    if (tag == "generation") {
      // transformers' AssistantTracker: the block renders its body unchanged.
      expect_block_end();
      Body inner = parse_body({"endgeneration"});
      next();
      expect_block_end();
      for (auto& s : inner) body.push_back(std::move(s));
      return;
    }
    throw SyntaxError(line, fmt::format("Encountered unknown tag '{}'.", tag));
  }

  StmtPtr parse_if(int line) {
    auto s = stmt(StmtKind::If, line);
    for (;;) {
      s->conds.push_back(parse_tuple(false));
      expect_block_end();
      s->bodies.push_back(parse_body({"elif", "else", "endif"}));
      std::string end = next().value;
      if (end == "elif") continue;
      if (end == "else") {
        expect_block_end();
        s->else_body = parse_body({"endif"});
        next();
      }
      expect_block_end();
      return s;
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    bool parens = skip_op("(");
    do {
      names.push_back(expect_name());
    } while (skip_op(","));
    if (parens) expect_op(")");
    return names;
  }

  StmtPtr parse_for(int line) {
    auto s = stmt(StmtKind::For, line);
    s->targets = parse_targets();
    if (!skip_name("in")) fail(fmt::format("expected 'in', got {}", describe(cur())));
    s->expr = parse_tuple(false);
    if (skip_name("if")) s->cond = parse_expression();
    if (is_name("recursive")) fail("recursive loops are not supported");
    expect_block_end();
    s->body = parse_body({"else", "endfor"});
    if (next().value == "else") {
      expect_block_end();
      s->else_body = parse_body({"endfor"});
      next();
    }
    expect_block_end();
    return s;
  }

  StmtPtr parse_set(int line) {
    auto s = stmt(StmtKind::Set, line);
    if (cur().kind == TokenKind::Name && peek().kind == TokenKind::Op && peek().value == ".") {
      s->name = next().value;
      next();
      s->attr = expect_name();
    } else {
      s->targets = parse_targets();
    }
    if (skip_op("=")) {
      s->expr = parse_tuple(true);
      expect_block_end();
      return s;
    }
    if (!s->attr.empty() || s->targets.size() != 1) fail("expected '='");
    s->kind = StmtKind::SetBlock;
    if (is_op("|")) s->expr = parse_filter_chain(nullptr);
    expect_block_end();
    s->body = parse_body({"endset"});
    next();
    expect_block_end();
    return s;
  }

  void parse_params(Stmt& s) {
    expect_op("(");
    while (!skip_op(")")) {
      if (!s.params.empty()) expect_op(",");
      if (skip_op(")")) break;
      s.params.push_back(expect_name());
      s.defaults.push_back(skip_op("=") ? parse_expression() : nullptr);
    }
  }

  StmtPtr parse_macro(int line) {
    auto s = stmt(StmtKind::Macro, line);
    s->name = expect_name();
    parse_params(*s);
    expect_block_end();
    s->body = parse_body({"endmacro"});
    next();
    expect_block_end();
    return s;
  }

  StmtPtr parse_call_block(int line) {
    auto s = stmt(StmtKind::CallBlock, line);
    if (is_op("(")) parse_params(*s);
    s->expr = parse_expression();
    if (s->expr->kind != ExprKind::Call) fail("expected call");
    expect_block_end();
    s->body = parse_body({"endcall"});
    next();
    expect_block_end();
    return s;
  }

  StmtPtr parse_filter_block(int line) {
    auto s = stmt(StmtKind::FilterBlock, line);
    s->expr = parse_filter_chain(nullptr, /*leading_pipe=*/false);
    expect_block_end();
    s->body = parse_body({"endfilter"});
    next();
    expect_block_end();
    return s;
  }

  // ---- expressions ------------------------------------------------------------------------

  bool at_tuple_end() const {
    return cur().kind == TokenKind::BlockEnd || cur().kind == TokenKind::VarEnd ||
           cur().kind == TokenKind::End || is_op(")") || is_name("in") || is_name("if");
  }

  // A comma-separated list becomes a Tuple; a single expression stays itself.
  ExprPtr parse_tuple(bool with_condexpr) {
    int line = cur().line;
    std::vector<ExprPtr> items;
    bool comma = false;
    for (;;) {
      if (!items.empty()) {
        if (!skip_op(",")) break;
        comma = true;
        if (at_tuple_end()) break;
      }
      items.push_back(with_condexpr ? parse_expression() : parse_or());
    }
    if (items.size() == 1 && !comma) return std::move(items[0]);
    auto t = node(ExprKind::Tuple, line);
    t->args = std::move(items);
    return t;
  }

  ExprPtr parse_expression() {
    DepthGuard guard(*this);
    ExprPtr e = parse_or();
    while (is_name("if")) {
      int line = next().line;
      auto c = node(ExprKind::Cond, line);
      c->args.push_back(parse_or());
      c->args.push_back(std::move(e));
      c->args.push_back(skip_name("else") ? parse_expression() : nullptr);
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(Op op, ExprPtr l, ExprPtr r, int line) {
    auto b = node(ExprKind::Binary, line);
    b->op = op;
    b->args.push_back(std::move(l));
    b->args.push_back(std::move(r));
    return b;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      int line = next().line;
      e = binary(Op::Or, std::move(e), parse_and(), line);
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      int line = next().line;
      e = binary(Op::And, std::move(e), parse_not(), line);
    }
    return e;
  }

  ExprPtr parse_not() {
    if (!is_name("not")) return parse_compare();
    DepthGuard guard(*this);
    auto n = node(ExprKind::Unary, next().line);
    n->op = Op::Not;
    n->args.push_back(parse_not());
    return n;
  }

  bool compare_op(Op& op) {
    static const std::pair<std::string_view, Op> kOps[] = {{"==", Op::Eq}, {"!=", Op::Ne},
                                                           {"<", Op::Lt},  {"<=", Op::Le},
                                                           {">", Op::Gt},  {">=", Op::Ge}};
    if (cur().kind == TokenKind::Op) {
      for (const auto& [s, o] : kOps) {
        if (cur().value == s) {
          op = o;
          next();
          return true;
        }
      }
      return false;
    }
    if (skip_name("in")) {
      op = Op::In;
      return true;
    }
    if (is_name("not") && peek().kind == TokenKind::Name && peek().value == "in") {
      next();
      next();
      op = Op::NotIn;
      return true;
    }
    return false;
  }

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr first = parse_math1();
    Op op{};
    if (!compare_op(op)) return first;
    auto c = node(ExprKind::Compare, line);
    c->args.push_back(std::move(first));
    do {
      c->ops.push_back(op);
      c->args.push_back(parse_math1());
    } while (compare_op(op));
    return c;
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      e = binary(t.value == "+" ? Op::Add : Op::Sub, std::move(e), parse_concat(), t.line);
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      int line = next().line;
      e = binary(Op::Concat, std::move(e), parse_math2(), line);
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    for (;;) {
      Op op{};
      if (is_op("*"))
        op = Op::Mul;
      else if (is_op("/"))
        op = Op::Div;
      else if (is_op("//"))
        op = Op::FloorDiv;
      else if (is_op("%"))
        op = Op::Mod;
      else
        return e;
      int line = next().line;
      e = binary(op, std::move(e), parse_pow(), line);
    }
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      int line = next().line;
      e = binary(Op::Pow, std::move(e), parse_unary(true), line);
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      e = node(ExprKind::Unary, t.line);
      e->op = t.value == "-" ? Op::Neg : Op::Pos;
      e->args.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    return with_filter ? parse_filter_expr(std::move(e)) : std::move(e);
  }

  ExprPtr literal(Value v, int line) {
    auto e = node(ExprKind::Literal, line);
    e->value = std::move(v);
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    switch (t.kind) {
      case TokenKind::Name:
        next();
        if (t.value == "true" || t.value == "True") return literal(Value::boolean(true), t.line);
        if (t.value == "false" || t.value == "False") return literal(Value::boolean(false), t.line);
        if (t.value == "none" || t.value == "None") return literal(Value::none(), t.line);
        {
          auto n = node(ExprKind::Name, t.line);
          n->name = t.value;
          return n;
        }
      case TokenKind::String: {
        std::string s;
        while (cur().kind == TokenKind::String) s += next().value;
        return literal(Value::string(std::move(s)), t.line);
      }
      case TokenKind::Int: {
        std::int64_t v = 0;
        auto r = std::from_chars(t.value.data(), t.value.data() + t.value.size(), v);
        if (r.ec != std::errc()) fail("integer literal out of range");
        next();
        return literal(Value::integer(v), t.line);
      }
      case TokenKind::Float:
        next();
        return literal(Value::real(std::stod(t.value)), t.line);
      default:
        break;
    }
    if (skip_op("(")) return parse_parenthesized(t.line);
    if (skip_op("[")) return parse_sequence(ExprKind::List, "]", t.line);
    if (skip_op("{")) return parse_dict(t.line);
    fail(fmt::format("unexpected {}", describe(t)));
  }

  ExprPtr parse_parenthesized(int line) {
    if (skip_op(")")) return node(ExprKind::Tuple, line);
    ExprPtr first = parse_expression();
    if (skip_op(")")) return first;
    auto t = node(ExprKind::Tuple, line);
    t->args.push_back(std::move(first));
    while (skip_op(",")) {
      if (is_op(")")) break;
      t->args.push_back(parse_expression());
    }
    expect_op(")");
    return t;
  }

  ExprPtr parse_sequence(ExprKind kind, std::string_view close, int line) {
    auto l = node(kind, line);
    while (!skip_op(close)) {
      if (!l->args.empty()) {
        expect_op(",");
        if (skip_op(close)) break;
      }
      l->args.push_back(parse_expression());
    }
    return l;
  }

  ExprPtr parse_dict(int line) {
    auto d = node(ExprKind::Dict, line);
    while (!skip_op("}")) {
      if (!d->args.empty()) {
        expect_op(",");
        if (skip_op("}")) break;
      }
      d->args.push_back(parse_expression());
      expect_op(":");
      d->args.push_back(parse_expression());
    }
    return d;
  }

  ExprPtr parse_postfix(ExprPtr e) {
    for (;;) {
      if (is_op(".")) {
        int line = next().line;
        if (cur().kind == TokenKind::Int) {
          auto item = node(ExprKind::Item, line);
          item->args.push_back(std::move(e));
          item->args.push_back(literal(Value::integer(std::stoll(next().value)), line));
          e = std::move(item);
          continue;
        }
        auto a = node(ExprKind::Attr, line);
        a->name = expect_name();
        a->args.push_back(std::move(e));
        e = std::move(a);
      } else if (is_op("[")) {
        e = parse_subscript(std::move(e), next().line);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj, int line) {
    ExprPtr start;
    if (!is_op(":")) {
      start = parse_expression();
      if (skip_op("]")) {
        auto item = node(ExprKind::Item, line);
        item->args.push_back(std::move(obj));
        item->args.push_back(std::move(start));
        return item;
      }
    }
    expect_op(":");
    auto s = node(ExprKind::Slice, line);
    s->args.push_back(std::move(obj));
    s->args.push_back(std::move(start));
    s->args.push_back(is_op("]") || is_op(":") ? nullptr : parse_expression());
    ExprPtr step;
    if (skip_op(":") && !is_op("]")) step = parse_expression();
    s->args.push_back(std::move(step));
    expect_op("]");
    return s;
  }

  // Parses `(args, name=value...)` into e's args (after index `first`) and kwargs.
  void parse_call_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!skip_op(")")) {
      if (!first) {
        expect_op(",");
        if (skip_op(")")) break;
      }
      first = false;
      if (skip_op("**")) {
        e.dyn_kwargs = parse_expression();
      } else if (skip_op("*")) {
        e.dyn_args = parse_expression();
      } else if (cur().kind == TokenKind::Name && peek().kind == TokenKind::Op &&
                 peek().value == "=") {
        std::string key = next().value;
        next();
        e.kwargs.emplace_back(std::move(key), parse_expression());
      } else {
        if (!e.kwargs.empty()) fail("positional argument follows keyword argument");
        e.args.push_back(parse_expression());
      }
    }
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto c = node(ExprKind::Call, cur().line);
    c->args.push_back(std::move(callee));
    parse_call_args(*c);
    return c;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    for (;;) {
      if (is_op("|")) {
        e = parse_filter_chain(std::move(e));
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  // `| name(args) | name...` applied to `subject` (null for filter blocks).
  ExprPtr parse_filter_chain(ExprPtr subject, bool leading_pipe = true) {
    bool first = true;
    while ((first && !leading_pipe) || skip_op("|")) {
      first = false;
      auto f = node(ExprKind::Filter, cur().line);
      f->name = expect_name();
      while (skip_op(".")) f->name += fmt::format(".{}", expect_name());
      f->args.push_back(std::move(subject));
      if (is_op("(")) parse_call_args(*f);
      subject = std::move(f);
    }
    return subject;
  }

  ExprPtr parse_test(ExprPtr subject) {
    auto t = node(ExprKind::Test, next().line);
    t->negated = skip_name("not");
    t->name = expect_name();
    t->args.push_back(std::move(subject));
    if (is_op("(")) {
      parse_call_args(*t);
    } else if ((cur().kind == TokenKind::Name || cur().kind == TokenKind::String ||
                cur().kind == TokenKind::Int || cur().kind == TokenKind::Float || is_op("[") ||
                is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if")) {
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      t->args.push_back(parse_postfix(parse_primary()));
    }
    return t;
  }
};

}  // namespace

Body parse(const std::vector<Token>& tokens, int max_depth) {
  return Parser(tokens, max_depth).parse_template();
}

}  // namespace qlm::chat
