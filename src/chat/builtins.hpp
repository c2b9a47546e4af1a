// The library of names a template can reach besides its variables: filters, tests, methods of
// str/dict/list, operators and global functions. Each lives in its own .cpp file.
#pragma once

#include <string>
#include <string_view>

#include "chat/ast.hpp"
#include "chat/value.hpp"

namespace qlm::chat {

class Interpreter;

/// Reads call arguments the way Python binds them: by keyword, else by position, else default.
class ArgReader {
 public:
  ArgReader(const CallArgs& args, std::string_view fn) : args_(args), fn_(fn) {}
  /// The argument at `pos` or named `name`; nullptr when absent.
  const Value* get(std::size_t pos, std::string_view name) const;
  /// The argument or a default.
  Value get_or(std::size_t pos, std::string_view name, Value fallback) const;
  /// The argument; raises TypeError when it is missing.
  const Value& need(std::size_t pos, std::string_view name) const;
  /// The positional argument `pos` only, or nullptr.
  const Value* at(std::size_t pos) const;
  /// The keyword argument `name` only, or nullptr.
  const Value* keyword(std::string_view name) const;
  /// The positional arguments from `from` on (the extra arguments of select, map...).
  std::vector<Value> rest(std::size_t from) const;

 private:
  const CallArgs& args_;
  std::string_view fn_;
};

/// `subject | name(args)`; raises TemplateRuntimeError for unknown filters.
Value apply_filter(Interpreter& in, std::string_view name, const Value& subject,
                   const CallArgs& args);
/// `v is name(args)`; raises TemplateRuntimeError for unknown tests.
bool apply_test(Interpreter& in, std::string_view name, const Value& v, const CallArgs& args);

/// `obj.name` as jinja2's ImmutableSandboxedEnvironment resolves it (methods first, then
/// items; mutating methods yield an Undefined that raises SecurityError when used).
Value get_attr(const Value& obj, const std::string& name);
/// `obj[key]`: items first, then attributes, else an Undefined.
Value get_item(const Value& obj, const Value& key);
/// Python slicing of str, list and tuple; missing bounds are null.
Value slice(const Value& obj, const Value* start, const Value* stop, const Value* step);

/// A global function (range, namespace, dict, raise_exception, strftime_now, joiner, cycler),
/// or an Undefined naming `name`.
Value lookup_global(const std::string& name);

/// Python's binary operators (+ - * / // % ** and ~).
Value binary_op(Interpreter& in, Op op, const Value& a, const Value& b);
/// Unary minus and plus.
Value unary_op(Op op, const Value& v);

}  // namespace qlm::chat
