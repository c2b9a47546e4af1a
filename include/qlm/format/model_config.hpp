// A ModelConfig as the "model.*" metadata keys of a .qlm file (docs/format.md).
#pragma once

#include <string_view>

#include "qlm/config.hpp"
#include "qlm/error.hpp"
#include "qlm/format/metadata.hpp"

namespace qlm {

/// Writes the config as "model.*" metadata keys.
void store_config(const ModelConfig& config, format::Metadata& meta);

/// Reads "model.*" metadata keys; `file` names the source in errors.
Result<ModelConfig> load_config(const format::Metadata& meta, std::string_view file);

}  // namespace qlm
