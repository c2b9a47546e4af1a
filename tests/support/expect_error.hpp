// Catch2 helper: a Result must hold an Error of a given code whose message names given things.
#pragma once

#include <catch2/catch.hpp>
#include <initializer_list>
#include <source_location>
#include <string_view>

#include "qlm/error.hpp"
#include "support/files.hpp"

namespace qlm::test {

/// Checks that `r` failed with `code` and that its message contains every string in `needles`
/// (typically the file's path and the offending tensor or field).
template <class T>
void expect_error(const Result<T>& r, ErrorCode code,
                  std::initializer_list<std::string_view> needles,
                  std::source_location where = std::source_location::current()) {
  INFO("expected an error at " << where.file_name() << ":" << where.line());
  REQUIRE_FALSE(r.ok());
  const std::string& message = r.error().message;
  INFO("error message: " << message);
  CHECK(to_string(r.error().code) == to_string(code));
  CHECK(!message.empty());
  CHECK(message.find('\n') == std::string::npos);
  for (std::string_view n : needles) {
    INFO("expected in message: " << n);
    CHECK(contains(message, n));
  }
}

}  // namespace qlm::test
