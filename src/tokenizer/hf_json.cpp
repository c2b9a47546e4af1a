// tokenizer.json -> Vocabulary: BPE model, added tokens, normalizer, pre-tokenizer, decoder and
// post-processor, plus the JSON helpers shared with hf_loader.cpp.
#include "tokenizer/hf_json.hpp"

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>

#include "qlm/detail/read_file.hpp"
#include "tokenizer/text.hpp"

namespace qlm::detail::hf {

std::string read_file(const fs::path& p) {
  // The largest real tokenizer.json files are tens of MiB.
  return unwrap(read_regular_file(p, std::uint64_t{1} << 30, "tokenizer file"));
}

json read_json(const fs::path& p) {
  const std::string text = read_file(p);
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) fail(ErrorCode::Format, "{}: not valid JSON", p.string());
  return j;
}

std::unordered_map<std::string, std::int32_t> index_tokens(const Vocabulary& v) {
  std::unordered_map<std::string, std::int32_t> m;
  for (std::size_t i = 0; i < v.tokens.size(); ++i)
    m.emplace(v.tokens[i], static_cast<std::int32_t>(i));
  return m;
}

void merge_added(Vocabulary& v, std::map<std::int32_t, AddedToken> added, std::string_view file) {
  for (AddedToken& a : v.added_tokens) added.try_emplace(a.id, a);
  v.added_tokens.clear();
  for (auto& [id, a] : added) {
    if (id < 0)
      fail(ErrorCode::Format, "{}: added token '{}' has negative id {}", file, a.content, id);
    if (a.content.empty())
      fail(ErrorCode::Format, "{}: added token {} has empty content", file, id);
    const auto n = static_cast<std::int32_t>(v.tokens.size());
    if (id > n) {
      fail(ErrorCode::Format, "{}: added token '{}' has id {} but the vocabulary ends at {}", file,
           a.content, id, n - 1);
    }
    if (id == n) {
      v.tokens.push_back(a.content);
      v.scores.push_back(0.0f);
      v.types.push_back(TokenType::Normal);
    } else if (v.tokens[id] != a.content) {
      fail(ErrorCode::Format, "{}: added token '{}' has id {}, which is already '{}'", file,
           a.content, id, v.tokens[id]);
    }
    if (v.types[id] == TokenType::Normal || v.types[id] == TokenType::Control ||
        v.types[id] == TokenType::UserDefined) {
      v.types[id] = a.special ? TokenType::Control : TokenType::UserDefined;
    }
    v.added_tokens.push_back(std::move(a));
  }
}

AddedToken added_from_json(const Doc& d, const json& j, std::int64_t id, bool default_special) {
  AddedToken a;
  a.id = static_cast<std::int32_t>(id);
  a.content = d.str(d.need(j, "content"), "content");
  a.special = d.flag(j, "special", default_special);
  a.lstrip = d.flag(j, "lstrip", false);
  a.rstrip = d.flag(j, "rstrip", false);
  a.normalized = d.flag(j, "normalized", !a.special);
  a.single_word = d.flag(j, "single_word", false);
  return a;
}

std::pair<std::int32_t, std::int32_t> merge_ids(
    const Doc& d, const std::unordered_map<std::string, std::int32_t>& ids, std::string_view a,
    std::string_view b, std::size_t rank) {
  const auto ia = ids.find(std::string(a));
  const auto ib = ids.find(std::string(b));
  if (ia == ids.end() || ib == ids.end()) {
    fail(ErrorCode::Format,
         "{}: merge {} ('{}' '{}') refers to a token that is not in the vocabulary", d.file, rank,
         a, b);
  }
  return {ia->second, ib->second};
}

void vocab_from_map(const Doc& d, const json& vocab, Vocabulary& v) {
  if (!vocab.is_object()) fail(ErrorCode::Format, "{}: vocab must be an object", d.file);
  std::vector<std::pair<std::int64_t, std::string>> entries;
  for (auto it = vocab.begin(); it != vocab.end(); ++it)
    entries.emplace_back(d.integer(it.value(), it.key()), it.key());
  // Ids out of range first, then shared ids: n distinct ids in [0, n) leave no gap, and the
  // message names the token that is wrong rather than whichever sorts after it.
  const auto n = static_cast<std::int64_t>(entries.size());
  for (const auto& [id, token] : entries) {
    if (id < 0 || id >= n) {
      fail(ErrorCode::Format, "{}: token '{}' has id {}, outside 0..{} of a {}-token vocabulary",
           d.file, token, id, n - 1, n);
    }
  }
  std::sort(entries.begin(), entries.end());
  for (std::size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].first == entries[i - 1].first) {
      fail(ErrorCode::Format, "{}: tokens '{}' and '{}' share id {}", d.file, entries[i - 1].second,
           entries[i].second, entries[i].first);
    }
  }
  for (auto& entry : entries) v.tokens.push_back(std::move(entry.second));
  v.scores.assign(v.tokens.size(), 0.0f);
  v.types.assign(v.tokens.size(), TokenType::Normal);
}

namespace {

void parse_normalizer(const Doc& d, const json& j, Vocabulary& v) {
  const std::string type = d.str(d.need(j, "type"), "normalizer.type");
  if (type == "Sequence") {
    for (const json& n : d.need(j, "normalizers")) parse_normalizer(d, n, v);
  } else if (type == "NFC") {
    v.normalizer.push_back({NormalizerKind::Nfc, "", ""});
  } else if (type == "Prepend") {
    v.normalizer.push_back({NormalizerKind::Prepend, d.str(d.need(j, "prepend"), "prepend"), ""});
  } else if (type == "Replace") {
    const json& pat = d.need(j, "pattern");
    const json* s = d.find(pat, "String");
    if (s == nullptr)
      fail(ErrorCode::Unsupported, "{}: Replace normalizer with a regex pattern is not supported",
           d.file);
    v.normalizer.push_back({NormalizerKind::Replace, d.str(*s, "pattern.String"),
                            d.str(d.need(j, "content"), "content")});
  } else {
    fail(ErrorCode::Unsupported, "{}: normalizer '{}' is not supported", d.file, type);
  }
}

PrependScheme prepend_scheme(const Doc& d, const json& j) {
  if (const json* s = d.find(j, "prepend_scheme")) {
    const std::string v = d.str(*s, "prepend_scheme");
    if (v == "always") return PrependScheme::Always;
    if (v == "never") return PrependScheme::Never;
    if (v == "first") return PrependScheme::First;
    fail(ErrorCode::Format, "{}: unknown prepend_scheme '{}'", d.file, v);
  }
  return d.flag(j, "add_prefix_space", true) ? PrependScheme::Always : PrependScheme::Never;
}

void parse_pre_tokenizer(const Doc& d, const json& j, Vocabulary& v, bool& byte_level) {
  const std::string type = d.str(d.need(j, "type"), "pre_tokenizer.type");
  PreTokenizerStep s;
  if (type == "Sequence") {
    for (const json& p : d.need(j, "pretokenizers")) parse_pre_tokenizer(d, p, v, byte_level);
    return;
  } else if (type == "ByteLevel") {
    s.kind = PreTokenizerKind::ByteLevel;
    s.add_prefix_space = d.flag(j, "add_prefix_space", true);
    s.use_regex = d.flag(j, "use_regex", true);
    byte_level = true;
  } else if (type == "Digits") {
    s.kind = PreTokenizerKind::Digits;
    s.individual_digits = d.flag(j, "individual_digits", false);
  } else if (type == "Split") {
    s.kind = PreTokenizerKind::Split;
    const json& pat = d.need(j, "pattern");
    if (const json* r = d.find(pat, "Regex")) {
      s.pattern = d.str(*r, "pattern.Regex");
    } else {
      s.pattern = detail::regex_escape(d.str(d.need(pat, "String"), "pattern.String"));
    }
    const std::string b = d.str(d.need(j, "behavior"), "behavior");
    constexpr std::string_view names[] = {"Isolated", "Removed", "MergedWithPrevious",
                                          "MergedWithNext", "Contiguous"};
    const auto it = std::find(std::begin(names), std::end(names), b);
    if (it == std::end(names))
      fail(ErrorCode::Format, "{}: unknown split behavior '{}'", d.file, b);
    s.behavior = static_cast<SplitBehavior>(it - std::begin(names));
    s.invert = d.flag(j, "invert", false);
  } else if (type == "Metaspace") {
    s.kind = PreTokenizerKind::Metaspace;
    s.pattern = d.str(d.need(j, "replacement"), "replacement");
    s.prepend_scheme = prepend_scheme(d, j);
    s.split = d.flag(j, "split", true);
  } else {
    fail(ErrorCode::Unsupported, "{}: pre_tokenizer '{}' is not supported", d.file, type);
  }
  v.pre_tokenizer.push_back(std::move(s));
}

// Whether the decoder drops the dummy-prefix space; also notes a ByteLevel decoder.
void parse_decoder(const Doc& d, const json& j, Vocabulary& v, bool& byte_level) {
  const std::string type = d.str(d.need(j, "type"), "decoder.type");
  if (type == "Sequence") {
    for (const json& x : d.need(j, "decoders")) parse_decoder(d, x, v, byte_level);
  } else if (type == "ByteLevel") {
    byte_level = true;
  } else if (type == "Strip") {
    const json* start = d.find(j, "start");
    if (start != nullptr && d.integer(*start, "start") > 0)
      v.decode_strip = DecodeStrip::FirstToken;
  } else if (type == "Metaspace") {
    if (prepend_scheme(d, j) != PrependScheme::Never) v.decode_strip = DecodeStrip::FirstToken;
  }
  // Replace("▁"," "), ByteFallback and Fuse are implied by the SentencePiece model kind.
}

// A post-processor's template: whether it puts a special token before / after $A.
void parse_post_processor(const Doc& d, const json& j, Vocabulary& v,
                          std::optional<std::string>& bos, std::optional<std::string>& eos) {
  const std::string type = d.str(d.need(j, "type"), "post_processor.type");
  if (type == "Sequence") {
    for (const json& x : d.need(j, "processors")) parse_post_processor(d, x, v, bos, eos);
  } else if (type == "TemplateProcessing") {
    bool seen_a = false;
    for (const json& item : d.need(j, "single")) {
      if (const json* sp = d.find(item, "SpecialToken")) {
        (seen_a ? eos : bos) = d.str(d.need(*sp, "id"), "SpecialToken.id");
      } else {
        seen_a = true;
      }
    }
  }
}

}  // namespace

Vocabulary parse_tokenizer_json(const fs::path& path) {
  const Doc d{path.string()};
  const json j = read_json(path);
  Vocabulary v;
  const json& model = d.need(j, "model");
  const std::string type =
      d.find(model, "type") ? d.str(d.need(model, "type"), "model.type") : "BPE";
  if (type != "BPE")
    fail(ErrorCode::Unsupported, "{}: tokenizer model '{}' is not supported (only BPE)", d.file,
         type);
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const json* s = d.find(model, k); s != nullptr && !d.str(*s, k).empty()) {
      fail(ErrorCode::Unsupported, "{}: BPE {} is not supported", d.file, k);
    }
  }
  vocab_from_map(d, d.need(model, "vocab"), v);
  v.byte_fallback = d.flag(model, "byte_fallback", false);
  v.ignore_merges = d.flag(model, "ignore_merges", false);
  std::map<std::int32_t, AddedToken> added;
  if (const json* at = d.find(j, "added_tokens")) {
    for (const json& a : *at) {
      const std::int64_t id = d.integer(d.need(a, "id"), "added_tokens.id");
      added.emplace(static_cast<std::int32_t>(id), added_from_json(d, a, id, false));
    }
  }
  merge_added(v, std::move(added), d.file);
  const auto ids = index_tokens(v);
  const json& merges = d.need(model, "merges");
  if (!merges.is_array()) fail(ErrorCode::Format, "{}: model.merges must be an array", d.file);
  for (std::size_t r = 0; r < merges.size(); ++r) {
    const json& m = merges[r];
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const std::size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        fail(ErrorCode::Format, "{}: merge {} '{}' is not two tokens separated by a space", d.file,
             r, s);
      }
      v.merges.push_back(merge_ids(d, ids, s.substr(0, sp), s.substr(sp + 1), r));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      v.merges.push_back(merge_ids(d, ids, m[0].get<std::string>(), m[1].get<std::string>(), r));
    } else {
      fail(ErrorCode::Format, "{}: merge {} is neither \"a b\" nor [a, b]: {}", d.file, r,
           m.dump());
    }
  }
  bool byte_level = false;
  if (const json* n = d.find(j, "normalizer")) parse_normalizer(d, *n, v);
  if (const json* p = d.find(j, "pre_tokenizer")) parse_pre_tokenizer(d, *p, v, byte_level);
  if (const json* dec = d.find(j, "decoder")) parse_decoder(d, *dec, v, byte_level);
  v.model = byte_level ? TokenizerModel::ByteLevelBpe : TokenizerModel::SentencePieceBpe;
  if (byte_level) v.decode_strip = DecodeStrip::None;
  if (const json* u = d.find(model, "unk_token")) {
    const auto it = ids.find(d.str(*u, "unk_token"));
    if (it != ids.end()) {
      v.unk_id = it->second;
      if (v.types[v.unk_id] == TokenType::Normal) v.types[v.unk_id] = TokenType::Unknown;
    }
  }
  if (!byte_level) {
    for (int b = 0; b < 256; ++b) {
      const auto it = ids.find(fmt::format("<0x{:02X}>", b));
      if (it != ids.end() && v.types[it->second] == TokenType::Normal)
        v.types[it->second] = TokenType::Byte;
    }
  }
  std::optional<std::string> bos, eos;
  if (const json* pp = d.find(j, "post_processor")) parse_post_processor(d, *pp, v, bos, eos);
  if (bos) {
    if (const auto it = ids.find(*bos); it != ids.end()) v.bos_id = it->second, v.add_bos = true;
  }
  if (eos) {
    if (const auto it = ids.find(*eos); it != ids.end()) v.eos_id = it->second, v.add_eos = true;
  }
  return v;
}

}  // namespace qlm::detail::hf
