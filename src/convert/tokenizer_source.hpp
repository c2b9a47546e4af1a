// Reads a checkpoint's tokenizer files into .qlm metadata.
#pragma once

#include <filesystem>

#include "qlm/config.hpp"
#include "qlm/convert/convert.hpp"
#include "qlm/format/metadata.hpp"

namespace qlm {

/// Loads the tokenizer of `dir` and stores it as "tokenizer.*" keys; throws Failure on error.
void add_tokenizer(const std::filesystem::path& dir, const ModelConfig& config,
                   format::Metadata& meta, ConvertReport& report);

}  // namespace qlm
