// Fill-in-the-middle: FIM role detection and storage, infill prompt layouts (exact token ids for
// Qwen2.5 and a StarCoder-style vocabulary), the token budget, end ids, errors and the builder's
// cache.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "qlm/infill.hpp"
#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"
#include "qlm/tokenizer/vocabulary.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"

namespace qlm::test {
namespace {

using Ids = std::vector<std::int32_t>;

// Qwen2.5's FIM tokens (tokenizer_config.json's added_tokens_decoder).
constexpr std::int32_t kQwenPre = 151659, kQwenMid = 151660, kQwenSuf = 151661, kQwenPad = 151662,
                       kQwenRepo = 151663, kQwenSep = 151664;
// The StarCoder-style vocabulary below: SmolLM2's, whose own <repo_name> and <file_sep> (ids 3
// and 5) come from StarCoder2, plus StarCoder's four FIM tokens appended.
constexpr std::int32_t kStarRepo = 3, kStarSep = 5, kStarPre = 49152, kStarMid = 49153,
                       kStarSuf = 49154, kStarPad = 49155;

Vocabulary load_vocab(const char* name) {
  auto v = load_hf_tokenizer(shared_data_dir() / "tokenizers" / name);
  INFO((v.ok() ? std::string() : v.error().message));
  REQUIRE(v.ok());
  return std::move(v).value();
}

Tokenizer make_tokenizer(Vocabulary v) {
  auto t = Tokenizer::create(std::move(v));
  INFO((t.ok() ? std::string() : t.error().message));
  REQUIRE(t.ok());
  return std::move(t).value();
}

const Tokenizer& qwen() {
  static const Tokenizer t = make_tokenizer(load_vocab("qwen2.5-0.5b"));
  return t;
}

// SmolLM2's vocabulary with StarCoder's <fim_prefix>, <fim_middle>, <fim_suffix> and <fim_pad>
// appended as special added tokens. SmolLM2 itself has no FIM prefix/suffix/middle tokens (its
// ids 1 and 2 are ChatML's), so it stands in for StarCoder/StarCoder2, whose vocabularies have
// the same token kinds.
Vocabulary starcoder_style_vocab() {
  Vocabulary v = load_vocab("smollm2-135m");
  for (const char* t : {"<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"}) {
    const auto id = static_cast<std::int32_t>(v.tokens.size());
    v.tokens.emplace_back(t);
    v.scores.push_back(0.0f);
    v.types.push_back(TokenType::Control);
    AddedToken a;
    a.id = id;
    a.content = t;
    a.special = true;
    v.added_tokens.push_back(a);
  }
  v.fim = detect_fim_tokens(v);
  return v;
}

const Tokenizer& starcoder() {
  static const Tokenizer t = make_tokenizer(starcoder_style_vocab());
  return t;
}

// Plain-text tokens of one part, as the infill prompt must tokenize it.
Ids enc(const Tokenizer& t, std::string_view text) {
  auto r = t.encode(text, {.add_special = false, .parse_special = false});
  REQUIRE(r.ok());
  return std::move(r).value();
}

// Concatenation of ids and id lists.
Ids cat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const Ids& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

InfillPrompt build(const Tokenizer& t, const InfillRequest& rq, const InfillOptions& o = {}) {
  auto r = build_infill_prompt(t, rq, o);
  INFO((r.ok() ? std::string() : r.error().message));
  REQUIRE(r.ok());
  return std::move(r).value();
}

// The repository-level example used for both vocabularies.
InfillRequest repo_request() {
  InfillRequest rq;
  rq.repo_name = "qlm";
  rq.extra = {{"include/math.hpp", "int add(int a, int b);\n"},
              {"src/math.cpp", "int add(int a, int b) { return a + b; }\n"}};
  rq.filename = "src/main.cpp";
  rq.prefix = "#include \"math.hpp\"\n\nint main() {\n  return ";
  rq.suffix = ";\n}\n";
  rq.typed = "add(";
  return rq;
}

InfillRequest psm_request() {
  InfillRequest rq;
  rq.prefix = "def add(a, b):\n    return ";
  rq.suffix = "\n\nprint(add(1, 2))\n";
  return rq;
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

// Some realistic source code: this repository's own files, made ASCII so that the exact token
// counts of cuts below are not moved by the character-boundary rule, and without '|', so that
// no spelling of Qwen's FIM tokens is in it: Tokenizer::encode would match those (they are not
// "special" in Qwen's vocabulary), while infill prompts keep them text (tested separately).
std::string code_text() {
  std::string s = read_text(std::filesystem::path(QLM_SOURCE_DIR) / "src/tokenizer/vocabulary.cpp");
  s += read_text(std::filesystem::path(QLM_SOURCE_DIR) / "src/chat/infill.cpp");
  for (char& c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    if (c == '|') c = '!';
  }
  return s;
}

}  // namespace

TEST_CASE("infill: FIM roles are detected when a Hugging Face tokenizer is loaded", "[infill]") {
  const FimTokens& q = qwen().vocabulary().fim;
  CHECK(q.prefix == kQwenPre);
  CHECK(q.suffix == kQwenSuf);
  CHECK(q.middle == kQwenMid);
  CHECK(q.pad == kQwenPad);
  CHECK(q.repo_name == kQwenRepo);
  CHECK(q.file_sep == kQwenSep);
  CHECK(q.has_infill());

  // SmolLM2 has StarCoder2's <repo_name> and <file_sep> (and StarCoder's <reponame>, which loses
  // to <repo_name>) but no prefix/suffix/middle tokens.
  const FimTokens s = load_vocab("smollm2-135m").fim;
  CHECK(s.prefix == -1);
  CHECK(s.suffix == -1);
  CHECK(s.middle == -1);
  CHECK(s.pad == -1);
  CHECK(s.repo_name == kStarRepo);
  CHECK(s.file_sep == kStarSep);
  CHECK_FALSE(s.has_infill());

  const FimTokens& sc = starcoder().vocabulary().fim;
  CHECK(sc.prefix == kStarPre);
  CHECK(sc.middle == kStarMid);
  CHECK(sc.suffix == kStarSuf);
  CHECK(sc.pad == kStarPad);
  CHECK(sc.repo_name == kStarRepo);
  CHECK(sc.file_sep == kStarSep);
}

TEST_CASE("infill: detection of every spelling family", "[infill]") {
  // A small vocabulary: filler tokens, then the given pieces.
  const auto detect = [](std::initializer_list<const char*> pieces) {
    Vocabulary v;
    for (const char* t : {"a", "b", "<s>", "</s>", "<filename>", "<PAD>", "<|fim|>"})
      v.tokens.emplace_back(t);
    for (const char* t : pieces) v.tokens.emplace_back(t);
    return detect_fim_tokens(v);
  };
  const auto roles = [](const FimTokens& f) {
    return Ids{f.prefix, f.suffix, f.middle, f.pad, f.repo_name, f.file_sep};
  };
  // Fillers are ids 0..6, so the given pieces start at id 7.
  // Qwen2.5-Coder.
  CHECK(roles(detect({"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                      "<|repo_name|>", "<|file_sep|>"})) == Ids{7, 9, 8, 10, 11, 12});
  // StarCoder / SmolLM / Granite: <reponame>, and <filename> is not a file separator.
  CHECK(roles(detect({"<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>",
                      "<reponame>"})) == Ids{7, 9, 8, 10, 11, -1});
  // StarCoder2: <repo_name> and <file_sep>.
  CHECK(roles(detect({"<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<repo_name>",
                      "<file_sep>"})) == Ids{7, 9, 8, 10, 11, 12});
  // SantaCoder's hyphenated spellings.
  CHECK(roles(detect({"<fim-prefix>", "<fim-middle>", "<fim-suffix>", "<fim-pad>"})) ==
        Ids{7, 9, 8, 10, -1, -1});
  // DeepSeek-Coder: begin = prefix, hole = suffix, end = middle (fullwidth bars, U+2581).
  CHECK(roles(detect({"<\uFF5Cfim\u2581begin\uFF5C>", "<\uFF5Cfim\u2581hole\uFF5C>",
                      "<\uFF5Cfim\u2581end\uFF5C>"})) == Ids{7, 8, 9, -1, -1, -1});
  // CodeLlama, in tokenizer.json's spelling and in SentencePiece's.
  CHECK(roles(detect({"<PRE>", "<SUF>", "<MID>", "<EOT>"})) == Ids{7, 8, 9, -1, -1, -1});
  CHECK(roles(detect({"\u2581<PRE>", "\u2581<MID>", "\u2581<SUF>", "\u2581<EOT>"})) ==
        Ids{7, 9, 8, -1, -1, -1});
  // LFM2.
  CHECK(roles(detect({"<|fim_pre|>", "<|fim_mid|>", "<|fim_suf|>"})) == Ids{7, 9, 8, -1, -1, -1});
  // Preference: the first spelling in the list wins whatever the ids; a repeat keeps the lowest id.
  CHECK(roles(detect({"<reponame>", "<repo_name>", "<|repo_name|>", "<|repo_name|>"}))[4] == 9);
  CHECK(roles(detect({"<PRE>", "<fim_prefix>"}))[0] == 8);
  // Nothing FIM-like.
  CHECK(roles(detect({"<fim_prefix", "fim_prefix>", "<|fim_prefix|> ", "<pre>"})) ==
        Ids{-1, -1, -1, -1, -1, -1});
}

TEST_CASE("infill: FIM keys round-trip through .qlm metadata and are validated", "[infill]") {
  Vocabulary v = starcoder_style_vocab();
  format::Metadata m;
  store_vocabulary(v, m);
  REQUIRE(m.find<std::int32_t>("tokenizer.fim.prefix") != nullptr);
  CHECK(*m.find<std::int32_t>("tokenizer.fim.prefix") == kStarPre);
  CHECK(*m.find<std::int32_t>("tokenizer.fim.file_sep") == kStarSep);
  auto back = load_vocabulary(m, "model.qlm");
  REQUIRE(back.ok());
  CHECK(back->fim == v.fim);
  CHECK(*back == v);

  SECTION("stored -1 means no such token, even when a spelling exists") {
    Vocabulary w = v;
    w.fim.pad = -1;
    w.fim.repo_name = -1;
    format::Metadata m2;
    store_vocabulary(w, m2);
    auto r = load_vocabulary(m2, "model.qlm");
    REQUIRE(r.ok());
    CHECK(r->fim.pad == -1);
    CHECK(r->fim.repo_name == -1);
    CHECK(r->fim.prefix == kStarPre);
  }
  SECTION("files without the keys (older converters) get the roles detected on load") {
    Vocabulary w = v;
    w.fim = {};
    format::Metadata m2;
    store_vocabulary(w, m2);
    (void)m2.extract_prefix("tokenizer.fim.");
    auto r = load_vocabulary(m2, "old.qlm");
    REQUIRE(r.ok());
    CHECK(r->fim == v.fim);
  }
  SECTION("out-of-range ids are rejected, naming the file and the key") {
    for (const char* key :
         {"tokenizer.fim.prefix", "tokenizer.fim.suffix", "tokenizer.fim.middle",
          "tokenizer.fim.pad", "tokenizer.fim.repo_name", "tokenizer.fim.file_sep"}) {
      for (const std::int32_t bad : {static_cast<std::int32_t>(v.tokens.size()), -2, INT32_MAX}) {
        format::Metadata m2 = m;
        m2.set(key, bad);
        expect_error(load_vocabulary(m2, "bad.qlm"), ErrorCode::Format,
                     {"bad.qlm", key, std::to_string(bad)});
      }
    }
  }
  SECTION("a key of the wrong type is rejected") {
    format::Metadata m2 = m;
    m2.set("tokenizer.fim.middle", std::string("<fim_middle>"));
    expect_error(load_vocabulary(m2, "bad.qlm"), ErrorCode::Format,
                 {"bad.qlm", "tokenizer.fim.middle"});
  }
  SECTION("validate_vocabulary checks the FIM ids too") {
    Vocabulary w = v;
    w.fim.suffix = static_cast<std::int32_t>(w.tokens.size()) + 5;
    expect_error(validate_vocabulary(w, "vocab"), ErrorCode::Format,
                 {"vocab", "tokenizer.fim.suffix"});
  }
}

TEST_CASE("infill: Qwen2.5 prefix-suffix-middle layout, exact ids", "[infill]") {
  const Tokenizer& t = qwen();
  const InfillRequest rq = psm_request();
  const InfillPrompt p = build(t, rq);
  // Composed from the published format: <|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>
  CHECK(p.ids == cat({{kQwenPre}, enc(t, rq.prefix), {kQwenSuf}, enc(t, rq.suffix), {kQwenMid}}));
  // The same prompt as written out, tokenized by Hugging Face's tokenizers.js (which splits the
  // string at its added tokens): an independent check, literal ids.
  CHECK(p.ids == Ids{151659, 750,  912,   2877, 11, 293, 982, 262, 470,  220,   151661,
                     271,    1350, 25906, 7,    16, 11,  220, 17,  1171, 151660});
  CHECK(p.text ==
        "<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>\n\nprint(add(1, 2))\n"
        "<|fim_middle|>");
  CHECK(p.prefix_tokens_cut == 0);
  CHECK(p.suffix_tokens_cut == 0);
  CHECK(p.chunks_dropped == 0);
  // No repo line without a repo name; no file line without a file name; Qwen adds no BOS.
  CHECK(std::count(p.ids.begin(), p.ids.end(), kQwenRepo) == 0);
  CHECK(std::count(p.ids.begin(), p.ids.end(), kQwenSep) == 0);
}

namespace {

// repo_request()'s repository-level layout, written out part by part with the FIM ids `f`.
Ids repo_layout(const Tokenizer& t, const InfillRequest& rq, const FimTokens& f) {
  return cat({{f.repo_name},
              enc(t, "qlm\n"),
              {f.file_sep},
              enc(t, "include/math.hpp\n"),
              enc(t, rq.extra[0].text),
              {f.file_sep},
              enc(t, "src/math.cpp\n"),
              enc(t, rq.extra[1].text),
              {f.file_sep},
              enc(t, "src/main.cpp\n"),
              {f.prefix},
              enc(t, rq.prefix),
              {f.suffix},
              enc(t, rq.suffix),
              {f.middle},
              enc(t, rq.typed)});
}

}  // namespace

TEST_CASE("infill: Qwen2.5 repository-level layout, exact ids", "[infill]") {
  const Tokenizer& t = qwen();
  const InfillRequest rq = repo_request();
  const InfillPrompt p = build(t, rq);
  CHECK(p.ids == repo_layout(t, rq, t.vocabulary().fim));
  // tokenizers.js on the written-out prompt.
  CHECK(p.ids == Ids{151663, 1470,  76,   198,    151664, 997,  59705,  6453, 198,   396,    912,
                     1548,   264,   11,   526,    293,    317,  151664, 3548, 59705, 7208,   198,
                     396,    912,   1548, 264,    11,     526,  293,    8,    314,   470,    264,
                     488,    293,   26,   456,    151664, 3548, 15351,  7208, 198,   151659, 1067,
                     330,    10374, 6453, 1837,   396,    1887, 368,    341,  220,   470,    220,
                     151661, 280,   532,  151660, 718,    7});
  CHECK(p.text ==
        "<|repo_name|>qlm\n<|file_sep|>include/math.hpp\nint add(int a, int b);\n"
        "<|file_sep|>src/math.cpp\nint add(int a, int b) { return a + b; }\n"
        "<|file_sep|>src/main.cpp\n<|fim_prefix|>#include \"math.hpp\"\n\nint main() {\n  return "
        "<|fim_suffix|>;\n}\n<|fim_middle|>add(");
}

TEST_CASE("infill: StarCoder-style vocabulary, exact ids", "[infill]") {
  const Tokenizer& t = starcoder();
  SECTION("repository level with StarCoder2's <repo_name> and <file_sep>") {
    const InfillRequest rq = repo_request();
    const InfillPrompt p = build(t, rq);
    CHECK(p.ids == repo_layout(t, rq, t.vocabulary().fim));
    // tokenizers.js on the written-out prompt (SmolLM2's tokenizer.json plus the four tokens).
    CHECK(p.ids == Ids{3,   7973, 93,   198,   5,     21745, 31,   8898,  30,   88,   394, 198,
                       591, 803,  24,   591,   253,   28,    464,  278,   4258, 198,  5,   10920,
                       31,  8898, 30,   35392, 198,   591,   803,  24,    591,  253,  28,  464,
                       278, 25,   1662, 1003,  253,   1232,  278,  43,    4029, 198,  5,   10920,
                       31,  6157, 30,   35392, 198,   49152, 19,   21745, 476,  8898, 30,  88,
                       394, 18,   198,  198,   591,   1085,  1000, 1662,  3805, 1003, 216, 49154,
                       43,  198,  109,  198,   49153, 2104,  24});
    CHECK(p.text ==
          "<repo_name>qlm\n<file_sep>include/math.hpp\nint add(int a, int b);\n"
          "<file_sep>src/math.cpp\nint add(int a, int b) { return a + b; }\n"
          "<file_sep>src/main.cpp\n<fim_prefix>#include \"math.hpp\"\n\nint main() {\n  return "
          "<fim_suffix>;\n}\n<fim_middle>add(");
  }
  SECTION("prefix-suffix-middle") {
    const InfillRequest rq = psm_request();
    const InfillPrompt p = build(t, rq);
    CHECK(p.ids == cat({{kStarPre}, enc(t, rq.prefix), {kStarSuf}, enc(t, rq.suffix), {kStarMid}}));
    CHECK(p.ids == Ids{49152, 1604, 803, 24,   81, 28, 278, 727, 472, 1003, 216, 49154, 198,
                       198,   3272, 24,  2104, 24, 33, 28,  216, 34,  1292, 198, 49153});
  }
  SECTION("without a file separator, extra chunks are joined as llama.cpp joins them") {
    // StarCoder (1) and Granite: a repo-name token but no file separator.
    Vocabulary v = starcoder_style_vocab();
    v.fim.file_sep = -1;
    const Tokenizer t2 = make_tokenizer(v);
    const InfillRequest rq = repo_request();
    const InfillPrompt p = build(t2, rq);
    const Ids sep = enc(t2, "\n\n--- snippet ---\n\n");
    CHECK(p.ids == cat({{kStarRepo},
                        enc(t2, "qlm\n"),
                        sep,
                        enc(t2, rq.extra[0].text),
                        sep,
                        enc(t2, rq.extra[1].text),
                        {kStarPre},
                        enc(t2, rq.prefix),
                        {kStarSuf},
                        enc(t2, rq.suffix),
                        {kStarMid},
                        enc(t2, rq.typed)}));
    CHECK(p.text ==
          "<repo_name>qlm\n\n\n--- snippet ---\n\nint add(int a, int b);\n\n\n--- snippet ---\n\n"
          "int add(int a, int b) { return a + b; }\n<fim_prefix>#include \"math.hpp\"\n\nint "
          "main() {\n  return <fim_suffix>;\n}\n<fim_middle>add(");
    // No repo-name token either: no repo line.
    v.fim.repo_name = -1;
    const InfillPrompt p3 = build(make_tokenizer(v), rq);
    const std::size_t repo_line = 1 + enc(t2, "qlm\n").size();
    CHECK(p3.ids == Ids(p.ids.begin() + static_cast<std::ptrdiff_t>(repo_line), p.ids.end()));
  }
  SECTION("BOS only when the vocabulary's add_bos says so, at the very start") {
    Vocabulary v = starcoder_style_vocab();
    v.add_bos = true;
    v.bos_id = 0;
    const InfillPrompt p = build(make_tokenizer(v), repo_request());
    REQUIRE(p.ids.size() > 2);
    CHECK(p.ids[0] == 0);
    CHECK(p.ids[1] == kStarRepo);
    CHECK(std::count(p.ids.begin(), p.ids.end(), 0) == 1);
    CHECK(p.text.starts_with("<|endoftext|><repo_name>"));
    CHECK(build(t, repo_request()).ids[0] == kStarRepo);
  }
}

TEST_CASE("infill: suffix-prefix-middle order and typed text after the middle token", "[infill]") {
  const Tokenizer& t = qwen();
  InfillRequest rq = psm_request();
  rq.typed = "a +";
  const InfillPrompt p = build(t, rq, {.order = InfillOrder::SuffixPrefixMiddle});
  CHECK(p.ids == cat({{kQwenSuf},
                      enc(t, rq.suffix),
                      {kQwenPre},
                      enc(t, rq.prefix),
                      {kQwenMid},
                      enc(t, rq.typed)}));
  CHECK(p.text ==
        "<|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_prefix|>def add(a, b):\n    return "
        "<|fim_middle|>a +");
  // With context: the chunks and the file line still come first.
  const InfillRequest rr = repo_request();
  const InfillPrompt q = build(t, rr, {.order = InfillOrder::SuffixPrefixMiddle});
  CHECK(q.text.starts_with("<|repo_name|>qlm\n<|file_sep|>include/math.hpp\n"));
  CHECK(
      q.text.ends_with("<|file_sep|>src/main.cpp\n<|fim_suffix|>;\n}\n<|fim_prefix|>#include "
                       "\"math.hpp\"\n\nint main() {\n  return <|fim_middle|>add("));
}

TEST_CASE("infill: end-of-generation ids", "[infill]") {
  const Vocabulary& v = qwen().vocabulary();
  Ids expect;
  for (const std::int32_t id : v.eos_ids) expect.push_back(id);
  for (const std::int32_t id : {kQwenPad, kQwenRepo, kQwenSep}) expect.push_back(id);
  const InfillPrompt p = build(qwen(), psm_request());
  CHECK(p.end_ids == expect);
  // Qwen2.5: <|endoftext|> (generation_config.json) and <|im_end|> (eos_token) are among them.
  CHECK(std::count(p.end_ids.begin(), p.end_ids.end(), 151643) == 1);
  CHECK(std::count(p.end_ids.begin(), p.end_ids.end(), 151645) == 1);
  const InfillPrompt s = build(starcoder(), psm_request());
  // SmolLM2's config.json: eos_token_id 2 (<|im_end|>), and no other end ids.
  CHECK(starcoder().vocabulary().eos_ids == Ids{2});
  CHECK(s.end_ids == Ids{2, kStarPad, kStarRepo, kStarSep});
}

TEST_CASE("infill: a vocabulary without FIM tokens is a clear error", "[infill]") {
  const Tokenizer smollm = make_tokenizer(load_vocab("smollm2-135m"));
  expect_error(build_infill_prompt(smollm, psm_request()), ErrorCode::Unsupported,
               {"fill-in-the-middle", "prefix, suffix, middle"});
  expect_error(InfillPromptBuilder::create(smollm), ErrorCode::Unsupported,
               {"fill-in-the-middle", "prefix, suffix, middle"});
  Vocabulary v = starcoder_style_vocab();
  v.fim.middle = -1;
  expect_error(build_infill_prompt(make_tokenizer(v), psm_request()), ErrorCode::Unsupported,
               {"middle"});
}

TEST_CASE("infill: invalid options and budgets too small for what is never cut", "[infill]") {
  const Tokenizer& t = qwen();
  expect_error(build_infill_prompt(t, psm_request(), {.max_tokens = 0}), ErrorCode::InvalidArgument,
               {"max_tokens"});
  expect_error(build_infill_prompt(t, psm_request(), {.max_local_tokens = -1}),
               ErrorCode::InvalidArgument, {"max_local_tokens"});
  InfillRequest rq = psm_request();
  rq.typed = "return a + b";
  const std::size_t typed = enc(t, rq.typed).size();
  // Three FIM tokens and the typed text fit exactly: prefix and suffix are cut away entirely.
  const InfillPrompt p = build(t, rq, {.max_tokens = static_cast<std::int32_t>(3 + typed)});
  CHECK(p.ids == cat({{kQwenPre, kQwenSuf, kQwenMid}, enc(t, rq.typed)}));
  CHECK(p.text == "<|fim_prefix|><|fim_suffix|><|fim_middle|>return a + b");
  expect_error(build_infill_prompt(t, rq, {.max_tokens = static_cast<std::int32_t>(2 + typed)}),
               ErrorCode::InvalidArgument, {"max_tokens", "never cut"});
  auto b = InfillPromptBuilder::create(t);
  REQUIRE(b.ok());
  CHECK_FALSE(b->set_options({.max_tokens = -5}).ok());
  CHECK(b->options().max_tokens == 4096);
}

TEST_CASE("infill: special and FIM tokens spelled in the text stay text", "[infill]") {
  const Tokenizer& t = qwen();
  InfillRequest rq;
  rq.prefix = "x = \"<|fim_prefix|><|im_start|><|file_sep|>\"\n";
  rq.suffix = "<|endoftext|><|fim_middle|>";
  rq.typed = "<|repo_name|>";
  rq.filename = "<|fim_pad|>.py";
  rq.extra = {{"a<|file_sep|>", "<|fim_suffix|>"}};
  const InfillPrompt p = build(t, rq);
  // Exactly one of each structural token; no other added token at all.
  CHECK(std::count(p.ids.begin(), p.ids.end(), kQwenPre) == 1);
  CHECK(std::count(p.ids.begin(), p.ids.end(), kQwenSuf) == 1);
  CHECK(std::count(p.ids.begin(), p.ids.end(), kQwenMid) == 1);
  CHECK(std::count(p.ids.begin(), p.ids.end(), kQwenSep) == 2);
  CHECK(std::count(p.ids.begin(), p.ids.end(), kQwenPad) == 0);
  CHECK(std::count(p.ids.begin(), p.ids.end(), kQwenRepo) == 0);
  CHECK(std::count_if(p.ids.begin(), p.ids.end(), [](std::int32_t id) {
          return id >= 151643 && id != kQwenPre && id != kQwenSuf && id != kQwenMid &&
                 id != kQwenSep;
        }) == 0);
  // The text shows what was given, so it reads like the structural tokens: that is display only.
  CHECK(p.text.find(rq.prefix) != std::string::npos);
  // Tokenized as text, the same way tokenizers.js tokenizes "<|fim_prefix|>" with the added
  // token removed: '<', '|', 'fim', '_prefix', '|', '>'.
  const InfillPrompt q = build(t, {.prefix = "<|fim_prefix|>"});
  CHECK(q.ids.size() > 4);
  CHECK(qwen().decode(std::span(q.ids).subspan(1, q.ids.size() - 3)) == "<|fim_prefix|>");
}

TEST_CASE("infill: budget cuts", "[infill]") {
  const Tokenizer& t = qwen();
  const std::string code = code_text();
  InfillRequest rq;
  rq.prefix = code.substr(0, 6000);
  rq.suffix = code.substr(6000, 3000);
  const Ids pre = enc(t, rq.prefix), suf = enc(t, rq.suffix);
  REQUIRE(pre.size() > 1000);
  REQUIRE(suf.size() > 500);

  SECTION("prefix cut at its beginning, suffix at its end, 3:1") {
    const InfillPrompt p = build(t, rq, {.max_tokens = 403});
    CHECK(p.ids.size() == 403);
    // 400 tokens for the two parts: 300 for the prefix, 100 for the suffix.
    CHECK(p.prefix_tokens_cut == pre.size() - 300);
    CHECK(p.suffix_tokens_cut == suf.size() - 100);
    CHECK(p.ids == cat({{kQwenPre},
                        Ids(pre.end() - 300, pre.end()),
                        {kQwenSuf},
                        Ids(suf.begin(), suf.begin() + 100),
                        {kQwenMid}}));
    // The text of a cut part is the decoding of the tokens kept.
    CHECK(p.text == fmt::format("<|fim_prefix|>{}<|fim_suffix|>{}<|fim_middle|>",
                                t.decode(Ids(pre.end() - 300, pre.end())),
                                t.decode(Ids(suf.begin(), suf.begin() + 100))));
    CHECK(rq.prefix.ends_with(t.decode(Ids(pre.end() - 300, pre.end()))));
    CHECK(rq.suffix.starts_with(t.decode(Ids(suf.begin(), suf.begin() + 100))));
  }
  SECTION("a short side gives its unused share to the other") {
    InfillRequest r2 = rq;
    r2.suffix = "}\n";
    const std::size_t ns = enc(t, r2.suffix).size();
    const InfillPrompt p = build(t, r2, {.max_tokens = 403});
    CHECK(p.ids.size() == 403);
    CHECK(p.suffix_tokens_cut == 0);
    CHECK(p.prefix_tokens_cut == pre.size() - (400 - ns));
    InfillRequest r3 = rq;
    r3.prefix = "int x = ";
    const std::size_t np = enc(t, r3.prefix).size();
    const InfillPrompt q = build(t, r3, {.max_tokens = 403});
    CHECK(q.ids.size() == 403);
    CHECK(q.prefix_tokens_cut == 0);
    CHECK(q.suffix_tokens_cut == suf.size() - (400 - np));
  }
  SECTION("extra chunks are dropped oldest first, before prefix and suffix are cut") {
    InfillRequest r2 = rq;
    r2.repo_name = "qlm";
    r2.filename = "src/x.cpp";
    for (int i = 0; i < 6; ++i) {
      r2.extra.push_back({fmt::format("f{}.cpp", i), code.substr(9000 + 700 * i, 700)});
    }
    const InfillPrompt full = build(t, r2, {.max_tokens = 100000});
    CHECK(full.chunks_dropped == 0);
    std::size_t last_dropped = 0;
    for (std::int32_t budget = static_cast<std::int32_t>(full.ids.size()); budget > 20;
         budget -= 97) {
      const InfillPrompt p = build(t, r2, {.max_tokens = budget});
      INFO("budget " << budget);
      CHECK(p.ids.size() <= static_cast<std::size_t>(budget));
      CHECK(p.chunks_dropped >= last_dropped);  // a smaller budget never keeps more
      last_dropped = p.chunks_dropped;
      if (p.chunks_dropped < r2.extra.size()) {
        // While any chunk is kept, prefix and suffix are whole.
        CHECK(p.prefix_tokens_cut == 0);
        CHECK(p.suffix_tokens_cut == 0);
        // The kept chunks are the newest ones, and they come whole.
        Ids expect = cat({{kQwenRepo}, enc(t, "qlm\n")});
        for (std::size_t i = p.chunks_dropped; i < r2.extra.size(); ++i) {
          expect = cat(
              {expect, {kQwenSep}, enc(t, r2.extra[i].filename + "\n"), enc(t, r2.extra[i].text)});
        }
        expect = cat({expect,
                      {kQwenSep},
                      enc(t, "src/x.cpp\n"),
                      {kQwenPre},
                      pre,
                      {kQwenSuf},
                      suf,
                      {kQwenMid}});
        CHECK(p.ids == expect);
      }
    }
    CHECK(last_dropped == r2.extra.size());
  }
  SECTION("max_local_tokens keeps room for extra chunks") {
    InfillRequest r2 = rq;
    r2.extra = {{"old.cpp", code.substr(9000, 400)}, {"new.cpp", code.substr(9400, 400)}};
    const std::size_t chunk_new = 1 + enc(t, "new.cpp\n").size() + enc(t, r2.extra[1].text).size();
    const auto budget = static_cast<std::int32_t>(3 + 800 + chunk_new);
    const InfillPrompt without = build(t, r2, {.max_tokens = budget});
    CHECK(without.chunks_dropped == 2);
    const InfillPrompt with = build(t, r2, {.max_tokens = budget, .max_local_tokens = 800});
    CHECK(with.chunks_dropped == 1);
    CHECK(with.ids.size() == static_cast<std::size_t>(budget));
    CHECK(with.prefix_tokens_cut == pre.size() - 600);
    CHECK(with.suffix_tokens_cut == suf.size() - 200);
  }
  SECTION("never over budget, every budget from the least possible up") {
    InfillRequest r2 = rq;
    r2.prefix = rq.prefix.substr(0, 1500);
    r2.suffix = rq.suffix.substr(0, 600);
    r2.typed = "if (";
    r2.extra = {{"a.cpp", code.substr(9000, 300)}, {"b.cpp", code.substr(9300, 300)}};
    r2.repo_name = "qlm";
    r2.filename = "c.cpp";
    const InfillPrompt full = build(t, r2, {.max_tokens = 100000});
    std::size_t least = 0;
    for (std::int32_t budget = 1; budget <= static_cast<std::int32_t>(full.ids.size()) + 2;
         ++budget) {
      auto r = build_infill_prompt(t, r2, {.max_tokens = budget});
      if (!r.ok()) {
        CHECK(least == 0);  // only budgets below the least possible fail
        CHECK(r.error().code == ErrorCode::InvalidArgument);
        continue;
      }
      if (least == 0) least = static_cast<std::size_t>(budget);
      CHECK(r->ids.size() <= static_cast<std::size_t>(budget));
      CHECK(r->ids.back() != kQwenMid);  // the typed text follows the middle token
      CHECK(valid_utf8(r->text));
    }
    CHECK(least > 3);
    CHECK(build(t, r2, {.max_tokens = static_cast<std::int32_t>(full.ids.size())}).ids == full.ids);
  }
  SECTION("cuts never split a UTF-8 character") {
    InfillRequest r2;
    for (int i = 0; i < 40; ++i) r2.prefix += "// 注释：函数返回值 🙂 ελληνικά\n";
    r2.suffix = r2.prefix;
    const Ids p2 = enc(t, r2.prefix), s2 = enc(t, r2.suffix);
    for (std::int32_t budget = 3; budget < 200; ++budget) {
      const InfillPrompt p = build(t, r2, {.max_tokens = budget});
      INFO("budget " << budget);
      CHECK(p.ids.size() <= static_cast<std::size_t>(budget));
      CHECK(valid_utf8(p.text));
      // The prefix kept is a tail of its tokens, the suffix kept a head of its tokens.
      const std::size_t np = p2.size() - p.prefix_tokens_cut, ns = s2.size() - p.suffix_tokens_cut;
      CHECK(p.ids == cat({{kQwenPre},
                          Ids(p2.end() - static_cast<std::ptrdiff_t>(np), p2.end()),
                          {kQwenSuf},
                          Ids(s2.begin(), s2.begin() + static_cast<std::ptrdiff_t>(ns)),
                          {kQwenMid}}));
    }
  }
}

TEST_CASE("infill: the cached builder gives what the uncached function gives", "[infill][heavy]") {
  const std::string code = code_text();
  for (const Tokenizer* t : {&qwen(), &starcoder()}) {
    // Small limits, so that entries and words are evicted along the way.
    auto made = InfillPromptBuilder::create(
        *t, {.max_tokens = 1500}, {.max_entries = 4, .max_bytes = 20000, .max_words = 300});
    REQUIRE(made.ok());
    InfillPromptBuilder b = std::move(made).value();
    std::mt19937 rng(42);
    InfillRequest rq;
    rq.repo_name = "qlm";
    rq.filename = "src/chat/infill.cpp";
    std::size_t cursor = 2000;
    for (int step = 0; step < 200; ++step) {
      // Type, delete, jump; now and then switch the extra chunks.
      const unsigned action = rng() % 10;
      if (action < 6) {
        cursor = std::min(cursor + 1, code.size());
      } else if (action < 8) {
        cursor = cursor > 0 ? cursor - 1 : 0;
      } else if (action == 8) {
        cursor = rng() % code.size();
      } else {
        const std::size_t at = rng() % (code.size() - 800);
        rq.extra.push_back({fmt::format("f{}.cpp", step), code.substr(at, 200 + rng() % 600)});
        if (rq.extra.size() > 3) rq.extra.erase(rq.extra.begin());
      }
      rq.prefix = code.substr(0, cursor);
      rq.suffix = code.substr(cursor, 2000);
      rq.typed = std::string(step % 3 == 0 ? 1 : 0, 'x');
      const InfillOptions o = {.max_tokens = 1500 + (step % 5) * 700,
                               .order = step % 7 == 0 ? InfillOrder::SuffixPrefixMiddle
                                                      : InfillOrder::PrefixSuffixMiddle};
      REQUIRE(b.set_options(o).ok());
      auto cached = b.build(rq);
      REQUIRE(cached.ok());
      const InfillPrompt plain = build(*t, rq, o);
      INFO("step " << step << " cursor " << cursor);
      CHECK(cached->ids == plain.ids);
      CHECK(cached->text == plain.text);
      CHECK(cached->end_ids == plain.end_ids);
      CHECK(cached->prefix_tokens_cut == plain.prefix_tokens_cut);
      CHECK(cached->suffix_tokens_cut == plain.suffix_tokens_cut);
      CHECK(cached->chunks_dropped == plain.chunks_dropped);
      CHECK(b.cached_entries() <= 4);
      CHECK(b.cached_bytes() <= 20000);
    }
  }
}

TEST_CASE("infill: the builder's tokens equal a full tokenization at every edit point",
          "[infill]") {
  // The builder re-tokenizes the prefix with remembered per-word BPE results: check that this is
  // exactly Tokenizer::encode for prefixes ending anywhere, including inside words, numbers,
  // runs of spaces and multi-byte characters.
  const std::string text =
      fmt::format("{}\n  x  =  123456 + 7.5e-3;\t\t// ünïcödé 注释 🙂  \n\n\n    ",
                  code_text().substr(0, 3000));
  for (const Tokenizer* t : {&qwen(), &starcoder()}) {
    auto made = InfillPromptBuilder::create(*t, {.max_tokens = 100000});
    REQUIRE(made.ok());
    InfillPromptBuilder b = std::move(made).value();
    const std::int32_t pre = t->vocabulary().fim.prefix, suf = t->vocabulary().fim.suffix;
    for (std::size_t cut = 0; cut <= text.size(); cut += (cut + 60 < text.size() ? 7 : 1)) {
      InfillRequest rq;
      rq.prefix = text.substr(0, cut);
      rq.suffix = text.substr(cut, 200);
      auto p = b.build(rq);
      REQUIRE(p.ok());
      const Ids expect_prefix = enc(*t, rq.prefix);
      INFO("cut at " << cut);
      REQUIRE(p->ids.size() >= expect_prefix.size() + 2);
      CHECK(p->ids[0] == pre);
      CHECK(Ids(p->ids.begin() + 1,
                p->ids.begin() + 1 + static_cast<std::ptrdiff_t>(expect_prefix.size())) ==
            expect_prefix);
      CHECK(p->ids[1 + expect_prefix.size()] == suf);
    }
  }
}

}  // namespace qlm::test
