// Tokenizer vs independent references: SentencePiece (python) and Hugging Face tokenizers.js.
#include <fmt/ranges.h>

#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"
#include "tokenizer/reference_util.hpp"
#include "tokenizer/text.hpp"

namespace qlm::test {
namespace {

using nlohmann::json;

// Known deviations of tokenizers.js from the Rust tokenizers crate that HF models are defined by.
// Digits: JS splits on ASCII \d, Rust on char::is_numeric (every \p{N}, e.g. "½", "٣").
bool js_digits_differs(const std::string& s) {
  static const detail::Regex non_ascii_number =
      detail::Regex::compile(R"((?=\p{N})[^\x00-\x7F])", "test");
  bool found = false;
  non_ascii_number.for_each_match(s, [&](std::size_t, std::size_t) { found = true; });
  return found;
}
// Decoding: JS's TextDecoder drops a leading U+FEFF (byte order mark) from the decoded bytes.
bool js_drops_bom(const std::string& s) {
  return s.starts_with("\xEF\xBB\xBF");
}

// Compares our ids with the reference's for every corpus string; lists the first mismatches.
// Strings for which `skip` is true are known reference deviations and are not compared.
void compare_ids(const Tokenizer& tok, const std::vector<std::string>& corpus, const json& ref,
                 EncodeOptions opts, std::string_view what,
                 bool (*skip)(const std::string&) = nullptr) {
  REQUIRE(ref.size() == corpus.size());
  int bad = 0;
  for (std::size_t i = 0; i < corpus.size(); ++i) {
    if (skip != nullptr && skip(corpus[i])) continue;
    const auto ours = tok.encode(corpus[i], opts).value();
    const auto theirs = ref[i].get<std::vector<std::int32_t>>();
    if (ours != theirs && ++bad <= 8) {
      UNSCOPED_INFO(what << " mismatch on " << show(corpus[i]) << "\n  ours:   " << show_ids(ours)
                         << "\n  theirs: " << show_ids(theirs));
    }
  }
  INFO(what << ": " << bad << " of " << corpus.size() << " strings differ");
  CHECK(bad == 0);
}

// Compares decode(ref ids) with the reference's decoded strings.
void compare_decode(const Tokenizer& tok, const std::vector<std::string>& corpus, const json& ids,
                    const json& ref, bool skip_special, std::string_view what) {
  REQUIRE(ref.size() == corpus.size());
  int bad = 0;
  for (std::size_t i = 0; i < corpus.size(); ++i) {
    if (js_drops_bom(corpus[i])) continue;
    const auto v = ids[i].get<std::vector<std::int32_t>>();
    const std::string ours = tok.decode(v, skip_special);
    const std::string theirs = ref[i].get<std::string>();
    if (ours != theirs && ++bad <= 8) {
      UNSCOPED_INFO(what << " decode mismatch for " << show(corpus[i])
                         << "\n  ours:   " << show(ours) << "\n  theirs: " << show(theirs));
    }
  }
  INFO(what << ": " << bad << " decodes differ");
  CHECK(bad == 0);
}

// Checks decode(encode(s)) == s over the corpus, and the stream decoder against decode().
void check_lossless(const Tokenizer& tok, const std::vector<std::string>& corpus) {
  int bad = 0;
  for (const std::string& s : corpus) {
    const auto ids = tok.encode(s, {.add_special = false}).value();
    const std::string back = tok.decode(ids);
    TokenStreamDecoder stream(tok);
    std::string streamed;
    for (const std::int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    if ((back != s || streamed != back) && ++bad <= 8) {
      UNSCOPED_INFO("round trip of " << show(s) << " gave " << show(back) << " / stream "
                                     << show(streamed));
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("SentencePiece tokenizer.model matches sentencepiece", "[tokenizer][reference]") {
  const fs::path dir = shared_dir() / "models/stories260K";
  const auto corpus = load_corpus();
  const Tokenizer tok = load_tokenizer(dir);
  CHECK(tok.size() == 512);
  CHECK(tok.bos() == 1);
  CHECK(tok.eos() == 2);
  const json ref = json::parse(run_reference(fmt::format(
      "/usr/bin/python3 {} {} {}",
      shell_quote((source_dir() / "tests/reference/spm_encode.py").string()),
      shell_quote((dir / "tokenizer.model").string()), shell_quote(corpus_path().string()))));
  // SentencePiece never matches control pieces in text and adds no BOS by itself.
  compare_ids(tok, corpus, ref["ids"], {.add_special = false, .parse_special = false},
              "sentencepiece");
  compare_decode(tok, corpus, ref["ids"], ref["decoded"], false, "sentencepiece");
  // With BOS: the same ids behind id 1.
  const auto with_bos = tok.encode("Once upon a time", {.parse_special = false}).value();
  REQUIRE(!with_bos.empty());
  CHECK(with_bos.front() == 1);
}

TEST_CASE("SmolLM2 tokenizer.json matches Hugging Face tokenizers", "[tokenizer][reference]") {
  const fs::path dir = shared_dir() / "tokenizers/smollm2-135m";
  const auto corpus = load_corpus();
  const Tokenizer tok = load_tokenizer(dir);
  CHECK(tok.size() == 49152);
  const json ref = run_hf(dir / "tokenizer.json");
  compare_ids(tok, corpus, ref["ids"], {}, "smollm2", js_digits_differs);
  compare_ids(tok, corpus, ref["plain"], {.add_special = false}, "smollm2 (no special)",
              js_digits_differs);
  // Where tokenizers.js deviates, Rust's Digits(individual) isolates every \p{N} character.
  const auto iso = [&](std::string_view a, std::string_view b) {
    auto x = tok.encode(a).value(), y = tok.encode(b).value();
    x.insert(x.end(), y.begin(), y.end());
    return x;
  };
  CHECK(tok.encode("x\xC2\xBD").value() == iso("x", "\xC2\xBD"));                // "x½"
  CHECK(tok.encode("\xD9\xA3\xD9\xA4").value() == iso("\xD9\xA3", "\xD9\xA4"));  // "٣٤"
  compare_decode(tok, corpus, ref["ids"], ref["decoded"], false, "smollm2");
  compare_decode(tok, corpus, ref["ids"], ref["decoded_skip"], true, "smollm2 skip_special");
  check_lossless(tok, corpus);
  CHECK(tok.is_end_of_generation(2));  // <|im_end|> from config.json
}

TEST_CASE("Qwen2.5 vocab.json + merges.txt matches Hugging Face tokenizers",
          "[tokenizer][reference]") {
  const fs::path dir = shared_dir() / "tokenizers/qwen2.5-0.5b";
  const auto corpus = load_corpus();
  const Tokenizer tok = load_tokenizer(dir);
  CHECK(tok.size() == 151665);
  CHECK(tok.eos() == 151645);
  CHECK(tok.is_end_of_generation(151645));
  CHECK(tok.is_end_of_generation(151643));
  CHECK(!tok.vocabulary().add_bos);
  CHECK(!tok.vocabulary().chat_template.empty());
  // Reference: the tokenizer.json Qwen publishes, assembled from the same files.
  const fs::path tmp = temp_dir("qwen");
  run_reference(fmt::format(
      "/usr/bin/python3 {} {} {}",
      shell_quote((source_dir() / "tests/reference/make_qwen_tokenizer_json.py").string()),
      shell_quote(dir.string()), shell_quote((tmp / "tokenizer.json").string())));
  const json ref = run_hf(tmp / "tokenizer.json", (dir / "tokenizer_config.json").string());
  compare_ids(tok, corpus, ref["ids"], {}, "qwen2.5");
  compare_decode(tok, corpus, ref["ids"], ref["decoded"], false, "qwen2.5");
  compare_decode(tok, corpus, ref["ids"], ref["decoded_skip"], true, "qwen2.5 skip_special");
  // Our tokenizer.json reader must agree with our slow-layout reader on the same tokenizer.
  fs::copy_file(dir / "tokenizer_config.json", tmp / "tokenizer_config.json");
  fs::copy_file(dir / "generation_config.json", tmp / "generation_config.json");
  const Tokenizer from_json = load_tokenizer(tmp);
  int bad = 0;
  for (const std::string& s : corpus) bad += from_json.encode(s).value() != tok.encode(s).value();
  CHECK(bad == 0);
  // Byte-level is lossless up to NFC: strings already in NFC come back unchanged.
  CHECK(tok.decode(tok.encode("caf\xC3\xA9 \xF0\x9F\x98\x80\n\t x").value()) ==
        "caf\xC3\xA9 \xF0\x9F\x98\x80\n\t x");
  const std::string invalid = "bad \xFF\xFE bytes \xC3 end \xED\xA0\x80";
  CHECK(tok.decode(tok.encode(invalid).value()) == invalid);
}

TEST_CASE("SentencePiece-layout tokenizer.json matches Hugging Face tokenizers",
          "[tokenizer][reference]") {
  // A Llama-style tokenizer.json (byte-fallback BPE, Prepend/Replace normaliser, Strip decoder)
  // built from stories260K's pieces, with merges derived from the piece scores.
  auto spm = load_hf_tokenizer(shared_dir() / "models/stories260K");
  REQUIRE(spm.ok());
  const Vocabulary& v = spm.value();
  json vocab = json::object();
  for (std::size_t i = 0; i < v.tokens.size(); ++i) vocab[v.tokens[i]] = i;
  std::vector<std::tuple<std::size_t, std::size_t, std::size_t>> order;  // (result, left, right)
  for (std::size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] != TokenType::Normal) continue;
    const std::string& p = v.tokens[i];
    for (std::size_t k = 1; k < p.size(); ++k) {
      if ((static_cast<unsigned char>(p[k]) & 0xC0) == 0x80) continue;
      const auto l = vocab.find(p.substr(0, k)), r = vocab.find(p.substr(k));
      if (l != vocab.end() && r != vocab.end())
        order.emplace_back(i, l->get<std::size_t>(), r->get<std::size_t>());
    }
  }
  std::sort(order.begin(), order.end());
  json merges = json::array();
  for (const auto& [res, l, r] : order) merges.push_back(v.tokens[l] + " " + v.tokens[r]);
  json added = json::array();
  for (int id = 0; id < 3; ++id) {
    added.push_back({{"id", id},
                     {"content", v.tokens[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  const json legacy = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair", json::array()},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}}};
  // The newer layout: Metaspace pre-tokenizer (prepend "first", no split) and decoder.
  json metaspace = legacy;
  metaspace["normalizer"] = nullptr;
  metaspace["pre_tokenizer"] = {{"type", "Metaspace"},
                                {"replacement", "\xE2\x96\x81"},
                                {"prepend_scheme", "first"},
                                {"split", false}};
  metaspace["decoder"] = {{"type", "Sequence"},
                          {"decoders",
                           {{{"type", "Metaspace"},
                             {"replacement", "\xE2\x96\x81"},
                             {"prepend_scheme", "first"},
                             {"split", false}},
                            {{"type", "ByteFallback"}},
                            {{"type", "Fuse"}}}}};
  const auto corpus = load_corpus();
  for (const auto& [name, doc] : {std::pair<const char*, const json*>{"legacy", &legacy},
                                  std::pair<const char*, const json*>{"metaspace", &metaspace}}) {
    SECTION(name) {
      const fs::path tmp = temp_dir(std::string("spm-json-") + name);
      write_file(tmp / "tokenizer.json", doc->dump());
      const Tokenizer tok = load_tokenizer(tmp);
      CHECK(tok.vocabulary().byte_fallback);
      CHECK(tok.vocabulary().add_bos);
      const json ref = run_hf(tmp / "tokenizer.json");
      compare_ids(tok, corpus, ref["ids"], {}, name);
      compare_ids(tok, corpus, ref["plain"], {.add_special = false}, name);
      compare_decode(tok, corpus, ref["ids"], ref["decoded"], false, name);
      compare_decode(tok, corpus, ref["ids"], ref["decoded_skip"], true, name);
    }
  }
}

TEST_CASE("Llama-3 layout (Split regex, ignore_merges) matches Hugging Face tokenizers",
          "[tokenizer][reference]") {
  // SmolLM2's byte-level vocabulary under Llama 3's pre-tokenizer, merge rule and BOS template.
  std::ifstream in(shared_dir() / "tokenizers/smollm2-135m/tokenizer.json", std::ios::binary);
  json j = json::parse(in);
  const std::string llama3 = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|)"
                             R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"},
                           {"pattern", {{"Regex", llama3}}},
                           {"behavior", "Isolated"},
                           {"invert", false}},
                          {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", true},
                           {"use_regex", false}}}}};
  j["model"]["ignore_merges"] = true;
  j["post_processor"] = json::parse(R"({"type": "Sequence", "processors": [
      {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
      {"type": "TemplateProcessing",
       "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}}],
       "pair": [],
       "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0],
                                            "tokens": ["<|endoftext|>"]}}}]})");
  const fs::path tmp = temp_dir("llama3");
  write_file(tmp / "tokenizer.json", j.dump());
  const Tokenizer tok = load_tokenizer(tmp);
  CHECK(tok.vocabulary().ignore_merges);
  CHECK(tok.vocabulary().add_bos);
  CHECK(tok.bos() == 0);
  const auto corpus = load_corpus();
  const json ref = run_hf(tmp / "tokenizer.json");
  compare_ids(tok, corpus, ref["ids"], {}, "llama3-layout");
  compare_ids(tok, corpus, ref["plain"], {.add_special = false}, "llama3-layout (no special)");
  compare_decode(tok, corpus, ref["ids"], ref["decoded"], false, "llama3-layout");
  check_lossless(tok, corpus);
}

}  // namespace qlm::test
