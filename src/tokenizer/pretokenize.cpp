// Normaliser steps and pre-tokeniser steps with Hugging Face tokenizers' splitting semantics.
#include "tokenizer/pretokenize.hpp"

#include "util/fail.hpp"

namespace qlm::detail {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  std::size_t i = 0;
  while (true) {
    const std::size_t j = s.find(from, i);
    if (j == std::string::npos) break;
    out.append(s, i, j - i);
    out.append(to);
    i = j + from.size();
  }
  if (i == 0) return;
  out.append(s, i, std::string::npos);
  s = std::move(out);
}

// SentencePiece's remove_extra_whitespaces: drop leading/trailing ' ', squeeze inner runs.
std::string collapse_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool prev_space = true;
  for (const char c : s) {
    if (c == ' ') {
      if (!prev_space) out += ' ';
      prev_space = true;
    } else {
      out += c;
      prev_space = false;
    }
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

struct Piece {
  std::string text;
  bool at_start;
};

// One part of a piece after matching: a byte range and whether it was a match (delimiter).
struct Part {
  std::size_t begin, end;
  bool is_match;
};

// Hugging Face's SplitDelimiterBehavior applied to the alternating match/non-match parts.
std::vector<Part> apply_behavior(std::vector<Part> parts, SplitBehavior behavior) {
  std::vector<Part> out;
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      return parts;
    case SplitBehavior::Removed:
      for (const Part& p : parts) {
        if (!p.is_match) out.push_back(p);
      }
      return out;
    case SplitBehavior::MergedWithPrevious:
      for (const Part& p : parts) {
        if (p.is_match && !prev_match && !out.empty()) {
          out.back().end = p.end;
        } else {
          out.push_back(p);
        }
        prev_match = p.is_match;
      }
      return out;
    case SplitBehavior::MergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !prev_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        prev_match = it->is_match;
      }
      return {out.rbegin(), out.rend()};
    case SplitBehavior::Contiguous:
      for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i > 0 && parts[i].is_match == prev_match) {
          out.back().end = parts[i].end;
        } else {
          out.push_back(parts[i]);
        }
        prev_match = parts[i].is_match;
      }
      return out;
  }
  return parts;
}

void split_piece(const Piece& piece, const Regex& regex, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out) {
  std::vector<Part> parts;
  std::size_t prev = 0;
  regex.for_each_match(piece.text, [&](std::size_t b, std::size_t e) {
    if (b > prev) parts.push_back({prev, b, invert});
    parts.push_back({b, e, !invert});
    prev = e;
  });
  if (prev < piece.text.size()) parts.push_back({prev, piece.text.size(), invert});
  for (const Part& p : apply_behavior(std::move(parts), behavior)) {
    if (p.end > p.begin) {
      out.push_back({piece.text.substr(p.begin, p.end - p.begin), piece.at_start && p.begin == 0});
    }
  }
}

}  // namespace

std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view segment) {
  std::string s(segment);
  for (const NormalizerStep& step : steps) {
    switch (step.kind) {
      case NormalizerKind::Nfc:
        s = nfc(s);
        break;
      case NormalizerKind::Prepend:
        if (!s.empty()) s.insert(0, step.arg);
        break;
      case NormalizerKind::Replace:
        replace_all(s, step.arg, step.replacement);
        break;
      case NormalizerKind::CollapseSpaces:
        s = collapse_spaces(s);
        break;
    }
  }
  return s;
}

PreTokenizer PreTokenizer::create(const std::vector<PreTokenizerStep>& steps,
                                  std::string_view source) {
  PreTokenizer p;
  for (const PreTokenizerStep& spec : steps) {
    Step step{spec, {}, false};
    switch (spec.kind) {
      case PreTokenizerKind::Split:
        step.regex = Regex::compile(spec.pattern, source);
        step.has_regex = true;
        break;
      case PreTokenizerKind::Digits:
        // HF uses char::is_numeric, i.e. the N categories, which is what \p{N} matches.
        step.regex = Regex::compile(spec.individual_digits ? R"(\p{N})" : R"(\p{N}+)", source);
        step.has_regex = true;
        break;
      case PreTokenizerKind::ByteLevel:
        if (spec.use_regex) {
          step.regex = Regex::compile(kGpt2Pattern, source);
          step.has_regex = true;
        }
        break;
      case PreTokenizerKind::Metaspace:
        if (spec.pattern.empty()) {
          fail(ErrorCode::Format, "{}: Metaspace pre-tokenizer has an empty replacement", source);
        }
        if (spec.split) {
          step.regex = Regex::compile(regex_escape(spec.pattern), source);
          step.has_regex = true;
        }
        break;
    }
    p.steps_.push_back(std::move(step));
  }
  return p;
}

void PreTokenizer::run(std::string segment, bool at_input_start,
                       std::vector<std::string>& words) const {
  std::vector<Piece> pieces;
  pieces.push_back({std::move(segment), at_input_start});
  std::vector<Piece> next;
  for (const Step& step : steps_) {
    next.clear();
    const PreTokenizerStep& spec = step.spec;
    for (Piece& piece : pieces) {
      switch (spec.kind) {
        case PreTokenizerKind::Split:
          split_piece(piece, step.regex, spec.behavior, spec.invert, next);
          break;
        case PreTokenizerKind::Digits:
          split_piece(piece, step.regex, SplitBehavior::Isolated, false, next);
          break;
        case PreTokenizerKind::ByteLevel:
          if (spec.add_prefix_space && !piece.text.starts_with(' ')) piece.text.insert(0, 1, ' ');
          if (step.has_regex) {
            split_piece(piece, step.regex, SplitBehavior::Isolated, false, next);
          } else {
            next.push_back(std::move(piece));
          }
          break;
        case PreTokenizerKind::Metaspace: {
          replace_all(piece.text, " ", spec.pattern);
          const bool starts = piece.text.starts_with(spec.pattern);
          const bool prepend = spec.prepend_scheme == PrependScheme::Always ||
                               (spec.prepend_scheme == PrependScheme::First && piece.at_start);
          if (prepend && !starts) piece.text.insert(0, spec.pattern);
          if (step.has_regex) {
            split_piece(piece, step.regex, SplitBehavior::MergedWithNext, false, next);
          } else {
            next.push_back(std::move(piece));
          }
          break;
        }
      }
    }
    pieces.swap(next);
  }
  for (Piece& p : pieces) {
    if (!p.text.empty()) words.push_back(std::move(p.text));
  }
}

}  // namespace qlm::detail
