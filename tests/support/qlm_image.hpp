// Taking a .qlm file apart and putting it back together with edited header fields, metadata or
// tensor table entries, with the index checksum recomputed (for malformed-input tests).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "qlm/format/header.hpp"
#include "qlm/format/tensor_info.hpp"

namespace qlm::test {

/// The parts of a .qlm file.
struct QlmImage {
  format::FileHeader header;
  std::vector<std::uint8_t> metadata;  ///< the raw metadata block
  std::vector<format::TensorInfo> table;
  std::vector<std::uint8_t> data;  ///< the data section (data_offset to end of file)
};

/// Splits a valid .qlm file (throws std::runtime_error if it is not one).
QlmImage parse_qlm(std::span<const std::uint8_t> file);

/// Lays out header, raw metadata, raw table bytes and data section as the writer does (metadata at
/// 64, table right after, data on the next page), recomputing the offsets, sizes and checksum.
/// `header` supplies magic, version, header_size and tensor_count.
std::vector<std::uint8_t> assemble_qlm(const format::FileHeader& header,
                                       std::span<const std::uint8_t> metadata,
                                       std::span<const std::uint8_t> table,
                                       std::span<const std::uint8_t> data);

/// assemble_qlm with the table encoded from `image.table` and tensor_count = its size.
std::vector<std::uint8_t> build_qlm(const QlmImage& image);

/// The header of a file (its first 64 bytes).
format::FileHeader read_header(std::span<const std::uint8_t> file);
/// Overwrites the header after letting `edit` change it (the checksum does not cover the header).
void patch_header(std::vector<std::uint8_t>& file,
                  const std::function<void(format::FileHeader&)>& edit);
/// Recomputes index_checksum over the metadata and table regions the header names.
void refresh_checksum(std::vector<std::uint8_t>& file);

}  // namespace qlm::test
