// Normaliser and pre-tokeniser pipelines: turn a text segment into the words that BPE encodes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "qlm/tokenizer/vocabulary.hpp"
#include "tokenizer/text.hpp"

namespace qlm::detail {

/// Applies the vocabulary's normaliser steps, in order, to one segment.
std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view segment);

/// A pre-tokeniser with its regexes compiled once; run() is const and thread-safe.
class PreTokenizer {
 public:
  /// Compiles the steps' patterns; `source` names the vocabulary in error messages.
  static PreTokenizer create(const std::vector<PreTokenizerStep>& steps, std::string_view source);

  /// Splits `segment` into words. `at_input_start` says whether the segment begins at offset 0
  /// of the caller's text (Metaspace's "first" prepend scheme needs it).
  void run(std::string segment, bool at_input_start, std::vector<std::string>& words) const;

 private:
  struct Step {
    PreTokenizerStep spec;
    Regex regex;  // Split, Digits, ByteLevel(use_regex), Metaspace(split)
    bool has_regex = false;
  };
  std::vector<Step> steps_;
};

}  // namespace qlm::detail
