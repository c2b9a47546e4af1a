// Vocabulary validation and its "tokenizer.*" metadata encoding (keys in docs/tokenizer.md).
#include "qlm/tokenizer/vocabulary.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>
#include <type_traits>
#include <unordered_set>

#include "util/fail.hpp"

namespace qlm {
namespace {

using format::Metadata;

constexpr std::string_view kModelNames[] = {"sentencepiece-bpe", "byte-level-bpe"};

// Pre-tokenizer flag bits in "tokenizer.pre_tokenizer.flags".
enum : std::uint8_t {
  kInvert = 1,
  kIndividualDigits = 2,
  kAddPrefixSpace = 4,
  kUseRegex = 8,
  kSplit = 16
};
// Added-token flag bits in "tokenizer.added.flags".
enum : std::uint8_t { kSpecial = 1, kLstrip = 2, kRstrip = 4, kNormalized = 8, kSingleWord = 16 };

// Every "tokenizer.*" key, named once for store_vocabulary and load_vocabulary.
constexpr const char* kModelKey = "tokenizer.model";
constexpr const char* kTokens = "tokenizer.tokens";
constexpr const char* kScores = "tokenizer.scores";
constexpr const char* kTypes = "tokenizer.types";
constexpr const char* kMerges = "tokenizer.merges";
constexpr const char* kDecodeStrip = "tokenizer.decode_strip";
constexpr const char* kNormKinds = "tokenizer.normalizer.kinds";
constexpr const char* kNormArgs = "tokenizer.normalizer.args";
constexpr const char* kNormReplacements = "tokenizer.normalizer.replacements";
constexpr const char* kPreKinds = "tokenizer.pre_tokenizer.kinds";
constexpr const char* kPrePatterns = "tokenizer.pre_tokenizer.patterns";
constexpr const char* kPreBehaviors = "tokenizer.pre_tokenizer.behaviors";
constexpr const char* kPreFlags = "tokenizer.pre_tokenizer.flags";
constexpr const char* kPrePrepend = "tokenizer.pre_tokenizer.prepend_schemes";
constexpr const char* kAddedIds = "tokenizer.added.ids";
constexpr const char* kAddedFlags = "tokenizer.added.flags";
constexpr const char* kTemplateNames = "tokenizer.chat_template.names";
constexpr const char* kTemplateSources = "tokenizer.chat_template.sources";

// The fill-in-the-middle roles: their "tokenizer.fim.*" key, member and spellings, in the order
// detect_fim_tokens prefers them (docs/chat.md). DeepSeek-Coder's begin/hole/end are
// prefix/suffix/middle, as in llama.cpp.
struct FimRole {
  const char* key;
  std::int32_t FimTokens::*member;
  std::array<std::string_view, 7> spellings;  // empty entries pad the list
};
constexpr FimRole kFimRoles[] = {
    {"tokenizer.fim.prefix",
     &FimTokens::prefix,
     {"<|fim_prefix|>", "<fim_prefix>", "<fim-prefix>", "<\uFF5Cfim\u2581begin\uFF5C>", "<PRE>",
      "\u2581<PRE>", "<|fim_pre|>"}},
    {"tokenizer.fim.suffix",
     &FimTokens::suffix,
     {"<|fim_suffix|>", "<fim_suffix>", "<fim-suffix>", "<\uFF5Cfim\u2581hole\uFF5C>", "<SUF>",
      "\u2581<SUF>", "<|fim_suf|>"}},
    {"tokenizer.fim.middle",
     &FimTokens::middle,
     {"<|fim_middle|>", "<fim_middle>", "<fim-middle>", "<\uFF5Cfim\u2581end\uFF5C>", "<MID>",
      "\u2581<MID>", "<|fim_mid|>"}},
    {"tokenizer.fim.pad", &FimTokens::pad, {"<|fim_pad|>", "<fim_pad>", "<fim-pad>"}},
    {"tokenizer.fim.repo_name",
     &FimTokens::repo_name,
     {"<|repo_name|>", "<|fim_repo|>", "<repo_name>", "<reponame>", "<fim-repo>"}},
    {"tokenizer.fim.file_sep", &FimTokens::file_sep, {"<|file_sep|>", "<file_sep>"}},
};

// The keys stored as the member's value as is, optional on load (absent = the member's default);
// V is Vocabulary or const Vocabulary.
template <class V, class F>
void for_each_plain_key(V& v, F&& f) {
  f("tokenizer.byte_fallback", v.byte_fallback);
  f("tokenizer.ignore_merges", v.ignore_merges);
  f("tokenizer.add_bos", v.add_bos);
  f("tokenizer.add_eos", v.add_eos);
  f("tokenizer.bos_id", v.bos_id);
  f("tokenizer.eos_id", v.eos_id);
  f("tokenizer.unk_id", v.unk_id);
  f("tokenizer.pad_id", v.pad_id);
  f("tokenizer.eos_ids", v.eos_ids);
  f("tokenizer.chat_template", v.chat_template);
}

void check_id(std::int32_t id, std::size_t n, std::string_view source, std::string_view what) {
  if (id < -1 || (id >= 0 && static_cast<std::size_t>(id) >= n)) {
    detail::fail(ErrorCode::Format, "{}: {} = {} is outside the vocabulary of {} tokens", source,
                 what, id, n);
  }
}

void validate(const Vocabulary& v, std::string_view source) {
  const std::size_t n = v.tokens.size();
  if (n == 0) detail::fail(ErrorCode::Format, "{}: the vocabulary has no tokens", source);
  if (n > static_cast<std::size_t>(INT32_MAX))
    detail::fail(ErrorCode::Format, "{}: too many tokens ({})", source, n);
  if (v.scores.size() != n || v.types.size() != n) {
    detail::fail(ErrorCode::Format, "{}: {} tokens but {} scores and {} types", source, n,
                 v.scores.size(), v.types.size());
  }
  for (std::size_t i = 0; i < n; ++i) {
    const auto t = static_cast<unsigned>(v.types[i]);
    if (t < 1 || t > 6)
      detail::fail(ErrorCode::Format, "{}: token {} has invalid type {}", source, i, t);
  }
  if (static_cast<unsigned>(v.decode_strip) > 2) {
    detail::fail(ErrorCode::Format, "{}: invalid decode_strip {}", source,
                 static_cast<unsigned>(v.decode_strip));
  }
  if (static_cast<unsigned>(v.model) > 1) {
    detail::fail(ErrorCode::Format, "{}: invalid tokenizer model {}", source,
                 static_cast<unsigned>(v.model));
  }
  std::unordered_set<std::string_view> pieces(v.tokens.begin(), v.tokens.end());
  std::string joined;
  for (std::size_t r = 0; r < v.merges.size(); ++r) {
    const auto [a, b] = v.merges[r];
    if (a < 0 || b < 0 || static_cast<std::size_t>(a) >= n || static_cast<std::size_t>(b) >= n) {
      detail::fail(ErrorCode::Format, "{}: merge {} refers to token ids ({}, {}) outside 0..{}",
                   source, r, a, b, n - 1);
    }
    joined = v.tokens[a] + v.tokens[b];
    if (!pieces.contains(joined)) {
      detail::fail(ErrorCode::Format, "{}: merge {} ('{}' '{}') makes '{}', which is not a token",
                   source, r, v.tokens[a], v.tokens[b], joined);
    }
  }
  for (std::size_t i = 0; i < v.chat_templates.size(); ++i) {
    const std::string& name = v.chat_templates[i].name;
    if (name.empty() || name == "default") {
      detail::fail(ErrorCode::Format, "{}: chat template {} has the name '{}'", source, i, name);
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (v.chat_templates[j].name == name)
        detail::fail(ErrorCode::Format, "{}: two chat templates are named '{}'", source, name);
    }
  }
  for (const NormalizerStep& s : v.normalizer) {
    if (static_cast<unsigned>(s.kind) > 3) {
      detail::fail(ErrorCode::Format, "{}: invalid normalizer kind {}", source,
                   static_cast<unsigned>(s.kind));
    }
  }
  for (const PreTokenizerStep& s : v.pre_tokenizer) {
    if (static_cast<unsigned>(s.kind) > 3 || static_cast<unsigned>(s.behavior) > 4 ||
        static_cast<unsigned>(s.prepend_scheme) > 2) {
      detail::fail(ErrorCode::Format,
                   "{}: invalid pre-tokenizer step (kind {}, behavior {}, prepend {})", source,
                   static_cast<unsigned>(s.kind), static_cast<unsigned>(s.behavior),
                   static_cast<unsigned>(s.prepend_scheme));
    }
  }
  for (const AddedToken& a : v.added_tokens) {
    check_id(a.id, n, source, "added token id");
    if (a.id < 0 || a.content.empty() || v.tokens[a.id] != a.content) {
      detail::fail(ErrorCode::Format, "{}: added token '{}' (id {}) does not match the token list",
                   source, a.content, a.id);
    }
  }
  check_id(v.bos_id, n, source, "bos id");
  check_id(v.eos_id, n, source, "eos id");
  check_id(v.unk_id, n, source, "unk id");
  check_id(v.pad_id, n, source, "pad id");
  for (const std::int32_t id : v.eos_ids) {
    check_id(id, n, source, "end-of-generation id");
    if (id < 0) detail::fail(ErrorCode::Format, "{}: end-of-generation id -1", source);
  }
  for (const FimRole& r : kFimRoles) check_id(v.fim.*r.member, n, source, r.key);
}

// The value of `key` with type T; nullptr if absent and optional. Wrong types always fail.
template <class T>
const T* get(const Metadata& m, std::string_view key, std::string_view file, bool required) {
  if (const T* p = m.find<T>(key)) return p;
  if (m.contains(key))
    detail::fail(ErrorCode::Format, "{}: metadata key {} has the wrong type", file, key);
  if (required) detail::fail(ErrorCode::Format, "{}: metadata key {} is missing", file, key);
  return nullptr;
}

template <class T>
void check_len(const std::vector<T>* v, std::size_t n, std::string_view key,
               std::string_view file) {
  if (v != nullptr && v->size() != n) {
    detail::fail(ErrorCode::Format, "{}: metadata key {} has {} entries, expected {}", file, key,
                 v->size(), n);
  }
}

}  // namespace

FimTokens detect_fim_tokens(const Vocabulary& vocab) {
  // Per role, the index of the best spelling found so far (lower is preferred).
  constexpr std::size_t kNone = SIZE_MAX;
  std::size_t best[std::size(kFimRoles)];
  std::fill(std::begin(best), std::end(best), kNone);
  FimTokens fim;
  for (std::size_t id = 0; id < vocab.tokens.size(); ++id) {
    const std::string_view t = vocab.tokens[id];
    // Every spelling starts with '<' or "▁<" and is 5 to 20 bytes long.
    if (t.size() < 5 || t.size() > 20 || (t[0] != '<' && t[0] != '\xE2')) continue;
    for (std::size_t r = 0; r < std::size(kFimRoles); ++r) {
      std::size_t k = 0;
      for (const std::string_view spelling : kFimRoles[r].spellings) {
        if (k >= best[r] || spelling.empty()) break;  // a preferred spelling was found already
        if (t == spelling) {
          best[r] = k;
          fim.*kFimRoles[r].member = static_cast<std::int32_t>(id);
          break;
        }
        ++k;
      }
    }
  }
  return fim;
}

Result<void> validate_vocabulary(const Vocabulary& vocab, std::string_view source) {
  return detail::capture([&] { validate(vocab, source); });
}

void store_vocabulary(const Vocabulary& v, format::Metadata& m) {
  m.set(kModelKey, std::string(kModelNames[static_cast<int>(v.model)]));
  m.set(kTokens, v.tokens);
  m.set(kScores, v.scores);
  std::vector<std::uint8_t> types(v.types.size());
  for (std::size_t i = 0; i < types.size(); ++i) types[i] = static_cast<std::uint8_t>(v.types[i]);
  m.set(kTypes, std::move(types));
  std::vector<std::uint32_t> merges;
  merges.reserve(v.merges.size() * 2);
  for (const auto& [a, b] : v.merges) {
    merges.push_back(static_cast<std::uint32_t>(a));
    merges.push_back(static_cast<std::uint32_t>(b));
  }
  m.set(kMerges, std::move(merges));
  std::vector<std::uint8_t> nk;
  std::vector<std::string> na, nr;
  for (const NormalizerStep& s : v.normalizer) {
    nk.push_back(static_cast<std::uint8_t>(s.kind));
    na.push_back(s.arg);
    nr.push_back(s.replacement);
  }
  m.set(kNormKinds, std::move(nk));
  m.set(kNormArgs, std::move(na));
  m.set(kNormReplacements, std::move(nr));
  std::vector<std::uint8_t> pk, pb, pf, pp;
  std::vector<std::string> pat;
  for (const PreTokenizerStep& s : v.pre_tokenizer) {
    pk.push_back(static_cast<std::uint8_t>(s.kind));
    pat.push_back(s.pattern);
    pb.push_back(static_cast<std::uint8_t>(s.behavior));
    pf.push_back(static_cast<std::uint8_t>((s.invert ? kInvert : 0) |
                                           (s.individual_digits ? kIndividualDigits : 0) |
                                           (s.add_prefix_space ? kAddPrefixSpace : 0) |
                                           (s.use_regex ? kUseRegex : 0) | (s.split ? kSplit : 0)));
    pp.push_back(static_cast<std::uint8_t>(s.prepend_scheme));
  }
  m.set(kPreKinds, std::move(pk));
  m.set(kPrePatterns, std::move(pat));
  m.set(kPreBehaviors, std::move(pb));
  m.set(kPreFlags, std::move(pf));
  m.set(kPrePrepend, std::move(pp));
  m.set(kDecodeStrip, static_cast<std::uint32_t>(v.decode_strip));
  std::vector<std::int32_t> ids;
  std::vector<std::uint8_t> flags;
  for (const AddedToken& a : v.added_tokens) {
    ids.push_back(a.id);
    flags.push_back(static_cast<std::uint8_t>(
        (a.special ? kSpecial : 0) | (a.lstrip ? kLstrip : 0) | (a.rstrip ? kRstrip : 0) |
        (a.normalized ? kNormalized : 0) | (a.single_word ? kSingleWord : 0)));
  }
  m.set(kAddedIds, std::move(ids));
  m.set(kAddedFlags, std::move(flags));
  if (!v.chat_templates.empty()) {
    std::vector<std::string> names, sources;
    for (const NamedChatTemplate& t : v.chat_templates) {
      names.push_back(t.name);
      sources.push_back(t.source);
    }
    m.set(kTemplateNames, std::move(names));
    m.set(kTemplateSources, std::move(sources));
  }
  for_each_plain_key(v, [&](const char* key, const auto& value) { m.set(key, value); });
  for (const FimRole& r : kFimRoles) m.set(r.key, v.fim.*r.member);
}

Result<Vocabulary> load_vocabulary(const format::Metadata& m, std::string_view file) {
  return detail::capture([&]() -> Vocabulary {
    Vocabulary v;
    const std::string& model = *get<std::string>(m, kModelKey, file, true);
    if (model == kModelNames[0]) {
      v.model = TokenizerModel::SentencePieceBpe;
    } else if (model == kModelNames[1]) {
      v.model = TokenizerModel::ByteLevelBpe;
    } else {
      detail::fail(ErrorCode::Unsupported, "{}: tokenizer.model '{}' is not supported", file,
                   model);
    }
    v.tokens = *get<std::vector<std::string>>(m, kTokens, file, true);
    const std::size_t n = v.tokens.size();
    const auto* scores = get<std::vector<float>>(m, kScores, file, true);
    const auto* types = get<std::vector<std::uint8_t>>(m, kTypes, file, true);
    check_len(scores, n, kScores, file);
    check_len(types, n, kTypes, file);
    v.scores = *scores;
    v.types.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint8_t t = (*types)[i];
      if (t < 1 || t > 6) {
        detail::fail(ErrorCode::Format, "{}: tokenizer.types[{}] = {} is not a token type", file, i,
                     t);
      }
      v.types[i] = static_cast<TokenType>(t);
    }
    if (const auto* merges = get<std::vector<std::uint32_t>>(m, kMerges, file, false)) {
      if (merges->size() % 2 != 0) {
        detail::fail(ErrorCode::Format, "{}: tokenizer.merges has an odd length {}", file,
                     merges->size());
      }
      v.merges.reserve(merges->size() / 2);
      for (std::size_t i = 0; i < merges->size(); i += 2) {
        const std::uint32_t a = (*merges)[i], b = (*merges)[i + 1];
        if (a >= n || b >= n) {
          detail::fail(ErrorCode::Format, "{}: tokenizer.merges[{}] = ({}, {}) is outside 0..{}",
                       file, i / 2, a, b, n - 1);
        }
        v.merges.emplace_back(static_cast<std::int32_t>(a), static_cast<std::int32_t>(b));
      }
    }
    if (const auto* ds = get<std::uint32_t>(m, kDecodeStrip, file, false)) {
      if (*ds > 2)
        detail::fail(ErrorCode::Format, "{}: tokenizer.decode_strip = {} is unknown", file, *ds);
      v.decode_strip = static_cast<DecodeStrip>(*ds);
    }

    const auto* nk = get<std::vector<std::uint8_t>>(m, kNormKinds, file, false);
    const std::size_t nn = nk ? nk->size() : 0;
    const auto* na = get<std::vector<std::string>>(m, kNormArgs, file, nn > 0);
    const auto* nr = get<std::vector<std::string>>(m, kNormReplacements, file, nn > 0);
    check_len(na, nn, kNormArgs, file);
    check_len(nr, nn, kNormReplacements, file);
    for (std::size_t i = 0; i < nn; ++i) {
      if ((*nk)[i] > 3) {
        detail::fail(ErrorCode::Format, "{}: tokenizer.normalizer.kinds[{}] = {} is unknown", file,
                     i, (*nk)[i]);
      }
      v.normalizer.push_back({static_cast<NormalizerKind>((*nk)[i]), (*na)[i], (*nr)[i]});
    }

    const auto* pk = get<std::vector<std::uint8_t>>(m, kPreKinds, file, false);
    const std::size_t np = pk ? pk->size() : 0;
    const auto* pat = get<std::vector<std::string>>(m, kPrePatterns, file, np > 0);
    const auto* pb = get<std::vector<std::uint8_t>>(m, kPreBehaviors, file, np > 0);
    const auto* pf = get<std::vector<std::uint8_t>>(m, kPreFlags, file, np > 0);
    const auto* pp = get<std::vector<std::uint8_t>>(m, kPrePrepend, file, np > 0);
    check_len(pat, np, kPrePatterns, file);
    check_len(pb, np, kPreBehaviors, file);
    check_len(pf, np, kPreFlags, file);
    check_len(pp, np, kPrePrepend, file);
    for (std::size_t i = 0; i < np; ++i) {
      if ((*pk)[i] > 3 || (*pb)[i] > 4 || (*pp)[i] > 2 || (*pf)[i] > 31) {
        detail::fail(ErrorCode::Format, "{}: tokenizer.pre_tokenizer step {} has invalid values",
                     file, i);
      }
      PreTokenizerStep s;
      s.kind = static_cast<PreTokenizerKind>((*pk)[i]);
      s.pattern = (*pat)[i];
      s.behavior = static_cast<SplitBehavior>((*pb)[i]);
      const std::uint8_t f = (*pf)[i];
      s.invert = f & kInvert;
      s.individual_digits = f & kIndividualDigits;
      s.add_prefix_space = f & kAddPrefixSpace;
      s.use_regex = f & kUseRegex;
      s.split = f & kSplit;
      s.prepend_scheme = static_cast<PrependScheme>((*pp)[i]);
      v.pre_tokenizer.push_back(std::move(s));
    }

    const auto* ids = get<std::vector<std::int32_t>>(m, kAddedIds, file, false);
    const std::size_t na_count = ids ? ids->size() : 0;
    const auto* af = get<std::vector<std::uint8_t>>(m, kAddedFlags, file, na_count > 0);
    check_len(af, na_count, kAddedFlags, file);
    for (std::size_t i = 0; i < na_count; ++i) {
      const std::int32_t id = (*ids)[i];
      if (id < 0 || static_cast<std::size_t>(id) >= n) {
        detail::fail(ErrorCode::Format, "{}: tokenizer.added.ids[{}] = {} is outside 0..{}", file,
                     i, id, n - 1);
      }
      const std::uint8_t f = (*af)[i];
      v.added_tokens.push_back({id, v.tokens[id], (f & kSpecial) != 0, (f & kLstrip) != 0,
                                (f & kRstrip) != 0, (f & kNormalized) != 0,
                                (f & kSingleWord) != 0});
    }
    for_each_plain_key(v, [&](const char* key, auto& value) {
      using T = std::decay_t<decltype(value)>;
      if (const T* p = get<T>(m, key, file, false)) value = *p;
    });
    const auto* tn = get<std::vector<std::string>>(m, kTemplateNames, file, false);
    const std::size_t nt = tn ? tn->size() : 0;
    const auto* ts = get<std::vector<std::string>>(m, kTemplateSources, file, nt > 0);
    check_len(ts, nt, kTemplateSources, file);
    for (std::size_t i = 0; i < nt; ++i) v.chat_templates.push_back({(*tn)[i], (*ts)[i]});
    // Files written before the FIM keys existed have none of them: detect the roles instead.
    bool any_fim_key = false;
    for (const FimRole& r : kFimRoles) any_fim_key = any_fim_key || m.contains(r.key);
    if (any_fim_key) {
      for (const FimRole& r : kFimRoles) {
        const auto* id = get<std::int32_t>(m, r.key, file, false);
        if (id == nullptr) continue;  // a role whose key is absent has no token
        if (*id < -1 || (*id >= 0 && static_cast<std::size_t>(*id) >= n)) {
          detail::fail(ErrorCode::Format,
                       "{}: metadata key {} = {} is outside the vocabulary of {} tokens", file,
                       r.key, *id, n);
        }
        v.fim.*r.member = *id;
      }
    } else {
      v.fim = detect_fim_tokens(v);
    }
    validate(v, file);
    return v;
  });
}

}  // namespace qlm
