// Tokenizer: added-token splitting, normalise -> pre-tokenise -> BPE, decoding and streaming.
#include "qlm/tokenizer.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include "tokenizer/access.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/pretokenize.hpp"
#include "tokenizer/text.hpp"
#include "util/fail.hpp"

namespace qlm {

// Decoder state for the dummy-prefix rule: whether any token / any byte has been produced.
struct DecodeState {
  bool any_token = false;
  bool any_text = false;
};

struct Tokenizer::Impl {
  struct Added {
    std::string_view content;
    std::int32_t id;
    bool special, lstrip, rstrip;
  };
  // Added tokens bucketed by first byte, longest first, for leftmost-longest matching.
  using AddedTable = std::array<std::vector<Added>, 256>;

  Vocabulary vocab;
  detail::Bpe bpe;
  detail::PreTokenizer pre;
  AddedTable raw_added, normalized_added;
  bool has_raw_added = false, has_normalized_added = false;
  // id -> decoded bytes, as one buffer and n + 1 offsets: per-id std::strings would cost
  // 32 bytes of header each (1.6 MB for a 49k vocabulary) on top of the text itself.
  std::string text_bytes;
  std::vector<std::uint32_t> text_offsets;
  std::string_view text(std::int32_t id) const {
    return std::string_view(text_bytes)
        .substr(text_offsets[id], text_offsets[id + 1] - text_offsets[id]);
  }
  std::vector<std::uint8_t> special;     // id -> dropped by skip_special
  std::vector<std::uint8_t> strippable;  // id -> its leading ' ' is a dummy prefix
};

namespace {

using Impl = Tokenizer::Impl;

bool whitespace_at(std::string_view s, std::size_t i, std::size_t& len) {
  len = detail::utf8_char_len(s, i);
  return len != 0 && detail::is_unicode_whitespace(detail::utf8_decode(s, i, len));
}

// Start of the whitespace run that ends at `end`, not going below `floor`.
std::size_t skip_space_back(std::string_view s, std::size_t end, std::size_t floor) {
  while (end > floor) {
    std::size_t q = end - 1;
    while (q > floor && end - q < 4 && (static_cast<unsigned char>(s[q]) & 0xC0) == 0x80) --q;
    std::size_t len = 0;
    if (!whitespace_at(s, q, len) || q + len != end) break;
    end = q;
  }
  return end;
}

std::size_t skip_space_forward(std::string_view s, std::size_t i) {
  std::size_t len = 0;
  while (i < s.size() && whitespace_at(s, i, len)) i += len;
  return i;
}

// Splits `s` at added tokens (leftmost-longest); calls on_text(begin, end) for the text between
// matches and on_token(id) for each match, honouring lstrip/rstrip. Tokens in `blocked` never
// match.
template <class OnText, class OnToken>
void split_added(std::string_view s, const Impl::AddedTable& table, bool parse_special,
                 std::span<const std::int32_t> blocked, OnText&& on_text, OnToken&& on_token) {
  std::size_t prev = 0, i = 0;
  while (i < s.size()) {
    const Impl::Added* best = nullptr;
    for (const Impl::Added& a : table[static_cast<unsigned char>(s[i])]) {
      if (a.special && !parse_special) continue;
      if (s.compare(i, a.content.size(), a.content) == 0) {
        if (std::find(blocked.begin(), blocked.end(), a.id) != blocked.end()) continue;
        best = &a;  // candidates are sorted longest first
        break;
      }
    }
    if (best == nullptr) {
      ++i;
      continue;
    }
    const std::size_t begin = best->lstrip ? skip_space_back(s, i, prev) : i;
    std::size_t end = i + best->content.size();
    if (best->rstrip) end = skip_space_forward(s, end);
    if (begin > prev) on_text(prev, begin);
    on_token(best->id);
    prev = i = end;
  }
  if (s.size() > prev) on_text(prev, s.size());
}

void build_table(Impl::AddedTable& table, const std::vector<AddedToken>& added, bool normalized) {
  for (const AddedToken& a : added) {
    if (a.normalized != normalized) continue;
    table[static_cast<unsigned char>(a.content[0])].push_back(
        {a.content, a.id, a.special, a.lstrip, a.rstrip});
  }
  for (auto& bucket : table) {
    std::stable_sort(bucket.begin(), bucket.end(), [](const auto& x, const auto& y) {
      return x.content.size() > y.content.size();
    });
  }
}

// Decoded bytes of one normal piece.
std::string piece_text(const Vocabulary& v, std::int32_t id) {
  const std::string& p = v.tokens[id];
  const TokenType t = v.types[id];
  if (t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown) return p;
  if (v.model == TokenizerModel::ByteLevelBpe) {
    const auto& map = detail::byte_level_map();
    std::string out;
    for (std::size_t i = 0; i < p.size();) {
      const std::size_t n = detail::utf8_char_len(p, i);
      const char32_t cp = n == 0 ? 0x110000 : detail::utf8_decode(p, i, n);
      if (cp >= map.to_byte.size() || map.to_byte[cp] < 0) return p;  // not a byte-level piece
      out += static_cast<char>(map.to_byte[cp]);
      i += n;
    }
    return out;
  }
  if (t == TokenType::Byte && p.size() == 6 && p.starts_with("<0x") && p.ends_with('>')) {
    return std::string(1, static_cast<char>(std::stoi(p.substr(3, 2), nullptr, 16)));
  }
  std::string out;
  for (std::size_t i = 0; i < p.size();) {
    if (p.compare(i, 3, "\xE2\x96\x81") == 0) {  // "▁"
      out += ' ';
      i += 3;
    } else {
      out += p[i++];
    }
  }
  return out;
}

// Length of the tail of `s` that is an incomplete (but so far valid) UTF-8 character.
std::size_t incomplete_tail(std::string_view s) {
  for (std::size_t k = 1; k <= 3 && k <= s.size(); ++k) {
    const auto c = static_cast<unsigned char>(s[s.size() - k]);
    if ((c & 0xC0) == 0x80) continue;
    std::size_t need = 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    if (c >= 0xE0 && c <= 0xEF) need = 3;
    if (c >= 0xF0 && c <= 0xF4) need = 4;
    if (need <= k) return 0;
    // Padding with a valid continuation tells whether what is there is a valid prefix.
    std::string probe(s.substr(s.size() - k));
    probe.append(need - k, '\x80');
    if (k == 1 && (c == 0xE0 || c == 0xF0)) probe[1] = static_cast<char>(0xA0);
    if (k == 1 && c == 0xF0) probe[1] = static_cast<char>(0x90);
    return detail::utf8_char_len(probe, 0) == need ? k : 0;
  }
  return 0;
}

void append_token(const Impl& impl, std::int32_t id, bool skip_special, DecodeState& st,
                  std::string& out) {
  if (id < 0 || static_cast<std::size_t>(id) >= impl.special.size()) return;
  if (skip_special && impl.special[id]) return;
  std::string_view t = impl.text(id);
  const DecodeStrip mode = impl.vocab.decode_strip;
  const bool at_start = mode == DecodeStrip::WhileEmpty ? !st.any_text : !st.any_token;
  if (mode != DecodeStrip::None && at_start && impl.strippable[id] && t.starts_with(' ')) {
    t.remove_prefix(1);
  }
  st.any_token = true;
  st.any_text = st.any_text || !t.empty();
  out.append(t);
}

}  // namespace

Result<Tokenizer> Tokenizer::create(Vocabulary vocab) {
  return detail::capture([&]() -> Tokenizer {
    detail::unwrap(validate_vocabulary(vocab, "vocabulary"));
    auto impl = std::make_shared<Impl>();
    impl->vocab = std::move(vocab);
    const Vocabulary& v = impl->vocab;
    impl->bpe = detail::Bpe::create(v, "vocabulary");
    impl->pre = detail::PreTokenizer::create(v.pre_tokenizer, "vocabulary");
    build_table(impl->raw_added, v.added_tokens, false);
    build_table(impl->normalized_added, v.added_tokens, true);
    for (const AddedToken& a : v.added_tokens) {
      (a.normalized ? impl->has_normalized_added : impl->has_raw_added) = true;
    }
    const std::size_t n = v.tokens.size();
    std::vector<const AddedToken*> added(n, nullptr);
    for (const AddedToken& a : v.added_tokens) added[a.id] = &a;
    impl->special.assign(n, 0);
    impl->strippable.assign(n, 0);
    impl->text_offsets.reserve(n + 1);
    impl->text_offsets.push_back(0);
    for (std::size_t id = 0; id < n; ++id) {
      const auto i = static_cast<std::int32_t>(id);
      if (const AddedToken* a = added[id]) {
        impl->text_bytes += a->content;  // added tokens decode verbatim
        impl->special[id] = a->special;
      } else {
        impl->text_bytes += piece_text(v, i);
        impl->special[id] = v.types[id] == TokenType::Control;
        impl->strippable[id] = v.types[id] == TokenType::Normal || v.types[id] == TokenType::Unused;
      }
      if (impl->text_bytes.size() > std::numeric_limits<std::uint32_t>::max()) {
        detail::fail(ErrorCode::Format, "vocabulary: decoded text exceeds 4 GiB");
      }
      impl->text_offsets.push_back(static_cast<std::uint32_t>(impl->text_bytes.size()));
    }
    impl->text_bytes.shrink_to_fit();
    return Tokenizer(std::move(impl));
  });
}

namespace {

// Tokenizer::encode's body; may throw (allocation, a regex engine error), which encode() turns
// into an Error. `blocked` and `cache`: see detail::TokenizerAccess::encode_text.
std::vector<std::int32_t> encode_ids(const Tokenizer::Impl& im, std::string_view text,
                                     EncodeOptions opts, std::span<const std::int32_t> blocked = {},
                                     detail::BpeWordCache* cache = nullptr) {
  const Vocabulary& v = im.vocab;
  std::vector<std::int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (opts.add_special && v.add_bos && v.bos_id >= 0) out.push_back(v.bos_id);
  detail::BpeScratch scratch;
  std::vector<std::string> words;
  const auto encode_normalized = [&](std::string_view s, bool at_start) {
    words.clear();
    im.pre.run(std::string(s), at_start, words);
    if (cache == nullptr) {
      for (const std::string& w : words) im.bpe.encode_word(w, scratch, out);
      return;
    }
    std::vector<std::int32_t> word_ids;
    for (const std::string& w : words) {
      if (const std::vector<std::int32_t>* hit = cache->find(w)) {
        out.insert(out.end(), hit->begin(), hit->end());
        continue;
      }
      word_ids.clear();
      im.bpe.encode_word(w, scratch, word_ids);
      out.insert(out.end(), word_ids.begin(), word_ids.end());
      cache->insert(w, word_ids);
    }
  };
  const auto on_token = [&](std::int32_t id) { out.push_back(id); };
  const auto on_text = [&](std::size_t b, std::size_t e) {
    const std::string norm = detail::normalize(v.normalizer, text.substr(b, e - b));
    if (norm.empty()) return;
    if (!im.has_normalized_added) {
      encode_normalized(norm, b == 0);
      return;
    }
    split_added(
        norm, im.normalized_added, opts.parse_special, blocked,
        [&](std::size_t nb, std::size_t ne) {
          encode_normalized(std::string_view(norm).substr(nb, ne - nb), b == 0 && nb == 0);
        },
        on_token);
  };
  if (im.has_raw_added) {
    split_added(text, im.raw_added, opts.parse_special, blocked, on_text, on_token);
  } else if (!text.empty()) {
    on_text(0, text.size());
  }
  if (opts.add_special && v.add_eos && v.eos_id >= 0) out.push_back(v.eos_id);
  return out;
}

}  // namespace

Result<std::vector<std::int32_t>> Tokenizer::encode(std::string_view text,
                                                    EncodeOptions opts) const {
  return detail::capture([&] { return encode_ids(*impl_, text, opts); });
}

std::vector<std::int32_t> detail::TokenizerAccess::encode_text(
    const Tokenizer& tokenizer, std::string_view text, std::span<const std::int32_t> blocked,
    BpeWordCache* cache) {
  return encode_ids(*tokenizer.impl_, text, {.add_special = false, .parse_special = false}, blocked,
                    cache);
}

std::string_view detail::TokenizerAccess::token_bytes(const Tokenizer& tokenizer, std::int32_t id) {
  const Impl& im = *tokenizer.impl_;
  return id < 0 || static_cast<std::size_t>(id) >= im.special.size() ? std::string_view{}
                                                                     : im.text(id);
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, bool skip_special) const {
  std::string out;
  DecodeState st;
  for (const std::int32_t id : ids) append_token(*impl_, id, skip_special, st, out);
  return out;
}

std::string_view Tokenizer::piece(std::int32_t id) const {
  const auto& t = impl_->vocab.tokens;
  return id < 0 || static_cast<std::size_t>(id) >= t.size() ? std::string_view{} : t[id];
}

std::int32_t Tokenizer::size() const {
  return static_cast<std::int32_t>(impl_->vocab.tokens.size());
}
std::int32_t Tokenizer::bos() const {
  return impl_->vocab.bos_id;
}
std::int32_t Tokenizer::eos() const {
  return impl_->vocab.eos_id;
}

bool Tokenizer::is_end_of_generation(std::int32_t id) const {
  const Vocabulary& v = impl_->vocab;
  return id >= 0 &&
         (id == v.eos_id || std::find(v.eos_ids.begin(), v.eos_ids.end(), id) != v.eos_ids.end());
}

bool Tokenizer::is_special(std::int32_t id) const {
  return id >= 0 && static_cast<std::size_t>(id) < impl_->special.size() && impl_->special[id];
}

const Vocabulary& Tokenizer::vocabulary() const {
  return impl_->vocab;
}

TokenStreamDecoder::TokenStreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : impl_(tokenizer.impl_), skip_special_(skip_special) {}

void TokenStreamDecoder::skip(std::span<const std::int32_t> ids) {
  DecodeState st{any_token_, any_text_};
  std::string discard;
  for (const std::int32_t id : ids) {
    if (st.any_token && st.any_text) break;  // the only state that matters is saturated
    discard.clear();
    append_token(*impl_, id, skip_special_, st, discard);
  }
  any_token_ = st.any_token;
  any_text_ = st.any_text;
  pending_.clear();  // an incomplete character of the context belongs to the context's text
}

std::string TokenStreamDecoder::push(std::int32_t id) {
  DecodeState st{any_token_, any_text_};
  append_token(*impl_, id, skip_special_, st, pending_);
  any_token_ = st.any_token;
  any_text_ = st.any_text;
  const std::size_t keep = incomplete_tail(pending_);
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string TokenStreamDecoder::flush() {
  std::string out = std::move(pending_);
  pending_.clear();
  any_token_ = any_text_ = false;
  return out;
}

}  // namespace qlm
