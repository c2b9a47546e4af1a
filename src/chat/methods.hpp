// Methods of str, dict and list that templates call (`s.strip()`, `d.get(k)`, `d.items()`).
#pragma once

#include <optional>
#include <string>

#include "chat/value.hpp"

namespace qlm::chat {

/// The bound method `obj.name`; an Undefined raising SecurityError for the methods that would
/// mutate (the sandbox is immutable); nullopt when the type has no such method.
std::optional<Value> find_method(const Value& obj, const std::string& name);

}  // namespace qlm::chat
