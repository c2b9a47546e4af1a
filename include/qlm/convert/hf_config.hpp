// Reading a Hugging Face checkpoint's config.json into a ModelConfig.
#pragma once

#include <filesystem>

#include "qlm/config.hpp"
#include "qlm/error.hpp"

namespace qlm {

/// Reads `dir`/config.json of a llama, mistral, qwen2 or qwen3 checkpoint.
Result<ModelConfig> read_hf_config(const std::filesystem::path& dir);

}  // namespace qlm
