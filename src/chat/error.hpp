// The exceptions the interpreter raises internally, named after the Python exception classes
// jinja2 would raise; the public entry points turn them into qlm::Error values.
#pragma once

#include <fmt/format.h>

#include <exception>
#include <string>
#include <utility>

namespace qlm::chat {

/// A Python-level exception: `type` is the class name ("TypeError", "TemplateError"...).
struct TemplateException : std::exception {
  std::string type;
  std::string message;
  TemplateException(std::string t, std::string m) : type(std::move(t)), message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

/// A syntax error found while lexing or parsing, with its 1-based line.
struct SyntaxError : std::exception {
  int line;
  std::string message;
  SyntaxError(int l, std::string m) : line(l), message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

/// A resource limit (steps, depth, output size) was hit; never caught by the template.
struct LimitExceeded : std::exception {
  std::string message;
  explicit LimitExceeded(std::string m) : message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

/// Throws a TemplateException of class `type` with a formatted message.
template <class... Args>
[[noreturn]] void raise(const char* type, fmt::format_string<Args...> f, Args&&... args) {
  throw TemplateException(type, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace qlm::chat
