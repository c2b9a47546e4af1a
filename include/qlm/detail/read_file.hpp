// Reading a whole input file (a config, a tokenizer, a prompt or a text) safely: only regular
// files (a FIFO or a device could block forever or never end), and only up to a size bound.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "qlm/error.hpp"

namespace qlm::detail {

/// The bytes of `path`, which must be a regular file of at most `max_bytes`; `what` describes the
/// file in errors ("config", "prompt file", ...), which also name the path. Never blocks on a FIFO.
Result<std::string> read_regular_file(const std::filesystem::path& path, std::uint64_t max_bytes,
                                      std::string_view what);

}  // namespace qlm::detail
