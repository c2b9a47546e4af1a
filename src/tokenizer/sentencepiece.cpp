// SentencePiece tokenizer.model reader: a minimal, bounds-checked protobuf wire-format parser.
#include <cstring>

#include "qlm/tokenizer/hf_tokenizer.hpp"
#include "util/fail.hpp"

namespace qlm {
namespace {

// Reads protobuf wire format; every length is checked against the remaining bytes.
class Wire {
 public:
  Wire(std::span<const std::uint8_t> b, std::string_view file, std::string_view what)
      : b_(b), file_(file), what_(what) {}
  bool done() const { return pos_ >= b_.size(); }

  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= b_.size()) bad("truncated varint");
      const std::uint8_t c = b_[pos_++];
      v |= static_cast<std::uint64_t>(c & 0x7F) << shift;
      if ((c & 0x80) == 0) return v;
    }
    bad("varint longer than 10 bytes");
  }
  std::span<const std::uint8_t> bytes() {
    const std::uint64_t n = varint();
    if (n > b_.size() - pos_)
      bad(fmt::format("length {} exceeds the {} bytes left", n, b_.size() - pos_));
    auto s = b_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::uint32_t fixed32() {
    if (b_.size() - pos_ < 4) bad("truncated fixed32");
    std::uint32_t v;
    std::memcpy(&v, b_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  void skip(std::uint32_t wire) {
    switch (wire) {
      case 0:
        varint();
        break;
      case 1:
        if (b_.size() - pos_ < 8) bad("truncated fixed64");
        pos_ += 8;
        break;
      case 2:
        bytes();
        break;
      case 5:
        fixed32();
        break;
      default:
        bad(fmt::format("unsupported wire type {}", wire));
    }
  }
  [[noreturn]] void bad(std::string_view why) const {
    detail::fail(ErrorCode::Format, "{}: malformed {} at byte {}: {}", file_, what_, pos_, why);
  }

 private:
  std::span<const std::uint8_t> b_;
  std::size_t pos_ = 0;
  std::string_view file_, what_;
};

std::string_view as_text(std::span<const std::uint8_t> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

Vocabulary parse(std::span<const std::uint8_t> bytes, std::string_view file) {
  Vocabulary v;
  std::uint64_t model_type = 1;  // proto default: UNIGRAM
  bool add_dummy_prefix = true, remove_extra_ws = true, escape_ws = true;
  std::int64_t ids[4] = {0, 1, 2, -1};  // unk, bos, eos, pad defaults
  Wire top(bytes, file, "ModelProto");
  while (!top.done()) {
    const std::uint64_t tag = top.varint();
    const auto field = tag >> 3;
    const auto wire = static_cast<std::uint32_t>(tag & 7);
    if (field == 1 && wire == 2) {
      Wire p(top.bytes(), file, "SentencePiece");
      std::string piece;
      float score = 0;
      std::uint64_t type = 1;
      while (!p.done()) {
        const std::uint64_t t = p.varint();
        if (t == (1 << 3 | 2)) {
          piece = as_text(p.bytes());
        } else if (t == (2 << 3 | 5)) {
          const std::uint32_t raw = p.fixed32();
          std::memcpy(&score, &raw, 4);
        } else if (t == (3 << 3 | 0)) {
          type = p.varint();
        } else {
          p.skip(static_cast<std::uint32_t>(t & 7));
        }
      }
      if (type < 1 || type > 6) {
        detail::fail(ErrorCode::Format, "{}: piece {} ('{}') has invalid type {}", file,
                     v.tokens.size(), piece, type);
      }
      v.tokens.push_back(std::move(piece));
      v.scores.push_back(score);
      v.types.push_back(static_cast<TokenType>(type));
    } else if (field == 2 && wire == 2) {
      Wire t(top.bytes(), file, "TrainerSpec");
      while (!t.done()) {
        const std::uint64_t tt = t.varint();
        const auto f = tt >> 3;
        const auto w = static_cast<std::uint32_t>(tt & 7);
        if (w != 0) {
          t.skip(w);
          continue;
        }
        const std::uint64_t val = t.varint();
        if (f == 3) model_type = val;
        if (f == 35) v.byte_fallback = val != 0;
        if (f == 24 && val != 0) {
          detail::fail(ErrorCode::Unsupported, "{}: treat_whitespace_as_suffix is not supported",
                       file);
        }
        if (f >= 40 && f <= 43)
          ids[f - 40] = static_cast<std::int32_t>(static_cast<std::uint32_t>(val));
      }
    } else if (field == 3 && wire == 2) {
      Wire n(top.bytes(), file, "NormalizerSpec");
      while (!n.done()) {
        const std::uint64_t tt = n.varint();
        const auto f = tt >> 3;
        const auto w = static_cast<std::uint32_t>(tt & 7);
        if (f == 2 && w == 2) {
          if (!n.bytes().empty()) {
            detail::fail(ErrorCode::Unsupported,
                         "{}: SentencePiece normalization rules (precompiled_charsmap) are not "
                         "supported; only the identity normalizer is",
                         file);
          }
        } else if (w == 0 && f >= 3 && f <= 5) {
          const bool val = n.varint() != 0;
          (f == 3 ? add_dummy_prefix : f == 4 ? remove_extra_ws : escape_ws) = val;
        } else {
          n.skip(w);
        }
      }
    } else {
      top.skip(wire);
    }
  }
  if (v.tokens.empty())
    detail::fail(ErrorCode::Format, "{}: no pieces (not a SentencePiece model?)", file);
  if (model_type != 2) {
    constexpr std::string_view names[] = {"?", "unigram", "bpe", "word", "char"};
    detail::fail(ErrorCode::Unsupported,
                 "{}: SentencePiece model type {} ({}) is not supported; only BPE is", file,
                 model_type, model_type < 5 ? names[model_type] : "?");
  }
  v.model = TokenizerModel::SentencePieceBpe;
  if (remove_extra_ws) v.normalizer.push_back({NormalizerKind::CollapseSpaces, "", ""});
  if (add_dummy_prefix) v.normalizer.push_back({NormalizerKind::Prepend, "\xE2\x96\x81", ""});
  if (escape_ws) v.normalizer.push_back({NormalizerKind::Replace, " ", "\xE2\x96\x81"});
  if (add_dummy_prefix || remove_extra_ws) v.decode_strip = DecodeStrip::WhileEmpty;
  const auto n = static_cast<std::int64_t>(v.tokens.size());
  std::int32_t* dst[4] = {&v.unk_id, &v.bos_id, &v.eos_id, &v.pad_id};
  constexpr std::string_view names[] = {"unk_id", "bos_id", "eos_id", "pad_id"};
  for (int i = 0; i < 4; ++i) {
    if (ids[i] < -1 || ids[i] >= n) {
      detail::fail(ErrorCode::Format, "{}: {} {} is outside the {} pieces", file, names[i], ids[i],
                   n);
    }
    *dst[i] = static_cast<std::int32_t>(ids[i]);
  }
  v.add_bos = v.bos_id >= 0;
  if (v.eos_id >= 0) v.eos_ids.push_back(v.eos_id);
  for (std::size_t id = 0; id < v.tokens.size(); ++id) {
    const TokenType t = v.types[id];
    if (v.tokens[id].empty()) continue;
    // Control and unknown pieces act like HF special tokens; user-defined pieces are matched
    // inside the normalised text, as SentencePiece does.
    if (t == TokenType::Control || t == TokenType::Unknown || t == TokenType::UserDefined) {
      AddedToken a;
      a.id = static_cast<std::int32_t>(id);
      a.content = v.tokens[id];
      a.special = t != TokenType::UserDefined;
      a.normalized = t == TokenType::UserDefined;
      v.added_tokens.push_back(std::move(a));
    }
  }
  return v;
}

}  // namespace

Result<Vocabulary> parse_sentencepiece_model(std::span<const std::uint8_t> bytes,
                                             std::string_view file) {
  return detail::capture([&] { return parse(bytes, file); });
}

}  // namespace qlm
