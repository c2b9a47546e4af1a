// Shared pieces of the Hugging Face loaders: checked JSON access and tokenizer.json parsing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>

#include "qlm/tokenizer/vocabulary.hpp"
#include "util/fail.hpp"

namespace qlm::detail::hf {

namespace fs = std::filesystem;
using nlohmann::json;

/// The bytes of a file; Io error naming it if it cannot be read.
std::string read_file(const fs::path& p);
/// A parsed JSON file; Format error naming it if it is not JSON.
json read_json(const fs::path& p);

/// Typed JSON accessors that fail with a Format error naming the file and the key.
struct Doc {
  std::string file;

  const json* find(const json& obj, std::string_view key) const {
    if (!obj.is_object()) fail(ErrorCode::Format, "{}: expected an object around '{}'", file, key);
    const auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  const json& need(const json& obj, std::string_view key) const {
    const json* j = find(obj, key);
    if (j == nullptr) fail(ErrorCode::Format, "{}: missing field '{}'", file, key);
    return *j;
  }
  std::string str(const json& j, std::string_view what) const {
    if (!j.is_string())
      fail(ErrorCode::Format, "{}: '{}' must be a string, not {}", file, what, j.dump());
    return j.get<std::string>();
  }
  bool flag(const json& obj, std::string_view key, bool def) const {
    const json* j = find(obj, key);
    if (j == nullptr) return def;
    if (!j->is_boolean()) fail(ErrorCode::Format, "{}: '{}' must be true or false", file, key);
    return j->get<bool>();
  }
  std::int64_t integer(const json& j, std::string_view what) const {
    if (!j.is_number_integer())
      fail(ErrorCode::Format, "{}: '{}' must be an integer, not {}", file, what, j.dump());
    return j.get<std::int64_t>();
  }
};

/// Piece -> id for every token.
std::unordered_map<std::string, std::int32_t> index_tokens(const Vocabulary& v);
/// Adds or updates added tokens by id, extending the token list; holes in the ids are an error.
void merge_added(Vocabulary& v, std::map<std::int32_t, AddedToken> added, std::string_view file);
/// An AddedToken from an HF added-token object ({content, special, lstrip, ...}).
AddedToken added_from_json(const Doc& d, const json& j, std::int64_t id, bool default_special);
/// The ids of a merge's two pieces; Format error naming the merge if one is unknown.
std::pair<std::int32_t, std::int32_t> merge_ids(
    const Doc& d, const std::unordered_map<std::string, std::int32_t>& ids, std::string_view a,
    std::string_view b, std::size_t rank);
/// Fills tokens/scores/types from an HF {"piece": id} vocabulary (ids must be 0..n-1).
void vocab_from_map(const Doc& d, const json& vocab, Vocabulary& v);
/// Parses tokenizer.json (BPE only) into a Vocabulary.
Vocabulary parse_tokenizer_json(const fs::path& path);

}  // namespace qlm::detail::hf
