#include "chat/builtins.hpp"
#include "chat/error.hpp"

namespace qlm::chat {

const Value* ArgReader::get(std::size_t pos, std::string_view name) const {
  for (const auto& [k, v] : args_.keyword) {
    if (k == name) return &v;
  }
  return pos < args_.positional.size() ? &args_.positional[pos] : nullptr;
}

Value ArgReader::get_or(std::size_t pos, std::string_view name, Value fallback) const {
  const Value* v = get(pos, name);
  return v ? *v : fallback;
}

const Value& ArgReader::need(std::size_t pos, std::string_view name) const {
  const Value* v = get(pos, name);
  if (v == nullptr) raise("TypeError", "{}() missing required argument '{}'", fn_, name);
  return *v;
}

const Value* ArgReader::at(std::size_t pos) const {
  return pos < args_.positional.size() ? &args_.positional[pos] : nullptr;
}

const Value* ArgReader::keyword(std::string_view name) const {
  for (const auto& [k, v] : args_.keyword) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::vector<Value> ArgReader::rest(std::size_t from) const {
  if (from >= args_.positional.size()) return {};
  return {args_.positional.begin() + static_cast<std::ptrdiff_t>(from), args_.positional.end()};
}

}  // namespace qlm::chat
