// An output file that appears at its path only when complete: written as an unnamed temporary
// (O_TMPFILE) and renamed over the target on commit, so failures and kills leave nothing behind.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

namespace qlm::detail {

/// Exclusive writer of one output file; throws Failure (Io) naming the file on any error.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Writes `bytes` at `offset` (positions may be written in any order).
  void write_at(std::span<const std::uint8_t> bytes, std::uint64_t offset);
  /// Sets the final size, flushes and renames the file into place.
  void commit(std::uint64_t size);

 private:
  std::filesystem::path target_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace qlm::detail
