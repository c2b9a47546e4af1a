// Rendered conversations tokenize as transformers tokenizes apply_chat_template's text
// (add_special_tokens=False): special tokens written by the template become their ids, and the only
// BOS is one the template writes. The reference is Hugging Face's tokenizers.js, run on the strings
// Python's Jinja2 rendered (shared/chat-templates/expected/).
//
// Pairings (template folder -> tokenizer):
// * Qwen--Qwen2.5-0.5B-Instruct (byte-exact HF file) and Qwen--Qwen3-1.7B -> qwen2.5-0.5b.
//   Qwen3 keeps Qwen2's vocabulary; its <think> tags are plain text to Qwen2.5's tokenizer.
// * hfjs--HuggingFaceTB--SmolLM3-3B and llamacpp--HuggingFaceTB-SmolLM3-3B ->
//   tokenizers/smollm2-135m. shared/ has no SmolLM2 chat template (the SmolLM2 tokenizer.json
//   carries none); SmolLM3's are HuggingFaceTB's ChatML templates, and <|im_start|>/<|im_end|> are
//   SmolLM2's special ids 1 and 2 (id 1 is also SmolLM2's BOS, so the BOS rule is exercised).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/corpus.hpp"
#include "qlm/chat.hpp"
#include "qlm/chat_template.hpp"
#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"
#include "tokenizer/reference_util.hpp"

namespace qlm::test {
namespace {

using nlohmann::json;

fs::path templates_root() {
  return shared_dir() / "chat-templates";
}

// One conversation rendered by one template: Jinja2's text (expected/) and qlm's.
struct Rendered {
  std::string folder;
  std::string conversation;
  std::string jinja2;
  std::string ours;
};

std::vector<Rendered> render_folders(const std::vector<std::string>& folders) {
  std::vector<Rendered> out;
  for (const std::string& folder : folders) {
    for (const CorpusCase& c : run_corpus_folder(templates_root(), folder)) {
      CAPTURE(c.folder, c.conversation, c.expected_error, c.got_error);
      if (!c.expected_render) continue;  // transformers raises: nothing to tokenize
      REQUIRE(c.got_render);
      CHECK(*c.got_render == *c.expected_render);
      out.push_back({c.folder, c.conversation, *c.expected_render, *c.got_render});
    }
  }
  return out;
}

// tokenizers.js's encode(text, {add_special_tokens: false}) of every rendered string.
std::vector<std::vector<std::int32_t>> reference_ids(const std::vector<Rendered>& cases,
                                                     const fs::path& tokenizer_json,
                                                     const std::string& config) {
  const fs::path tmp = temp_dir("chat-tokens");
  std::string jsonl;
  for (const Rendered& r : cases) jsonl += fmt::format("{}\n", json(r.jinja2).dump());
  write_file(tmp / "rendered.jsonl", jsonl);
  const json ref = run_hf(tokenizer_json, config, tmp / "rendered.jsonl");
  REQUIRE(ref["plain"].size() == cases.size());
  return ref["plain"].get<std::vector<std::vector<std::int32_t>>>();
}

std::size_t count_text(std::string_view text, std::string_view piece) {
  std::size_t n = 0;
  for (std::size_t at = text.find(piece); at != std::string_view::npos;
       at = text.find(piece, at + piece.size()))
    ++n;
  return n;
}

// The BOS rule: BOS ids are exactly the BOS pieces the text contains, none is added.
void check_bos_only_from_text(const Tokenizer& tok, const std::string& text,
                              const std::vector<std::int32_t>& ids) {
  if (tok.bos() < 0) return;
  const std::string_view bos = tok.piece(tok.bos());
  CHECK(static_cast<std::size_t>(std::count(ids.begin(), ids.end(), tok.bos())) ==
        count_text(text, bos));
  CHECK((!ids.empty() && ids.front() == tok.bos()) == text.starts_with(bos));
}

// Compares, per conversation: (a) tokenize_chat(Jinja2's text) with tokenizers.js's ids,
// (b) tokenize_chat(qlm's render) with the same ids; and checks the BOS rule.
// Returns the number of conversations compared.
std::size_t compare_with_reference(const Tokenizer& tok, const std::vector<Rendered>& cases,
                                   const std::vector<std::vector<std::int32_t>>& ref) {
  REQUIRE(ref.size() == cases.size());
  int bad = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Rendered& r = cases[i];
    CAPTURE(r.folder, r.conversation);
    const auto from_jinja2 = tokenize_chat(tok, r.jinja2);
    const auto from_ours = tokenize_chat(tok, r.ours);
    REQUIRE(from_jinja2.ok());
    REQUIRE(from_ours.ok());
    if ((*from_jinja2 != ref[i] || *from_ours != ref[i]) && ++bad <= 4) {
      UNSCOPED_INFO(r.folder << " / " << r.conversation << ": " << show(r.jinja2) << "\n  ours:   "
                             << show_ids(*from_jinja2) << "\n  theirs: " << show_ids(ref[i]));
    }
    CHECK(*from_ours == *from_jinja2);
    check_bos_only_from_text(tok, r.jinja2, *from_jinja2);
    // The convenience is exactly encode() without added specials and with specials parsed.
    CHECK(*from_jinja2 ==
          tok.encode(r.jinja2, {.add_special = false, .parse_special = true}).value());
  }
  INFO(bad << " of " << cases.size() << " rendered conversations tokenize differently");
  CHECK(bad == 0);
  return cases.size();
}

// The conversations that must be among those compared: tool calls and generation prompts.
void check_coverage(const std::vector<Rendered>& cases, const std::string& folder) {
  for (const char* name : {"tools_available", "tool_call_roundtrip", "system_user", "multi_turn",
                           "assistant_last", "continue_final_message"}) {
    CAPTURE(folder, name);
    CHECK(std::any_of(cases.begin(), cases.end(), [&](const Rendered& r) {
      return r.folder == folder && r.conversation == name;
    }));
  }
}

const Rendered& find_case(const std::vector<Rendered>& cases, const std::string& folder,
                          const std::string& conversation) {
  const auto it = std::find_if(cases.begin(), cases.end(), [&](const Rendered& r) {
    return r.folder == folder && r.conversation == conversation;
  });
  INFO(folder << " / " << conversation);
  REQUIRE(it != cases.end());
  return *it;
}

}  // namespace

TEST_CASE("chat tokens: Qwen2.5 renders tokenize as tokenizers.js does (no added specials)",
          "[chat][chat-tokens][reference]") {
  const fs::path dir = shared_dir() / "tokenizers/qwen2.5-0.5b";
  const Tokenizer tok = load_tokenizer(dir);
  // config.json names <|endoftext|> (151643) as BOS, but Qwen2.5 adds none: nothing may come
  // before the template's <|im_start|>.
  REQUIRE(tok.bos() == 151643);
  REQUIRE(!tok.vocabulary().add_bos);
  const std::string qwen25 = "Qwen--Qwen2.5-0.5B-Instruct";
  const std::vector<Rendered> cases = render_folders({qwen25, "Qwen--Qwen3-1.7B"});
  check_coverage(cases, qwen25);
  // The reference tokenizer.json, assembled from the same files (as test_tokenizer_reference).
  const fs::path tmp = temp_dir("chat-tokens-qwen");
  run_reference(fmt::format(
      "/usr/bin/python3 {} {} {}",
      shell_quote((source_dir() / "tests/reference/make_qwen_tokenizer_json.py").string()),
      shell_quote(dir.string()), shell_quote((tmp / "tokenizer.json").string())));
  const auto ref =
      reference_ids(cases, tmp / "tokenizer.json", (dir / "tokenizer_config.json").string());
  CHECK(compare_with_reference(tok, cases, ref) == 26);  // 13 conversations x 2 templates

  // Special and added tokens written by the template are single ids, one per occurrence.
  const Rendered& call = find_case(cases, qwen25, "tool_call_roundtrip");
  const auto ids = tokenize_chat(tok, call.jinja2).value();
  CHECK(ids.front() == 151644);
  using Added = std::pair<std::int32_t, std::string_view>;
  for (const auto& [id, piece] : {Added{151644, "<|im_start|>"}, Added{151645, "<|im_end|>"},
                                  Added{151657, "<tool_call>"}, Added{151658, "</tool_call>"}}) {
    CAPTURE(piece);
    CHECK(count_text(call.jinja2, piece) >= 1);
    CHECK(static_cast<std::size_t>(std::count(ids.begin(), ids.end(), id)) ==
          count_text(call.jinja2, piece));
  }
  const auto gen = tokenize_chat(tok, find_case(cases, qwen25, "system_user").jinja2).value();
  REQUIRE(gen.size() >= 3);  // ends with the generation prompt "<|im_start|>assistant\n"
  CHECK(tok.decode(std::vector<std::int32_t>(gen.end() - 3, gen.end())) ==
        "<|im_start|>assistant\n");
  CHECK(gen[gen.size() - 3] == 151644);
}

TEST_CASE("chat tokens: SmolLM3 templates with SmolLM2's tokenizer match tokenizers.js",
          "[chat][chat-tokens][reference]") {
  const fs::path dir = shared_dir() / "tokenizers/smollm2-135m";
  const Tokenizer tok = load_tokenizer(dir);
  REQUIRE(tok.bos() == 1);  // <|im_start|> (config.json), not added by encode
  REQUIRE(!tok.vocabulary().add_bos);
  const std::string hf = "hfjs--HuggingFaceTB--SmolLM3-3B";
  const std::vector<Rendered> cases = render_folders({hf, "llamacpp--HuggingFaceTB-SmolLM3-3B"});
  check_coverage(cases, hf);
  const auto ref = reference_ids(cases, dir / "tokenizer.json", "-");
  CHECK(compare_with_reference(tok, cases, ref) == 26);  // 13 conversations x 2 templates

  // <|im_start|> (id 1) is SmolLM2's BOS: the template's is the only one at the front.
  const auto ids = tokenize_chat(tok, find_case(cases, hf, "multi_turn").jinja2).value();
  REQUIRE(ids.size() >= 2);
  CHECK(ids[0] == 1);
  CHECK(ids[1] != 1);
}

TEST_CASE("chat tokens: every Jinja2-rendered string of the corpus matches tokenizers.js",
          "[chat][chat-tokens][reference]") {
  // All of expected/ (every template x conversation that renders), with both tokenizers: the
  // texts are not these tokenizers' own prompts, but they are the widest set of chat markup there
  // is (role headers, tool-call JSON, other models' special tokens as plain text, whitespace).
  std::vector<Rendered> cases;
  for (const auto& e : fs::directory_iterator(templates_root() / "expected")) {
    const json expected = json::parse(std::ifstream(e.path(), std::ios::binary));
    for (const json& r : expected["results"]) {
      if (r.contains("rendered"))
        cases.push_back({e.path().stem().string(), r["name"].get<std::string>(),
                         r["rendered"].get<std::string>(), r["rendered"].get<std::string>()});
    }
  }
  REQUIRE(cases.size() >= 1900);
  const fs::path qwen = shared_dir() / "tokenizers/qwen2.5-0.5b";
  const fs::path tmp = temp_dir("chat-tokens-all");
  run_reference(fmt::format(
      "/usr/bin/python3 {} {} {}",
      shell_quote((source_dir() / "tests/reference/make_qwen_tokenizer_json.py").string()),
      shell_quote(qwen.string()), shell_quote((tmp / "tokenizer.json").string())));
  compare_with_reference(
      load_tokenizer(qwen), cases,
      reference_ids(cases, tmp / "tokenizer.json", (qwen / "tokenizer_config.json").string()));
  const fs::path smol = shared_dir() / "tokenizers/smollm2-135m";
  compare_with_reference(load_tokenizer(smol), cases,
                         reference_ids(cases, smol / "tokenizer.json", "-"));
}

TEST_CASE("chat tokens: a BOS comes only from the template text", "[chat][chat-tokens]") {
  // stories260K's SentencePiece tokenizer adds BOS (<s>, id 1) to plain encode(). A Llama-2
  // template writes <s> itself, once per exchange: tokenize_chat keeps exactly those.
  const Tokenizer tok = load_tokenizer(shared_dir() / "models/stories260K");
  REQUIRE(tok.bos() == 1);
  REQUIRE(tok.vocabulary().add_bos);
  int compared = 0;
  for (const Rendered& r : render_folders({"ov--meta-llama--Llama-2-7b-chat-hf"})) {
    CAPTURE(r.conversation);
    const auto ids = tokenize_chat(tok, r.ours).value();
    REQUIRE(r.ours.starts_with("<s>"));
    CHECK(ids.front() == 1);
    check_bos_only_from_text(tok, r.ours, ids);
    // Plain encode() would put a second BOS in front of the template's.
    const auto doubled = tok.encode(r.ours).value();
    REQUIRE(doubled.size() == ids.size() + 1);
    CHECK(doubled[0] == 1);
    CHECK(doubled[1] == 1);
    ++compared;
  }
  CHECK(compared >= 10);
  // A template that writes no BOS gets none.
  for (const Rendered& r : render_folders({"Qwen--Qwen2.5-0.5B-Instruct"})) {
    CAPTURE(r.conversation);
    const auto ids = tokenize_chat(tok, r.ours).value();
    CHECK(std::count(ids.begin(), ids.end(), tok.bos()) == 0);
  }
}

}  // namespace qlm::test
