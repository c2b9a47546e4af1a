// Python semantics of values: truthiness, equality, ordering, str() and repr(), len() and
// iteration, with the exceptions CPython raises (their messages are what templates see).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chat/value.hpp"

namespace qlm::chat {

/// Python's type name: 'NoneType', 'str', 'dict'...
std::string type_name(const Value& v);
/// jinja2's object_type_repr, used in Undefined hints: "dict object", "None"...
std::string object_type_repr(const Value& v);
/// Raises the error an Undefined carries (UndefinedError, or SecurityError for unsafe access).
[[noreturn]] void fail_undefined(const Value& v);
/// Raises if v is Undefined: what arithmetic and most methods do with an Undefined operand.
void require_defined(const Value& v);

/// Python truthiness (Undefined is falsy, generators are always truthy).
bool truthy(const Value& v);
/// Python ==: numbers compare by value across bool/int/float, containers element-wise.
bool equals(const Value& a, const Value& b);
/// Python ordering for <, <=, >, >=: negative, zero or positive; raises TypeError otherwise.
int compare(const Value& a, const Value& b, std::string_view op);

/// Python str(): what {{ }} prints (None -> "None", Undefined -> "").
std::string to_str(const Value& v);
/// Python repr(): strings quoted, containers recursive.
std::string repr(const Value& v);
/// repr() of a float: shortest round-trip digits, "1.0", "1e+16", "inf".
std::string float_repr(double d);
/// repr() of a str: quotes chosen as Python does, non-printables escaped.
std::string string_repr(std::string_view s);

/// len(): raises TypeError for None, numbers and generators; Undefined has length 0.
std::int64_t length(const Value& v);
/// The items iter() yields: characters, elements or dict keys; raises for non-iterables.
std::vector<Value> iterate(const Value& v);
/// `needle in haystack`.
bool contains(const Value& haystack, const Value& needle);

}  // namespace qlm::chat
