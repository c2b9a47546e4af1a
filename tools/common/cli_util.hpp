// Small helpers shared by the command-line tools: size formatting and a terminal progress bar.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

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

/// Draws a one-line progress bar on stderr, only when stderr is a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label) : label_(std::move(label)), tty_(isatty(2) != 0) {}
  void update(std::size_t done, std::size_t total) {
    if (!tty_ || total == 0) return;
    const int width = 40;
    const int filled = static_cast<int>(width * done / total);
    fmt::print(stderr, "\r{} [{:=<{}}{: <{}}] {}/{}", label_, "", filled, "", width - filled, done,
               total);
    if (done == total) fmt::print(stderr, "\n");
    std::fflush(stderr);
  }
  void abandon() {
    if (tty_) fmt::print(stderr, "\n");
  }

 private:
  std::string label_;
  bool tty_;
};

}  // namespace qlm::tools
