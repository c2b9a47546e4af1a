// Reads a checkpoint's tokenizer files into .qlm metadata.
#pragma once

#include <filesystem>

#include "qlm/config.hpp"
#include "qlm/convert/convert.hpp"
#include "qlm/format/metadata.hpp"

namespace qlm {

/// Loads the tokenizer of `dir` (its default chat template replaced by the file `chat_template`
/// unless that is empty) and stores it as "tokenizer.*" keys; throws Failure on error.
void add_tokenizer(const std::filesystem::path& dir, const std::filesystem::path& chat_template,
                   const ModelConfig& config, format::Metadata& meta, ConvertReport& report);

}  // namespace qlm
