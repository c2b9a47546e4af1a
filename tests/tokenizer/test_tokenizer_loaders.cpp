// Tokenizer loaders and .qlm metadata: malformed inputs fail cleanly, round trips are exact.
#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"
#include "qlm/tokenizer/vocabulary.hpp"
#include "tokenizer/reference_util.hpp"

namespace qlm::test {
namespace {

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Result<Vocabulary> parse_spm(std::string_view bytes) {
  return parse_sentencepiece_model(
      {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}, "bad/tokenizer.model");
}

Result<Vocabulary> load_json(std::string_view text) {
  const fs::path dir = temp_dir("tokjson");
  write_file(dir / "tokenizer.json", text);
  return load_hf_tokenizer(dir);
}

// A tiny valid byte-level tokenizer.json, to be broken in specific ways.
nlohmann::json tiny_json() {
  return nlohmann::json::parse(R"({
    "added_tokens": [{"id": 4, "content": "<|end|>", "special": true, "lstrip": false,
                      "rstrip": false, "normalized": false, "single_word": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "<|end|>": 4},
              "merges": ["a b"]}})");
}

}  // namespace

TEST_CASE("tokenizer.model: truncation and garbage give Format errors", "[tokenizer]") {
  const std::string good = read_bytes(shared_dir() / "models/stories260K/tokenizer.model");
  REQUIRE(parse_spm(good).ok());
  // Every truncation either parses (a prefix can end on a field boundary) or fails cleanly.
  int failures = 0;
  for (std::size_t n = 0; n < good.size(); n += (n < 64 ? 1 : 37)) {
    const auto r = parse_spm(std::string_view(good).substr(0, n));
    if (!r.ok()) {
      ++failures;
      CHECK((r.error().code == ErrorCode::Format || r.error().code == ErrorCode::Unsupported));
      CHECK(r.error().message.find("bad/tokenizer.model") != std::string::npos);
    }
  }
  CHECK(failures > 0);
  // Deterministic garbage and bit flips must never crash.
  std::uint32_t x = 12345;
  for (int round = 0; round < 200; ++round) {
    std::string junk = good;
    for (int k = 0; k < 8; ++k) {
      x = x * 1664525u + 1013904223u;
      junk[x % junk.size()] = static_cast<char>(x >> 24);
    }
    (void)parse_spm(junk);
    std::string random(64 + round, '\0');
    for (char& c : random) c = static_cast<char>((x = x * 1664525u + 1013904223u) >> 24);
    (void)parse_spm(random);
  }
  const auto empty = parse_spm("");
  REQUIRE(!empty.ok());
  CHECK(empty.error().code == ErrorCode::Format);
  // A huge declared length must be rejected, not allocated.
  const auto huge = parse_spm(std::string("\x0a\xff\xff\xff\xff\x0f", 6));
  REQUIRE(!huge.ok());
  CHECK(huge.error().message.find("length") != std::string::npos);
}

TEST_CASE("tokenizer.model: unigram is Unsupported", "[tokenizer]") {
  // One piece, then trainer_spec { model_type: UNIGRAM }.
  const std::string proto("\x0a\x05\x0a\x03<s>\x12\x02\x18\x01", 11);
  const auto r = parse_spm(proto);
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::Unsupported);
  CHECK(r.error().message.find("unigram") != std::string::npos);
}

TEST_CASE("tokenizer.json: bad JSON, unsupported models, bad merges", "[tokenizer]") {
  REQUIRE(load_json(tiny_json().dump()).ok());
  {
    const auto r = load_json("{ not json");
    REQUIRE(!r.ok());
    CHECK(r.error().code == ErrorCode::Format);
    CHECK(r.error().message.find("tokenizer.json") != std::string::npos);
  }
  {
    auto j = tiny_json();
    j["model"]["type"] = "WordPiece";
    const auto r = load_json(j.dump());
    REQUIRE(!r.ok());
    CHECK(r.error().code == ErrorCode::Unsupported);
    CHECK(r.error().message.find("WordPiece") != std::string::npos);
    CHECK(r.error().message.find("tokenizer.json") != std::string::npos);
  }
  {
    auto j = tiny_json();
    j["model"]["type"] = "Unigram";
    CHECK(load_json(j.dump()).error().code == ErrorCode::Unsupported);
  }
  {
    auto j = tiny_json();
    j["model"]["merges"] = {"a zz"};
    const auto r = load_json(j.dump());
    REQUIRE(!r.ok());
    CHECK(r.error().code == ErrorCode::Format);
    CHECK(r.error().message.find("zz") != std::string::npos);
  }
  {
    auto j = tiny_json();
    j["model"]["merges"] = nlohmann::json::array({nlohmann::json::array({"a", "b"})});  // [a, b]
    REQUIRE(load_json(j.dump()).ok());
  }
  {
    auto j = tiny_json();
    j["model"]["merges"] = {"b Ġ"};  // "bĠ" is not a token
    CHECK(!load_json(j.dump()).ok());
  }
  {
    auto j = tiny_json();
    j["model"].erase("vocab");
    const auto r = load_json(j.dump());
    REQUIRE(!r.ok());
    CHECK(r.error().message.find("vocab") != std::string::npos);
  }
  {
    auto j = tiny_json();
    j["model"]["vocab"]["a"] = 7;  // ids with a hole
    CHECK(load_json(j.dump()).error().code == ErrorCode::Format);
  }
  {
    auto j = tiny_json();
    j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
    CHECK(load_json(j.dump()).error().code == ErrorCode::Unsupported);
  }
  {
    auto j = tiny_json();
    j["pre_tokenizer"] = {
        {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
    auto v = load_json(j.dump());
    REQUIRE(v.ok());  // the regex is compiled when the tokenizer is built
    const auto t = Tokenizer::create(std::move(v).value());
    REQUIRE(!t.ok());
    CHECK(t.error().message.find("(unclosed") != std::string::npos);
  }
  const auto none = load_hf_tokenizer(temp_dir("empty"));
  REQUIRE(!none.ok());
  CHECK(none.error().code == ErrorCode::Io);
}

TEST_CASE("tiny tokenizer: added tokens, lstrip/rstrip, parse_special", "[tokenizer]") {
  auto j = tiny_json();
  j["added_tokens"].push_back({{"id", 5},
                               {"content", "<x>"},
                               {"special", false},
                               {"lstrip", true},
                               {"rstrip", true},
                               {"normalized", false},
                               {"single_word", false}});
  auto v = load_json(j.dump());
  REQUIRE(v.ok());
  const auto tok = Tokenizer::create(std::move(v).value());
  REQUIRE(tok.ok());
  const Tokenizer& t = tok.value();
  using Ids = std::vector<std::int32_t>;
  CHECK(t.encode("ab").value() == Ids{2});
  CHECK(t.encode("ab<|end|>").value() == Ids{2, 4});
  CHECK(t.encode("ab   <x>  ab").value() == Ids{2, 5, 2});  // lstrip and rstrip swallow the spaces
  // Without parse_special the special token is plain text, but non-special added tokens still
  // match (HF's split_special_tokens semantics).
  CHECK(t.encode("<|end|>", {.parse_special = false}).value() != Ids{4});
  CHECK(t.encode("<x>", {.parse_special = false}).value() == Ids{5});
  CHECK(t.decode(Ids{2, 4, 2}) == "ab<|end|>ab");
  CHECK(t.decode(Ids{2, 4, 2}, true) == "abab");
  CHECK(t.decode(Ids{-1, 99, 2}) == "ab");
  CHECK(t.piece(2) == "ab");
  CHECK(t.piece(99).empty());
  CHECK(t.is_special(4));
  CHECK(!t.is_special(5));
}

TEST_CASE("vocabulary metadata round trip is exact", "[tokenizer]") {
  for (const char* sub :
       {"models/stories260K", "tokenizers/smollm2-135m", "tokenizers/qwen2.5-0.5b"}) {
    auto v = load_hf_tokenizer(shared_dir() / sub);
    INFO(sub << ": " << (v.ok() ? "" : v.error().message));
    REQUIRE(v.ok());
    format::Metadata meta;
    store_vocabulary(v.value(), meta);
    const auto bytes = format::encode_metadata(meta);
    const auto decoded = format::decode_metadata(bytes, "roundtrip.qlm");
    REQUIRE(decoded.ok());
    const auto back = load_vocabulary(decoded.value(), "roundtrip.qlm");
    INFO((back.ok() ? "" : back.error().message));
    REQUIRE(back.ok());
    CHECK(back.value() == v.value());
  }
}

TEST_CASE("load_vocabulary rejects inconsistent metadata", "[tokenizer]") {
  auto v = load_hf_tokenizer(shared_dir() / "models/stories260K");
  REQUIRE(v.ok());
  format::Metadata good;
  store_vocabulary(v.value(), good);
  REQUIRE(load_vocabulary(good, "m.qlm").ok());
  const auto expect_error = [&](format::Metadata m, std::string_view key) {
    const auto r = load_vocabulary(m, "m.qlm");
    REQUIRE(!r.ok());
    CHECK(r.error().code == ErrorCode::Format);
    CHECK(r.error().message.find("m.qlm") != std::string::npos);
    CHECK(r.error().message.find(key) != std::string::npos);
  };
  format::Metadata m = good;
  m.set("tokenizer.scores", std::vector<float>(3, 0.0f));
  expect_error(m, "tokenizer.scores");
  m = good;
  m.set("tokenizer.types", std::vector<std::uint8_t>(512, 9));
  expect_error(m, "tokenizer.types");
  m = good;
  m.set("tokenizer.merges", std::vector<std::uint32_t>{1, 999});
  expect_error(m, "tokenizer.merges");
  m = good;
  m.set("tokenizer.merges", std::vector<std::uint32_t>{1});
  expect_error(m, "tokenizer.merges");
  m = good;
  m.set("tokenizer.tokens", std::string("not a list"));
  expect_error(m, "tokenizer.tokens");
  m = good;
  m.set("tokenizer.added.ids", std::vector<std::int32_t>{0, 600, 2});
  expect_error(m, "tokenizer.added.ids");
  m = good;
  m.set("tokenizer.added.flags", std::vector<std::uint8_t>{1});
  expect_error(m, "tokenizer.added.flags");
  m = good;
  m.set("tokenizer.pre_tokenizer.kinds", std::vector<std::uint8_t>{0});
  expect_error(m, "tokenizer.pre_tokenizer");
  m = good;
  m.set("tokenizer.bos_id", std::int32_t{512});
  expect_error(m, "bos");
  m = good;
  m.set("tokenizer.model", std::string("wordpiece"));
  CHECK(load_vocabulary(m, "m.qlm").error().code == ErrorCode::Unsupported);
  format::Metadata missing;
  expect_error(missing, "tokenizer.model");
}

}  // namespace qlm::test
