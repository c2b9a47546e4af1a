// Reading a request's JSON body: typed fields with ranges, and the exception that turns a bad
// field into an OpenAI-style 4xx answer naming it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <qlm/sampler.hpp>

namespace qlm::server {

using nlohmann::json;

/// A request the server refuses: HTTP status, OpenAI error type and code, the offending field.
struct ApiError : std::runtime_error {
  ApiError(int status_, std::string message, std::string param_ = {},
           std::string type_ = "invalid_request_error", std::string code_ = {})
      : std::runtime_error(std::move(message)),
        status(status_),
        param(std::move(param_)),
        type(std::move(type_)),
        code(std::move(code_)) {}
  int status;
  std::string param, type, code;
};

/// The error body OpenAI's clients parse: {"error": {message, type, param, code}}.
json error_body(const ApiError& e);

/// Parses a body that must be a JSON object (400 otherwise).
json parse_object(const std::string& body);

/// Typed optional fields of an object; a present field of the wrong type or out of range is a
/// 400 naming it. `null` counts as absent, as OpenAI's API treats it.
std::optional<double> get_number(const json& o, const char* key, double lo, double hi);
std::optional<std::int64_t> get_integer(const json& o, const char* key, std::int64_t lo,
                                        std::int64_t hi);
std::optional<bool> get_bool(const json& o, const char* key);
std::optional<std::string> get_string(const json& o, const char* key);
/// A string or an array of strings (OpenAI's `stop`), at most `max` of them, none empty.
std::vector<std::string> get_strings(const json& o, const char* key, std::size_t max);

/// The sampler fields shared by every endpoint: temperature, top_p, top_k, min_p,
/// repeat_penalty, presence/frequency_penalty, seed, logit_bias (ids checked against `vocab`).
SamplerOptions sampler_options(const json& body, std::int32_t vocab);

/// JSON text for the wire: invalid UTF-8 (a token's partial character) becomes U+FFFD.
std::string dump(const json& j);

}  // namespace qlm::server
