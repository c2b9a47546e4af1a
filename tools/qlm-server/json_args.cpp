// Field readers for request bodies.
#include "json_args.hpp"

#include <fmt/format.h>

#include <cmath>
#include <random>

namespace qlm::server {

namespace {

const json* field(const json& o, const char* key) {
  const auto it = o.find(key);
  if (it == o.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void bad(const char* key, const std::string& what) {
  throw ApiError(400, fmt::format("'{}' {}", key, what), key);
}

}  // namespace

json error_body(const ApiError& e) {
  json err = {{"message", e.what()}, {"type", e.type}};
  err["param"] = e.param.empty() ? json(nullptr) : json(e.param);
  err["code"] = e.code.empty() ? json(nullptr) : json(e.code);
  return {{"error", err}};
}

json parse_object(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) throw ApiError(400, "the request body is not valid JSON");
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

std::optional<double> get_number(const json& o, const char* key, double lo, double hi) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad(key, "must be a number");
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) bad(key, fmt::format("must be in [{}, {}]", lo, hi));
  return d;
}

std::optional<std::int64_t> get_integer(const json& o, const char* key, std::int64_t lo,
                                        std::int64_t hi) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  std::int64_t i = 0;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(hi)) {
      bad(key, fmt::format("must be in [{}, {}]", lo, hi));
    }
    i = v->get<std::int64_t>();
  } else if (v->is_number_float()) {  // 16.0 is an integer to a JavaScript client
    const double d = v->get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || d < static_cast<double>(lo) ||
        d > static_cast<double>(hi)) {
      bad(key, fmt::format("must be an integer in [{}, {}]", lo, hi));
    }
    i = static_cast<std::int64_t>(d);
  } else {
    bad(key, "must be an integer");
  }
  if (i < lo || i > hi) bad(key, fmt::format("must be in [{}, {}]", lo, hi));
  return i;
}

std::optional<bool> get_bool(const json& o, const char* key) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad(key, "must be true or false");
  return v->get<bool>();
}

std::optional<std::string> get_string(const json& o, const char* key) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) bad(key, "must be a string");
  return v->get<std::string>();
}

std::vector<std::string> get_strings(const json& o, const char* key, std::size_t max) {
  const json* v = field(o, key);
  std::vector<std::string> out;
  if (!v) return out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > max) bad(key, fmt::format("may hold at most {} strings", max));
    for (const auto& s : *v) {
      if (!s.is_string()) bad(key, "must be a string or an array of strings");
      out.push_back(s.get<std::string>());
    }
  } else {
    bad(key, "must be a string or an array of strings");
  }
  for (const auto& s : out) {
    if (s.empty()) bad(key, "may not hold an empty string");
  }
  return out;
}

SamplerOptions sampler_options(const json& body, std::int32_t vocab) {
  SamplerOptions s;  // llama-server's defaults, which are qlm's
  if (auto v = get_number(body, "temperature", 0.0, 2.0)) s.temperature = static_cast<float>(*v);
  if (auto v = get_integer(body, "top_k", -1, vocab)) {
    s.top_k = static_cast<std::int32_t>(std::max<std::int64_t>(*v, 0));
  }
  if (auto v = get_number(body, "top_p", 0.0, 1.0)) {
    s.top_p = static_cast<float>(*v);
    if (*v == 0.0) {  // the smallest nucleus: the most likely token
      s.top_p = 1.0f;
      s.top_k = 1;
    }
  }
  if (auto v = get_number(body, "min_p", 0.0, 1.0)) s.min_p = static_cast<float>(*v);
  if (auto v = get_number(body, "repeat_penalty", 0.01, 10.0)) {
    s.repeat_penalty = static_cast<float>(*v);
  }
  if (auto v = get_integer(body, "repeat_last_n", 0, 1 << 16)) {
    s.penalty_window = static_cast<std::int32_t>(*v);
  }
  if (auto v = get_number(body, "presence_penalty", -2.0, 2.0)) {
    s.presence_penalty = static_cast<float>(*v);
  }
  if (auto v = get_number(body, "frequency_penalty", -2.0, 2.0)) {
    s.frequency_penalty = static_cast<float>(*v);
  }
  const auto seed = get_integer(body, "seed", INT64_MIN, INT64_MAX);
  if (seed && *seed >= 0) {
    s.seed = static_cast<std::uint64_t>(*seed);
  } else {  // absent or -1 (llama.cpp's "random"): a fresh seed per request
    std::random_device rd;
    s.seed = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }
  if (const json* lb = field(body, "logit_bias")) {
    auto add = [&](std::int64_t id, const json& bias) {
      if (id < 0 || id >= vocab)
        bad("logit_bias", fmt::format("names token {}, outside [0, {})", id, vocab));
      if (!bias.is_number() || !std::isfinite(bias.get<double>()) ||
          std::fabs(bias.get<double>()) > 100.0) {
        bad("logit_bias", "values must be numbers in [-100, 100]");
      }
      s.logit_bias.emplace_back(static_cast<std::int32_t>(id), bias.get<float>());
    };
    if (lb->is_object()) {
      if (lb->size() > 1024) bad("logit_bias", "may hold at most 1024 tokens");
      for (const auto& [k, v] : lb->items()) {
        std::size_t used = 0;
        long long id = -1;
        try {
          id = std::stoll(k, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != k.size() || k.empty()) bad("logit_bias", "keys must be token ids");
        add(id, v);
      }
    } else {
      bad("logit_bias", "must be an object mapping token ids to biases");
    }
  }
  return s;
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace qlm::server
