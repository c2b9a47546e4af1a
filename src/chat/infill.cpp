// Infill (fill-in-the-middle) prompts: layout, token budget and the builder's cache
// (docs/chat.md, "Fill-in-the-middle").
#include "qlm/infill.hpp"

#include <algorithm>
#include <list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "qlm/tokenizer/vocabulary.hpp"
#include "tokenizer/access.hpp"
#include "util/fail.hpp"

namespace qlm {

namespace {

using Ids = std::vector<std::int32_t>;
using detail::TokenizerAccess;

// What llama.cpp puts before each extra chunk when the vocabulary has no file separator.
constexpr std::string_view kSnippetSeparator = "\n\n--- snippet ---\n\n";

// A text and its tokens, shared between the cache and the prompt being built.
struct Tokenized {
  std::string text;
  Ids ids;
  std::size_t bytes() const { return text.size() + ids.size() * sizeof(std::int32_t) + 64; }
};
using TokenizedPtr = std::shared_ptr<const Tokenized>;

// Least-recently-used map from text to its tokens, bounded by entry count and bytes.
class TextCache {
 public:
  explicit TextCache(InfillCacheLimits limits) : limits_(limits) {}

  TokenizedPtr find(std::string_view text) {
    const auto it = index_.find(text);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);  // most recently used first
    return *it->second;
  }

  void insert(TokenizedPtr entry) {
    if (limits_.max_entries == 0 || entry->bytes() > limits_.max_bytes) return;
    bytes_ += entry->bytes();
    order_.push_front(std::move(entry));
    index_.emplace(order_.front()->text, order_.begin());
    while (order_.size() > limits_.max_entries || bytes_ > limits_.max_bytes) {
      const TokenizedPtr& last = order_.back();
      bytes_ -= last->bytes();
      index_.erase(last->text);
      order_.pop_back();  // a prompt being built keeps its own reference
    }
  }

  std::size_t size() const { return order_.size(); }
  std::size_t bytes() const { return bytes_; }
  void clear() {
    index_.clear();
    order_.clear();
    bytes_ = 0;
  }

 private:
  InfillCacheLimits limits_;
  std::list<TokenizedPtr> order_;
  // Keys view the text inside the entries, which the list keeps alive and in place.
  std::unordered_map<std::string_view, std::list<TokenizedPtr>::iterator> index_;
  std::size_t bytes_ = 0;
};

// Splits `avail` tokens between a prefix of `np` and a suffix of `ns` tokens, 3:1, giving a side
// the share the other one does not need. Returns {prefix kept, suffix kept}.
std::pair<std::size_t, std::size_t> split_local(std::size_t np, std::size_t ns, std::size_t avail) {
  if (np + ns <= avail) return {np, ns};
  const std::size_t suffix_share = avail / 4;
  const std::size_t prefix_share = avail - suffix_share;
  if (ns <= suffix_share) return {avail - ns, ns};
  if (np <= prefix_share) return {np, avail - np};
  return {prefix_share, suffix_share};
}

bool is_continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

// Whether `s` ends inside a UTF-8 character (a lead byte whose continuation bytes are missing).
bool ends_mid_character(std::string_view s) {
  for (std::size_t k = 1; k <= 4 && k <= s.size(); ++k) {
    const auto c = static_cast<unsigned char>(s[s.size() - k]);
    if (is_continuation(c)) continue;
    const std::size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > k;
  }
  return false;
}

}  // namespace

struct InfillPromptBuilder::State {
  Tokenizer tokenizer;
  FimTokens fim;
  InfillOptions options;
  TextCache cache;
  detail::BpeWordCache words;
  Ids blocked;  // the FIM tokens: never produced from the caller's text
  Ids end_ids;
  std::int32_t bos = -1;  // -1 unless the vocabulary says to add it
  bool use_words;

  State(const Tokenizer& t, InfillOptions o, InfillCacheLimits limits)
      : tokenizer(t),
        fim(t.vocabulary().fim),
        options(o),
        cache(limits),
        words(limits.max_words),
        use_words(limits.max_words > 0) {}

  Ids encode(std::string_view text) {
    return TokenizerAccess::encode_text(tokenizer, text, blocked, use_words ? &words : nullptr);
  }

  // The tokens of `text`, from the cache when it has them.
  TokenizedPtr tokenized(std::string_view text) {
    if (TokenizedPtr hit = cache.find(text)) return hit;
    auto entry = std::make_shared<Tokenized>();
    entry->text = std::string(text);
    entry->ids = encode(text);
    TokenizedPtr p = std::move(entry);
    cache.insert(p);
    return p;
  }

  InfillPrompt build(const InfillRequest& rq);
};

namespace {

void check_options(const InfillOptions& o) {
  if (o.max_tokens < 1) {
    detail::fail(ErrorCode::InvalidArgument, "infill: max_tokens is {}; it must be at least 1",
                 o.max_tokens);
  }
  if (o.max_local_tokens < 0) {
    detail::fail(ErrorCode::InvalidArgument, "infill: max_local_tokens is {}; it must be 0 or more",
                 o.max_local_tokens);
  }
  if (o.order != InfillOrder::PrefixSuffixMiddle && o.order != InfillOrder::SuffixPrefixMiddle) {
    detail::fail(ErrorCode::InvalidArgument, "infill: invalid order {}",
                 static_cast<unsigned>(o.order));
  }
}

std::unique_ptr<InfillPromptBuilder::State> make_state(const Tokenizer& tokenizer,
                                                       const InfillOptions& options,
                                                       InfillCacheLimits limits) {
  check_options(options);
  const Vocabulary& v = tokenizer.vocabulary();
  const FimTokens& f = v.fim;
  if (!f.has_infill()) {
    std::string missing;
    for (const auto& [id, name] : {std::pair{f.prefix, "prefix"}, std::pair{f.suffix, "suffix"},
                                   std::pair{f.middle, "middle"}}) {
      if (id >= 0) continue;
      if (!missing.empty()) missing += ", ";
      missing += name;
    }
    detail::fail(ErrorCode::Unsupported,
                 "infill: the vocabulary has no fill-in-the-middle token for: {} (this is not a "
                 "FIM model, or its FIM tokens are spelled in a way qlm does not know)",
                 missing);
  }
  auto st = std::make_unique<InfillPromptBuilder::State>(tokenizer, options, limits);
  for (const std::int32_t id : {f.prefix, f.suffix, f.middle, f.pad, f.repo_name, f.file_sep}) {
    if (id >= 0 && std::find(st->blocked.begin(), st->blocked.end(), id) == st->blocked.end())
      st->blocked.push_back(id);
  }
  const auto add_end = [&](std::int32_t id) {
    if (id >= 0 && std::find(st->end_ids.begin(), st->end_ids.end(), id) == st->end_ids.end())
      st->end_ids.push_back(id);
  };
  add_end(v.eos_id);
  for (const std::int32_t id : v.eos_ids) add_end(id);
  add_end(f.pad);
  add_end(f.repo_name);
  add_end(f.file_sep);
  if (v.add_bos) st->bos = v.bos_id;
  return st;
}

// Where a prefix of `ids` that keeps its last `keep` tokens starts, moved on past tokens that
// begin inside a UTF-8 character.
std::size_t prefix_cut(const Tokenizer& t, const Ids& ids, std::size_t keep) {
  std::size_t start = ids.size() - keep;
  if (start == 0) return 0;
  for (; start < ids.size(); ++start) {
    const std::string_view bytes = TokenizerAccess::token_bytes(t, ids[start]);
    if (bytes.empty() || !is_continuation(static_cast<unsigned char>(bytes[0]))) break;
  }
  return start;
}

// How many of the first `keep` tokens of a suffix to keep so that it does not end inside a UTF-8
// character.
std::size_t suffix_cut(const Tokenizer& t, const Ids& ids, std::size_t keep) {
  if (keep == ids.size()) return keep;
  std::string tail;
  for (; keep > 0; --keep) {
    tail.clear();  // the last bytes kept, enough to see a split character
    for (std::size_t k = keep; k > 0 && tail.size() < 4; --k)
      tail.insert(0, TokenizerAccess::token_bytes(t, ids[k - 1]));
    if (!ends_mid_character(tail)) break;
  }
  return keep;
}

// Ids and text appended side by side.
struct Output {
  const Tokenizer& tokenizer;
  InfillPrompt& prompt;
  void token(std::int32_t id) {
    prompt.ids.push_back(id);
    prompt.text += TokenizerAccess::token_bytes(tokenizer, id);
  }
  void part(const Tokenized& t) {
    prompt.ids.insert(prompt.ids.end(), t.ids.begin(), t.ids.end());
    prompt.text += t.text;
  }
};

}  // namespace

InfillPrompt InfillPromptBuilder::State::build(const InfillRequest& rq) {
  const InfillOptions& o = options;
  const bool has_sep = fim.file_sep >= 0;
  const bool repo_line = fim.repo_name >= 0 && !rq.repo_name.empty();
  const bool file_line = has_sep && !rq.filename.empty();

  // Tokenize every part; the ones that rarely change come from the cache.
  const auto line = [&](std::string_view s) {
    std::string text;
    text.reserve(s.size() + 1);
    text.append(s);
    text += '\n';
    return tokenized(text);
  };
  Tokenized prefix{rq.prefix, encode(rq.prefix)};
  const TokenizedPtr suffix = tokenized(rq.suffix);
  const Tokenized typed{rq.typed, encode(rq.typed)};
  const TokenizedPtr repo = repo_line ? line(rq.repo_name) : nullptr;
  const TokenizedPtr file = file_line ? line(rq.filename) : nullptr;
  const TokenizedPtr snippet_sep =
      has_sep || rq.extra.empty() ? nullptr : tokenized(kSnippetSeparator);
  // An extra chunk: a header ("filename\n" after the file separator, or the snippet separator),
  // its text, and the tokens both take (the file separator included).
  struct Chunk {
    TokenizedPtr header, text;
    std::size_t size;
  };
  std::vector<Chunk> chunks;
  chunks.reserve(rq.extra.size());
  for (const InfillChunk& c : rq.extra) {
    Chunk ch{has_sep ? line(c.filename) : snippet_sep, tokenized(c.text), 0};
    ch.size = (has_sep ? 1 : 0) + ch.header->ids.size() + ch.text->ids.size();
    chunks.push_back(std::move(ch));
  }

  // The budget. Never cut: BOS, the three FIM tokens, the typed text, the repo and file lines.
  const auto budget = static_cast<std::size_t>(o.max_tokens);
  const std::size_t fixed = (bos >= 0 ? 1 : 0) + 3 + typed.ids.size() +
                            (repo ? 1 + repo->ids.size() : 0) + (file ? 1 + file->ids.size() : 0);
  if (fixed > budget) {
    detail::fail(ErrorCode::InvalidArgument,
                 "infill: max_tokens = {} cannot hold the {} tokens that are never cut (BOS, FIM "
                 "tokens, typed text, repo and file-name lines)",
                 budget, fixed);
  }
  std::size_t avail = budget - fixed;
  // Prefix and suffix first, 3:1 when they must be cut; then extra chunks, newest first.
  std::size_t local = avail;
  if (o.max_local_tokens > 0) local = std::min(local, static_cast<std::size_t>(o.max_local_tokens));
  auto [np, ns] = split_local(prefix.ids.size(), suffix->ids.size(), local);
  // Cuts fall on token boundaries that are also character boundaries, so the text stays UTF-8.
  np = prefix.ids.size() - prefix_cut(tokenizer, prefix.ids, np);
  ns = suffix_cut(tokenizer, suffix->ids, ns);
  avail -= np + ns;
  std::size_t first_chunk = chunks.size();  // chunks [first_chunk, end) are kept
  while (first_chunk > 0 && chunks[first_chunk - 1].size <= avail) {
    avail -= chunks[--first_chunk].size;
  }

  InfillPrompt out;
  out.end_ids = end_ids;
  out.prefix_tokens_cut = prefix.ids.size() - np;
  out.suffix_tokens_cut = suffix->ids.size() - ns;
  out.chunks_dropped = first_chunk;
  if (np < prefix.ids.size()) {
    Tokenized cut;
    cut.ids.assign(prefix.ids.end() - static_cast<std::ptrdiff_t>(np), prefix.ids.end());
    // Raw bytes: the first kept token's leading space is real text, not a dummy prefix.
    for (const std::int32_t id : cut.ids) cut.text += TokenizerAccess::token_bytes(tokenizer, id);
    prefix = std::move(cut);
  }
  Tokenized suffix_cut;
  const Tokenized* suffix_part = suffix.get();
  if (ns < suffix->ids.size()) {
    suffix_cut.ids.assign(suffix->ids.begin(),
                          suffix->ids.begin() + static_cast<std::ptrdiff_t>(ns));
    suffix_cut.text = tokenizer.decode(suffix_cut.ids);
    suffix_part = &suffix_cut;
  }

  std::size_t text_size = prefix.text.size() + suffix_part->text.size() + typed.text.size() + 64;
  for (std::size_t i = first_chunk; i < chunks.size(); ++i)
    text_size += chunks[i].header->text.size() + chunks[i].text->text.size() + 16;
  out.text.reserve(text_size);
  out.ids.reserve(budget);
  Output w{tokenizer, out};
  if (bos >= 0) w.token(bos);
  if (repo) {
    w.token(fim.repo_name);
    w.part(*repo);
  }
  for (std::size_t i = first_chunk; i < chunks.size(); ++i) {
    if (has_sep) w.token(fim.file_sep);
    w.part(*chunks[i].header);
    w.part(*chunks[i].text);
  }
  if (file) {
    w.token(fim.file_sep);
    w.part(*file);
  }
  const auto prefix_part = [&] {
    w.token(fim.prefix);
    w.part(prefix);
  };
  const auto suffix_part_out = [&] {
    w.token(fim.suffix);
    w.part(*suffix_part);
  };
  if (o.order == InfillOrder::PrefixSuffixMiddle) {
    prefix_part();
    suffix_part_out();
  } else {
    suffix_part_out();
    prefix_part();
  }
  w.token(fim.middle);
  w.part(typed);
  return out;
}

Result<InfillPrompt> build_infill_prompt(const Tokenizer& tokenizer, const InfillRequest& request,
                                         const InfillOptions& options) {
  return detail::capture([&] {
    // No cache: every text is tokenized once anyway.
    auto st = make_state(tokenizer, options, {.max_entries = 0, .max_bytes = 0, .max_words = 0});
    return st->build(request);
  });
}

Result<InfillPromptBuilder> InfillPromptBuilder::create(const Tokenizer& tokenizer,
                                                        InfillOptions options,
                                                        InfillCacheLimits limits) {
  return detail::capture(
      [&] { return InfillPromptBuilder(make_state(tokenizer, options, limits)); });
}

Result<InfillPrompt> InfillPromptBuilder::build(const InfillRequest& request) {
  return detail::capture([&] { return state_->build(request); });
}

const InfillOptions& InfillPromptBuilder::options() const {
  return state_->options;
}

Result<void> InfillPromptBuilder::set_options(const InfillOptions& options) {
  return detail::capture([&] {
    check_options(options);
    state_->options = options;
  });
}

std::size_t InfillPromptBuilder::cached_entries() const {
  return state_->cache.size();
}
std::size_t InfillPromptBuilder::cached_bytes() const {
  return state_->cache.bytes();
}
void InfillPromptBuilder::clear_cache() {
  state_->cache.clear();
  state_->words.clear();
}

InfillPromptBuilder::InfillPromptBuilder(std::unique_ptr<State> state) : state_(std::move(state)) {}
InfillPromptBuilder::InfillPromptBuilder(InfillPromptBuilder&&) noexcept = default;
InfillPromptBuilder& InfillPromptBuilder::operator=(InfillPromptBuilder&&) noexcept = default;
InfillPromptBuilder::~InfillPromptBuilder() = default;

}  // namespace qlm
