// Small file helpers for tests: shared-data paths and whole-file reads and writes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qlm::test {

/// The repository's shared data directory (QLM_SHARED_DIR). Not called shared_dir(): the
/// tokenizer tests define an inline qlm::test::shared_dir() of their own.
std::filesystem::path shared_data_dir();
/// shared/models/stories260K: a real tiny Llama checkpoint (fp32 safetensors).
std::filesystem::path stories_dir();

/// Whole-file reads and writes; they throw std::runtime_error on failure.
std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path);
void write_bytes(const std::filesystem::path& path, std::span<const std::uint8_t> bytes);
std::string read_text(const std::filesystem::path& path);
void write_text(const std::filesystem::path& path, std::string_view text);

/// Names of the entries of a directory, sorted.
std::vector<std::string> list_dir(const std::filesystem::path& dir);

/// True if `needle` occurs in `haystack`.
inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace qlm::test
