// Read-only memory mapping of a whole file (RAII).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

namespace qlm::detail {

/// Maps a regular file read-only; throws Failure (Io) naming the file on any error.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::filesystem::path& path, bool populate = false);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace qlm::detail
