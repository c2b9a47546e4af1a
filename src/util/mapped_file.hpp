// Read-only memory mapping of a whole file (RAII).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

namespace qlm::detail {

/// How MappedFile brings the file into memory.
enum class MapMode {
  Map,       ///< map the file (pages fault in from the page cache on first touch)
  Populate,  ///< map the file and pre-fault every page (MAP_POPULATE)
  Copy,      ///< read it into private anonymous memory, transparent huge pages where allowed
};

/// A regular file's bytes, read-only; throws Failure (Io) naming the file on any error.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::filesystem::path& path, MapMode mode = MapMode::Map);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void release() noexcept;
  const std::uint8_t* data_ = nullptr;
  std::uint64_t size_ = 0;
  void* region_ = nullptr;  // what munmap gets: the mapping, or the aligned anonymous region
  std::uint64_t region_size_ = 0;
};

}  // namespace qlm::detail
