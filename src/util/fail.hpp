// Internal error plumbing: src/ code throws qlm::Failure; every public entry point converts it to
// a Result with capture(). Exceptions never cross the public API.
#pragma once

#include <fmt/format.h>

#include <exception>
#include <new>
#include <string_view>
#include <utility>

#include "qlm/error.hpp"

namespace qlm::detail {

/// Carries an Error through internal code until a public boundary catches it.
struct Failure : std::exception {
  Error error;
  explicit Failure(Error e) : error(std::move(e)) {}
  const char* what() const noexcept override { return error.message.c_str(); }
};

/// Throws a Failure with a formatted message.
template <class... Args>
[[noreturn]] void fail(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  throw Failure(Error{code, fmt::format(f, std::forward<Args>(args)...)});
}

/// Runs fn() and turns any Failure (or allocation failure) into a Result.
template <class Fn>
auto capture(Fn&& fn) noexcept -> Result<decltype(fn())> {
  try {
    if constexpr (std::is_void_v<decltype(fn())>) {
      fn();
      return {};
    } else {
      return fn();
    }
  } catch (Failure& f) {
    return std::move(f.error);
  } catch (const std::bad_alloc&) {
    return Error{ErrorCode::Io, "out of memory"};
  } catch (const std::exception& e) {
    return Error{ErrorCode::Format, e.what()};
  } catch (...) {  // library code throws only std exceptions: this came from a caller's code
    return Error{ErrorCode::Callback, "a callback threw a non-standard exception"};
  }
}

/// Calls a caller-supplied callback named `name`; anything it throws ends the call with an
/// ErrorCode::Callback error (never crossing a noexcept boundary, never mistaken for ours).
template <class F, class... Args>
decltype(auto) call_back(std::string_view name, F&& f, Args&&... args) {
  try {
    return std::forward<F>(f)(std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    fail(ErrorCode::Callback, "{} threw: {}", name, e.what());
  } catch (...) {
    fail(ErrorCode::Callback, "{} threw a non-standard exception", name);
  }
}

/// Unwraps a Result inside internal code, rethrowing its error as a Failure.
template <class T>
T unwrap(Result<T>&& r) {
  if (!r.ok()) throw Failure(std::move(r).error());
  if constexpr (!std::is_void_v<T>) return std::move(r).value();
}

}  // namespace qlm::detail
