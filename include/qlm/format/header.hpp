// The fixed 64-byte prefix of a .qlm file and the format's version constants (docs/format.md).
#pragma once

#include <array>
#include <cstdint>

namespace qlm::format {

inline constexpr std::array<char, 4> kMagic{'Q', 'L', 'M', 'F'};
inline constexpr std::uint32_t kVersion = 1;           ///< bumped on any incompatible change
inline constexpr std::uint64_t kTensorAlignment = 64;  ///< every tensor payload starts on this
inline constexpr std::uint64_t kDataAlignment = 4096;  ///< the data section starts on a page

/// On-disk header, little-endian, exactly 64 bytes.
struct FileHeader {
  std::array<char, 4> magic = kMagic;
  std::uint32_t version = kVersion;
  std::uint32_t header_size = 64;
  std::uint32_t tensor_count = 0;
  std::uint64_t metadata_offset = 0;  ///< absolute offset of the metadata block
  std::uint64_t metadata_size = 0;
  std::uint64_t table_offset = 0;  ///< absolute offset of the tensor table
  std::uint64_t table_size = 0;
  std::uint64_t data_offset = 0;     ///< absolute offset of the data section (page aligned)
  std::uint64_t index_checksum = 0;  ///< XXH3-64 of the metadata block followed by the table
};
static_assert(sizeof(FileHeader) == 64, "FileHeader must stay 64 bytes");

}  // namespace qlm::format
