// Reads a tokenizer from a Hugging Face model directory into a qlm::Vocabulary.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

#include "qlm/error.hpp"
#include "qlm/tokenizer/vocabulary.hpp"

namespace qlm {

/// Loads the tokenizer of a Hugging Face model directory. Uses tokenizer.json if present, else
/// tokenizer.model (SentencePiece), else vocab.json + merges.txt; then applies
/// tokenizer_config.json, added_tokens.json, special_tokens_map.json, config.json and
/// generation_config.json where present, and finds the fill-in-the-middle tokens
/// (Vocabulary::fim, detect_fim_tokens). Unsupported tokenizer kinds give ErrorCode::Unsupported.
Result<Vocabulary> load_hf_tokenizer(const std::filesystem::path& dir);

/// Parses a serialized SentencePiece ModelProto (the bytes of a tokenizer.model file); `file`
/// names it in error messages. Only BPE models are supported.
Result<Vocabulary> parse_sentencepiece_model(std::span<const std::uint8_t> bytes,
                                             std::string_view file);

}  // namespace qlm
