// Internal error plumbing: src/ code throws qlm::Failure; every public entry point converts it to
// a Result with capture(). Exceptions never cross the public API.
#pragma once

#include <fmt/format.h>

#include <exception>
#include <new>
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
  }
}

/// Unwraps a Result inside internal code, rethrowing its error as a Failure.
template <class T>
T unwrap(Result<T>&& r) {
  if (!r.ok()) throw Failure(std::move(r).error());
  if constexpr (!std::is_void_v<T>) return std::move(r).value();
}

}  // namespace qlm::detail
