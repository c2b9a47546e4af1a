// Small helpers shared by the command-line tools: size formatting and a terminal progress bar.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace qlm::tools {

/// "1.23 MiB"-style size.
inline std::string human_bytes(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.2f} {}", v, units[u]);
}

/// Most threads a tool accepts (as the library's SessionOptions does).
inline constexpr int kMaxThreads = 1024;

/// A finite number: CLI11 would accept "nan" and "inf" for a float option.
inline CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (end == s.c_str() || *end != '\0' || !std::isfinite(v)) {
          return "'" + s + "' is not a finite number";
        }
        return "";
      },
      "FINITE");
}

/// A whole number in [lo, hi], refused in plain words (CLI11's own ranges print the type's
/// limits, up to 300 digits for a double).
inline CLI::Validator whole_number(long long lo, long long hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        long long v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) {
          return fmt::format("'{}' is not a whole number from {} to {}", s, lo, hi);
        }
        return "";
      },
      fmt::format("INT in [{}, {}]", lo, hi));
}

/// Parses a comma-separated list of whole numbers in [lo, hi]; nullopt with `error` set (naming
/// `what`) on anything else.
inline std::optional<std::vector<int>> parse_int_list(const std::string& s, std::string_view what,
                                                      int lo, int hi, std::string& error) {
  std::vector<int> v;
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = std::min(s.find(',', pos), s.size());
    int x = 0;
    const auto [end, ec] = std::from_chars(s.data() + pos, s.data() + comma, x);
    if (ec != std::errc() || end != s.data() + comma || x < lo || x > hi) {
      error = fmt::format("{} '{}': each must be a whole number from {} to {}", what, s, lo, hi);
      return std::nullopt;
    }
    v.push_back(x);
    if (comma == s.size()) return v;
    pos = comma + 1;
  }
}

/// The model-integrity options every tool that loads a model takes: --verify (hash every tensor
/// against its checksum at load) and --trusted-key (repeatable: refuse unsigned, altered or
/// foreign-signed files).
struct IntegrityOptions {
  bool verify = false;
  std::vector<std::string> trusted_keys;
  void add_to(CLI::App& app) {
    app.add_flag("--verify", verify, "check every tensor's checksum while loading the model");
    app.add_option("--trusted-key", trusted_keys,
                   "public key (NAME.pub from qlm-sign keygen) the model must be signed with; "
                   "repeatable")
        ->check(CLI::ExistingFile);
  }
  std::vector<std::filesystem::path> keys() const {
    return {trusted_keys.begin(), trusted_keys.end()};
  }
};

/// Draws a one-line progress bar on stderr, only when stderr is a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label) : label_(std::move(label)), tty_(isatty(2) != 0) {}
  void update(std::size_t done, std::size_t total) {
    if (!tty_ || total == 0) return;
    const int width = 40;
    const int filled = static_cast<int>(width * done / total);
    fmt::print(stderr, "\r{} [{:=<{}}{: <{}}] {}/{}{}", label_, "", filled, "", width - filled,
               done, total, time_left(done, total));
    if (done == total) fmt::print(stderr, "\n");
    std::fflush(stderr);
  }
  void abandon() {
    if (tty_) fmt::print(stderr, "\n");
  }

 private:
  // " 1m05s left" at the average pace so far (steps are assumed alike; the first one, which may
  // include start-up, is shown without an estimate). Padded so a shorter text erases a longer.
  std::string time_left(std::size_t done, std::size_t total) const {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (done < 2 || done >= total) return fmt::format("{:13}", "");
    const auto left = static_cast<long long>(
        std::lround(elapsed * static_cast<double>(total - done) / static_cast<double>(done)));
    const std::string text =
        left >= 60 ? fmt::format("{}m{:02}s", left / 60, left % 60) : fmt::format("{}s", left);
    return fmt::format(" {:<12}", text + " left");
  }

  std::string label_;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace qlm::tools
