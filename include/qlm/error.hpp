// Errors as values: every fallible public call returns Result<T> carrying a qlm::Error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace qlm {

/// What kind of failure an Error reports; the message says which file and which values.
enum class ErrorCode : std::uint8_t {
  Io,               ///< a file could not be opened, read, mapped or written
  Format,           ///< a file is malformed, truncated or inconsistent
  Unsupported,      ///< valid input that qlm does not handle (architecture, dtype, ISA…)
  InvalidArgument,  ///< a caller-supplied value is out of its documented range
  ContextFull,      ///< a session would exceed its context length
  Cancelled,        ///< a callback asked to stop
  Checksum,         ///< stored data does not match its checksum
  Callback,         ///< a caller-supplied callback (token, progress, observer) threw
  PoolFull,         ///< the KV page pool has no room (every page is held by a sequence)
  QueueFull,        ///< a Scheduler's queue of waiting requests is full (retry later)
};

/// Short lower-case name of an error code ("format", "io", …).
constexpr std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::Io:
      return "io";
    case ErrorCode::Format:
      return "format";
    case ErrorCode::Unsupported:
      return "unsupported";
    case ErrorCode::InvalidArgument:
      return "invalid argument";
    case ErrorCode::ContextFull:
      return "context full";
    case ErrorCode::Cancelled:
      return "cancelled";
    case ErrorCode::Checksum:
      return "checksum";
    case ErrorCode::Callback:
      return "callback";
    case ErrorCode::PoolFull:
      return "pool full";
    case ErrorCode::QueueFull:
      return "queue full";
  }
  return "unknown";
}

/// A failure: its kind and a one-line message naming the file and the offending values.
struct Error {
  ErrorCode code = ErrorCode::Format;
  std::string message;
};

/// Either a T or an Error (C++20 has no std::expected). Check ok() before value().
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

/// Result of a call that returns nothing on success.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace qlm
