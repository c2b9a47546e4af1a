// Shared pieces of the libFuzzer targets: each input becomes a file (most loaders take a path),
// in a directory of the process's own that is removed at exit.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>

namespace qlm::fuzz {

/// A directory for one fuzzing process (libFuzzer may run several jobs side by side).
inline const std::filesystem::path& work_dir() {
  static const std::filesystem::path dir = [] {
    const char* base = std::getenv("QLM_FUZZ_TMP");
    std::filesystem::path d =
        std::filesystem::path(base ? base : "/tmp") / ("qlm-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(work_dir(), ec);
    });
    return d;
  }();
  return dir;
}

/// Writes `bytes` to work_dir()/name and returns the path.
inline std::filesystem::path write_file(std::string_view name,
                                        std::span<const std::uint8_t> bytes) {
  const auto p = work_dir() / name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  return p;
}

/// Splits an input into two parts at the first occurrence of `sep` (all of it goes to the first
/// part when there is none): lets one input hold two files.
inline std::pair<std::span<const std::uint8_t>, std::span<const std::uint8_t>> split(
    std::span<const std::uint8_t> in, std::string_view sep) {
  const std::string_view s(reinterpret_cast<const char*>(in.data()), in.size());
  const std::size_t at = s.find(sep);
  if (at == std::string_view::npos) return {in, {}};
  return {in.first(at), in.subspan(at + sep.size())};
}

/// The separator the seed corpora use between two files of one input.
inline constexpr std::string_view kFileSeparator = "\n=====QLM-FUZZ-NEXT-FILE=====\n";

}  // namespace qlm::fuzz
